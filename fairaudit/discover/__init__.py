"""Cohort discoverers, one module each, found automatically (see base.py)."""
import importlib
import pkgutil

from .base import REGISTRY, Discoverer, Discovery, SideInputs, register

# Import every module of this package so that each discoverer registers itself: a new
# discoverer is one new file here and touches no other.
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "Discoverer", "Discovery", "SideInputs", "register"]
