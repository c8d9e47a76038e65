"""`fairaudit gate`: exit codes, thresholds from config, baseline, JUnit and Markdown outputs."""
import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from typer.testing import CliRunner

import fairaudit
from fairaudit.cli.app import app

runner = CliRunner()


def make_report(tmp_path, name: str, bad_wer_words: int, **audit_kwargs) -> str:
    """An audit with two attribute cohorts; cohort 'b' loses ``bad_wer_words`` of 10 words."""
    rows = []
    for s in range(40):
        grp = "a" if s < 20 else "b"
        ref = " ".join(f"w{i}" for i in range(10))
        drop = 1 if grp == "a" else bad_wer_words
        hyp = " ".join(f"w{i}" for i in range(drop, 10))
        rows += [{"utt_id": f"{name}{s}-{u}", "speaker_id": f"s{s}", "reference": ref, "hypothesis": hyp, "grp": grp}
                 for u in range(2)]
    result = fairaudit.audit(pd.DataFrame(rows), by=["grp"], discoverers=[], min_speakers=5, **audit_kwargs)
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


def _with_heldout(path, gap_pct: float, ci: list[float]) -> str:
    """The saved report with the held-out gap of its one entry set to ``gap_pct`` (a search
    whose as-found gap is inflated: the attribute fixture's two gaps are otherwise equal)."""
    from fairaudit.stats.report import headline_gap

    doc = json.loads(open(path).read())
    entry = doc["discoverers"]["attribute:grp"]
    entry["heldout"].update(gap_pct=gap_pct, ci_pct=ci)
    entry["headline_gap"] = headline_gap(entry)
    with open(path, "w") as fh:
        json.dump(doc, fh)
    return path


def test_gap_threshold_checks_the_heldout_gap_when_there_is_one(reports):
    _, cand = reports                       # as found: 200 %
    _with_heldout(cand, 40.0, [10.0, 70.0])
    r = gate(cand, "--max-gap-pct", 150)
    assert r.exit_code == 0, r.output
    assert "PASS attribute:grp WER gap: 40.0 % held-out [CI 10.0–70.0] ≤ 150 %" in r.output
    assert "checked the headline gap: held-out; as found 200.0 %" in r.output
    r = gate(cand, "--max-gap-pct", 30)
    assert r.exit_code == 1 and "FAIL attribute:grp WER gap: 40.0 % held-out" in r.output
    # --gap heldout asks for the same figure explicitly
    r = gate(cand, "--max-gap-pct", 150, "--gap", "heldout")
    assert r.exit_code == 0 and "checked the held-out gap (--gap heldout)" in r.output


def test_gap_option_chooses_the_as_found_gap(reports, tmp_path, monkeypatch):
    _, cand = reports
    _with_heldout(cand, 40.0, [10.0, 70.0])
    r = gate(cand, "--max-gap-pct", 150, "--gap", "found")
    assert r.exit_code == 1, r.output
    assert "FAIL attribute:grp WER gap: 200.0 % as found > 150 % (checked the as-found gap" in r.output
    assert "held-out 40.0 %" in r.output
    assert gate(cand, "--max-gap-pct", 150, "--gap", "as-found").exit_code == 1   # the spelling of the docs
    r = gate(cand, "--max-gap-pct", 150, "--gap", "honest")
    assert r.exit_code == 2 and "not a gap to check" in r.output and "Traceback" not in r.output
    # the config key, and the flag over it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fairaudit.toml").write_text('[gate]\nmax_gap_pct = 150\ngap = "found"\n')
    assert gate(cand).exit_code == 1
    assert gate(cand, "--gap", "headline").exit_code == 0
    (tmp_path / "fairaudit.toml").write_text('[gate]\nmax_gap_pct = 150\ngap = "best"\n')
    r = gate(cand)
    assert r.exit_code == 2 and "gap" in r.output


def test_gap_threshold_without_heldout_estimate_labels_the_fallback(tmp_path):
    path = make_report(tmp_path, "nohonest", 3, honest=False)     # as found: 200 %
    r = gate(path, "--max-gap-pct", 150)
    assert r.exit_code == 1, r.output
    assert ("FAIL attribute:grp WER gap: 200.0 % as found > 150 % (checked the headline gap: as found, "
            "no held-out estimate (held-out gap not computed (--no-honest-gap))") in r.output
    assert gate(path, "--max-gap-pct", 250).exit_code == 0
    # asked for the held-out gap, a report without one fails the check instead of passing silently
    r = gate(path, "--max-gap-pct", 250, "--gap", "heldout")
    assert r.exit_code == 1 and "nothing checked: no held-out gap" in r.output


def test_audit_fail_on_gap(tmp_path):
    from conftest import SAMPLE
    args = ["audit", str(SAMPLE / "utterances.csv"), "--speakers", str(SAMPLE / "speakers.csv"),
            "--discoverers", "geographic", "--no-html", "-q", "--out", str(tmp_path / "o")]
    assert runner.invoke(app, args + ["--fail-on-gap", "1000"]).exit_code == 0
    r = runner.invoke(app, args + ["--fail-on-gap", "10"])
    assert r.exit_code == 1 and "FAIL geographic WER gap" in r.output and "checked the headline gap" in r.output
    entry = json.loads((tmp_path / "o" / "report.json").read_text())["discoverers"]["geographic"]
    held, found = entry["heldout"]["gap_pct"], entry["wer_gap_pct"]
    assert entry["headline_gap"]["basis"] == "heldout" and held != found
    # a threshold between the two: the headline (held-out) gap and the as-found one disagree
    mid = f"{(held + found) / 2:.6f}"
    codes = {basis: runner.invoke(app, args + ["--fail-on-gap", mid, "--fail-on-gap-basis", basis]).exit_code
             for basis in ("headline", "found")}
    assert codes == ({"headline": 0, "found": 1} if held < found else {"headline": 1, "found": 0})
    r = runner.invoke(app, args + ["--fail-on-gap", "10", "--fail-on-gap-basis", "honest"])
    assert r.exit_code == 2 and "--fail-on-gap-basis" in r.output


def test_baseline_increase_compares_like_with_like(tmp_path):
    """--max-gap-increase-pct takes the --gap basis on both reports: the held-out gaps when
    both have them, both as-found gaps when only one has, and --gap heldout without a
    held-out gap on either side is a failed "nothing checked", not a pass."""
    base = make_report(tmp_path, "base", 2, n_boot=50, n_perm=0)
    cand = make_report(tmp_path, "cand", 3, n_boot=50, n_perm=0)
    plain = make_report(tmp_path, "plain", 2, n_boot=50, n_perm=0, honest=False)
    held = {}
    for name, path in (("base", base), ("cand", cand)):
        held[name] = json.loads(open(path).read())["discoverers"]["attribute:grp"]["heldout"]["gap_pct"]
    r = gate(cand, "--baseline", base, "--max-gap-increase-pct", 1000)
    assert r.exit_code == 0 and "held-out" in r.output
    inc = held["cand"] - held["base"]
    assert f"({'+' if inc >= 0 else ''}{inc:.1f} points, held-out)" in r.output
    r = gate(cand, "--baseline", plain, "--max-gap-increase-pct", 1000)
    assert r.exit_code == 0 and "as found on both (the baseline has no held-out estimate)" in " ".join(r.output.split())
    r = gate(cand, "--baseline", plain, "--max-gap-increase-pct", 1000, "--gap", "heldout")
    assert r.exit_code == 1 and "nothing checked: the baseline has no held-out gap" in " ".join(r.output.split())
    r = gate(cand, "--baseline", base, "--max-gap-increase-pct", 1000, "--gap", "found")
    assert r.exit_code == 0 and "+100.0 points, as found" in r.output
