"""Every cohort against the rest, raw and adjusted, through the audit, the CLI, the views
and the gate (fairaudit.adjust.audit_rate_ratios; the models themselves: test_adjust.py)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.adjust import audit_rate_ratios
from fairaudit.audit import audit
from fairaudit.cli.app import app
from fairaudit.discover import Discoverer, Discovery, SideInputs
from fairaudit.result import SCHEMA_VERSION, AuditResult, validate

from conftest import realdata_dir

runner = CliRunner()


def _utterances(seed: int = 0, n_speakers: int = 400, gender_effect: float = 1.0) -> pd.DataFrame:
    """Heterogeneous speakers; far-field (2x) for 75 % of women's and 25 % of men's
    utterances; women's own effect ``gender_effect``; a speaker score ``x`` of which the
    top ~15 % of speakers are served 1.8x worse."""
    rng = np.random.default_rng(seed)
    rate = rng.beta(2, 18, n_speakers)
    spk = np.repeat(np.arange(n_speakers), rng.poisson(8, n_speakers) + 1)
    words = rng.integers(3, 21, len(spk))
    female = np.arange(n_speakers) < n_speakers // 2
    far = rng.random(len(spk)) < np.where(female, 0.75, 0.25)[spk]
    x = rng.random(n_speakers)
    mult = np.where(far, 2.0, 1.0) * np.where(female[spk], gender_effect, 1.0) * np.where(x[spk] > 0.85, 1.8, 1.0)
    ids = np.array([f"s{i:03d}" for i in range(n_speakers)])
    return pd.DataFrame({"utt_id": [f"u{i:05d}" for i in range(len(spk))], "speaker_id": ids[spk],
                         "errors": rng.poisson(words * rate[spk] * mult), "ref_words": words,
                         "device": np.where(far, "far", "near"), "gender": np.where(female, "f", "m")[spk],
                         "x": x[spk].round(4), "band": np.where(x > 0.85, "high", "low")[spk]})


def _cohort(entry: dict, cid: str) -> dict:
    return next(c for c in entry["cohorts"] if c["id"] == cid)


def _label(entry: dict, label: str) -> dict:
    return next(c for c in entry["cohorts"] if c["label"] == label)


@pytest.fixture(scope="module")
def confounded():
    utts = _utterances()
    res = audit(utts, by=["gender"], discoverers=[], adjust=["device"], n_boot=0, n_perm=200, honest=False)
    return utts, res


def test_gender_gap_from_the_device_is_explained_away_in_the_report(confounded):
    _, res = confounded
    validate(res.report)
    assert res.report["schema_version"] == SCHEMA_VERSION   # unchanged: the lead assigns it at merge
    entry = res.discoverers["attribute:gender"]
    f = _label(entry, "gender=f")
    # the example: the raw audit blames gender (gap significant by its permutation test) ...
    assert entry["bottom"] == f["id"] and entry["wer_gap_pct"] > 25 and entry["p_value"] < 0.05
    assert f["rate_ratio"]["rate_ratio"] > 1.25 and f["rate_ratio"]["p_holm"] < 0.01
    # ... and at equal device there is nothing left
    assert f["rate_ratio"]["covariates"] == [] and f["adjusted"]["covariates"] == ["device"]
    lo, hi = f["adjusted"]["rate_ratio_ci"]
    assert lo <= 1.0 <= hi and f["adjusted"]["explained_away"] is True
    assert f["adjusted"]["fitted_on"] == "all audited speakers"
    # the bottom cohort's blocks stand beside the discoverer too
    assert entry["adjusted"]["cohort"] == entry["bottom"] == f["id"]
    assert entry["rate_ratio"]["rate_ratio"] == f["rate_ratio"]["rate_ratio"]
    rr = res.report["rate_ratios"]
    assert rr["basis"] == "adjusted" and rr["worse_than_rest"] == []
    # a two-cohort split is one test, not two
    assert rr["family"] == {"raw_tests": 1, "adjusted_tests": 1, "scope": rr["family"]["scope"]}
    assert [c["name"] for c in rr["covariates"]] == ["device"] and rr["covariates"][0]["unit"] == "utterance"
    assert res.report["inputs"]["options"]["adjust"] == ["device"]


def test_a_real_gender_effect_stays_and_is_listed_worse_than_the_rest():
    res = audit(_utterances(seed=1, gender_effect=1.6), by=["gender"], discoverers=[], adjust=["device", "ref_words"],
                n_boot=0, n_perm=0, honest=False)
    f = _label(res.discoverers["attribute:gender"], "gender=f")
    assert f["adjusted"]["rate_ratio_ci"][0] > 1.1 and not f["adjusted"]["explained_away"]
    worse = res.report["rate_ratios"]["worse_than_rest"]
    assert [(w["discoverer"], w["label"]) for w in worse] == [("attribute:gender", "gender=f")]
    assert worse[0]["p_holm"] < 0.05


def test_without_adjust_every_cohort_still_gets_its_raw_test(confounded):
    utts, _ = confounded
    res = audit(utts, by=["gender", "band"], discoverers=[], n_boot=0, n_perm=0, honest=False)
    validate(res.report)
    for entry in res.discoverers.values():
        for c in entry["cohorts"]:
            assert c["rate_ratio"]["p_holm"] is not None and "adjusted" not in c
    rr = res.report["rate_ratios"]
    assert rr["basis"] == "rate_ratio" and rr["family"]["raw_tests"] == 2
    # raw: gender=f (through the device) and the planted band are both worse than the rest
    assert {w["label"] for w in rr["worse_than_rest"]} == {"gender=f", "band=high"}
    off = audit(utts, by=["gender"], discoverers=[], n_boot=0, n_perm=0, honest=False, cohort_tests=False)
    assert "rate_ratios" not in off.report and "rate_ratio" not in off.discoverers["attribute:gender"]["cohorts"][0]


class ThresholdSearch(Discoverer):
    """A searcher for the tests: splits speakers at the quantile of ``x`` whose upper side
    has the highest WER (so its cohorts depend on the errors), and can apply the split to
    other speakers."""

    name = "threshold_test"
    fixed_cohorts = False

    def missing_inputs(self, speakers, side):
        return None if "x" in speakers.columns else "no x"

    def fit(self, speakers, side):
        x = speakers["x"].to_numpy(float)
        best, cut = -1.0, None
        for q in np.linspace(0.5, 0.95, 19):
            t = np.quantile(x, q)
            up = x > t
            if up.sum() < self.min_speakers or (~up).sum() < self.min_speakers:
                continue
            wer = speakers["errors"][up].sum() / speakers["ref_words"][up].sum()
            if wer > best:
                best, cut = wer, float(t)
        ids = speakers["speaker_id"].astype(str).to_numpy()
        assignment = pd.Series(np.where(x > cut, "high", "low"), index=ids)
        return Discovery(assignment, {"high": f"x > {cut:.3f}", "low": f"x <= {cut:.3f}"}, definition={"cut": cut})

    def assign(self, definition, speakers, side):
        x = speakers["x"].to_numpy(float)
        return pd.Series(np.where(x > definition["cut"], "high", "low"), index=speakers["speaker_id"].astype(str))


def _speaker_table(utts: pd.DataFrame) -> pd.DataFrame:
    sp = utts.groupby("speaker_id").agg(errors=("errors", "sum"), ref_words=("ref_words", "sum"),
                                        utterances=("utt_id", "size"), x=("x", "first"), gender=("gender", "first"))
    return sp.reset_index()


def test_searched_cohorts_are_measured_on_held_out_speakers():
    utts = _utterances(seed=2, n_speakers=600)
    speakers = _speaker_table(utts)
    disc = ThresholdSearch(min_speakers=20, seed=0)
    found = disc.fit(speakers, SideInputs())
    entry = {"cohorts": [{"id": "high", "label": found.labels["high"], "rank": 1},
                         {"id": "low", "label": found.labels["low"], "rank": 2}], "bottom": "high"}
    summary = audit_rate_ratios([(disc, entry, found.assignment)], utts, speakers, SideInputs(),
                                adjust=["device"], seed=3)
    held = entry["rate_ratio_heldout"]
    assert held["discovery_speakers"] == 300 and held["heldout_speakers"] == 300
    high = entry["cohorts"][0]
    for block in (high["rate_ratio"], high["adjusted"]):
        assert block["fitted_on"].startswith("held-out speakers")
        assert block["matched_cohort"]["id"] == "high" and block["matched_cohort"]["overlap"] >= 0.5
        # measured on the held-out half only
        assert block["speakers"] < 0.6 * (found.assignment == "high").sum()
    # the planted 1.8x on the top 15 % of x is there on speakers the search never saw
    assert high["adjusted"]["rate_ratio_ci"][0] > 1.2
    assert summary["family"]["adjusted_tests"] == 1
    # the same split is fixed by the seed; another seed gives another split
    again = {"cohorts": [dict(c, **{}) for c in entry["cohorts"]], "bottom": "high"}
    for c in again["cohorts"]:
        c.pop("rate_ratio"), c.pop("adjusted")
    audit_rate_ratios([(disc, again, found.assignment)], utts, speakers, SideInputs(), adjust=["device"], seed=3)
    assert again["cohorts"][0]["adjusted"] == high["adjusted"]


def test_a_search_that_cannot_apply_its_cohorts_says_there_is_no_honest_estimate():
    utts = _utterances(seed=2, n_speakers=200)
    speakers = _speaker_table(utts)

    class NoAssign(ThresholdSearch):
        def assign(self, definition, speakers, side):
            return None

    disc = NoAssign(min_speakers=20)
    found = disc.fit(speakers, SideInputs())
    entry = {"cohorts": [{"id": "high", "label": "h", "rank": 1}, {"id": "low", "label": "l", "rank": 2}],
             "bottom": "high"}
    audit_rate_ratios([(disc, entry, found.assignment)], utts, speakers, SideInputs())
    assert "cannot apply" in entry["rate_ratio_heldout"]["note"]
    assert entry["cohorts"][0]["rate_ratio"]["rate_ratio"] is None
    assert "no honest estimate" in entry["cohorts"][0]["rate_ratio"]["note"]


def test_geographic_audit_fits_on_held_out_speakers_and_validates():
    utts = _utterances(seed=4, n_speakers=300)
    rng = np.random.default_rng(5)
    spk = utts["speaker_id"].unique()
    geo = pd.DataFrame({"speaker_id": spk, "lat": rng.normal(40, 3, len(spk)).round(3),
                        "lon": rng.normal(-95, 8, len(spk)).round(3), "age": rng.integers(18, 80, len(spk))})
    res = audit(utts, speakers=geo, discoverers=["geographic"], adjust=["device", "age"], n_boot=0, n_perm=0,
                honest=False)
    validate(res.report)
    # an utterance column and a numeric column of the speaker table (quantile bins over speakers)
    covs = res.report["rate_ratios"]["covariates"]
    assert [(c["name"], c["unit"], c["kind"]) for c in covs] == [("device", "utterance", "categorical"),
                                                                 ("age", "speaker", "binned")]
    assert len(covs[1]["levels"]) == 5
    entry = res.discoverers["geographic"]
    assert entry["rate_ratio_heldout"]["heldout_speakers"] == 150
    # the HTML says where the figures come from
    from fairaudit.reports.html.render import render_html

    html = render_html(res)
    assert 'data-field="heldout-note"' in html and "fitted on held-out speakers" in html
    for c in entry["cohorts"]:
        assert c["adjusted"]["fitted_on"].startswith("held-out speakers")
        assert c["adjusted"]["rate_ratio"] is not None or "no honest estimate" in c["adjusted"]["note"] \
            or "fewer than" in (c["adjusted"]["note"] or "")


# ------------------------------------------------------------------ CLI, views, gate

@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("adj")
    path = out / "u.csv"
    utts = _utterances()
    utts.loc[utts["gender"] == "m", "gender"] = "<b>m</b>"   # labels are untrusted text
    utts.to_csv(path, index=False)
    r = runner.invoke(app, ["audit", str(path), "--errors-col", "errors", "--ref-words-col", "ref_words",
                            "--by", "gender", "--discoverers", "", "--adjust", "device", "--bootstrap", "0",
                            "--permutations", "0", "--no-honest-gap", "--out", str(out / "o")])
    assert r.exit_code == 0, r.output
    return out / "o", r.output


def test_cli_console_shows_the_adjusted_column_and_what_is_explained_away(cli_report):
    _, output = cli_report
    assert "Adj. rate ratio (95% CI)" in output
    assert "explained away: attribute:gender: gender=f" in output
    assert "significantly worse than the rest (adjusted for device" in output and "none" in output


def test_html_shows_raw_and_adjusted_side_by_side_escaped(cli_report):
    out, _ = cli_report
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Each cohort against the rest" in html and "Adjusted rate ratio (95% CI)" in html
    assert 'data-field="explained-away"' in html and "is explained away by device" in html
    assert "<b>m</b>" not in html and "&lt;b&gt;m&lt;/b&gt;" in html
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    f = _label(rep["discoverers"]["attribute:gender"], "gender=f")
    from fairaudit import numbers as num

    assert num.rate_ratio_block(f["adjusted"]) in html and num.rate_ratio_block(f["rate_ratio"]) in html


def test_gate_max_adjusted_ratio(cli_report):
    out, _ = cli_report
    report = str(out / "report.json")
    r = runner.invoke(app, ["gate", report, "--max-adjusted-ratio", "1.3"])
    assert r.exit_code == 0 and "PASS attribute:gender adjusted rate ratio" in r.output, r.output
    r = runner.invoke(app, ["gate", report, "--max-adjusted-ratio", "0.9"])
    assert r.exit_code == 1 and "FAIL attribute:gender adjusted rate ratio" in r.output, r.output
    # not significant after Holm: waived under --require-significant
    r = runner.invoke(app, ["gate", report, "--max-adjusted-ratio", "0.9", "--require-significant"])
    assert r.exit_code == 0 and "passed under --require-significant" in r.output, r.output
    rep = AuditResult.load(report).report
    for c in rep["discoverers"]["attribute:gender"]["cohorts"]:
        del c["adjusted"]
    plain = out / "plain.json"
    plain.write_text(json.dumps(rep), encoding="utf-8")
    # a gate that checked nothing has not passed, alone or beside another threshold
    for extra in ([], ["--max-gap-pct", "500"]):
        r = runner.invoke(app, ["gate", str(plain), "--max-adjusted-ratio", "1.3", *extra])
        assert r.exit_code == 1 and "FAIL adjusted rate ratio: nothing checked" in r.output, r.output
        assert "run the audit with --adjust" in r.output
    r = runner.invoke(app, ["gate", str(plain), "--max-adjusted-ratio", "1.3", "--allow-empty"])
    assert r.exit_code == 0 and "allowed by --allow-empty" in r.output, r.output
    # adjusted blocks without an interval are nothing checked either
    for c in rep["discoverers"]["attribute:gender"]["cohorts"]:
        c["adjusted"] = {"rate_ratio": 1.5, "rate_ratio_ci": None, "p_value": None, "covariates": ["device"],
                         "method": "m", "note": "fewer than 20 speakers in the cohort: no interval"}
    plain.write_text(json.dumps(rep), encoding="utf-8")
    r = runner.invoke(app, ["gate", str(plain), "--max-adjusted-ratio", "1.3"])
    assert r.exit_code == 1 and "fewer than 20 speakers" in r.output, r.output
    r = runner.invoke(app, ["gate", report, "--max-adjusted-ratio", "0"])
    assert r.exit_code == 2 and "is not a rate ratio" in r.output, r.output


def test_bad_adjust_options_are_one_line_errors(tmp_path):
    path = tmp_path / "u.csv"
    _utterances(n_speakers=60).to_csv(path, index=False)
    base = ["audit", str(path), "--errors-col", "errors", "--ref-words-col", "ref_words", "--by", "gender",
            "--discoverers", "", "--bootstrap", "0", "--permutations", "0", "--out", str(tmp_path / "o")]
    for extra, message in ((["--adjust", "nope"], "covariate 'nope' is not a column"),
                           (["--adjust", "wer"], "cannot be a covariate"),
                           (["--adjust", "device", "--adjust-model", "mixed"], "unknown adjustment model"),
                           (["--adjust", "device", "--adjust-bins", "1"], "--adjust-bins")):
        r = runner.invoke(app, base + extra)
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output


# ------------------------------------------------------------------ the worked real example

KOENECKE = ("google", "ibm", "amazon", "msft", "apple")


def test_koenecke_audit_raw_and_adjusted_per_system(tmp_path):
    """README's worked example: the Black/white gap of five recognisers (Koenecke et al.,
    PNAS 2020), raw and adjusted for age, gender and snippet duration."""
    path = realdata_dir() / "koenecke" / "Matched_WER.csv"
    args = ["audit", str(path), "--utt-col", "segment_filename", "--speaker-col", "basefile",
            "--ref-words-col", "wordcount", *[a for s in KOENECKE for a in ("--wer-col", f"clean_{s}_wer")],
            "--by", "black_flag", "--adjust", "age,female_flag,duration", "--discoverers", "",
            "--bootstrap", "0", "--permutations", "0", "--no-honest-gap", "--out", str(tmp_path / "o")]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "rate ratio, adjusted" in r.output
    rep = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    validate(rep)
    df = pd.read_csv(path)
    errors = {s: np.round(df[f"clean_{s}_wer"] * df["wordcount"]) for s in KOENECKE}
    for s in KOENECKE:
        sub = rep["systems"][f"clean_{s}_wer"]
        black = _label(sub["discoverers"]["attribute:black_flag"], "black_flag=1")
        b = df["black_flag"] == 1
        raw_ratio = (errors[s][b].sum() / df["wordcount"][b].sum()) / (errors[s][~b].sum() / df["wordcount"][~b].sum())
        assert black["rate_ratio"]["rate_ratio"] == pytest.approx(raw_ratio, rel=1e-9)
        adj = black["adjusted"]
        assert [c["name"] for c in sub["rate_ratios"]["covariates"]] == ["age", "female_flag", "duration"]
        assert [c["unit"] for c in sub["rate_ratios"]["covariates"]] == ["speaker", "speaker", "utterance"]
        # the matching worked: the adjustment moves the ratio by a few per cent only
        assert 0.95 * raw_ratio <= adj["rate_ratio"] <= raw_ratio
        assert adj["rate_ratio_ci"][0] > 1.3 and adj["p_holm"] < 1e-4 and not adj["explained_away"]
        assert [w["label"] for w in sub["rate_ratios"]["worse_than_rest"]] == ["black_flag=1"]
    # the HTML's systems table: each system's raw and adjusted ratio of its bottom cohort
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    from fairaudit import numbers as num

    for s in KOENECKE:
        entry = rep["systems"][f"clean_{s}_wer"]["discoverers"]["attribute:black_flag"]
        assert f'data-field="system-adjusted-ratio">{num.rate_ratio_block(entry["adjusted"])}<' in html
        assert f'data-field="system-raw-ratio">{num.rate_ratio_block(entry["rate_ratio"])}<' in html


def test_nothing_scored_means_nothing_tested_and_a_failed_adjusted_gate(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("utt_id,speaker_id,reference,hypothesis\nu1,s1,,x\nu2,s2,,y\n", encoding="utf-8")
    out = tmp_path / "o"
    r = runner.invoke(app, ["audit", str(path), "--adjust", "ref_words", "--bootstrap", "0", "--permutations", "0",
                            "--no-html", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "every cohort against the rest: nothing tested (no scored utterances)" in r.output
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    validate(rep)
    assert rep["rate_ratios"]["family"]["adjusted_tests"] == 0 and rep["rate_ratios"]["worse_than_rest"] == []
    r = runner.invoke(app, ["gate", str(out / "report.json"), "--max-adjusted-ratio", "1.2"])
    assert r.exit_code == 1 and "no adjusted rate ratios (no scored utterances)" in r.output, r.output
