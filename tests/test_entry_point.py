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


def test_the_command_exits_at_once_with_its_code_output_and_exit_handlers(tmp_path):
    """main() ends the process without the interpreter teardown, but only after the exit
    handlers ran and the output was flushed: the exit code, every line of a piped output
    and an atexit handler's file are all there."""
    marker = tmp_path / "atexit.txt"
    code = ("import atexit, sys; atexit.register(lambda: open(%r, 'w').write('ran')); "
            "sys.argv = ['fairaudit'] + sys.argv[1:]; from fairaudit.cli.app import main; main()") % str(marker)
    from conftest import SAMPLE

    ok = subprocess.run([sys.executable, "-c", code, "score", str(SAMPLE / "utterances.csv"), "--out",
                         str(tmp_path / "o")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "rows read" in ok.stdout and marker.read_text() == "ran"
    assert (tmp_path / "o" / "accounting.json").exists()
    marker.unlink()
    bad = subprocess.run([sys.executable, "-c", code, "audit", str(tmp_path / "missing.csv")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "input file not found" in bad.stderr + bad.stdout
    assert marker.read_text() == "ran"
