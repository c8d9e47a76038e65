"""Batched permutation nulls equal the re-fits they replace, and the sequential p-value.

Every fast path of :func:`fairaudit.stats.permutation_null` (fixed cohorts re-measured in
blocks, the discoverers' ``permuted_statistics`` hooks) must give, permutation by
permutation, the statistics a re-fit on the permuted table gives (``batched=False``), on
planted and null worlds; the Besag-Clifford stop must keep a prefix of the full run.
"""
import numpy as np
import pandas as pd
import pytest

from fairaudit import simulate
from fairaudit.discover.attribute import AttributeDiscoverer
from fairaudit.discover.automatic import AutomaticDiscoverer
from fairaudit.discover.geodemographic import GeodemographicDiscoverer
from fairaudit.discover.metadata import MetadataDiscoverer
from fairaudit.stats import permutation_null
from fairaudit.cohorts import headline_gap


def _null(disc, w, *, batched=True, n_perm=25, seed=3, stop_after=None, statistic=True, speakers=None):
    sp = w.speakers if speakers is None else speakers
    found = disc.fit(sp, w.side)
    pct, gap_abs = headline_gap(*(sp.set_index("speaker_id").loc[found.assignment.index, c].to_numpy(dtype=float)
                                  for c in ("errors", "ref_words")), found.assignment.to_numpy(), disc.min_speakers)
    own = found.statistic if statistic else None
    return permutation_null(disc, sp, w.side, pct, n_perm=n_perm, seed=seed, workers=1,
                            observed_gap_abs=gap_abs if gap_abs is not None else 0.0,
                            assignment=found.assignment, observed_statistic=own,
                            statistic_name=found.statistic_name, stop_after=stop_after, batched=batched)


def _same(a, b):
    for k in ("null_gaps_pct", "null_gaps_abs", "null_statistics"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert a["p_value"] == b["p_value"]
    assert a["permutations_used"] == b["permutations_used"]


WORLDS = [
    ("automatic", lambda: AutomaticDiscoverer(k=6, min_speakers=15)),
    ("attribute", lambda: AttributeDiscoverer(columns=["accent"], min_speakers=15)),
    ("attribute", lambda: AttributeDiscoverer(columns=["accent", "gender"], min_speakers=15)),
]


@pytest.mark.parametrize("planted", [True, False])
@pytest.mark.parametrize("kind,make", WORLDS)
def test_fixed_cohorts_block_pass_equals_refit(kind, make, planted):
    w = simulate.world(kind, n_speakers=300, planted=planted, seed=11)
    disc = make()
    fast, slow = _null(disc, w), _null(disc, w, batched=False)
    assert "re-measured" in fast["method"] and "re-run" in slow["method"]
    _same(fast, slow)
    assert np.isfinite(fast["null_gaps_pct"]).all() and (fast["null_gaps_pct"] > 0).all()


def test_fixed_cohorts_with_an_ineligible_and_an_errorless_cohort():
    """A cohort below min_speakers never ranks; a top cohort without errors: gap +inf."""
    w = simulate.attribute_world(n_speakers=300, seed=2)
    sp = w.speakers.copy()
    accent = np.where(sp["accent"] == "east-asian", "us-general", sp["accent"]).astype(object)
    accent[:5] = "tiny"          # 5 speakers: below min_speakers, never bottom or top
    accent[5:17] = "twelve"      # 12 speakers: eligible, and often without a single error
    sp["accent"] = accent
    sp.loc[sp.index.difference(sp.index[::5]), "errors"] = 0     # only every fifth speaker keeps errors
    sp["wer"] = sp["errors"] / sp["ref_words"]
    disc = AttributeDiscoverer(columns=["accent"], min_speakers=10)
    fast, slow = _null(disc, w, speakers=sp, n_perm=60), _null(disc, w, speakers=sp, n_perm=60, batched=False)
    _same(fast, slow)
    assert np.isinf(fast["null_gaps_pct"]).any() and np.isfinite(fast["null_gaps_pct"]).any()


def test_sequential_stop_keeps_a_prefix_and_gives_h_over_l():
    w = simulate.attribute_world(n_speakers=300, planted=False, seed=5)
    disc = AttributeDiscoverer(columns=["gender"], min_speakers=15)
    full = _null(disc, w, n_perm=200, seed=1)
    seq = _null(disc, w, n_perm=200, seed=1, stop_after=10)
    used = seq["permutations_used"]
    assert seq["stopped_early"] and seq["n"] == 200 and used < 200
    np.testing.assert_array_equal(seq["null_gaps_pct"], full["null_gaps_pct"][:used])
    hits = full["null_gaps_pct"][:used] >= seq["observed"] - 1e-9 * max(1.0, abs(seq["observed"]))
    assert hits.sum() == 10 and hits[-1]          # stopped at the 10th exceedance
    assert seq["p_value"] == pytest.approx(10 / used)
    # a re-fitted null stops at the same place
    _same(seq, _null(disc, w, n_perm=200, seed=1, stop_after=10, batched=False))


def test_sequential_stop_changes_nothing_for_a_small_p_value():
    w = simulate.attribute_world(n_speakers=400, planted=True, effect=2.0, seed=6)
    disc = AttributeDiscoverer(columns=["accent"], min_speakers=15)
    full = _null(disc, w, n_perm=99, seed=2)
    seq = _null(disc, w, n_perm=99, seed=2, stop_after=10)
    assert full["p_value"] < 0.05 and not seq["stopped_early"]
    _same(seq, full)


@pytest.mark.parametrize("planted", [True, False])
@pytest.mark.parametrize("params", [{}, {"max_depth": 3, "min_gain_pct": 0.0}, {"max_depth": 1}])
def test_geodemographic_hook_equals_refit(planted, params):
    w = simulate.geodemographic_world(n_speakers=400, planted=planted, seed=21)
    disc = GeodemographicDiscoverer(min_speakers=12, **params)
    fast, slow = _null(disc, w, n_perm=30), _null(disc, w, n_perm=30, batched=False)
    assert "batched" in fast["method"] and "re-run" in slow["method"]
    _same(fast, slow)


def test_geodemographic_hook_with_ties_and_errorless_sides():
    """Literal and negation tie exactly; many zips without errors give undefined gaps."""
    w = simulate.geodemographic_world(n_speakers=300, planted=False, seed=8)
    sp = w.speakers.copy()
    sp.loc[sp.index[sp.index % 4 != 0], "errors"] = 0
    sp["wer"] = sp["errors"] / sp["ref_words"]
    disc = GeodemographicDiscoverer(min_speakers=10, min_gain_pct=0.0)
    fast, slow = _null(disc, w, speakers=sp, n_perm=40), _null(disc, w, speakers=sp, n_perm=40, batched=False)
    _same(fast, slow)


@pytest.mark.parametrize("planted", [True, False])
@pytest.mark.parametrize("params", [{}, {"criterion": "lr", "max_leaves": 8, "min_score": 0.0},
                                    {"criterion": "difference", "max_depth": 1}])
def test_metadata_hook_equals_refit(planted, params):
    w = simulate.attribute_world(n_speakers=400, planted=planted, seed=31, planted_on="age_band=65+,gender=male")
    sp = w.speakers.copy()
    sp["age"] = np.round(np.random.default_rng(0).uniform(18, 80, len(sp)))   # a numeric column too
    sp.loc[sp.index[::17], "accent"] = "NA"                                      # unknown values routed
    disc = MetadataDiscoverer(min_speakers=15, **params)
    fast, slow = _null(disc, w, speakers=sp, n_perm=30), _null(disc, w, speakers=sp, n_perm=30, batched=False)
    assert "batched" in fast["method"] and "re-run" in slow["method"]
    _same(fast, slow)
    # the gap's null as well (reported beside the statistic's)
    gaps = _null(disc, w, speakers=sp, n_perm=30, statistic=False)
    np.testing.assert_array_equal(gaps["null_gaps_pct"], slow["null_gaps_pct"])


@pytest.mark.parametrize("n", [1, 37, 500, 501, 3000])
def test_bootstrap_counts_equal_gathered_sums(n):
    """c @ [e, w] over multinomial counts gives the sums of the drawn speakers, exactly."""
    from fairaudit.stats.bootstrap import resample_ratio
    from fairaudit.stats._common import BLOCK_CELLS

    rng = np.random.default_rng(n)
    e = rng.integers(0, 40, n).astype(float)
    w = rng.integers(1, 300, n).astype(float)
    got = resample_ratio(e, w, 300, np.random.default_rng(9))
    gen, want, step = np.random.default_rng(9), [], max(1, BLOCK_CELLS // n)
    for b0 in range(0, 300, step):
        idx = gen.integers(0, n, size=(min(step, 300 - b0), n), dtype=np.int32)
        want.append(e[idx].sum(axis=1) / w[idx].sum(axis=1))
    np.testing.assert_array_equal(got, np.concatenate(want))


def test_multinomial_counts_count_the_draws():
    from fairaudit.intervals import multinomial_counts

    got = multinomial_counts(np.random.default_rng(4), 250, 7)
    draws = np.random.default_rng(4).integers(0, 250, size=(7, 250))
    np.testing.assert_array_equal(got, np.stack([np.bincount(d, minlength=250) for d in draws]))
    assert got.dtype == float and (got.sum(axis=1) == 250).all()


def test_hash_isin_equals_pandas_isin():
    from fairaudit.lookup import isin

    rng = np.random.default_rng(3)
    values = pd.Series(rng.choice(["a", "b", "c", "dd", None], 500), dtype="str")
    for test in (["a", "dd", "a"], {"b"}, pd.Index(["c", None]), [], np.array(["zz"], dtype=object)):
        np.testing.assert_array_equal(isin(values, test), values.isin(list(test)).to_numpy())


def test_worst_utterances_pruned_like_a_full_sort():
    from fairaudit.alignment import worst_utterances

    rng = np.random.default_rng(1)
    n = 3000
    utts = pd.DataFrame({"utt_id": [f"u{i:05d}" for i in rng.permutation(n)],
                         "speaker_id": rng.choice([f"s{i}" for i in range(40)], n),
                         "ref_words": rng.integers(1, 20, n), "errors": rng.integers(0, 4, n)})   # many ties
    utts["wer"] = utts["errors"] / utts["ref_words"]
    ids = [f"s{i}" for i in range(0, 40, 3)]
    for k in (1, 5, 50):
        want = (utts.loc[utts["speaker_id"].isin(ids)]
                .sort_values(["errors", "wer", "utt_id"], ascending=[False, False, True], kind="stable").head(k))
        got = worst_utterances(utts, ids, k, redact_text=True)
        assert [r["utt_id"] for r in got] == list(want["utt_id"])


def test_statistics_side_by_side_equal_serial(monkeypatch):
    """Discoverers' statistics in two forked workers give the serial run's report."""
    import fairaudit
    from fairaudit.stats import parallel

    from conftest import SAMPLE

    args = dict(speakers=str(SAMPLE / "speakers.csv"), census=str(SAMPLE / "census.csv"),
                embeddings=str(SAMPLE / "embeddings.npy"), embedding_ids=str(SAMPLE / "embedding_ids.txt"),
                by=["gender"], n_boot=100, n_perm=30, heldout_splits=2, seed=4)
    serial = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=1, **args)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_SPEAKERS", 0)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    side_by_side = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=2, **args)
    assert "statistics" in side_by_side.timings and "statistics" not in serial.timings
    assert side_by_side.timings["permutation:automatic"] > 0
    assert side_by_side.to_json() == serial.to_json()


def test_shared_permutations_drawn_in_a_child_are_the_parents_draws():
    """share_permutations: a child forked after the reservation fills them; the parent (and
    any later fork) then reads exactly default_rng(seed_i).permutation(n); unfilled, each
    caller draws its own, the same numbers."""
    import multiprocessing as mp

    from fairaudit.stats import permutation as pm

    n, n_perm, seed = 997, 12, 5
    seeds = pm.permutation_seeds(seed, n_perm)
    want = [np.random.default_rng(s).permutation(n) for s in seeds]
    pm._KEPT.clear()
    fill = pm.share_permutations(seed, n_perm, n)
    held = pm._SHARED_PERMUTATIONS[0]
    assert not held.ready
    assert all((pm._permutation(s, n) == w).all() for s, w in zip(seeds, want))   # drawn here meanwhile
    pm._KEPT.clear()
    proc = mp.get_context("fork").Process(target=fill)
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0 and held.ready
    got = [pm._permutation(s, n) for s in seeds]
    assert all(np.shares_memory(g, held.table) for g in got)          # read from the shared set
    assert all((g == w).all() for g, w in zip(got, want))
    assert pm.share_permutations(seed, n_perm, n)() is None and pm._SHARED_PERMUTATIONS == [held]
    pm._SHARED_PERMUTATIONS.clear()
    pm._KEPT.clear()


def test_shared_draws_process_changes_nothing_and_a_failure_is_harmless(monkeypatch):
    """The statistics' shared draws, made by a forked process during discovery, give the
    serial report; when that process fails, the draws are made where needed, the same report."""
    import fairaudit
    from fairaudit.stats import parallel

    from conftest import SAMPLE

    args = dict(speakers=str(SAMPLE / "speakers.csv"), by=["gender"], n_boot=60, n_perm=20, heldout_splits=2,
                seed=9)
    serial = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=1, **args)
    assert "shared_draws" not in serial.timings
    monkeypatch.setattr(parallel, "PARALLEL_MIN_SPEAKERS", 0)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    side = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=2, **args)
    assert side.timings["shared_draws"] > 0 and side.timings.get("resamples", 0.0) < 0.05
    assert side.to_json() == serial.to_json()

    def broken(fills):
        raise MemoryError("no room for the draws")

    monkeypatch.setattr(parallel, "_draw", broken)
    failed = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=2, **args)
    assert "shared_draws" not in failed.timings
    assert failed.to_json() == serial.to_json()


def test_statistics_workers_by_default_on_large_tables(monkeypatch):
    """Default (workers None): side by side from PARALLEL_MIN_SPEAKERS speakers, capped by the
    cores and DEFAULT_MAX_WORKERS; --workers 1, a small table or one task: serial."""
    from fairaudit.stats import parallel

    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    big = parallel.PARALLEL_MIN_SPEAKERS
    assert parallel.processes(15, big, None) == 2
    assert parallel.processes(15, big, 1) == 1
    assert parallel.processes(15, big - 1, None) == 1
    assert parallel.processes(1, big, None) == 1
    monkeypatch.setattr(parallel, "cpu_count", lambda: 64)
    assert parallel.processes(15, big, None) == parallel.DEFAULT_MAX_WORKERS
    assert parallel.processes(15, big, 8) == 8


def test_statistic_parts_merge_into_the_serial_entry():
    """Each part writes only its own fields: parts computed apart and merged give the entry
    (and its key order) of one add_statistics call."""
    import json

    import fairaudit
    from fairaudit.audit import build_discoverers
    from fairaudit.stats import parallel
    from fairaudit.stats.report import PARTS, add_statistics, part_result

    from conftest import SAMPLE

    res = fairaudit.audit(str(SAMPLE / "utterances.csv"), speakers=str(SAMPLE / "speakers.csv"), by=["gender"],
                          n_boot=50, n_perm=20, heldout_splits=2, seed=3, discoverers=["geographic"], workers=1)
    entry = res.report["discoverers"]["geographic"]
    fresh = {k: v for k, v in entry.items() if k not in {"headline_gap", "ci_level", "wer_gap_ci_pct",
                                                          "wer_gap_abs_ci", "bootstrap", "permutation", "p_value",
                                                          "significant", "honest_gap", "heldout"}}
    fresh["cohorts"] = [{k: v for k, v in c.items() if k not in {"wer_ci_low", "wer_ci_high"}}
                        for c in entry["cohorts"]]
    disc = build_discoverers(["geographic"], seed=3)[0]
    part = res.assignments[res.assignments["discoverer"] == "geographic"]
    assignment = pd.Series(part["cohort_id"].to_numpy(), index=part["speaker_id"].to_numpy())
    opts = dict(n_boot=50, n_perm=20, seed=3, heldout_splits=2, statistic=entry["statistic"]["value"],
                statistic_name=entry["statistic"]["name"])
    merged = json.loads(json.dumps(fresh))
    parallel._placeholders(merged)
    for p in reversed(PARTS):              # any order
        one = json.loads(json.dumps(fresh))
        add_statistics(one, disc, res.speakers, res.utterances, None, assignment, parts=(p,), **opts)
        parallel.merge_part(merged, part_result(one, p))
    merged["headline_gap"] = parallel.headline_gap(merged)
    whole = json.loads(json.dumps(fresh))
    parallel._placeholders(whole)
    add_statistics(whole, disc, res.speakers, res.utterances, None, assignment, **opts)
    assert json.dumps(merged) == json.dumps(whole)
    assert whole["heldout"] is not None and whole["permutation"] is not None


@pytest.mark.parametrize("kind,cls", [("geodemographic", GeodemographicDiscoverer), ("metadata", MetadataDiscoverer)])
def test_power_through_refit_batch_equals_refits(kind, cls):
    """fairaudit power's batched re-fits (every planted gap of a world at once) change nothing."""
    from fairaudit.power import estimate_power

    class Refit(cls):
        def refit_batch(self, *args, **kwargs):
            return None

    w = simulate.world(kind, n_speakers=300, seed=13)
    kw = dict(cohort_shares=[0.1, 0.25], n_sim=6, n_perm=30, seed=2, workers=1, gaps=[25.0, 100.0])
    fast = estimate_power(w.speakers, w.side, [cls(min_speakers=15)], **kw)
    slow = estimate_power(w.speakers, w.side, [Refit(min_speakers=15)], **kw)
    assert fast == slow
    curve = fast["discoverers"][kind]["shares"][-1]["power_curve"]
    assert curve[-1]["power"] > curve[0]["power"]       # the planted gap is found more often than none


@pytest.mark.parametrize("n", [400, 60000])
def test_kmeans_labels_do_not_depend_on_the_thread_count(n):
    """fit_labels runs k-means on one OpenMP thread: the labels are those of two threads."""
    from threadpoolctl import threadpool_limits

    from fairaudit.discover import kmeans as km

    rng = np.random.default_rng(n)
    x = km.normalise((rng.normal(size=(6, 8))[rng.integers(0, 6, n)] + rng.normal(0, 0.8, (n, 8)))
                     .astype(np.float32), True)
    one = km.fit_labels(x, 5, 3)
    with threadpool_limits(2, user_api="openmp"):
        two = km.make_kmeans(5, n, 3).fit(x).labels_
    np.testing.assert_array_equal(one, two)


def test_fixed_cohorts_many_cohorts_take_the_bincount_path(monkeypatch):
    from fairaudit.stats import permutation

    w = simulate.attribute_world(n_speakers=300, planted=True, seed=12)
    disc = AttributeDiscoverer(columns=["accent", "age_band"], min_speakers=5)
    fast = _null(disc, w)
    monkeypatch.setattr(permutation, "BLOCK_CELLS", 50)      # no room for the indicator matrix
    _same(_null(disc, w), fast)
    _same(fast, _null(disc, w, batched=False))


@pytest.mark.parametrize("planted,shuffled", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("params", [{}, {"statistic": "poisson"}, {"aggregate": "max"}])
def test_geographic_fused_pass_equals_two_passes_and_member_sums(planted, shuffled, params):
    """The geographic hook's one pass gives each permutation the soft maximum (or maximum)
    of scan_statistic and the gap of max_statistic's best window summed over its members,
    as the two passes and the per-permutation loop it replaces did."""
    from fairaudit.discover import scan as sc
    from fairaudit.discover.geographic import GeographicDiscoverer

    w = simulate.geographic_world(planted=planted, seed=11)
    sp = w.speakers.sample(frac=1.0, random_state=2).reset_index(drop=True) if shuffled else \
        w.speakers.sort_values("speaker_id").reset_index(drop=True)
    disc = GeographicDiscoverer(**params)
    found = disc.fit(sp, w.side)
    rows, _ = disc._audited(sp)
    assert shuffled or (rows == np.arange(len(sp))).all()      # the no-reordering path
    win = disc.windows(sp, rows)
    takes = np.stack([np.random.default_rng(s).permutation(len(sp)) for s in range(15)])
    got = disc.permuted_statistics(sp, w.side, found, takes)
    e = sp["errors"].to_numpy(dtype=float)[takes[:, rows]]
    wd = sp["ref_words"].to_numpy(dtype=float)[takes[:, rows]]
    np.testing.assert_allclose(got["statistics"], sc.scan_statistic(win, e, wd, disc.statistic, disc.aggregate,
                                                                     disc.temperature), rtol=1e-12)
    _, best_row, best_j = sc.max_statistic(win, e, wd, disc.statistic, return_window=True)
    for b, (r, j) in enumerate(zip(best_row, best_j)):
        inside = np.zeros(len(rows), dtype=bool)
        inside[win.members(int(r), int(j))] = True
        wer_in, wer_out = e[b, inside].sum() / wd[b, inside].sum(), e[b, ~inside].sum() / wd[b, ~inside].sum()
        assert got["gaps_abs"][b] == wer_in - wer_out
        assert got["gaps_pct"][b] == 100.0 * (wer_in - wer_out) / wer_out
    # a permutation that moves a speaker without coordinates into the audited set: declined
    sp.loc[3, "lat"] = np.nan
    assert disc.permuted_statistics(sp, w.side, disc.fit(sp, w.side), takes) is None


def test_permutations_are_drawn_once_and_shared_by_the_discoverers():
    """Every discoverer's null uses the shared stream: the same shuffles, drawn once and kept
    (equal to drawing them afresh), and a p-value that does not depend on the keeping."""
    from fairaudit.stats import permutation as perm

    perm._KEPT.clear()
    seeds = perm.permutation_seeds(5, 30)
    assert seeds[3].spawn_key == perm.permutation_seeds(5, 30, key=perm.SHARED_STREAM)[3].spawn_key
    first = perm._takes(400, np.arange(400), seeds)
    assert len(perm._KEPT) == 30
    again = perm._takes(400, np.arange(400), seeds)
    fresh = np.stack([np.random.default_rng(s).permutation(400) for s in seeds])
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(again, fresh)
    sub = np.arange(0, 400, 2)
    part = perm._takes(400, sub, seeds[:2])
    np.testing.assert_array_equal(part[1, sub], sub[np.random.default_rng(seeds[1]).permutation(200)])
    np.testing.assert_array_equal(part[1, 1::2], np.arange(1, 400, 2))

    w = simulate.world("automatic", n_speakers=300, seed=2)
    disc = AutomaticDiscoverer(min_speakers=15)
    found = disc.fit(w.speakers, w.side)
    gap = headline_gap(w.speakers.set_index("speaker_id").loc[found.assignment.index, "errors"].to_numpy(),
                       w.speakers.set_index("speaker_id").loc[found.assignment.index, "ref_words"].to_numpy(),
                       found.assignment.to_numpy(), 15)[0]
    kept = permutation_null(disc, w.speakers, w.side, gap, n_perm=40, seed=1, assignment=found.assignment)
    perm._KEPT.clear()
    cold = permutation_null(disc, w.speakers, w.side, gap, n_perm=40, seed=1, assignment=found.assignment)
    assert kept["p_value"] == cold["p_value"] and kept["null_gap_p95_pct"] == cold["null_gap_p95_pct"]


def test_failure_meanwhile_cancels_the_statistics_workers(monkeypatch):
    """An error in the audit process's own work while the workers compute ends the audit
    with that error (the queued statistics are dropped)."""
    import fairaudit
    from fairaudit.stats import parallel

    from conftest import SAMPLE

    monkeypatch.setattr(parallel, "PARALLEL_MIN_SPEAKERS", 0)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    cancelled = []
    real_cancel = parallel.PendingStatistics.cancel
    monkeypatch.setattr(parallel.PendingStatistics, "cancel", lambda self: (cancelled.append(1), real_cancel(self)))

    def boom(*args, **kwargs):
        raise RuntimeError("rate ratios exploded")

    import importlib

    monkeypatch.setattr(importlib.import_module("fairaudit.audit"), "_rate_ratios", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        fairaudit.audit(str(SAMPLE / "utterances.csv"), speakers=str(SAMPLE / "speakers.csv"), by=["gender"],
                        n_boot=50, n_perm=20, heldout_splits=2, workers=2)
    assert cancelled == [1]


def test_while_waiting_runs_once_before_the_wait_and_never_breaks_the_audit(monkeypatch):
    """parallel.while_waiting: the hook runs once per side-by-side run (not in a serial one),
    an error in it changes nothing, and the report is the serial one."""
    import fairaudit
    from fairaudit.stats import parallel

    from conftest import SAMPLE

    args = dict(speakers=str(SAMPLE / "speakers.csv"), by=["gender"], n_boot=50, n_perm=20, heldout_splits=2)
    calls = []

    def hook():
        calls.append(1)
        raise RuntimeError("warm-up failed")

    with parallel.while_waiting(hook):
        serial = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=1, **args)
        assert calls == []
        monkeypatch.setattr(parallel, "PARALLEL_MIN_SPEAKERS", 0)
        monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
        side = fairaudit.audit(str(SAMPLE / "utterances.csv"), workers=2, **args)
    assert calls == [1] and parallel._WHILE_WAITING == []
    assert side.to_json() == serial.to_json()
