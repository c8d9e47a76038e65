"""`fairaudit gate`: exit codes, thresholds from config, baseline, JUnit and Markdown outputs."""
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from typer.testing import CliRunner

import fairaudit
from fairaudit.cli.app import app

runner = CliRunner()


def make_report(tmp_path, name: str, bad_wer_words: int) -> str:
    """An audit with two attribute cohorts; cohort 'b' loses ``bad_wer_words`` of 10 words."""
    rows = []
    for s in range(40):
        grp = "a" if s < 20 else "b"
        ref = " ".join(f"w{i}" for i in range(10))
        drop = 1 if grp == "a" else bad_wer_words
        hyp = " ".join(f"w{i}" for i in range(drop, 10))
        rows += [{"utt_id": f"{name}{s}-{u}", "speaker_id": f"s{s}", "reference": ref, "hypothesis": hyp, "grp": grp}
                 for u in range(2)]
    result = fairaudit.audit(pd.DataFrame(rows), by=["grp"], discoverers=[], min_speakers=5)
    out = tmp_path / name
    result.save(str(out))
    return str(out / "report.json")


@pytest.fixture
def reports(tmp_path):
    # gap: WER 0.1 vs 0.2 -> 100 %; candidate 0.1 vs 0.3 -> 200 %
    return make_report(tmp_path, "base", 2), make_report(tmp_path, "cand", 3)


def gate(*args, cwd=None):
    return runner.invoke(app, ["gate", *map(str, args)])


def test_pass_and_fail_exit_codes(reports):
    base, cand = reports
    r = gate(base, "--max-gap-pct", 150)
    assert r.exit_code == 0, r.output
    assert "PASS attribute:grp WER gap: 100.0 %" in r.output
    r = gate(cand, "--max-gap-pct", 150)
    assert r.exit_code == 1 and "FAIL attribute:grp WER gap: 200.0 %" in r.output


def test_wer_thresholds(reports):
    base, _ = reports
    assert gate(base, "--max-bottom-wer", "0.25").exit_code == 0
    assert gate(base, "--max-bottom-wer", "15%").exit_code == 1
    assert gate(base, "--max-overall-wer", "0.1").exit_code == 1
    r = gate(base, "--max-overall-wer", "15")
    assert r.exit_code == 2 and "percent" in r.output


def test_baseline_increase(reports):
    base, cand = reports
    r = gate(cand, "--baseline", base, "--max-gap-increase-pct", 50)
    assert r.exit_code == 1 and "+100.0 points" in r.output
    assert gate(cand, "--baseline", base, "--max-gap-increase-pct", 150).exit_code == 0


def test_usage_errors_exit_2(reports, tmp_path):
    base, _ = reports
    assert gate(base).exit_code == 2  # no thresholds at all
    assert gate(tmp_path / "missing.json", "--max-gap-pct", 1).exit_code == 2
    # A named discoverer the report lacks is a failed check (exit 1), not a usage error:
    # the gate was asked to check it and could not (tests/test_trust.py).
    r = gate(base, "--max-gap-pct", 1, "--discoverer", "geographic")
    assert r.exit_code == 1 and "not in the report" in r.output
    assert gate(base, "--max-gap-increase-pct", 5).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = gate(bad, "--max-gap-pct", 1)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_thresholds_from_pyproject_and_flag_override(reports, tmp_path, monkeypatch):
    base, cand = reports
    (tmp_path / "pyproject.toml").write_text("[tool.fairaudit.gate]\nmax_gap_pct = 150\n")
    monkeypatch.chdir(tmp_path)
    assert gate(base).exit_code == 0
    assert gate(cand).exit_code == 1
    assert gate(cand, "--max-gap-pct", 250).exit_code == 0  # the flag wins
    (tmp_path / "fairaudit.toml").write_text("[gate]\nmax_gap_pct = 250\n")
    assert gate(cand).exit_code == 0  # fairaudit.toml is read first
    (tmp_path / "fairaudit.toml").write_text("[gate]\nmax_gapp = 1\n")
    r = gate(cand)
    assert r.exit_code == 2 and "unknown gate setting" in r.output


def test_junit_and_markdown(reports, tmp_path):
    _, cand = reports
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    r = gate(cand, "--max-gap-pct", 150, "--max-overall-wer", "0.5", "--junit", junit, "--markdown", md)
    assert r.exit_code == 1
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 2 and root.get("failures") == "1"
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed[0].get("name") == "attribute:grp WER gap"
    text = md.read_text()
    assert text.startswith("### fairaudit gate: FAILED (1/2 checks passed)")
    assert "❌" in text and "✅" in text


def test_audit_fail_on_gap(tmp_path):
    from conftest import SAMPLE
    args = ["audit", str(SAMPLE / "utterances.csv"), "--speakers", str(SAMPLE / "speakers.csv"),
            "--discoverers", "geographic", "--no-html", "-q", "--out", str(tmp_path / "o")]
    assert runner.invoke(app, args + ["--fail-on-gap", "1000"]).exit_code == 0
    r = runner.invoke(app, args + ["--fail-on-gap", "10"])
    assert r.exit_code == 1 and "FAIL geographic WER gap" in r.output
