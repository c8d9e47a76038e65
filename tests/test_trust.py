"""Trust on every input (issue 13): no traceback, no lost row, no vacuous pass.

Every case runs through the CLI (typer's CliRunner, in process) and asserts the exit
code, one message line on error, no traceback, and rows read = scored + dropped.
"""
from __future__ import annotations

import json
import pathlib
import tomllib

import pytest
from typer.testing import CliRunner

from fairaudit.cli.app import app

import conftest

ROOT = pathlib.Path(__file__).resolve().parents[1]
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(r, code: int = 2) -> str:
    """The one message line of a refused run (exit ``code``, no traceback)."""
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


# ------------------------------------------------------------------ packaging, CI


def test_every_importable_folder_is_a_listed_package():
    """setuptools warns about (and may drop) a folder Python can import that is missing
    from `packages`: list every folder of the three package roots that holds files."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = cfg["package-dir"]
    listed = set(cfg["packages"])
    for pkg, folder in roots.items():
        base = ROOT / folder
        for d in [base, *[p for p in base.rglob("*") if p.is_dir()]]:
            if d.name == "__pycache__" or not any(f.is_file() for f in d.iterdir()):
                continue
            name = ".".join([pkg, *d.relative_to(base).parts])
            assert name in listed, f"{name} is importable but not in [tool.setuptools] packages"
    data = cfg["package-data"]
    assert "fairaudit.schema" in data and "fairaudit.reports.templates" in data


def test_realdata_fails_instead_of_skipping_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "REALDATA", tmp_path / "absent")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="absent"):
        conftest.realdata_dir()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        conftest.realdata_dir()
