"""Honest statistics (fairaudit.stats) on synthetic speakers with known truth.

Speakers get a WER level p (lognormal around 10 %), utterances of 5-19 words each and
binomial errors; a planted cohort gets p x 2.  The checks: bootstrap coverage, no false
alarms of the permutation test on null data, detection and held-out gap on planted data,
the paired comparison, determinism and the report schema.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from fairaudit import stats
from fairaudit.cohorts import headline_gap
from fairaudit.audit import run_discoverer
from fairaudit.discover import SideInputs
from fairaudit.discover.attribute import AttributeDiscoverer
from fairaudit.discover.automatic import AutomaticDiscoverer
from fairaudit.discover.geodemographic import GeodemographicDiscoverer
from fairaudit.discover.geographic import GeographicDiscoverer
from fairaudit.heldout import heldout_gap
from fairaudit.errors import UserInputError
from fairaudit.io.census import prepare_census
from fairaudit.result import cohort_statistics

NO_SIDE = SideInputs()


# ---------------------------------------------------------------- synthetic data

def make_data(seed: int, n: int = 400, utts_per_speaker: int = 6, planted: str | None = None,
              multiplier: float = 2.0, base: float = 0.10, spread: float = 0.3):
    """(speakers, utterances, in_planted): lat/lon over the contiguous US, a binary attribute g.

    ``planted``: None (WER unrelated to every feature), "g" (speakers with g == "b") or
    "geo" (the north-east box lat > 38, lon > -90) get WER level x ``multiplier``.
    """
    rng = np.random.default_rng(seed)
    lat = rng.uniform(25.0, 48.0, n)
    lon = rng.uniform(-124.0, -67.0, n)
    g = rng.choice(np.array(["a", "b"]), n)
    level = base * rng.lognormal(0.0, spread, n)
    mask = np.zeros(n, bool)
    if planted == "g":
        mask = g == "b"
    elif planted == "geo":
        mask = (lat > 38.0) & (lon > -90.0)
    level = np.minimum(np.where(mask, level * multiplier, level), 0.9)
    m = rng.integers(max(1, utts_per_speaker - 3), utts_per_speaker + 4, n)
    spk = np.repeat(np.arange(n), m)
    words = rng.integers(5, 20, len(spk))
    errors = rng.binomial(words, level[spk])
    ids = np.array([f"spk{i:04d}" for i in range(n)], dtype=object)
    utts = pd.DataFrame({"utt_id": [f"u{i:06d}" for i in range(len(spk))], "speaker_id": ids[spk],
                         "ref_words": words, "errors": errors})
    speakers = pd.DataFrame({"speaker_id": ids, "utterances": m,
                             "ref_words": np.bincount(spk, weights=words).astype(np.int64),
                             "errors": np.bincount(spk, weights=errors).astype(np.int64),
                             "lat": lat, "lon": lon, "g": g})
    speakers.insert(4, "wer", speakers["errors"] / speakers["ref_words"])
    for pos, col in enumerate(("substitutions", "deletions", "insertions")):   # as in counts mode: unknown
        speakers.insert(3 + pos, col, pd.array([pd.NA] * n, dtype="Int64"))
    return speakers, utts, mask


def discoverers():
    return [GeographicDiscoverer(min_speakers=20, max_regions=8), AttributeDiscoverer(min_speakers=20, columns=["g"])]


def observed(disc, speakers, side=NO_SIDE):
    entry, assignment = run_discoverer(disc, speakers, side)
    return entry, assignment


# ---------------------------------------------------------------- (a) bootstrap

def test_bootstrap_overall_coverage_and_width():
    """95 % intervals cover the population WER in about 95 % of 200 simulated test sets."""
    covered = 0
    sims = 200
    for s in range(sims):
        rng = np.random.default_rng(1000 + s)
        n = 120
        words = rng.integers(20, 200, n).astype(float)
        p = rng.beta(3.0, 22.0, n)                 # mean 0.12, independent of words
        errors = rng.binomial(words.astype(int), p).astype(float)
        lo, hi = stats.bootstrap_overall(errors, words, n_boot=400, seed=s, level=0.95)
        covered += lo <= 0.12 <= hi
    # Binomial(200, 0.95): sd 1.5 %; the percentile bootstrap runs slightly short at n = 120.
    assert 0.89 * sims <= covered <= 0.99 * sims, covered

    def width(n):
        rng = np.random.default_rng(7)
        words = rng.integers(20, 200, n).astype(float)
        errors = rng.binomial(words.astype(int), rng.beta(3.0, 22.0, n)).astype(float)
        lo, hi = stats.bootstrap_overall(errors, words, n_boot=500, seed=0)
        return hi - lo

    w400, w1600 = width(400), width(1600)
    assert w1600 < 0.65 * w400  # ~ 1 / sqrt(4) = 0.5


def test_bootstrap_cohorts_fields_and_gap_from_same_resamples():
    speakers, _, _ = make_data(3, n=300, planted="g")
    codes = (speakers["g"] == "b").to_numpy().astype(np.int64)   # 0 = a (top), 1 = b (bottom)
    res = stats.bootstrap_cohorts(speakers["errors"], speakers["ref_words"], codes, n_boot=500, seed=1,
                                  pairs=[(1, 0)])
    wer = [speakers.loc[codes == k, "errors"].sum() / speakers.loc[codes == k, "ref_words"].sum() for k in (0, 1)]
    assert np.allclose(res["wer"], wer)
    assert np.all(res["lo"] < res["wer"]) and np.all(res["wer"] < res["hi"])
    boot = res["resamples"]
    assert boot.shape == (500, 2)
    lo_abs, hi_abs = res["gap_abs"][0]
    direct = boot[:, 1] - boot[:, 0]
    assert lo_abs == pytest.approx(np.quantile(direct, 0.025)) and hi_abs == pytest.approx(np.quantile(direct, 0.975))
    lo_pct, hi_pct = res["gap_pct"][0]
    assert lo_pct == pytest.approx(np.quantile(100 * direct / boot[:, 0], 0.025))
    assert 0 < lo_pct < 100 * (wer[1] - wer[0]) / wer[0] < hi_pct
    # a cohort index without speakers: no interval
    empty = stats.bootstrap_cohorts([1, 2], [10, 10], [0, 0], n_boot=10, n_cohorts=2)
    assert np.isnan(empty["lo"][1]) and not np.isnan(empty["lo"][0])


def test_report_cohort_intervals_are_the_studentised_ones():
    """The report's cohort intervals are fairaudit.intervals' studentised intervals (the ones
    whose coverage holds at the speaker floor, tests/test_intervals.py), on the bootstrap stream."""
    from fairaudit import intervals
    from fairaudit.stats import rng as stats_rng

    speakers, _, _ = make_data(5, n=25)
    e, w = speakers["errors"].to_numpy(float), speakers["ref_words"].to_numpy(float)
    codes = np.zeros(25, dtype=np.int64)
    res = stats.bootstrap_cohorts(e, w, codes, n_boot=400, seed=3, key="k")
    gen = np.random.default_rng(stats_rng.stream(3, "bootstrap", "k").spawn(1)[0])
    _, lo, hi = intervals.cohort_interval(e, w, 400, gen, 0.95, "studentized")
    assert (res["lo"][0], res["hi"][0]) == (lo, hi)
    perc = stats.bootstrap_cohorts(e, w, codes, n_boot=400, seed=3, key="k", method="percentile")
    assert perc["hi"][0] < res["hi"][0]          # the skew: bootstrap-t reaches further up
    assert "studentised" in stats.BOOTSTRAP_METHOD


def test_bootstrap_unbounded_relative_gap_end_is_none():
    # top cohort: few errors, often 0 in a resample -> relative gap unbounded above
    errors = np.array([5, 6, 4, 7] * 10 + [0] * 38 + [1, 0])
    words = np.full(len(errors), 50)
    codes = np.array([0] * 40 + [1] * 40)
    res = stats.bootstrap_cohorts(errors, words, codes, n_boot=300, seed=0, pairs=[(0, 1)])
    assert res["gap_pct"][0][1] is None
    assert res["gap_abs"][0][1] is not None


def test_invalid_parameters_are_user_errors():
    with pytest.raises(UserInputError):
        stats.bootstrap_overall([1], [2], n_boot=0)
    with pytest.raises(UserInputError):
        stats.bootstrap_overall([1], [2], level=1.5)
    with pytest.raises(UserInputError):
        stats.paired_delta([1], [1], [0])


# ---------------------------------------------------------------- gap rule = cohort_statistics

def test_fast_gap_matches_cohort_statistics():
    speakers, _, _ = make_data(5, n=200)
    rng = np.random.default_rng(0)
    ids = speakers["speaker_id"].to_numpy()
    for trial in range(40):
        k = int(rng.integers(2, 9))
        cohort = np.array([f"C{j:02d}" for j in rng.integers(0, k, len(ids))], dtype=object)
        keep = rng.random(len(ids)) < 0.9
        assignment = pd.Series(cohort[keep], index=pd.Index(ids[keep], name="speaker_id"), dtype=object)
        sp = speakers.set_index("speaker_id").loc[assignment.index]
        mins = [5, 10, 20, 30, int(rng.integers(1, 60))]
        for ms in mins:
            _, summary = cohort_statistics(speakers, assignment, {}, ms)
            pct, gap_abs = headline_gap(sp["errors"].to_numpy(float), sp["ref_words"].to_numpy(float),
                                               assignment.to_numpy(), ms)
            if summary["wer_gap_abs"] is None:
                assert gap_abs is None
            else:
                assert gap_abs == pytest.approx(summary["wer_gap_abs"], abs=1e-12)
                assert (pct is None) == (summary["wer_gap_pct"] is None)
                if pct is not None:
                    assert pct == pytest.approx(summary["wer_gap_pct"], rel=1e-12)


# ---------------------------------------------------------------- (b) no false alarms on null data

@pytest.mark.parametrize("disc", discoverers(), ids=lambda d: d.key)
def test_permutation_null_false_alarm_rate(disc):
    significant, p_values = 0, []
    for s in range(20):
        speakers, _, _ = make_data(100 + s, n=300)
        entry, assignment = observed(disc, speakers)
        perm = stats.permutation_null(disc, speakers, NO_SIDE, entry["wer_gap_pct"], n_perm=100, seed=s,
                                      observed_gap_abs=entry["wer_gap_abs"], audited=assignment.index)
        # the p-value is the rank of the observed gap among the null gaps the search found
        null = perm["null_gaps_pct"] if perm["statistic"] == "wer_gap_pct" else perm["null_gaps_abs"]
        obs = entry["wer_gap_pct"] if perm["statistic"] == "wer_gap_pct" else entry["wer_gap_abs"]
        assert perm["p_value"] == pytest.approx((1 + np.sum(null >= obs - 1e-9 * max(1, abs(obs)))) / 101)
        p_values.append(perm["p_value"])
        significant += perm["p_value"] < 0.05
    # nominal 5 % = 1 of 20; P(Binomial(20, 0.05) >= 4) = 1.6 %
    assert significant <= 3, significant
    # under the null the p-values spread over (0, 1] (a biased test would pile up at one end)
    assert 0.25 <= np.mean(p_values) <= 0.75 and np.max(p_values) > 0.5, p_values


# ---------------------------------------------------------------- (c) planted disparity

def test_planted_attribute_detected_and_heldout_gap_close_to_truth():
    disc = AttributeDiscoverer(min_speakers=20, columns=["g"])
    speakers, utts, _ = make_data(11, n=500, utts_per_speaker=8, planted="g")
    entry, assignment = observed(disc, speakers)
    stats.add_statistics(entry, disc, speakers, utts, NO_SIDE, assignment, n_boot=300, n_perm=200, seed=0)
    assert entry["p_value"] < 0.01 and entry["significant"] is True
    assert entry["permutation"]["null_gap_p95_pct"] < entry["wer_gap_pct"]
    held = entry["heldout"]
    # True relative gap: levels are x2 in group b, words independent of the level -> 100 %.
    assert 65.0 <= held["gap_pct"] <= 135.0, held
    assert held["ci_pct"][0] < 100.0 < held["ci_pct"][1]
    assert entry["headline_gap"]["basis"] == "heldout" and entry["headline_gap"]["gap_pct"] == held["gap_pct"]
    lo, hi = entry["wer_gap_ci_pct"]
    assert lo < 100.0 < hi


def test_planted_region_detected_by_geographic():
    disc = GeographicDiscoverer(min_speakers=20)
    speakers, utts, mask = make_data(12, n=500, utts_per_speaker=8, planted="geo")
    entry, assignment = observed(disc, speakers)
    stats.add_statistics(entry, disc, speakers, utts, NO_SIDE, assignment, n_boot=200, n_perm=200, seed=0)
    assert entry["p_value"] < 0.01
    assert entry["heldout"]["gap_pct"] > 40.0          # a real disparity survives on held-out speakers
    bottom = set(assignment.index[assignment == entry["bottom"]])
    planted = set(speakers["speaker_id"][mask])
    assert len(bottom & planted) / len(bottom) > 0.8


def test_selection_bias_visible_on_null_data():
    """No disparity: the search still finds a gap; an utterance split keeps part of it (each
    speaker's own error level sits in both halves), a speaker split does not."""
    disc = GeographicDiscoverer(min_speakers=20)
    found, by_utterance, by_speaker, covers = [], [], [], 0
    for s in range(5):
        speakers, utts, _ = make_data(300 + s, n=400, utts_per_speaker=8)
        h = stats.honest_gap(disc, utts, speakers, NO_SIDE, seed=s)
        assert h["discovery_gap_pct"] >= h["heldout_gap_pct"], h
        held = heldout_gap(disc, speakers, NO_SIDE, seed=s, n_boot=200)
        found.append(h["discovery_gap_pct"])
        by_utterance.append(h["heldout_gap_pct"])
        by_speaker.append(held["gap_pct"])
        covers += held["ci_pct"][0] < 0 < held["ci_pct"][1]
    assert np.mean(found) > 15.0                          # the search manufactures a gap ...
    assert np.mean(by_utterance) > 5.0                     # ... that an utterance split partly keeps
    assert abs(np.mean(by_speaker)) < 5.0 and covers >= 4  # ... and a speaker split does not


def test_split_utterances_halves():
    _, utts, _ = make_data(4, n=50)
    single = pd.DataFrame({"utt_id": ["x1"], "speaker_id": ["solo"], "ref_words": [5], "errors": [1]})
    utts = pd.concat([utts, single], ignore_index=True)
    in_a = stats.split_utterances(utts, seed=3)
    per = pd.DataFrame({"s": utts["speaker_id"], "a": in_a}).groupby("s")["a"].agg(["sum", "size"])
    assert ((per["sum"] - per["size"] / 2).abs() <= 0.5).all()
    assert in_a[-1]                                    # a lone utterance goes to the discovery half
    # row order does not matter
    shuffled = utts.sample(frac=1.0, random_state=1)
    again = pd.Series(stats.split_utterances(shuffled, seed=3), index=shuffled.index).sort_index()
    assert np.array_equal(again.to_numpy(), in_a)


# ---------------------------------------------------------------- (d) paired comparison

def test_paired_delta_identical_and_worse_system():
    rng = np.random.default_rng(0)
    words = rng.integers(50, 300, 200)
    ea = rng.binomial(words, 0.1)
    same = stats.paired_delta(ea, ea, words, n_resamples=2000, seed=0)
    assert same["delta_wer"] == 0 and same["p_value"] == 1.0
    assert same["ci_low"] == 0 and same["ci_high"] == 0
    eb = ea + 1 + rng.binomial(words, 0.01)            # more errors for every speaker
    worse = stats.paired_delta(ea, eb, words, n_resamples=2000, seed=0)
    assert worse["delta_wer"] == pytest.approx((eb.sum() - ea.sum()) / words.sum())
    assert worse["p_value"] < 0.01 and worse["ci_low"] > 0
    better = stats.paired_delta(eb, ea, words, n_resamples=2000, seed=0)
    assert better["ci_high"] < 0 and better["p_value"] < 0.01

def test_paired_delta_calibrated_on_equal_systems():
    """Two noisy systems with the same error rate: p < 0.05 and a CI without 0 in ~5 % of 100 runs."""
    rejected = missed = 0
    for s in range(100):
        rng = np.random.default_rng(500 + s)
        words = rng.integers(50, 300, 150)
        level = rng.beta(3.0, 22.0, 150)                # speakers differ, systems do not
        ea, eb = rng.binomial(words, level), rng.binomial(words, level)
        res = stats.paired_delta(ea, eb, words, n_resamples=500, seed=s)
        rejected += res["p_value"] < 0.05
        missed += not (res["ci_low"] <= 0 <= res["ci_high"])
    # P(Binomial(100, 0.05) >= 12) < 0.5 %
    assert rejected <= 11 and missed <= 11, (rejected, missed)


# ---------------------------------------------------------------- (e) determinism, serial == parallel

def test_permutation_serial_equals_parallel_and_seeded():
    disc = GeographicDiscoverer(min_speakers=20, max_regions=8)
    speakers, _, _ = make_data(21, n=300)
    entry, assignment = observed(disc, speakers)
    args = dict(n_perm=40, seed=5, observed_gap_abs=entry["wer_gap_abs"])
    serial = stats.permutation_null(disc, speakers, NO_SIDE, entry["wer_gap_pct"], workers=1, **args)
    parallel = stats.permutation_null(disc, speakers, NO_SIDE, entry["wer_gap_pct"], workers=2, **args)
    assert np.array_equal(serial["null_gaps_pct"], parallel["null_gaps_pct"])
    assert serial["p_value"] == parallel["p_value"]
    other = stats.permutation_null(disc, speakers, NO_SIDE, entry["wer_gap_pct"], workers=1,
                                   **{**args, "seed": 6})
    assert not np.array_equal(serial["null_gaps_pct"], other["null_gaps_pct"])
    # the absolute gap as the statistic when the relative one is undefined
    by_abs = stats.permutation_null(disc, speakers, NO_SIDE, None, workers=1, **args)
    assert by_abs["statistic"] == "wer_gap_abs"
    assert np.array_equal(by_abs["null_gaps_abs"], serial["null_gaps_abs"])


def test_add_statistics_deterministic_and_schema_valid():
    import jsonschema
    from fairaudit.result import _clean, schema

    speakers, utts, _ = make_data(31, n=300, planted="g")
    entries = {}
    for disc in discoverers():
        runs = []
        for _ in range(2):
            entry, assignment = observed(disc, speakers)
            stats.add_statistics(entry, disc, speakers, utts, NO_SIDE, assignment, n_boot=200, n_perm=30, seed=9)
            runs.append(entry)
        assert _clean(runs[0]) == _clean(runs[1])
        entries[disc.key] = runs[0]
        for c in runs[0]["cohorts"]:
            assert c["wer_ci_low"] <= c["wer"] <= c["wer_ci_high"]
        assert runs[0]["bootstrap"] == {"n": 200, "unit": "speaker", "method": stats.BOOTSTRAP_METHOD, "seed": 9}
        assert runs[0]["ci_level"] == 0.95 and runs[0]["permutation"]["n"] == 30
    # nothing tested: nulls
    disc = AttributeDiscoverer(min_speakers=20, columns=["g"])
    bare, assignment = observed(disc, speakers)
    stats.add_statistics(bare, disc, speakers, None, NO_SIDE, assignment, n_boot=0, n_perm=0)
    assert bare["p_value"] is None and bare["significant"] is None and bare["honest_gap"] is None
    assert bare["wer_gap_ci_pct"] is None and bare["cohorts"][0]["wer_ci_low"] is None
    entries["attribute:none"] = bare
    report = {"schema_version": "1.0", "tool": {"name": "fairaudit", "version": "0"},
              "inputs": {"files": [], "mode": "counts", "normalization": {"mode": "default"}, "options": {}},
              "accounting": {"rows_read": 0, "rows_scored": 0, "rows_dropped": 0, "dropped": {}},
              "overall": {"wer": 0.1, "speakers": 300, "utterances": 1, "ref_words": 1, "errors": 0,
                          "wer_ci": stats.overall_ci(speakers, n_boot=100)},
              "discoverers": entries}
    jsonschema.validate(_clean(report), schema())
    broken = copy.deepcopy(_clean(report))
    broken["discoverers"]["geographic"]["wer_gap_ci_pct"] = [1.0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema())


# ---------------------------------------------------------------- the other discoverers, when present

def test_geodemographic_and_automatic_null_and_planted():
    """One null and one planted run each (the full false-alarm loop runs for geographic/attribute)."""
    speakers, utts, _ = make_data(41, n=400, utts_per_speaker=6)
    planted_sp, planted_utts, mask = make_data(41, n=400, utts_per_speaker=6, planted="g")
    rng = np.random.default_rng(41)
    # geodemographic
    n_z = 40
    zips = [f"{10000 + 97 * i:05d}" for i in range(n_z)]
    share_b = rng.uniform(0.0, 1.0, n_z)
    census = pd.DataFrame({"zip": zips, "pct_x": np.round(share_b, 3), "pct_y": np.round(1 - share_b, 3),
                           "median_income": np.round(rng.lognormal(np.log(6e4), 0.3, n_z), -2)})
    side = SideInputs(census=prepare_census(census))
    # planted: speakers in majority-x zips are the g == "b" speakers
    x_zips = [z for z, s in zip(zips, share_b) if s > 0.5]
    o_zips = [z for z, s in zip(zips, share_b) if s <= 0.5]
    for sp in (speakers, planted_sp):
        sp["zip"] = np.where(sp["g"] == "b", rng.choice(x_zips, len(sp)), rng.choice(o_zips, len(sp)))
    speakers["zip"] = rng.choice(zips, len(speakers))          # null: zip unrelated to WER
    disc = GeodemographicDiscoverer(min_speakers=20, max_depth=1)
    for sp, us, want_signal in ((speakers, utts, False), (planted_sp, planted_utts, True)):
        entry, assignment = observed(disc, sp, side)
        stats.add_statistics(entry, disc, sp, us, side, assignment, n_boot=100, n_perm=200, seed=1)
        if want_signal:
            assert entry["p_value"] < 0.01
            assert entry["heldout"]["gap_pct"] > 50.0
        else:
            assert entry["p_value"] > 0.01
            assert entry["wer_gap_pct"] >= entry["heldout"]["gap_pct"]
    # automatic
    n = len(speakers)
    centers = rng.normal(size=(4, 16)) * 3
    cluster = np.where(planted_sp["g"] == "b", rng.integers(0, 2, n), rng.integers(2, 4, n))
    emb = (centers[cluster] + rng.normal(size=(n, 16))).astype(np.float32)
    side = SideInputs(embeddings=emb, embedding_ids=speakers["speaker_id"].to_numpy())
    disc = AutomaticDiscoverer(min_speakers=20, k=4, max_projection_points=0)
    for sp, us, want_signal in ((speakers, utts, False), (planted_sp, planted_utts, True)):
        entry, assignment = observed(disc, sp, side)
        stats.add_statistics(entry, disc, sp, us, side, assignment, n_boot=100, n_perm=200, seed=1)
        if want_signal:
            assert entry["p_value"] < 0.01
        else:
            assert entry["p_value"] > 0.01
