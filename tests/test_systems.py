"""Several systems audited side by side: hypothesis columns, WER columns, Kaldi hypothesis files."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import fairaudit
from fairaudit.cli.app import app
from fairaudit.io.readers import InputSpec
from fairaudit.result import AuditResult, validate

runner = CliRunner()


@pytest.fixture
def multi_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for s in range(60):
        for u in range(4):
            ref = " ".join(f"w{i}" for i in rng.integers(0, 50, 10))
            words = ref.split()
            rows.append({"utt_id": f"{s}-{u}", "speaker_id": f"s{s}", "reference": ref,
                         "sysA": " ".join(words[2:]) if s % 3 == 0 else ref,  # sysA fails group y
                         "sysB": " ".join(words[1:]),                          # sysB: 10 % everywhere
                         "grp": "y" if s % 3 == 0 else "x"})
    path = tmp_path / "multi.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_side_by_side_equals_separate_audits(multi_csv):
    both = fairaudit.audit(InputSpec(path=multi_csv, hyp_col="sysA", more_hyp_cols=("sysB",)), by=["grp"],
                           discoverers=[], min_speakers=5)
    validate(json.loads(both.to_json()))
    assert both.system_names == ["sysA", "sysB"]
    for name in ("sysA", "sysB"):
        alone = fairaudit.audit(InputSpec(path=multi_csv, hyp_col=name), by=["grp"], discoverers=[], min_speakers=5)
        view = both.for_system(name)
        assert view.overall == alone.overall
        assert view.discoverers["attribute:grp"]["cohorts"] == alone.discoverers["attribute:grp"]["cohorts"]
    a = both.for_system("sysA").discoverers["attribute:grp"]
    b = both.for_system("sysB").discoverers["attribute:grp"]
    assert a["cohorts"][0]["label"] == "grp=y" and a["wer_gap_pct"] is None  # sysA: 0 % WER on x
    assert b["wer_gap_pct"] == pytest.approx(0.0)
    assert set(both.assignments["system"]) == {"sysA", "sysB"}


def test_cli_side_by_side_and_gate(multi_csv, tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(app, ["audit", multi_csv, "--hyp-col", "sysA", "--hyp-col", "sysB", "--by", "grp",
                            "--discoverers", "", "--min-speakers", "5", "--no-html", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "systems side by side" in r.output and "[sysB]" in r.output
    g = runner.invoke(app, ["gate", str(out / "report.json"), "--max-overall-wer", "0.09"])
    assert g.exit_code == 1
    assert "PASS [sysA] overall WER" in g.output and "FAIL [sysB] overall WER" in g.output


def test_wer_columns(tmp_path):
    path = tmp_path / "w.csv"
    pd.DataFrame({"utt_id": ["a", "b", "c", "d"], "speaker_id": ["s1", "s1", "s2", "s2"], "n": [10, 10, 5, 5],
                  "google": [0.1, 0.2, 0.0, 0.2], "ibm": [0.3, 0.1, 0.4, 0.4]}).to_csv(path, index=False)
    res = fairaudit.audit(InputSpec(path=str(path), wer_col="google", more_value_cols=("ibm",), ref_words_col="n"),
                          discoverers=[])
    assert res.for_system("google").overall["errors"] == 4
    assert res.for_system("ibm").overall["errors"] == 8


def test_kaldi_two_hypothesis_files(write):
    ref = write("ref.txt", "u1 a b c\nu2 d e\n")
    h1 = write("sys1/text", "u1 a b c\nu2 d e\n")
    h2 = write("sys2/text", "u1 a x c\nu2 d\n")
    u2s = write("utt2spk", "u1 s1\nu2 s2\n")
    res = fairaudit.audit(InputSpec(path=ref, format="kaldi", hyp_path=h1, more_hyp_paths=(h2,), utt2spk=u2s),
                          discoverers=[])
    assert [res.for_system(n).overall["errors"] for n in res.system_names] == [0, 2]


def test_score_takes_one_system(multi_csv):
    r = runner.invoke(app, ["score", multi_csv, "--hyp-col", "sysA", "--hyp-col", "sysB"])
    assert r.exit_code == 2 and "one system" in r.output


def test_html_shows_systems_side_by_side(multi_csv, tmp_path):
    from fairaudit.reports.html import render_html

    res = fairaudit.audit(InputSpec(path=multi_csv, hyp_col="sysA", more_hyp_cols=("sysB",)), by=["grp"],
                          discoverers=[], min_speakers=5, n_perm=0, n_boot=0)
    html = render_html(res)
    assert "Systems side by side" in html
    assert 'data-system-overall="0">6.67<' in html and 'data-system-overall="1">10.00<' in html
    single = fairaudit.audit(InputSpec(path=multi_csv, hyp_col="sysA"), by=["grp"], discoverers=[], min_speakers=5,
                             n_perm=0, n_boot=0)
    assert "Systems side by side" not in render_html(single)
