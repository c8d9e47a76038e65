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
