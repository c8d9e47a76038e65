import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
REALDATA = ROOT.parent / "shared" / "realdata"


@pytest.fixture
def write(tmp_path):
    """Write text to a file under tmp_path and return its path as str."""
    def _write(name: str, text: str) -> str:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return str(p)
    return _write


def realdata_dir():
    """The shared real-data folder.  CI (the ``CI`` environment variable set) always has it,
    so there its absence fails the test instead of skipping it: a real-data test can never
    be skipped silently.  Local runs without the folder skip, with the path as the reason."""
    if not REALDATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {REALDATA} is absent, and CI must run the real-data tests")
        pytest.skip(f"real data folder {REALDATA} is absent (it sits beside the repository in CI when shared)")
    return REALDATA


PLUGIN_EXAMPLE = ROOT / "examples" / "fairaudit-plugin-example"


def error_line(r) -> str:
    """The one message line of a refused run (exit 2, no traceback)."""
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and isinstance(r.exception, SystemExit), r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    """The example plugin package (examples/fairaudit-plugin-example), installed with pip
    into a folder of its own (``--target``, ``--no-deps``: the running venv is not
    changed), with its dist-info so ``importlib.metadata`` finds its entry point.  A failed
    install fails the tests that need it: the plugin contract is not optional."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("plugin_site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                           "--target", str(target), str(PLUGIN_EXAMPLE)], capture_output=True, text=True)
    assert done.returncode == 0, f"pip could not install the example plugin:\n{done.stdout}\n{done.stderr}"
    assert list(target.glob("fairaudit_plugin_example-*.dist-info")), "no dist-info: the entry point is not visible"
    return target


@pytest.fixture(scope="session")
def plugin(plugin_site):
    """The example plugin loaded into this process (its folder on sys.path, entry points
    read again): returns its discoverer class."""
    import importlib
    import sys

    from fairaudit.discover import load_plugins, registry

    if str(plugin_site) not in sys.path:
        sys.path.insert(0, str(plugin_site))
    importlib.invalidate_caches()
    load_plugins(refresh=True)
    return registry()["snr"]


def plugin_env(plugin_site) -> dict:
    """Environment of a subprocess that sees the installed example plugin."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_site), env.get("PYTHONPATH", "")) if p)
    return env


def cli_flags(plugin_site) -> dict[str, set[str]]:
    """Every option spelling of every command, from a fresh interpreter that sees the plugin."""
    code = ("import json, typer; from fairaudit.cli.app import app; cmd = typer.main.get_command(app); "
            "print(json.dumps({n: sorted(o for p in c.params for o in (*p.opts, *p.secondary_opts)) "
            "for n, c in cmd.commands.items()}))")
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=plugin_env(plugin_site),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return {k: set(v) for k, v in json.loads(done.stdout).items()}


# ----------------------------------------------------------------- HTML report pages (one per worker)

@pytest.fixture(scope="session")
def sample_out(tmp_path_factory):
    """The sample audit written by the CLI: report.json, cohorts.csv, report.html, ..."""
    from reportpages import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def hostile_out(tmp_path_factory):
    """An audit whose ids, labels, file names, transcripts and warnings are hostile strings."""
    from reportpages import write_hostile

    return write_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (skips when either is missing)."""
    from reportpages import launch_browser

    yield from launch_browser()
