"""Small-cohort WER intervals (fairaudit.intervals): coverage by simulation and edge cases."""
import numpy as np
import pytest

from fairaudit import intervals


def test_multinomial_counts_are_resamples():
    c = intervals.multinomial_counts(np.random.default_rng(0), 7, 50)
    assert c.shape == (50, 7) and (c.sum(axis=1) == 7).all() and (c >= 0).all()
    assert len(np.unique(c, axis=0)) > 40          # resamples differ


def test_studentized_holds_coverage_at_the_speaker_floor_where_percentile_does_not():
    # 25-speaker cohorts of issue-15 speakers (Beta(0.1, 20) rates, Poisson(8)+1 utterances).
    stud = intervals.coverage(25, replicates=400, method="studentized", n_boot=400, seed=11)
    perc = intervals.coverage(25, replicates=400, method="percentile", n_boot=400, seed=11)
    assert stud["coverage"] >= 0.925, stud
    assert stud["coverage"] > perc["coverage"]
    # the misses of the percentile interval are on the low side: the skew it ignores
    assert perc["below"] > perc["above"]


def test_intervals_contain_the_estimate_and_respect_zero():
    rng = np.random.default_rng(3)
    words = rng.integers(50, 150, 60).astype(float)
    errors = rng.binomial(words.astype(int), 0.1).astype(float)
    errors[:20] = 0                                   # cohort 0 has no errors at all
    codes = np.repeat([0, 1, 2], 20)
    for method in intervals.METHODS:
        res = intervals.cohort_wer_intervals(errors, words, codes, n_boot=300, seed=1, method=method,
                                             pairs=[(1, 0)])
        assert res["lo"][0] == 0.0 and res["hi"][0] == 0.0
        assert (res["lo"][1:] <= res["wer"][1:]).all() and (res["wer"][1:] <= res["hi"][1:]).all()
        assert (res["lo"] >= 0).all()
        assert res["gap_pct"][0] == (None, None)      # top WER 0: the relative gap is unbounded
        assert res["gap_abs"][0][0] > 0


def test_deterministic_per_seed_and_one_speaker_cohort():
    e, w = np.array([5.0, 9.0, 2.0, 7.0]), np.array([50.0, 60.0, 40.0, 70.0])
    codes = np.array([0, 0, 0, 1])
    a = intervals.cohort_wer_intervals(e, w, codes, n_boot=200, seed=4)
    b = intervals.cohort_wer_intervals(e, w, codes, n_boot=200, seed=4)
    assert np.array_equal(a["lo"], b["lo"]) and np.array_equal(a["resamples"], b["resamples"])
    assert a["lo"][1] == a["hi"][1] == pytest.approx(0.1)   # one speaker: nothing to resample
    assert 0 <= a["lo"][0] <= a["wer"][0] <= a["hi"][0]
    with pytest.raises(ValueError):
        intervals.cohort_wer_intervals(e, w, codes, method="magic")


def test_marginal_counts_are_the_full_multinomial_on_m_speakers():
    """The Binomial split draws the counts of m of n speakers at a cost of m draws: the
    same distribution as the full resample's counts on them (mean, variance, and the
    variance and covariance of their sum, over many resamples)."""
    n, m, size = 60, 7, 40_000
    fast = intervals.marginal_counts(np.random.default_rng(1), n, m, size)
    full = intervals.multinomial_counts(np.random.default_rng(2), n, size)[:, :m]
    assert fast.shape == (size, m) and (fast >= 0).all() and np.array_equal(fast, np.round(fast))
    se = 4 * np.sqrt(1.0 / size)       # generous: count variance ~1
    assert abs(fast.mean() - 1.0) < se and abs(full.mean() - 1.0) < se
    assert fast.var() == pytest.approx(1 - 1 / n, abs=0.03) and full.var() == pytest.approx(1 - 1 / n, abs=0.03)
    # the sum over the m speakers is Binomial(n, m / n): variance m (1 - m / n)
    for c in (fast, full):
        assert c.sum(axis=1).var() == pytest.approx(m * (1 - m / n), rel=0.05)
        cov = np.cov(c[:, 0], c[:, 1])[0, 1]
        assert cov == pytest.approx(-1 / n, abs=0.02)    # multinomial: counts compete
    # m == n is the full multinomial, the same draws; a buffer is reused, not copied
    buf = np.empty((5, 60))
    got = intervals.marginal_counts(np.random.default_rng(3), 60, 60, 5, out=buf)
    assert np.shares_memory(got, buf)
    np.testing.assert_array_equal(got, intervals.multinomial_counts(np.random.default_rng(3), 60, 5))
    # large n (one draw per resample row) and small n (one flat bincount) both count n draws
    for k in (7, 900):
        c = intervals.multinomial_counts(np.random.default_rng(4), k, 30)
        assert (c.sum(axis=1) == k).all()
    with pytest.raises(ValueError):
        intervals.marginal_counts(np.random.default_rng(0), 5, 6, 2)


def test_shared_speaker_resamples_are_fixed_by_seed_and_size(monkeypatch):
    """The shared resamples depend on (seed, n_boot, n) alone; kept in memory or drawn again
    (above the memory cap) they are the same numbers, and a column subset is their columns."""
    n, b = 1234, 300
    kept = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(5, b, n)])
    assert kept.shape == (b, n) and (kept.sum(axis=1) == n).all()
    again = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(5, b, n)])
    np.testing.assert_array_equal(kept, again)
    cols = np.array([3, 0, 1000])
    sub = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(5, b, n, cols)])
    np.testing.assert_array_equal(sub, kept[:, cols])
    other = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(6, b, n)])
    assert not np.array_equal(other, kept)
    monkeypatch.setattr(intervals, "SHARED_MAX_CELLS", 0)
    redrawn = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(5, b, n)])
    np.testing.assert_array_equal(redrawn, kept)


def test_overall_interval_is_the_studentised_interval_of_the_shared_resamples():
    rng = np.random.default_rng(8)
    w = rng.integers(20, 200, 400).astype(float)
    e = rng.binomial(w.astype(int), 0.1).astype(float)
    counts = np.concatenate([blk.copy() for blk in intervals.speaker_resamples(2, 500, len(e))])
    r_b = counts @ e / (counts @ w)
    lo, hi = intervals.overall_interval(e, w, 500, 2)
    assert lo < e.sum() / w.sum() < hi
    # the studentised ends sit near the percentile ones for 400 speakers (little skew)
    p_lo, p_hi = np.quantile(r_b, [0.025, 0.975])
    assert lo == pytest.approx(p_lo, rel=0.02) and hi == pytest.approx(p_hi, rel=0.02)


@pytest.mark.parametrize("n", [250, 777, 12345])
def test_counts_are_the_former_draws(n):
    """Counting one resample at a time into a reused buffer (32-bit draws, a call per row)
    draws exactly what one (resamples x n) 64-bit call drew: the cohort intervals keep
    their numbers for a seed."""
    buf = np.empty((12, n))
    got = intervals.multinomial_counts(np.random.default_rng(3), n, 10, out=buf)
    draws = np.random.default_rng(3).integers(0, n, size=(10, n))
    np.testing.assert_array_equal(got, np.stack([np.bincount(d, minlength=n) for d in draws]))
    assert np.shares_memory(got, buf)


def test_stratified_resamples_from_the_shared_base_equal_fresh_strata():
    """Cohort resamples built on the kept base draws of the table (completed to each
    cohort's size, or drawn afresh when the base overshoots) have the distribution of the
    stratified bootstrap: each cohort's count of one marked speaker is Binomial(n_k, 1/n_k),
    its resampled WER has the fresh draws' mean and spread, and cohorts are independent."""
    from fairaudit.stats import rng as stats_rng

    rng = np.random.default_rng(5)
    n_table, sizes = 90, [4, 16, 50]              # 20 table rows in no cohort
    rows = np.sort(rng.choice(n_table, sum(sizes), replace=False))
    bounds = np.r_[0, np.cumsum(sizes)]
    w = rng.integers(20, 200, sum(sizes)).astype(float)
    e = rng.binomial(w.astype(int), 0.1).astype(float)
    marked = e.copy()
    marked[bounds[:-1]] = 1.0                    # the first speaker of each cohort ...
    ones = np.ones(sum(sizes))
    marked[np.setdiff1d(np.arange(sum(sizes)), bounds[:-1])] = 0.0
    b = 20_000

    def gens(seed):
        return [np.random.default_rng(s) for s in stats_rng.stream(seed, "bootstrap", "t").spawn(3)]

    # ... is drawn Binomial(n_k, 1/n_k) times: mean 1, variance 1 - 1/n_k (R_b = count / n_k)
    res = intervals.stratified_resamples(1, b, n_table, rows, marked, ones, bounds, gens(1))
    for k, n_k in enumerate(sizes):
        count = np.round(res[k][0] * n_k)
        np.testing.assert_allclose(res[k][0] * n_k, count, atol=1e-9)
        assert count.min() >= 0 and count.max() <= n_k
        assert count.mean() == pytest.approx(1.0, abs=0.03)
        assert count.var() == pytest.approx(1 - 1 / n_k, rel=0.05)
    # the WERs: the fresh stratified draws' mean and spread; cohorts independent
    res = intervals.stratified_resamples(2, b, n_table, rows, e, w, bounds, gens(2))
    for k in range(3):
        a, z = bounds[k], bounds[k + 1]
        fresh, _, _ = intervals.cohort_interval(e[a:z], w[a:z], b, np.random.default_rng(k), 0.95)
        assert res[k][0].mean() == pytest.approx(fresh.mean(), rel=0.003)
        assert res[k][0].std() == pytest.approx(fresh.std(), rel=0.04)
    assert abs(np.corrcoef(res[1][0], res[2][0])[0, 1]) < 0.03
    # fixed by the seeds
    again = intervals.stratified_resamples(2, b, n_table, rows, e, w, bounds, gens(2))
    np.testing.assert_array_equal(again[2][0], res[2][0])


def test_shared_resamples_filled_after_fork_are_seen_by_the_worker():
    """share_resamples: a process forked before fill() reads the filled numbers (the same
    as drawing them in one process); before fill, a caller draws its own, the same again."""
    import multiprocessing as mp

    from fairaudit import intervals as iv

    n, n_boot, seed = 700, 40, 11
    iv._SHARED.clear()
    plain = np.concatenate([b.copy() for b in iv.speaker_resamples(seed, n_boot, n)])
    iv._SHARED.clear()
    fill = iv.share_resamples(seed, n_boot, n)
    early = iv._SHARED[("full", seed, n_boot, n)]
    assert not early.ready and early.shared
    ctx = mp.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()

    def child():
        go.wait()
        got = np.concatenate([b.copy() for b in iv.speaker_resamples(seed, n_boot, n)])
        held = iv._SHARED[("full", seed, n_boot, n)]
        # still the shared buffer (not a copy of its own drawn in the child), and its numbers
        out.put((held is early, got.tolist()))

    proc = ctx.Process(target=child)
    proc.start()
    fill()
    go.set()
    shared_in_child, got = out.get(timeout=60)
    proc.join(timeout=60)
    assert early.ready and shared_in_child
    np.testing.assert_array_equal(early.counts, plain)
    np.testing.assert_array_equal(np.asarray(got), plain)
    assert (plain.sum(axis=1) == n).all()
    iv._SHARED.clear()
    iv.share_resamples(seed, n_boot, n)            # reserved, never filled: the caller draws
    np.testing.assert_array_equal(np.concatenate([b.copy() for b in iv.speaker_resamples(seed, n_boot, n)]), plain)
    iv._SHARED.clear()


@pytest.mark.parametrize("n", [300, 1234])          # one bincount per block / per resample
def test_kept_set_holds_each_resamples_base_and_tail(n):
    """The kept set is the speaker resamples' own draws: counts = base (the first
    int(STRATA_BASE n) draws) + the tail's draws, row by row; its sums of a moment table are
    counts @ x and base @ x exactly (and the same when read back from the cache)."""
    iv = intervals
    iv._SHARED.clear()
    b, seed = 60, 9
    plain = np.concatenate([blk.copy() for blk in iv.speaker_resamples(seed, b, n)])
    kept = iv._kept(seed, b, n)
    np.testing.assert_array_equal(kept.counts, plain)
    from fairaudit.stats import rng as stats_rng
    draws = stats_rng.generator(seed, "bootstrap", "speakers").integers(0, n, size=(b, n))
    first = int(iv.STRATA_BASE * n)
    np.testing.assert_array_equal(kept.tail, draws[:, first:])
    np.testing.assert_array_equal(kept.base, np.stack([np.bincount(d[:first], minlength=n) for d in draws]))
    rng = np.random.default_rng(2)
    x = np.column_stack([rng.integers(0, 500, (n, 5)), np.ones(n)]).astype(float)
    got = kept.sums(x)
    np.testing.assert_array_equal(got[:, :6], plain @ x)
    np.testing.assert_array_equal(got[:, 6:], kept.base.astype(float) @ x)
    assert kept.sums(x.copy()) is got
    iv._SHARED.clear()


def _stratified_by_definition(kept, rows, e, w, bounds, gens):
    """stratified_resamples written out: each cohort's base counts read from its columns,
    completed with its own draws or thinned without replacement (the same generator calls)."""
    out = []
    for k in range(len(bounds) - 1):
        a, z = bounds[k], bounds[k + 1]
        x = np.column_stack([e[a:z], w[a:z], e[a:z] ** 2, e[a:z] * w[a:z], w[a:z] ** 2])
        counts = kept.base[:, rows[a:z]].astype(np.int64)
        need = (z - a) - counts.sum(axis=1)
        short = np.flatnonzero(need > 0)
        extra = gens[k].integers(0, z - a, size=int(need[short].sum()))
        for r, d in zip(short, np.split(extra, np.cumsum(need[short])[:-1])):
            counts[r] += np.bincount(d, minlength=z - a)
        over = np.flatnonzero(need < 0)
        if len(over):
            at, ranks = intervals._drop_ranks(gens[k], counts[over].sum(axis=1), -need[over])
            for i, r in enumerate(over):
                drawn = np.repeat(np.arange(z - a), counts[r])    # the base draws, one per entry
                counts[r] -= np.bincount(drawn[ranks[at == i]], minlength=z - a)
        assert (counts.sum(axis=1) == z - a).all()
        out.append(intervals._ratio_se(counts @ x, z - a))
    return out


def test_stratified_resamples_equal_their_definition():
    """The fast path (the largest cohort as the table's sums minus the others', products of
    the others' columns) gives exactly the sums of the construction written out, with rows
    of the table in no cohort and cohorts that are often completed and often thinned."""
    from fairaudit.stats import rng as stats_rng

    iv = intervals
    iv._SHARED.clear()
    rng = np.random.default_rng(4)
    n_table, b, sizes = 900, 400, [6, 40, 700, 90]           # 64 rows in no cohort
    rows = rng.choice(n_table, sum(sizes), replace=False)
    bounds = np.r_[0, np.cumsum(sizes)]
    w = rng.integers(20, 200, sum(sizes)).astype(float)
    e = rng.binomial(w.astype(int), 0.1).astype(float)

    def gens():
        return [np.random.default_rng(s) for s in stats_rng.stream(3, "bootstrap", "d").spawn(len(sizes))]

    fast = iv.stratified_resamples(3, b, n_table, rows, e, w, bounds, gens())
    slow = _stratified_by_definition(iv._kept(3, b, n_table), rows, e, w, bounds, gens())
    for (r_f, se_f), (r_s, se_s) in zip(fast, slow):
        np.testing.assert_array_equal(r_f, r_s)
        np.testing.assert_array_equal(se_f, se_s)
    iv._SHARED.clear()


def test_shared_sums_serve_the_overall_interval():
    """share_resamples with the table's counts multiplies them in once: the overall interval
    read from those sums equals the one computed from the resamples."""
    iv = intervals
    rng = np.random.default_rng(6)
    w = rng.integers(20, 200, 700).astype(float)
    e = rng.binomial(w.astype(int), 0.1).astype(float)
    iv._SHARED.clear()
    plain = iv.overall_interval(e, w, 50, 4)
    iv._SHARED.clear()
    fill = iv.share_resamples(4, 50, len(e), errors=e, words=w)
    fill()
    kept = iv._SHARED[("full", 4, 50, len(e))]
    assert kept.ready and kept.shared and kept.sums(iv._with_ones(e, w)) is kept.totals
    assert iv.overall_interval(e, w, 50, 4) == plain
    with pytest.raises(ValueError):
        iv.share_resamples(4, 50, len(e), errors=e[:-1], words=w[:-1])
    iv._SHARED.clear()


def test_drop_ranks_sample_without_replacement_uniformly():
    """_drop_ranks: m distinct ranks per row, every rank and every pair equally likely."""
    reps = 4000
    totals = np.tile([5, 3, 40, 1], reps)
    m = np.tile([2, 3, 39, 1], reps)
    at, ranks = intervals._drop_ranks(np.random.default_rng(12), totals, m)
    np.testing.assert_array_equal(np.bincount(at, minlength=len(m)), m)
    assert (np.diff(at) >= 0).all() and (ranks >= 0).all() and (ranks < totals[at]).all()
    key = at * 64 + ranks
    assert len(np.unique(key)) == len(key)                            # distinct within a row
    fives = ranks[totals[at] == 5].reshape(reps, 2)                    # rows of 2 ranks among 5
    np.testing.assert_allclose(np.bincount(fives.ravel(), minlength=5) / reps, 2 / 5, atol=0.03)
    lo, hi = fives.min(axis=1), fives.max(axis=1)
    pairs = np.bincount(lo * 5 + hi, minlength=25).reshape(5, 5)[np.triu_indices(5, 1)] / reps
    np.testing.assert_allclose(pairs, 1 / 10, atol=0.02)               # each pair: 1 / C(5, 2)
