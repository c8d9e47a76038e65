"""fairaudit.allocator: applied by the command line on glibc, never over the user's settings."""
import subprocess
import sys

import pytest

from fairaudit import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tune_applies_on_glibc_and_yields_to_user_settings(monkeypatch):
    for var in allocator._USER_SET:
        monkeypatch.delenv(var, raising=False)
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert allocator.tune() is True
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert allocator.tune() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_the_cli_entry_point_tunes_before_running(tmp_path):
    """The console entry point main() tunes the allocator once, before the app runs."""
    code = ("import fairaudit.allocator as a, fairaudit.cli.app as m; calls=[]; real=a.tune; "
            "a.tune=lambda: calls.append(1) or real(); m.app=lambda: print('ran', calls); m.main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ran [1]"
