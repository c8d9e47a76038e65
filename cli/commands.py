"""Imports the modules whose commands register on the typer app (one module per view)."""
import importlib
import pkgutil
import pathlib

# Every cli/cmd_*.py module defines one or more commands on fairaudit.cli.app.app.
for _mod in pkgutil.iter_modules([str(pathlib.Path(__file__).parent)]):
    if _mod.name.startswith("cmd_"):
        importlib.import_module(f"{__package__}.{_mod.name}")
