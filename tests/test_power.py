"""Power analysis and the planted self-test (fairaudit.power, `fairaudit power` / `selftest`).

Synthetic speakers built with numpy: lat/lon over the US, a zip joined to a small census
table, 16-d embeddings in blobs, a gender attribute; no real disparity (the simulations
plant their own).  Tiny n_sim / n_perm keep the whole file fast.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.audit import build_discoverers
from fairaudit.cli.app import app
from fairaudit.discover import SideInputs
from fairaudit.io.census import prepare_census
from fairaudit.cohorts import bottom_mask as _bottom, cohort_table as cohort_statistics, headline_gap as _headline_gap
from fairaudit.power import estimate_power, selftest
from fairaudit.result import validate

from worlds import census_table

runner = CliRunner()
GAPS = (20, 50, 100, 200, 400)


def make_census(seed: int = 0, n_zips: int = 120) -> pd.DataFrame:
    return census_table(np.random.default_rng(seed), n_zips)


def make_world(n: int, seed: int = 0) -> tuple[pd.DataFrame, SideInputs, pd.DataFrame]:
    """n speakers with the same per-speaker distribution whatever n (words 50-300, WER ~10 %)."""
    rng = np.random.default_rng(seed)
    census = make_census()
    blob = rng.integers(0, 6, n)
    emb = (np.random.default_rng(99).normal(size=(6, 16))[blob] + 0.5 * rng.normal(size=(n, 16))).astype(np.float32)
    words = rng.integers(50, 300, n)
    errors = rng.binomial(words, np.minimum(0.10 * rng.lognormal(0.0, 0.3, n), 0.9))
    ids = np.array([f"spk{i:05d}" for i in range(n)], dtype=object)
    speakers = pd.DataFrame({"speaker_id": ids, "utterances": rng.integers(3, 12, n), "ref_words": words,
                             "errors": errors, "wer": errors / words, "lat": rng.uniform(25.0, 48.0, n),
                             "lon": rng.uniform(-124.0, -67.0, n),
                             "zip": census["zip"].to_numpy()[rng.integers(0, len(census), n)],
                             "gender": rng.choice(["female", "male"], n)})
    side = SideInputs(census=prepare_census(census), embeddings=emb, embedding_ids=ids.copy())
    return speakers, side, census


def discs(min_speakers: int = 20, names=("geographic", "geodemographic", "automatic"), by=("gender",)):
    return build_discoverers(list(names), list(by), min_speakers=min_speakers, seed=0,
                             params={"automatic": {"k": 6}} if "automatic" in names else None)


def gap_or_inf(row: dict) -> float:
    g = row["min_detectable_gap_pct"]
    return math.inf if g is None else g


def test_detectable_gap_shrinks_as_speakers_grow():
    found = {}
    for n in (200, 1000):
        speakers, side, _ = make_world(n, seed=1)
        res = estimate_power(speakers, side, discs(10, names=("geographic",)), cohort_shares=(0.25,), n_sim=16,
                             n_perm=40, gaps=GAPS, seed=0, workers=1)
        found[n] = {k: gap_or_inf(d["shares"][0]) for k, d in res["discoverers"].items()}
        for d in res["discoverers"].values():
            for row in d["shares"]:
                curve = [p["gap_pct"] for p in row["power_curve"]]
                assert curve == [0.0, *map(float, GAPS)]
                power = [p["power"] for p in row["power_curve"]]
                # gap 0 is the null world: a false detection needs p < 0.05 in the planted place
                assert power[0] <= 0.25, (n, power)
                # common random numbers: a larger plant is found at least about as often
                assert power[-1] >= max(power) - 0.2 and power[-1] > power[0], (n, power)
                assert row["reading"].startswith(f"{d['name'] if d['name'] != 'attribute' else 'attribute:gender'}: "
                                                 f"with these {n:,} speakers")
    for key in ("geographic", "attribute:gender"):
        assert found[1000][key] < found[200][key], (key, found)
        assert found[1000][key] < math.inf


def test_power_is_deterministic_and_independent_of_workers():
    speakers, side, _ = make_world(300, seed=2)
    kw = dict(cohort_shares=(0.1, 0.25), n_sim=6, n_perm=30, gaps=GAPS, seed=3)
    a = estimate_power(speakers, side, discs(15), workers=1, **kw)
    b = estimate_power(speakers, side, discs(15), workers=2, **kw)
    assert a == b
    assert json.loads(json.dumps(a, allow_nan=False)) == a
    assert set(a["discoverers"]) == {"geographic", "geodemographic", "automatic", "attribute:gender"}
    rows = a["discoverers"]["attribute:gender"]["shares"]
    assert {r["label"] for r in rows} == {"gender=female", "gender=male"}
    assert sum(r["planted_speakers"] for r in rows) == 300
    c = estimate_power(speakers, side, discs(15), workers=1, **{**kw, "seed": 4})
    assert c != a


def test_missing_inputs_are_skipped_not_errors():
    speakers, _, _ = make_world(150)
    res = estimate_power(speakers.drop(columns=["lat", "lon"]), SideInputs(), discs(10), cohort_shares=(0.25,),
                         n_sim=2, n_perm=10, gaps=GAPS)
    for key in ("geographic", "geodemographic", "automatic"):
        assert res["discoverers"][key]["skipped"]
    assert res["discoverers"]["attribute:gender"]["skipped"] is None


def test_selftest_recovers_strong_plant_not_weak_one():
    speakers, side, _ = make_world(600, seed=0)
    strong = selftest(speakers, side, discs(20), effect=2.0, share=0.10, n_perm=40, seed=0)["discoverers"]
    for key in ("geodemographic", "automatic", "attribute:gender"):
        r = strong[key]
        assert r["recovered"], (key, r)
        assert r["p_value"] < 0.05 and r["precision"] >= 0.5 and r["recall"] >= 0.5
    # The geographic tree flags one leaf: significant and inside the plant (its recall can be
    # below 0.5 when the tree cuts the planted box into several regions).
    assert strong["geographic"]["p_value"] < 0.05 and strong["geographic"]["precision"] >= 0.5
    weak = selftest(speakers, side, discs(20), effect=0.05, share=0.10, n_perm=40, seed=0)["discoverers"]
    for key, r in weak.items():
        assert not r["recovered"], (key, r)
        # the same plant, only weaker: the gap the audit finds shrinks with it
        assert r["planted_speakers"] == strong[key]["planted_speakers"], (key, r)
        assert r["gap_pct"] < strong[key]["gap_pct"], (key, r, strong[key])
    for key in ("geographic", "automatic"):   # nearest-neighbour plants hit the target size exactly
        assert strong[key]["planted_speakers"] == 60 and strong[key]["planted_share_pct"] == pytest.approx(10.0)
    again = selftest(speakers, side, discs(20), effect=0.05, share=0.10, n_perm=40, seed=0)["discoverers"]
    assert again == weak


def test_bottom_matches_headline_gap():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = 80
        e = rng.integers(0, 20, n).astype(float)
        w = rng.integers(1, 60, n).astype(float)
        labels = rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05])
        codes = pd.factorize(labels, sort=True)[0]
        mask, pct = _bottom(e, w, codes, 5)
        ref_pct, ref_abs = _headline_gap(e, w, labels, 5)
        if ref_abs is None:
            assert mask is None
            continue
        assert pct == pytest.approx(math.inf if ref_pct is None else ref_pct)
        sp = pd.DataFrame({"speaker_id": [f"s{i}" for i in range(n)], "utterances": 1, "ref_words": w, "errors": e})
        _, summary = cohort_statistics(sp, pd.Series(labels, index=sp["speaker_id"]), {}, 5)
        assert set(labels[mask]) == {summary["bottom"]}


def test_small_cohort_is_never_bottom_or_top():
    # The small-cohort guard: a 3-speaker cohort with the worst WER is ranked but flagged.
    sp = pd.DataFrame({"speaker_id": [f"s{i}" for i in range(43)], "utterances": 1,
                       "ref_words": 100, "errors": [90] * 3 + [10] * 20 + [5] * 20})
    assign = pd.Series(["tiny"] * 3 + ["mid"] * 20 + ["low"] * 20, index=sp["speaker_id"])
    table, summary = cohort_statistics(sp, assign, {}, min_speakers=20)
    tiny = table.set_index("id").loc["tiny"]
    assert bool(tiny["too_few_speakers"]) and int(tiny["rank"]) == 1
    assert summary["bottom"] == "mid" and summary["top"] == "low"


# ------------------------------------------------------------------ CLI

def write_inputs(tmp_path, n: int = 240) -> list[str]:
    speakers, side, census = make_world(n, seed=3)
    rng = np.random.default_rng(7)
    rows = []
    for sid, err, words in zip(speakers["speaker_id"], speakers["errors"], speakers["ref_words"]):
        # two utterances per speaker carrying the speaker's counts as precomputed columns
        e1 = int(rng.integers(0, err + 1))
        w1 = int(words // 2)
        rows += [(f"{sid}_a", sid, e1, w1), (f"{sid}_b", sid, int(err - e1), int(words - w1))]
    pd.DataFrame(rows, columns=["utt_id", "speaker_id", "errors", "ref_words"]).to_csv(tmp_path / "utts.csv", index=False)
    speakers[["speaker_id", "lat", "lon", "zip", "gender"]].to_csv(tmp_path / "speakers.csv", index=False)
    census.to_csv(tmp_path / "census.csv", index=False)
    np.save(tmp_path / "emb.npy", side.embeddings)
    (tmp_path / "emb_ids.txt").write_text("\n".join(side.embedding_ids) + "\n")
    return [str(tmp_path / "utts.csv"), "--errors-col", "errors", "--ref-words-col", "ref_words",
            "--speakers", str(tmp_path / "speakers.csv"), "--census", str(tmp_path / "census.csv"),
            "--embeddings", str(tmp_path / "emb.npy"), "--embedding-ids", str(tmp_path / "emb_ids.txt"),
            "--by", "gender", "--min-speakers", "15", "--k", "6"]


def test_power_cli_writes_power_json_and_report_section(tmp_path):
    args = write_inputs(tmp_path)
    out = tmp_path / "out"
    r = runner.invoke(app, ["audit", *args, "--out", str(out), "--bootstrap", "0", "--permutations", "0",
                            "--no-honest-gap", "--no-html", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", *args, "--out", str(out), "--simulations", "3", "--permutations", "20",
                            "--shares", "10,25", "--gaps", "50,150,400", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "Detectable gap" in r.output and "with these 240 speakers" in r.output
    power = json.loads((out / "power.json").read_text())
    assert power["settings"]["shares_pct"] == [10.0, 25.0] and power["settings"]["simulations"] == 3
    report = json.loads((out / "report.json").read_text())
    assert report["power"] == power
    validate(report)
    assert not (out / "report.html").exists()  # audit ran with --no-html: nothing to refresh
    runner.invoke(app, ["report", str(out / "report.json"), "-q"])
    before = (out / "report.html").read_text()
    r = runner.invoke(app, ["power", *args, "--out", str(out), "--simulations", "3", "--permutations", "20",
                            "--shares", "25", "--gaps", "50,400", "--workers", "1", "-q"])
    assert r.exit_code == 0, r.output
    after = (out / "report.html").read_text()
    assert after != before and "What this test set can tell" in after


def test_power_cli_without_report_and_selftest_exit_codes(tmp_path):
    args = write_inputs(tmp_path)
    out = tmp_path / "fresh"
    r = runner.invoke(app, ["power", *args, "--out", str(out), "--simulations", "2", "--permutations", "10",
                            "--shares", "25", "--gaps", "100", "--discoverers", "geodemographic", "-q"])
    assert r.exit_code == 0, r.output
    assert (out / "power.json").is_file() and not (out / "report.json").exists()
    # a weak plant is not recovered: exit 1, the table still printed and selftest.json written
    r = runner.invoke(app, ["selftest", *args, "--effect", "5", "--permutations", "20", "--out", str(out),
                            "--discoverers", "geodemographic"])
    assert r.exit_code == 1, r.output
    assert "NO" in r.output and "selftest: FAILED: the planted disparity was not recovered by geodemographic" in r.output
    assert json.loads((out / "selftest.json").read_text())["discoverers"]["geodemographic"]["recovered"] is False


@pytest.mark.parametrize("extra", [["--shares", "0,150"], ["--shares", "ten"], ["--min-speakers", "0"]])
def test_power_cli_user_errors_exit_2(tmp_path, extra):
    args = write_inputs(tmp_path, n=60)
    r = runner.invoke(app, ["power", *args, "--out", str(tmp_path / "o"), *extra])
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and "Traceback" not in r.output


def test_selftest_cli_user_error_exit_2(tmp_path):
    r = runner.invoke(app, ["selftest", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2, r.output


def test_html_report_shows_power_section_escaped(tmp_path):
    from fairaudit.reports.html import render_html
    from fairaudit.result import AuditResult

    args = write_inputs(tmp_path)
    out = tmp_path / "out"
    assert runner.invoke(app, ["audit", *args, "--out", str(out), "--bootstrap", "0", "--permutations", "0",
                               "--no-honest-gap", "--no-html", "-q"]).exit_code == 0
    assert runner.invoke(app, ["power", *args, "--out", str(out), "--simulations", "2", "--permutations", "10",
                               "--shares", "25", "--gaps", "100", "--discoverers", "geodemographic", "-q"]).exit_code == 0
    result = AuditResult.load(str(out / "report.json"))
    result.report["power"]["discoverers"]["attribute:gender"]["shares"][0]["reading"] = "<script>x</script>"
    html = render_html(result)
    assert 'id="power"' in html and "data:image/png;base64," in html.split('id="power"')[1]
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
