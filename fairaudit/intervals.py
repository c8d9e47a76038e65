"""Cohort-WER confidence intervals that hold down to small cohorts (speaker bootstrap).

A cohort's WER is a ratio of sums over its speakers, sum(errors) / sum(ref_words), and its
speakers differ in error rate, so the sampling distribution of a 20-30-speaker cohort's
WER is skewed to the right.  The plain percentile bootstrap then covers the truth too
rarely (measured on the issue-15 speakers, 25 speakers: 92.6 % at nominal 95 %; BCa:
92.8 %).  The default here is the **studentised** (bootstrap-t) interval, which corrects
for the skew through the resampled t statistic (94.5 % at 25 speakers; see
``benchmarks/bench_discovery.py`` for the figures at every size).

Per cohort with n speakers, counts e_i (errors) and w_i (reference words):

* estimate R = sum e / sum w (ratio); its linearised (delta-method) standard error
  se = sqrt(n / (n - 1) x sum (e_i - R w_i)^2) / sum w;
* each resample b gives speaker multiplicities c_b (a multinomial count vector: the
  speakers drawn with replacement, n draws), and every needed sum is one matrix product
  of the (B x n) count matrix with the (n x 5) speaker totals [e, w, e^2, e w, w^2]:
  R_b = (c_b . e) / (c_b . w) and se_b from c_b . e^2, c_b . e w, c_b . w^2 (no
  per-resample gathers of speaker rows);
* t_b = (R_b - R) / se_b; the interval is [R - q(1 - a/2) se, R - q(a/2) se] with q the
  quantiles of t_b (a = 1 - level), clipped below at 0.

Cohorts are strata (each resampled within itself, same size), so the intervals are
conditional on the cohorts: they describe sampling noise, not the search that chose them.
``method="percentile"`` and ``"bca"`` (bias-corrected and accelerated, jackknife
acceleration in closed form) are kept for comparison.  Cohorts of fewer than 5 speakers
(below any sensible ``min_speakers``) get the percentile interval.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.special import ndtr, ndtri   # the normal cdf and ppf (scipy.stats' norm: 0.5 s to import)

#: interval methods of :func:`cohort_wer_intervals`
METHODS = ("studentized", "percentile", "bca")
#: below this many speakers the bootstrap-t is unstable (resamples of one repeated speaker
#: have no spread): such cohorts get the percentile interval
STUDENTIZED_MIN = 5

METHOD_TEXT = {
    "studentized": "studentised speaker bootstrap (bootstrap-t with the ratio's linearised standard error), "
                   "stratified by cohort (cohorts held fixed)",
    "percentile": "percentile speaker bootstrap, stratified by cohort (cohorts held fixed)",
    "bca": "BCa speaker bootstrap (jackknife acceleration), stratified by cohort (cohorts held fixed)",
}


def _counts(e: Any, name: str) -> np.ndarray:
    a = np.asarray(e, dtype=float)
    if a.ndim != 1 or np.isnan(a).any() or (a < 0).any():
        raise ValueError(f"{name} must be one-dimensional non-negative counts without NaN")
    return a


#: at most this many speakers, a block's draws are counted by one bincount over the block
#: (row offsets); above, one bincount per resample (its counters stay in cache)
_FLAT_COUNT_MAX = 500
#: resamples x speakers counted at once into one reused buffer before its product: a
#: buffer of 8 MB stays in cache, and a fresh 30 MB array per block (mapped anew, zero
#: pages on first touch) made counting and multiplying twice as slow at 100,000 speakers
COUNT_BLOCK_CELLS = 1 << 20


def _draw_index(n: int):
    """The narrowest integer type for uniform draws in [0, n): 32-bit draws cost less to
    make and to count than 64-bit ones (the draws differ, their distribution does not)."""
    return np.uint32 if n <= 2**32 else np.int64


def _buffer(out: np.ndarray | None, size: int, n: int) -> np.ndarray:
    if out is None:
        return np.empty((size, n))
    if out.dtype != np.float64 or out.ndim != 2 or out.shape[0] < size or out.shape[1] < n:
        raise ValueError(f"out must be a float array of at least {size} x {n}")
    return out[:size, :n]


def _count_into(out: np.ndarray, rng: np.random.Generator, n: int, draws_per_row: np.ndarray) -> np.ndarray:
    """Fill ``out`` (rows x n) with the counts of ``draws_per_row[b]`` uniform draws in
    [0, n) per row b: one call per row for large n (draws and counters stay in cache), one
    flat ``bincount`` over the block for small n."""
    size = len(out)
    if n <= _FLAT_COUNT_MAX:
        draws = rng.integers(0, n, size=int(draws_per_row.sum()), dtype=np.int64)
        draws += np.repeat(np.arange(size, dtype=np.int64) * n, draws_per_row)
        out[:] = np.bincount(draws, minlength=size * n).reshape(size, n)
        return out
    dtype = _draw_index(n)
    for b in range(size):    # loop over resamples, not speakers
        out[b] = np.bincount(rng.integers(0, n, size=int(draws_per_row[b]), dtype=dtype), minlength=n)
    return out


def multinomial_counts(rng: np.random.Generator, n: int, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """(size x n) speaker multiplicities of ``size`` resamples of n speakers with replacement.

    Row b counts how often each speaker was drawn in n uniform draws (a multinomial count
    vector, rows sum to n, as floats ready for a matrix product): 32-bit draws counted
    one resample at a time, or in one ``bincount`` for small n (a Python call per resample
    would cost more than the count).  ``out``: a reused float buffer of at least size x n
    (the result is a view of it).
    """
    buf = _buffer(out, size, n)
    if n == 0:
        return buf
    return _count_into(buf, rng, n, np.full(size, n, dtype=np.int64))


def marginal_counts(rng: np.random.Generator, n: int, m: int, size: int, out: np.ndarray | None = None
                    ) -> np.ndarray:
    """(size x m) multiplicities of m of n speakers in ``size`` resamples of all n.

    The same distribution as ``multinomial_counts(rng, n, size)[:, :m]`` (any m of the n:
    the speakers are exchangeable) at a cost of about m instead of n draws per resample:
    of a resample's n uniform draws, K ~ Binomial(n, m / n) land on the m speakers, and
    given K they are K uniform draws among them.  Used when only m speakers carry weight
    in the product (the held-out gap's labelled speakers); m == n is
    :func:`multinomial_counts` itself.  ``out``: as there.
    """
    if not 0 <= m <= n:
        raise ValueError(f"m must be between 0 and n ({n}), not {m}")
    if m == n:
        return multinomial_counts(rng, n, size, out)
    buf = _buffer(out, size, m)
    if m == 0:
        return buf
    return _count_into(buf, rng, m, rng.binomial(n, m / n, size=size))


#: the shared speaker resamples (:func:`speaker_resamples`) are kept in memory up to this
#: many cells (resamples x speakers, one byte each: 100 MB at 1,000 x 100,000)
SHARED_MAX_CELLS = 1 << 28

_SHARED: dict[tuple, "_KeptSet"] = {}


#: the stratified resamples (:func:`stratified_resamples`) start from the first
#: ``int(STRATA_BASE * n)`` of each kept speaker resample's n draws (its *base*); each
#: cohort then completes or thins its share of them to its own size.  Near 1, few draws
#: are left to make per cohort (2 % of the speakers per resample) while a large cohort
#: rarely gets more base draws than it has speakers (at 50,000 speakers of 100,000:
#: 6 standard deviations away); the small cohorts that often do are cheap to thin.
STRATA_BASE = 0.98
#: the random stream of the kept speaker resamples
_STREAM = ("bootstrap", "speakers")


def _tail_size(n: int) -> int:
    """Draws per kept resample after its base (the last n - int(STRATA_BASE n) of its n)."""
    return int(n) - int(STRATA_BASE * int(n))


def _aligned(sizes: Sequence[int]) -> tuple[list[int], int]:
    """Offsets (bytes) of consecutive arrays of ``sizes`` bytes in one buffer, each on a
    64-byte boundary (a cache line), and the buffer's size."""
    offsets, at = [], 0
    for s in sizes:
        offsets.append(at)
        at += -(-int(s) // 64) * 64
    return offsets, at


class _KeptSet:
    """One kept set of speaker resamples: ``counts`` (n_boot x n multiplicities of each
    resample's n draws, uint8, or uint16 when a count passes 255), ``base`` (the same for
    its first n - tail draws only: what :func:`stratified_resamples` builds on), ``tail``
    (n_boot x tail, the last draws' rows), and for one (n x 6) moment table ``x`` the
    sums ``totals`` = [counts @ x, base @ x] (with the SHA-1 ``digest`` of ``x``), the
    flags ``ready`` (drawn) and ``totals_ready``.  With ``shared`` it lives in anonymous
    shared memory (MAP_SHARED | MAP_ANONYMOUS), visible to processes forked after it was
    made, whoever fills it; otherwise in this process only."""

    def __init__(self, n_boot: int, n: int, shared: bool = False):
        import mmap

        self.n_boot, self.n = int(n_boot), int(n)
        tail = _tail_size(self.n)
        cells = self.n_boot * self.n
        sizes = [cells, cells, self.n_boot * tail * 8, self.n_boot * 12 * 8, 20, 2]
        offs, total = _aligned(sizes)
        # (a private buffer from np.empty: its pages are mapped when first written)
        buf = mmap.mmap(-1, total) if shared else np.empty(total, dtype=np.uint8)
        self._buf = buf
        self.counts = np.frombuffer(buf, np.uint8, cells, offs[0]).reshape(self.n_boot, self.n)
        self.base = np.frombuffer(buf, np.uint8, cells, offs[1]).reshape(self.n_boot, self.n)
        self.tail = np.frombuffer(buf, np.int64, self.n_boot * tail, offs[2]).reshape(self.n_boot, tail)
        self.totals = np.frombuffer(buf, np.float64, self.n_boot * 12, offs[3]).reshape(self.n_boot, 12)
        self.digest = np.frombuffer(buf, np.uint8, 20, offs[4])
        self._flags = np.frombuffer(buf, np.uint8, 2, offs[5])
        self._flags[:] = 0
        self.shared = bool(shared)
        #: further moment tables' sums (digest -> n_boot x 12), in this process only
        self.more_totals: dict[bytes, np.ndarray] = {}

    @property
    def ready(self) -> bool:
        return bool(self._flags[0])

    def fill(self, seed: int) -> bool:
        """Draw the set (stream ``(seed, "bootstrap", "speakers")``: n uniform draws on the
        n rows per resample, one call per resample, or one per block of resamples for
        small n); True when it fitted in this buffer (False: a count passed 255; the
        numbers are then in private uint16 copies of ``counts`` and ``base``)."""
        from .stats import rng as _rng

        gen = _rng.generator(seed, *_STREAM)
        n, n_boot = self.n, self.n_boot
        first = n - self.tail.shape[1]
        counts, base, fits = self.counts, self.base, True
        if n > _FLAT_COUNT_MAX:
            # Row by row straight into the byte tables (the draws _count_into makes: 64-bit
            # draws in [0, n) are its 32-bit ones, and bincount takes them without a copy)
            for b in range(n_boot):
                draws = gen.integers(0, n, size=n, dtype=np.int64)
                self.tail[b] = draws[first:]
                row = np.bincount(draws[:first], minlength=n)
                base[b] = row                          # (<= 255 wherever the full row is)
                row += np.bincount(draws[first:], minlength=n)
                if counts.dtype == np.uint8 and row.max() > 255:
                    counts, base, fits = counts.astype(np.uint16), base.astype(np.uint16), False
                    base[b] = row - np.bincount(draws[first:], minlength=n)
                counts[b] = row
        else:
            step = max(1, COUNT_BLOCK_CELLS // max(1, n))
            for b0 in range(0, n_boot, step):
                b = min(step, n_boot - b0)
                draws = (gen.integers(0, n, size=b * n, dtype=np.int64) if n else np.zeros(0, np.int64)).reshape(b, n)
                self.tail[b0:b0 + b] = draws[:, first:]
                draws += (np.arange(b, dtype=np.int64) * n)[:, None]
                head = np.bincount(draws[:, :first].ravel(), minlength=b * n).reshape(b, n)
                block = head + np.bincount(draws[:, first:].ravel(), minlength=b * n).reshape(b, n)
                if counts.dtype == np.uint8 and block.size and block.max() > 255:
                    # (n > 255 speakers and a row drawn 256 times)
                    counts, base, fits = counts.astype(np.uint16), base.astype(np.uint16), False
                counts[b0:b0 + b] = block
                base[b0:b0 + b] = head
        self.counts, self.base = counts, base
        if fits or not self.shared:     # (a private set may hold uint16 copies)
            self._flags[0] = 1
        return fits

    def _both(self, x: np.ndarray) -> np.ndarray:
        """[counts @ x, base @ x] (n_boot x 12): the base's as the whole's minus its tail's."""
        full = _product(self.counts, x)
        tail = np.zeros_like(full)
        for j in range(x.shape[1]):
            tail[:, j] = np.ascontiguousarray(x[:, j])[self.tail].sum(axis=1)
        return np.hstack([full, full - tail])

    def sums(self, x: np.ndarray) -> np.ndarray:
        """[counts @ x, base @ x] (n_boot x 12) for a (n x 6) table ``x``: exact (integer
        counts and moments), kept per table (by its SHA-1) so each is multiplied once."""
        import hashlib

        x = np.ascontiguousarray(x, dtype=np.float64)
        key = hashlib.sha1(x.data).digest()
        if self._flags[1] and bytes(self.digest) == key:
            return self.totals
        if key not in self.more_totals:
            self.more_totals[key] = self._both(x)
        return self.more_totals[key]

    def share_sums(self, x: np.ndarray) -> None:
        """Multiply ``x`` into the shared ``totals`` (read by the processes forked before)."""
        import hashlib

        x = np.ascontiguousarray(x, dtype=np.float64)
        self.totals[:] = self._both(x)
        self.digest[:] = np.frombuffer(hashlib.sha1(x.data).digest(), np.uint8)
        self._flags[1] = 1


def _product(counts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """counts (b x n, small integers) @ x (n x k) in float blocks of bounded size."""
    n = counts.shape[1]
    out = np.zeros((len(counts), x.shape[1]))
    if not n:
        return out
    step = max(1, COUNT_BLOCK_CELLS // n)
    buf = np.empty((min(step, len(counts)), n))
    xt = np.ascontiguousarray(x.T)
    for b0 in range(0, len(counts), step):
        blk = buf[:min(step, len(counts) - b0)]
        np.copyto(blk, counts[b0:b0 + len(blk)])
        out[b0:b0 + len(blk)] = (xt @ blk.T).T      # (this orientation: a third faster in OpenBLAS)
    return out


def _kept(seed: int, n_boot: int, n: int) -> "_KeptSet | None":
    """The kept speaker resamples of (seed, n_boot, n), drawn here the first time (or when
    a shared set is not filled yet); None above :data:`SHARED_MAX_CELLS` (not kept)."""
    if n_boot * n > SHARED_MAX_CELLS:
        return None
    key = ("full", seed, n_boot, n)
    kept = _SHARED.get(key)
    if kept is None or not kept.ready:  # (a shared set not filled yet, or failed: drawn here)
        kept = _KeptSet(n_boot, n)
        kept.fill(seed)
        for old in [k for k in _SHARED if k[0] == "full"]:
            del _SHARED[old]            # one table at a time, the audit's
        _SHARED[key] = kept
    return kept


def _kept_counts(seed: int, n_boot: int, n: int, columns: np.ndarray | None):
    """Blocks (b x columns, floats, in a reused buffer valid until the next block) of the
    kept speaker resamples (:func:`_kept`); above :data:`SHARED_MAX_CELLS`, drawn again
    per caller (the same numbers: the blocks depend on n only)."""
    from .stats import rng as _rng

    step = max(1, COUNT_BLOCK_CELLS // max(1, n))
    m = n if columns is None else len(columns)
    buf = np.empty((min(step, n_boot), n))
    kept = _kept(seed, n_boot, n)
    if kept is None:
        gen = _rng.generator(seed, *_STREAM)
        for b0 in range(0, n_boot, step):
            block = multinomial_counts(gen, n, min(step, n_boot - b0), out=buf)
            yield block if columns is None else np.take(block, columns, axis=1)
        return
    counts = kept.counts
    picked = None if columns is None else np.empty((min(step, n_boot), m), dtype=counts.dtype)
    for b0 in range(0, n_boot, step):
        block = counts[b0:b0 + step]
        out = buf[:len(block), :m]
        # (the columns' bytes into one reused buffer, then to floats: no fresh array per block)
        np.copyto(out, block if columns is None else np.take(block, columns, axis=1, out=picked[:len(block)]))
        yield out


def _with_ones(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per speaker [e, w, e^2, e w, w^2, 1]: the sums' moments and a draw counter."""
    return np.column_stack([_moments(e, w), np.ones(len(e))])


def share_resamples(seed: int, n_boot: int, n: int, *, errors: Any = None, words: Any = None):
    """Reserve the kept speaker resamples (:func:`speaker_resamples`, whose base also
    serves :func:`stratified_resamples`) in memory shared with processes forked from now
    on; returns ``fill()``, which draws them (the same numbers as drawing them here) and
    marks them ready.  With ``errors``/``words`` (the speaker table's counts, one per row)
    ``fill`` also multiplies their moments into the set (what the overall interval and
    the bootstraps of discoverers that audit every speaker read).  Worker processes forked
    before ``fill`` returns see the numbers once it has; one that needs them before that
    (or after a failed fill) draws its own copy, the same numbers again.  A no-op
    (``fill`` does nothing) when nothing would be kept (above :data:`SHARED_MAX_CELLS`)."""
    seed, n_boot, n = int(seed), int(n_boot), int(n)
    if n_boot <= 0 or n <= 255 or n_boot * n > SHARED_MAX_CELLS:
        return lambda: None
    key = ("full", seed, n_boot, n)
    held = _SHARED.get(key)
    x = None
    if errors is not None and words is not None:
        x = _with_ones(_counts(errors, "errors"), _counts(words, "words"))
        if len(x) != n:
            raise ValueError(f"errors and words must give one count per table row ({n}), not {len(x)}")
    if held is not None and held.ready:
        return lambda: None             # drawn in this process already (its sums when asked)
    shared = _KeptSet(n_boot, n, shared=True)
    for old in [k for k in _SHARED if k[0] == "full"]:
        del _SHARED[old]
    _SHARED[key] = shared

    def fill() -> None:
        if shared.fill(seed):
            if x is not None:
                shared.share_sums(x)
        else:                           # (a uint16 copy cannot be shared: the workers draw their own)
            _SHARED[key] = _private(shared)
    return fill


def _private(kept: "_KeptSet") -> "_KeptSet":
    """A private, ready copy of a filled set whose counts did not fit its shared bytes."""
    out = _KeptSet(kept.n_boot, kept.n)
    out.counts, out.base = kept.counts, kept.base
    out.tail[:] = kept.tail
    out._flags[0] = 1
    return out


def speaker_resamples(seed: int, n_boot: int, n: int, columns: np.ndarray | None = None):
    """Blocks of one fixed set of ``n_boot`` speaker resamples of a table of n rows:
    (b x n) multiplicities as floats (or of the rows ``columns`` only), b rows at a time;
    each block is a view of a reused buffer, valid until the next one is asked for.

    Row r of the table is drawn ``counts[i, r]`` times in resample i: a plain speaker
    bootstrap (n draws with replacement, no strata) fixed by (``seed``, ``n_boot``, n)
    alone, from the stream ``(seed, "bootstrap", "speakers")``.  It serves every statistic
    that resamples the speakers of the table (the overall WER's interval, each
    discoverer's held-out gap, and, through its first draws, each discoverer's stratified
    bootstrap): each of them is a correct bootstrap of its own statistic; they share the
    draws (so their resampling errors are correlated, which no reported number combines),
    and the draws are made and counted once instead of once each.  Kept in memory (one
    byte per cell) up to :data:`SHARED_MAX_CELLS`; above, drawn again block by block for
    each caller (the same numbers, since the blocks depend only on n).
    """
    yield from _kept_counts(int(seed), int(n_boot), int(n), columns)


def stratified_resamples(seed: int, n_boot: int, n_table: int, rows: np.ndarray, e: np.ndarray, w: np.ndarray,
                         bounds: np.ndarray, gens: Sequence[np.random.Generator]
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per cohort, (R_b, se_b) of ``n_boot`` speaker resamples stratified by cohort, built
    on the base of the kept speaker resamples (:func:`speaker_resamples`): the first
    ``int(STRATA_BASE * n_table)`` of each resample's n_table uniform draws on the table's
    rows, shared by every discoverer (and, whole, by the overall interval and the held-out
    gaps).  Needs the kept set (n_boot x n_table <= :data:`SHARED_MAX_CELLS`).

    ``rows``: each audited speaker's row in the table of ``n_table`` rows, sorted by
    cohort; ``e``/``w``: their counts in that order; cohort k holds positions
    ``bounds[k]:bounds[k + 1]``; ``gens``: one generator per cohort.

    Of a resample's base draws, K land in cohort k; given K they are K uniform draws on
    its n_k speakers.  When K < n_k the cohort gets n_k - K more uniform draws on itself
    (its own generator); when K > n_k, K - n_k of its base draws, chosen uniformly without
    replacement (its own generator), are left out.  Either way each cohort's draws are
    n_k uniform draws on it, and given the base totals the cohorts' draws are independent
    and do not depend on those totals: exactly the stratified bootstrap's joint
    distribution (tested against fresh draws), at the cost of about a fiftieth of the draws.

    The sums are exact (integer counts times integer moments), so they are computed
    wherever cheapest: every cohort's but the largest by a product of its columns of the
    kept counts, the largest one as the table's sums (computed once per table and
    shared, :meth:`_KeptSet.sums`) minus the others', and the base as the whole resample
    minus its last draws (``tail``).
    """
    n_c = len(bounds) - 1
    n_boot, n_table = int(n_boot), int(n_table)
    kept = _kept(int(seed), n_boot, n_table)
    if kept is None:
        raise ValueError("stratified_resamples needs the kept speaker resamples (n_boot x n_table too large)")
    rows = np.asarray(rows, dtype=np.intp)
    bounds = np.asarray(bounds, dtype=np.intp)
    sizes = np.diff(bounds)
    x = _with_ones(e, w)                               # the last column counts draws
    sums = np.zeros((n_boot, n_c, 6))
    big = int(np.argmax(sizes)) if n_c and sizes.max() > 0 else -1
    # every cohort but the largest: its columns of the base counts, times its moments
    others = [k for k in range(n_c) if k != big and sizes[k]]
    if others:
        cols = np.concatenate([rows[bounds[k]:bounds[k + 1]] for k in others])
        segs, at = [], 0
        for k in others:
            segs.append((k, at, at + sizes[k], np.ascontiguousarray(x[bounds[k]:bounds[k + 1]].T)))
            at += sizes[k]
        step = max(1, COUNT_BLOCK_CELLS // len(cols))
        picked = np.empty((min(step, n_boot), len(cols)), dtype=kept.base.dtype)
        flt = np.empty((min(step, n_boot), len(cols)))
        for b0 in range(0, n_boot, step):
            b = min(step, n_boot - b0)
            np.take(kept.base[b0:b0 + b], cols, axis=1, out=picked[:b])
            np.copyto(flt[:b], picked[:b])
            for k, s0, s1, xt in segs:
                sums[b0:b0 + b, k] = (xt @ flt[:b, s0:s1].T).T    # (this orientation: faster in OpenBLAS)
    if big >= 0:
        # the largest: the table's base sums minus the others' (rows not audited weigh 0)
        x_table = np.zeros((n_table, 6))
        x_table[rows] = x
        sums[:, big] = kept.sums(x_table)[:, 6:] - sums.sum(axis=1)
    out = []
    for k in range(n_c):
        a, z = int(bounds[k]), int(bounds[k + 1])
        n_k = z - a
        if n_k == 0:
            out.append((np.full(n_boot, np.nan), np.full(n_boot, np.nan)))
            continue
        s, xk = sums[:, k], x[a:z]
        got = np.rint(s[:, 5]).astype(np.int64)
        need = n_k - got
        short = np.flatnonzero(need > 0)
        if len(short):
            # the cohort's own draws, gathered and summed per resample a bounded block at a time
            draws = gens[k].integers(0, n_k, size=int(need[short].sum()), dtype=np.int64)
            ends = np.cumsum(need[short])
            buf = np.empty((min(len(draws), COUNT_BLOCK_CELLS // 8), 6))
            i = 0
            while i < len(short):
                lo = ends[i - 1] if i else 0
                j = max(i + 1, int(np.searchsorted(ends, lo + len(buf), side="right")))
                hi = ends[j - 1]
                got_x = np.take(xk, draws[lo:hi], axis=0, out=buf[:hi - lo] if hi - lo <= len(buf) else None)
                s[short[i:j]] += np.add.reduceat(got_x, np.r_[0, ends[i:j - 1] - lo], axis=0)
                i = j
        over = np.flatnonzero(need < 0)
        if len(over):
            # too many base draws: leave out -need of them, uniformly without replacement
            # (their ranks in the speaker order of the cohort's base counts of that resample)
            at, ranks = _drop_ranks(gens[k], got[over], -need[over])
            step = max(1, COUNT_BLOCK_CELLS // n_k)
            for i0 in range(0, len(over), step):      # the rows' base counts, a bounded block at a time
                part = over[i0:i0 + step]
                counts = kept.base[np.ix_(part, rows[a:z])]
                sel = (at >= i0) & (at < i0 + len(part))
                row_of = at[sel] - i0
                # each rank into the block's draws laid end to end, then to its speaker
                flat = ranks[sel] + np.r_[0, np.cumsum(got[part])[:-1]][row_of]
                spk = np.searchsorted(np.cumsum(counts, axis=None, dtype=np.int64), flat, side="right") - row_of * n_k
                for j in range(6):
                    s[part, j] -= np.bincount(row_of, weights=xk[spk, j], minlength=len(part))
        out.append(_ratio_se(s[:, :5], n_k))
    return out


def _drop_ranks(gen: np.random.Generator, totals: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row i, ``m[i]`` distinct ranks in [0, ``totals[i]``) chosen uniformly
    without replacement (0 < m <= totals): (row of each rank, rank), rows ascending.

    Uniform draws with replacement, of which each row keeps the first ``m[i]`` distinct
    values in the order drawn (sequential sampling that skips repeats: exactly sampling
    without replacement), all rows at once; rows short of distinct values draw again."""
    totals, m = np.asarray(totals, dtype=np.int64), np.asarray(m, dtype=np.int64)
    n = len(m)
    taken = np.zeros(0, dtype=np.int64)                    # row * span + rank, in draw order
    span = int(totals.max()) if n else 1
    have = np.zeros(n, dtype=np.int64)
    while True:
        want = np.flatnonzero(have < m)
        if not len(want):
            break
        more, free = m[want] - have[want], totals[want] - have[want]
        # a fifth more than the draws expected to give ``more`` new values (coupon collector)
        size = (1.2 * totals[want] * np.log((free + 0.5) / (free - more + 0.5))).astype(np.int64) + 2
        row = np.repeat(want, size)
        cand = row * span + gen.integers(0, np.repeat(totals[want], size))
        allv = np.concatenate([taken, cand])
        _, first = np.unique(allv, return_index=True)
        first.sort()                                       # first occurrences, in draw order
        kept_v = allv[first]
        kr = kept_v // span
        # each row's first m of them
        order = np.argsort(kr, kind="stable")
        kr_sorted = kr[order]
        start = np.searchsorted(kr_sorted, np.arange(n))
        pos = np.arange(len(kr_sorted)) - start[kr_sorted]
        keep = np.sort(order[pos < m[kr_sorted]])
        taken = kept_v[keep]
        have = np.bincount(taken // span, minlength=n)
    taken.sort()
    return taken // span, taken % span


def interval_from_resamples(method: str, e: np.ndarray, w: np.ndarray, r_b: np.ndarray, se_b: np.ndarray,
                            level: float) -> tuple[float, float]:
    """(lo, hi) of one cohort's WER (ratio) from its resampled (R_b, se_b): the ``method``
    interval of the module docstring, as :func:`cohort_interval` computes it."""
    return _interval(method, e, w, r_b, se_b, level)


def overall_interval(e: Any, w: Any, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """(lo, hi) studentised interval of the WER (ratio) of all n speakers, on the shared
    speaker resamples (:func:`speaker_resamples`; their sums shared too when
    :func:`share_resamples` was given these counts); NaN ends without words."""
    e, w = _counts(e, "errors"), _counts(w, "words")
    kept = _kept(int(seed), int(n_boot), len(e))
    if kept is not None:
        sums = kept.sums(_with_ones(e, w))[:, :5]
    else:
        x = _moments(e, w)
        blocks = [c @ x for c in speaker_resamples(seed, n_boot, len(e))]
        sums = np.concatenate(blocks) if blocks else np.zeros((0, 5))
    r_b, se_b = _ratio_se(sums, len(e))
    return _interval("studentized", e, w, r_b, se_b, level)


def _moments(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.column_stack([e, w, e * e, e * w, w * w])


def _ratio_se(sums: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ratio, linearised standard error) from rows of [sum e, sum w, sum e^2, sum e w, sum w^2]."""
    se_, sw, see, sew, sww = (sums[..., i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(sw > 0, se_ / sw, np.nan)
        ss = np.maximum(see - 2 * r * sew + r * r * sww, 0.0)
        se = np.sqrt(ss * n / (n - 1)) / sw if n > 1 else np.full_like(r, np.nan)
    return r, se


def _cohort_resamples(e: np.ndarray, w: np.ndarray, n_boot: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(R_b, se_b) of ``n_boot`` resamples of one cohort, in blocks of bounded memory."""
    n = len(e)
    x = _moments(e, w)
    r_out, se_out = np.full(n_boot, np.nan), np.full(n_boot, np.nan)
    if n == 0:
        return r_out, se_out
    step = max(1, COUNT_BLOCK_CELLS // n)
    buf = np.empty((min(step, n_boot), n))
    for b0 in range(0, n_boot, step):
        b = min(step, n_boot - b0)
        sums = multinomial_counts(rng, n, b, out=buf) @ x
        r_out[b0:b0 + b], se_out[b0:b0 + b] = _ratio_se(sums, n)
    return r_out, se_out


def _quantiles(x: np.ndarray, ps: Sequence[float]) -> np.ndarray:
    """Quantiles of values that may hold +-inf (kept: they sort to the ends); NaN dropped."""
    x = np.sort(x[~np.isnan(x)])
    if not len(x):
        return np.full(len(ps), np.nan)
    out = []
    for p in ps:
        pos = p * (len(x) - 1)
        i, j = int(math.floor(pos)), int(math.ceil(pos))
        out.append(x[i] if i == j or x[i] == x[j] else x[i] + (x[j] - x[i]) * (pos - i))
    return np.asarray(out, dtype=float)


def _interval(method: str, e: np.ndarray, w: np.ndarray, r_b: np.ndarray, se_b: np.ndarray, level: float
              ) -> tuple[float, float]:
    n = len(e)
    a = (1.0 - level) / 2.0
    if n == 0 or w.sum() <= 0:
        return math.nan, math.nan
    r, se = _ratio_se(_moments(e, w).sum(axis=0)[None, :], n)
    r, se = float(r[0]), float(se[0])
    if method == "percentile" or n < STUDENTIZED_MIN:
        lo, hi = _quantiles(r_b, [a, 1.0 - a])
    elif method == "bca":
        ok = r_b[~np.isnan(r_b)]
        frac = (np.sum(ok < r) + 0.5 * np.sum(ok == r)) / max(1, len(ok))
        z0 = ndtri(min(max(frac, 1e-6), 1 - 1e-6))
        with np.errstate(divide="ignore", invalid="ignore"):
            jack = (e.sum() - e) / (w.sum() - w)       # leave-one-speaker-out ratios
        jack = jack[np.isfinite(jack)]
        d = jack.mean() - jack if len(jack) else np.zeros(1)
        den = 6.0 * float((d ** 2).sum()) ** 1.5
        acc = float((d ** 3).sum()) / den if den > 0 else 0.0
        zs = ndtri(np.array([a, 1.0 - a]))
        adj = ndtr(z0 + (z0 + zs) / (1.0 - acc * (z0 + zs)))
        lo, hi = _quantiles(r_b, list(adj))
    else:  # studentized
        if not se > 0:
            # No spread at all (e.g. no errors in the cohort): every resample equals R.
            return r, r
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (r_b - r) / se_b
        t = np.where((se_b == 0) & (r_b == r), 0.0, t)
        q_hi, q_lo = _quantiles(t, [1.0 - a, a])
        lo, hi = r - q_hi * se, r - q_lo * se
    # WER >= 0: an end below 0 (or unbounded below) is 0; an end unbounded above is NaN.
    lo = math.nan if np.isnan(lo) else max(0.0, float(lo))
    return lo, (float(hi) if np.isfinite(hi) else math.nan)


def cohort_interval(e: np.ndarray, w: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95,
                    method: str = "studentized") -> tuple[np.ndarray, float, float]:
    """(resampled WERs (n_boot,), lo, hi) of one cohort's WER (ratios): ``n_boot`` speaker
    resamples drawn from ``rng``, the ``method`` interval (module docstring); NaN ends for
    a cohort without words, a NaN upper end when unbounded."""
    r_b, se_b = _cohort_resamples(e, w, n_boot, rng)
    lo, hi = _interval(method, e, w, r_b, se_b, level)
    return r_b, lo, hi


def cohort_wer_intervals(errors: Any, words: Any, codes: Any, n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95, method: str = "studentized", n_cohorts: int | None = None,
                         pairs: Sequence[tuple[int, int]] | None = None) -> dict:
    """Confidence intervals of cohort WERs (ratios), resampling speakers within each cohort.

    ``errors``/``words``: per-speaker counts; ``codes``: cohort index 0..C-1 per speaker;
    ``method``: "studentized" (default), "percentile" or "bca" (see the module
    docstring); ``pairs``: (bottom_code, top_code) pairs whose gap intervals are also
    wanted (percentile intervals of the resampled gap, % and ratio: conditional on the
    cohorts).  Deterministic for a given ``seed`` (cohort k draws from child k of
    ``SeedSequence(seed)``).

    Returns ``wer`` (C,), ``lo``/``hi`` (C,) (ratios; NaN for a cohort without words),
    ``gap_pct``/``gap_abs`` (per pair (lo, hi), % and ratio; None for an unbounded end),
    ``resamples`` (n_boot x C resampled WERs), ``method``, ``n_boot``, ``level``, ``seed``.
    """
    e, w = _counts(errors, "errors"), _counts(words, "words")
    c = np.asarray(codes)
    if not (len(e) == len(w) == len(c)):
        raise ValueError(f"errors, words and codes differ in length ({len(e)}, {len(w)}, {len(c)})")
    if len(c) and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0):
        raise ValueError("codes must be non-negative integer cohort indices")
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}: choose from {', '.join(METHODS)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    n_boot = int(n_boot)
    n_c = int(n_cohorts) if n_cohorts is not None else (int(c.max()) + 1 if len(c) else 0)
    order = np.argsort(c, kind="stable")
    es, ws, cs = e[order], w[order], c[order]
    bounds = np.searchsorted(cs, np.arange(n_c + 1))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n_c)]
    boot = np.full((n_boot, n_c), np.nan)
    point, lo, hi = np.full(n_c, np.nan), np.full(n_c, np.nan), np.full(n_c, np.nan)
    for k in range(n_c):
        ek, wk = es[bounds[k]:bounds[k + 1]], ws[bounds[k]:bounds[k + 1]]
        if wk.sum() > 0:
            point[k] = ek.sum() / wk.sum()
        boot[:, k], lo[k], hi[k] = cohort_interval(ek, wk, n_boot, rngs[k], level, method)
    gap_pct, gap_abs = [], []
    a = (1.0 - level) / 2.0
    for bc, tc in (pairs or []):
        b, t = boot[:, bc], boot[:, tc]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(t > 0, 100.0 * (b - t) / t, np.where(b > t, np.inf, np.nan))
        q = _quantiles(rel, [a, 1.0 - a])
        gap_pct.append(tuple(float(v) if np.isfinite(v) else None for v in q))
        qa = _quantiles(b - t, [a, 1.0 - a])
        gap_abs.append(tuple(float(v) if np.isfinite(v) else None for v in qa))
    return {"wer": point, "lo": lo, "hi": hi, "gap_pct": gap_pct, "gap_abs": gap_abs, "resamples": boot,
            "method": method, "n_boot": n_boot, "level": float(level), "seed": int(seed)}


def coverage(n_speakers: int, replicates: int = 1000, *, method: str = "studentized", n_boot: int = 1000,
             level: float = 0.95, mean_wer: float = 0.10, concentration: float = 20.0, seed: int = 0) -> dict:
    """Share of simulated cohorts whose interval covers the true WER (the coverage, ratio).

    Each replicate draws ``n_speakers`` speakers as :mod:`fairaudit.simulate` does
    (Beta(``mean_wer``, ``concentration``) rates, Poisson(8) + 1 utterances of 3-20
    words); the true cohort WER is ``mean_wer`` (rates are independent of words).
    Returns ``coverage`` (ratio), ``se`` (its binomial standard error), ``mean_width``
    (ratio), ``below``/``above`` (shares of misses on each side), ``replicates``.
    """
    from .simulate import draw_counts, speaker_rates

    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(n_speakers,)))
    ids = np.array([f"s{i}" for i in range(n_speakers)], dtype=object)
    hit = below = above = 0
    width = 0.0
    codes = np.zeros(n_speakers, dtype=np.int64)
    for r in range(int(replicates)):
        tab, _ = draw_counts(rng, ids, speaker_rates(rng, n_speakers, mean_wer, concentration), False)
        res = cohort_wer_intervals(tab["errors"].to_numpy(), tab["ref_words"].to_numpy(), codes, n_boot=n_boot,
                                   seed=int(rng.integers(2**31)), level=level, method=method, n_cohorts=1)
        lo_, hi_ = res["lo"][0], res["hi"][0]
        hit += bool(lo_ <= mean_wer <= hi_)
        below += bool(hi_ < mean_wer)
        above += bool(lo_ > mean_wer)
        width += hi_ - lo_
    p = hit / replicates
    return {"coverage": p, "se": math.sqrt(p * (1 - p) / replicates), "mean_width": width / replicates,
            "below": below / replicates, "above": above / replicates, "replicates": int(replicates),
            "n_speakers": int(n_speakers), "method": method, "level": level}
