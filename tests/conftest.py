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
