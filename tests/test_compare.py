"""`fairaudit compare`: two systems on the same cohorts, paired ΔWER, reuse of saved cohorts, gate input."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.cli.app import app

runner = CliRunner()


@pytest.fixture
def two_systems(tmp_path):
    """sysB is worse than sysA on group y only; cohorts by grp."""
    rng = np.random.default_rng(3)
    rows = []
    for s in range(80):
        grp = "y" if s % 4 == 0 else "x"
        for u in range(5):
            words = [f"w{i}" for i in rng.integers(0, 40, 10)]
            a = [w if rng.random() > 0.08 else "zz" for w in words]
            b = [w if rng.random() > (0.3 if grp == "y" else 0.08) else "zz" for w in words]
            rows.append({"utt_id": f"{s}-{u}", "speaker_id": f"s{s}", "reference": " ".join(words),
                         "sysA": " ".join(a), "sysB": " ".join(b), "grp": grp})
    df = pd.DataFrame(rows)
    path = tmp_path / "two.csv"
    df.to_csv(path, index=False)
    return str(path), df


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_same_cohorts_and_paired_delta(two_systems, tmp_path):
    path, df = two_systems
    r = run("compare", path, "--hyp-col", "sysA", "--hyp-col", "sysB", "--by", "grp", "--discoverers", "",
            "--min-speakers", "5", "--no-html", "--resamples", "2000", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert doc["kind"] == "comparison" and (doc["baseline"], doc["candidate"]) == ("sysA", "sysB")
    cohorts = {c["label"]: c for c in doc["discoverers"]["attribute:grp"]["cohorts"]}
    y, x = cohorts["grp=y"], cohorts["grp=x"]
    assert y["speakers"] == 20 and x["speakers"] == 60
    assert y["delta_wer"] == pytest.approx(y["wer"]["sysB"] - y["wer"]["sysA"])
    assert y["delta_wer"] > 0.1 and y["p_value"] < 0.01 and y["ci_low"] > 0
    assert abs(x["delta_wer"]) < 0.03 and x["p_value"] > 0.01
    gap = doc["discoverers"]["attribute:grp"]["gap"]
    assert gap["sysB"]["wer_gap_pct"] > gap["sysA"]["wer_gap_pct"] + 100
    g = run("gate", tmp_path / "c" / "compare.json", "--max-gap-increase-pct", "20")
    assert g.exit_code == 1 and "on the same cohorts" in g.output
    g = run("gate", tmp_path / "c" / "compare.json", "--max-delta-wer", "0.05", "--require-significant")
    assert g.exit_code == 1 and "FAIL attribute:grp cohort" in g.output


def test_reuse_saved_cohorts_and_candidate_file(two_systems, tmp_path):
    path, df = two_systems
    a = run("audit", path, "--hyp-col", "sysA", "--by", "grp", "--discoverers", "", "--min-speakers", "5",
            "--no-html", "-q", "--out", tmp_path / "audit")
    assert a.exit_code == 0, a.output
    cand = tmp_path / "cand.csv"
    # the candidate file has the same layout as the baseline file
    df.drop(columns="sysA").rename(columns={"sysB": "sysA"}).to_csv(cand, index=False)
    r = run("compare", path, "--hyp-col", "sysA", "--candidate", cand, "--cohorts", tmp_path / "audit" / "assignments.csv",
            "--min-speakers", "5", "--no-html", "--resamples", "500", "--out", tmp_path / "c2")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c2" / "compare.json").read_text())
    labels = {c["label"] for c in doc["discoverers"]["attribute:grp"]["cohorts"]}
    assert labels == {"grp=x", "grp=y"}  # labels come from cohorts.csv beside the assignments
    assert doc["overall"][doc["candidate"]]["wer"] > doc["overall"]["sysA"]["wer"]


def test_compare_needs_two_systems(two_systems, tmp_path):
    path, _ = two_systems
    r = run("compare", path, "--hyp-col", "sysA", "--no-html", "--out", tmp_path / "c")
    assert r.exit_code == 2 and "exactly two systems" in r.output
    r = run("compare", path, "--hyp-col", "sysA", "--hyp-col", "sysB", "--cohorts", tmp_path / "none.csv")
    assert r.exit_code == 2 and "not found" in r.output


def test_compare_html_escapes_labels(tmp_path):
    rows = []
    for s in range(12):
        grp = '<script>alert(1)</script>' if s % 2 else '"><img src=x onerror=alert(2)>'
        rows += [{"utt_id": f"{s}-{u}", "speaker_id": f"s{s}", "reference": "a b c d", "sysA": "a b c",
                  "sysB": "a b c d", "grp": grp} for u in range(2)]
    path = tmp_path / "h.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    r = run("compare", path, "--hyp-col", "sysA", "--hyp-col", "sysB", "--by", "grp", "--discoverers", "",
            "--min-speakers", "2", "--resamples", "200", "-q", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    html = (tmp_path / "c" / "compare.html").read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_compare_finds_the_audits_regions_on_sample_data(tmp_path):
    """One pipeline: compare's baseline discovery is the audit's (zip centroids included),
    so its geographic regions are the audit's regions, speaker for speaker."""
    import fairaudit
    from fairaudit.compare import compare
    from fairaudit.io.readers import InputSpec

    from conftest import SAMPLE

    utts = pd.read_csv(SAMPLE / "utterances.csv", dtype=str, keep_default_na=False)
    utts["other"] = utts["hypothesis"]
    path = tmp_path / "two.csv"
    utts.to_csv(path, index=False)
    kw = dict(speakers=str(SAMPLE / "speakers.csv"), discoverers=["geographic"])
    audited = fairaudit.audit(str(path), n_boot=0, n_perm=0, honest=False, **kw).discoverers["geographic"]
    doc = compare(InputSpec(path=str(path), hyp_col="hypothesis", more_hyp_cols=("other",)), resamples=100,
                  **kw).report["discoverers"]["geographic"]
    assert audited["approximate_coordinates"] == 4     # zip-only speakers placed at their zip centroid
    assert sorted((c["label"], c["speakers"]) for c in doc["cohorts"]) == \
        sorted((c["label"], c["speakers"]) for c in audited["cohorts"])
    assert sum(c["speakers"] for c in doc["cohorts"]) == audited["audited_speakers"] == 497
