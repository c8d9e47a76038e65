"""The permutation null: how large a gap the same search finds when WER is unrelated to
every feature, and the selection-corrected p-value of the observed gap (or of the
discoverer's own search statistic, ``Discovery.statistic``)."""
from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from ..cohorts import headline_gap
from . import rng as _rng
from ._common import BLOCK_CELLS, check_count, check_seed, cpu_count, quantile

#: the permutation null uses a process pool only when the serial run would take longer (s)
_PARALLEL_MIN_SECONDS = 1.0
#: the audit's h of the sequential p-value: permutations stop at the 10th null value >= the
#: observed one (Besag and Clifford 1991).  With 200 permutations a p-value below 11/201
#: (0.055) is the full run's exactly; a larger one is h / (permutations run), from fewer
#: permutations (its standard error about p / sqrt(h): 30 % at h = 10, enough to say "not
#: significant at 0.05")
SEQUENTIAL_STOP_AFTER = 10
#: count columns of the per-speaker table that travel together in a permutation
_COUNT_COLUMNS = ("utterances", "ref_words", "substitutions", "deletions", "insertions", "errors", "wer")

PERMUTATION_METHOD = "permutation of speakers' (errors, ref_words) across speakers; discovery re-run each time"
PERMUTATION_BATCHED_METHOD = ("permutation of speakers' (errors, ref_words) across speakers; the discoverer's own "
                              "statistic evaluated for all permutations in one batched pass (the same values a re-fit "
                              "gives)")
PERMUTATION_FIXED_METHOD = ("permutation of speakers' (errors, ref_words) across speakers; the cohorts do not "
                            "depend on the counts and are re-measured on each permutation")


class _Permuter:
    """Builds permuted copies of a speaker table and measures the discovered gap on each.

    One instance lives in each worker process (or in the caller, serially); the table is
    copied once and only its count columns are overwritten per permutation.
    """

    def __init__(self, discoverer, speakers: pd.DataFrame, side, positions: np.ndarray,
                 assignment: pd.Series | None = None, own_statistic: bool = False):
        self.discoverer = discoverer
        self.side = side
        self.positions = positions
        self.columns = [c for c in _COUNT_COLUMNS if c in speakers.columns]
        self.source = {c: speakers[c].array for c in self.columns}
        self.errors = speakers["errors"].to_numpy(dtype=float)
        self.words = speakers["ref_words"].to_numpy(dtype=float)
        self.row_of = pd.Index(speakers["speaker_id"].to_numpy())
        self.table = speakers.copy()
        self.n = len(speakers)
        self.own_statistic = own_statistic
        # Cohorts that do not depend on the counts (attribute values, embedding clusters)
        # are the same in every permutation: the reported assignment is re-measured each
        # time (unless the discoverer's own statistic has to be recomputed by a fit).
        self.fixed = bool(getattr(discoverer, "fixed_cohorts", False)) and not own_statistic
        self.assignment = assignment if self.fixed else None

    def run(self, seed_seq: np.random.SeedSequence) -> tuple[float, float, float]:
        """(relative gap %, absolute gap, own statistic or NaN) of one permutation."""
        take = np.arange(self.n)
        take[self.positions] = self.positions[_permutation(seed_seq, len(self.positions))]
        stat = math.nan
        if self.fixed and self.assignment is not None:
            assignment = self.assignment
        else:
            for c in self.columns:
                self.table[c] = self.source[c].take(take)
            found = self.discoverer.fit(self.table, self.side)
            assignment = found.assignment
            if self.own_statistic:
                stat = -math.inf if found.statistic is None else float(found.statistic)
            if self.fixed:
                self.assignment = assignment
        rows = take[self.row_of.get_indexer(assignment.index)]
        pct, gap_abs = headline_gap(self.errors[rows], self.words[rows], assignment.to_numpy(),
                                    self.discoverer.min_speakers)
        if gap_abs is None:      # fewer than two eligible cohorts: the audit reports no gap
            return 0.0, 0.0, stat
        if pct is None:          # top cohort without errors: relative gap unbounded
            pct = math.inf
        return float(pct), float(gap_abs), stat


_WORKER: _Permuter | None = None


def _init_worker(*args) -> None:
    global _WORKER
    _WORKER = _Permuter(*args)


def _run_block(seeds: list[np.random.SeedSequence]) -> list[tuple[float, float, float]]:
    return [_WORKER.run(s) for s in seeds]


def permutation_null(discoverer, speakers: pd.DataFrame, side, observed_gap_pct: float | None,
                     n_perm: int = 200, seed: int = 0, workers: int | None = None, *,
                     observed_gap_abs: float | None = None, audited: Any = None,
                     assignment: pd.Series | None = None, observed_statistic: float | None = None,
                     statistic_name: str | None = None, key: str | None = None,
                     stop_after: int | None = None, batched: bool = True) -> dict:
    """Null distribution of the discovered gap when WER is unrelated to the features.

    Each permutation shuffles the speakers' count columns (utterances, ref_words, S, D, I,
    errors, wer) jointly across the audited speakers, so every speaker keeps a real
    (errors, ref_words) pair but WER no longer depends on lat/lon, zip, embedding or
    attributes; then ``discoverer.fit`` runs again (same parameters and seed) and the gap
    is taken as the audit takes it (:func:`fairaudit.cohorts.headline_gap` with the
    discoverer's ``min_speakers``).  A discoverer with ``fixed_cohorts`` is not re-fitted:
    its ``assignment`` (the audit's, or one fit) is re-measured on each permutation, all
    permutations of a block in one pass of ``np.bincount``.  A discoverer with a
    ``permuted_statistics`` hook evaluates whole blocks of permutations at once (the same
    values a re-fit gives); ``batched=False`` re-fits anyway (tests compare the two).

    Test statistic: the relative gap ``observed_gap_pct`` (%); when it is None (top cohort
    WER 0) the absolute gap ``observed_gap_abs`` (ratio).  When ``observed_statistic`` is
    given (the discoverer's own search statistic, ``Discovery.statistic``, named
    ``statistic_name``) the p-value is that statistic's: every permutation re-fits and
    compares ``Discovery.statistic`` (None counts as -inf).  In a null run the relative gap
    is +inf when undefined (top WER 0) and 0 with fewer than two eligible cohorts.
    ``audited``: speaker ids the discoverer audited (default: ``assignment.index``, or one
    fit); only their counts are permuted.
    ``key``: names the random stream, ``stream(seed, "permutation", key)`` (default
    :data:`SHARED_STREAM`: every discoverer of an audit sees the same permutations of the
    speakers, drawn once, :func:`permutation_seeds`); one child per permutation, so results are identical for any number
    of ``workers`` (processes; default all cores, used only when the serial run would take
    longer than about a second) and any block size.
    ``stop_after``: Besag and Clifford's sequential p-value: permutations run in their
    fixed order and stop at the ``stop_after``-th null value >= the observed one (h; None
    = run all ``n_perm``); stopped after L permutations, p = h / L, else p is the full
    run's.  The null quantiles are then those of the L permutations run.

    Returns ``{"n", "permutations_used", "stopped_early", "stop_after", "statistic",
    "observed", "null_gap_median_pct", "null_gap_p95_pct", "null_gap_median_abs",
    "null_gap_p95_abs", "p_value", "seed", "method"}`` (plus
    ``null_statistic_median``/``null_statistic_p95`` with an own statistic) with
    p = (1 + #{null >= observed}) / (1 + n_perm) for a full run, and
    ``null_gaps_pct``/``null_gaps_abs``/``null_statistics`` (arrays of the permutations
    run, for plots and tests; not meant for the report).
    """
    n_perm = check_count(n_perm, "number of permutations", 1)
    seed = check_seed(seed)
    if stop_after is not None:
        stop_after = check_count(stop_after, "permutation stopping count", 1)
    own = observed_statistic is not None
    if own:
        statistic = statistic_name or "statistic"
        observed = float(observed_statistic)
    else:
        if observed_gap_pct is None and observed_gap_abs is None:
            raise ValueError("permutation_null needs observed_gap_pct, observed_gap_abs or observed_statistic")
        statistic = "wer_gap_pct" if observed_gap_pct is not None else "wer_gap_abs"
        observed = float(observed_gap_pct if observed_gap_pct is not None else observed_gap_abs)
    if audited is None:
        audited = (assignment if assignment is not None else discoverer.fit(speakers, side).assignment).index
    positions = _rows_of(speakers, audited)
    seeds = permutation_seeds(seed, n_perm, key)
    counter = _Exceedances(own, statistic, observed, stop_after)

    method = PERMUTATION_METHOD
    blocks = None
    if batched:
        fixed = (bool(getattr(discoverer, "fixed_cohorts", False)) and not own and assignment is not None
                 and not _has_hook(discoverer))
        if fixed:
            blocks = _FixedCohorts(speakers, assignment, discoverer.min_speakers).blocks(positions, seeds)
            method = PERMUTATION_FIXED_METHOD
        elif _has_hook(discoverer):
            blocks = _hook_blocks(discoverer, speakers, side, positions, seeds, own)
            method = PERMUTATION_BATCHED_METHOD
    if blocks is not None:
        if _consume(blocks, counter):
            return counter.result(n_perm, seed, method)
        # the hook declined: re-fit every permutation
        counter, method = _Exceedances(own, statistic, observed, stop_after), PERMUTATION_METHOD
    _refit(discoverer, speakers, side, positions, assignment, own, seeds, workers, counter)
    return counter.result(n_perm, seed, method)


def _consume(blocks, counter: "_Exceedances") -> bool:
    """Feed batched blocks to ``counter`` until it stops or they run out; False if a block
    was None (the hook declined)."""
    for block in blocks:
        if block is None:
            return False
        if counter.add(*block):
            break
    return True


def _refit(discoverer, speakers, side, positions, assignment, own, seeds, workers, counter) -> None:
    """Re-fit on each permutation in order (serially or in a pool) until ``counter`` stops."""
    args = (discoverer, speakers, side, positions, assignment, own)
    # The first permutation runs here; its time decides whether a pool pays for itself.
    local = _Permuter(*args)
    t0 = time.perf_counter()
    first = local.run(seeds[0])
    elapsed = time.perf_counter() - t0
    if counter.add(*(np.array([v]) for v in first)):
        return
    rest = seeds[1:]
    nworkers = min(cpu_count() if workers is None else max(1, int(workers)), max(1, len(rest)))
    if workers is None and elapsed * len(rest) < _PARALLEL_MIN_SECONDS:
        nworkers = 1
    # Blocks small enough that a sequential stop wastes little; ~4 per worker otherwise.
    per = 4 * nworkers if counter.stop_after is None else max(2 * nworkers, len(rest) // 10)
    size = max(1, math.ceil(len(rest) / per))
    chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
    if nworkers > 1 and rest:
        pool = ProcessPoolExecutor(max_workers=nworkers, initializer=_init_worker, initargs=args)
        try:
            for part in pool.map(_run_block, chunks):   # results in the order of the seeds
                if counter.add(*(np.array(col, dtype=float) for col in zip(*part))):
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        for chunk in chunks:
            part = [local.run(s) for s in chunk]
            if counter.add(*(np.array(col, dtype=float) for col in zip(*part))):
                break


class _Exceedances:
    """Collects null values block by block, in permutation order, and decides when to stop."""

    def __init__(self, own: bool, statistic: str, observed: float, stop_after: int | None):
        self.own, self.statistic, self.observed, self.stop_after = own, statistic, observed, stop_after
        self.pct: list[np.ndarray] = []
        self.abs: list[np.ndarray] = []
        self.stat: list[np.ndarray] = []
        self.hits = 0
        self.stopped = False

    def tested(self, pct: np.ndarray, gap_abs: np.ndarray, stat: np.ndarray) -> np.ndarray:
        return stat if self.own else (pct if self.statistic == "wer_gap_pct" else gap_abs)

    def exceeds(self, null: np.ndarray) -> np.ndarray:
        # tolerance: a null run that reproduces the observed split must count as ">="
        return null >= self.observed - 1e-9 * max(1.0, abs(self.observed))

    def add(self, pct: np.ndarray, gap_abs: np.ndarray, stat: np.ndarray) -> bool:
        """Take one block (arrays in permutation order); True when the run should stop."""
        pct, gap_abs, stat = (np.asarray(x, dtype=float) for x in (pct, gap_abs, stat))
        hit = self.exceeds(self.tested(pct, gap_abs, stat))
        if self.stop_after is not None and self.hits + int(hit.sum()) >= self.stop_after:
            # keep the permutations up to (and with) the h-th exceedance
            end = int(np.flatnonzero(hit)[self.stop_after - self.hits - 1]) + 1
            pct, gap_abs, stat, hit = pct[:end], gap_abs[:end], stat[:end], hit[:end]
            self.stopped = True
        self.pct.append(pct)
        self.abs.append(gap_abs)
        self.stat.append(stat)
        self.hits += int(hit.sum())
        return self.stopped

    def result(self, n_perm: int, seed: int, method: str) -> dict:
        null_pct, null_abs, null_stat = (np.concatenate(x) if x else np.zeros(0)
                                         for x in (self.pct, self.abs, self.stat))
        used = len(null_pct)
        p = self.hits / used if self.stopped else (1 + self.hits) / (1 + used)
        out = {"n": n_perm, "permutations_used": used, "stopped_early": self.stopped,
               "stop_after": self.stop_after, "statistic": self.statistic, "observed": self.observed,
               "null_gap_median_pct": quantile(null_pct, 0.5), "null_gap_p95_pct": quantile(null_pct, 0.95),
               "null_gap_median_abs": quantile(null_abs, 0.5), "null_gap_p95_abs": quantile(null_abs, 0.95),
               "p_value": p, "seed": seed, "method": method,
               "null_gaps_pct": null_pct, "null_gaps_abs": null_abs, "null_statistics": null_stat}
        if self.own:
            out["null_statistic_median"] = quantile(null_stat, 0.5)
            out["null_statistic_p95"] = quantile(null_stat, 0.95)
        return out


def _rows_of(speakers: pd.DataFrame, ids: Any) -> np.ndarray:
    """Rows of ``speakers`` whose speaker_id is in ``ids``, in table order."""
    table = pd.Index(speakers["speaker_id"])
    if table.is_unique:      # a hash lookup of the ids (isin on strings is much slower)
        rows = table.get_indexer(pd.Index(ids))
        return np.unique(rows[rows >= 0])
    return np.flatnonzero(speakers["speaker_id"].isin(pd.Index(ids)).to_numpy())


#: the stream every discoverer's permutation null draws from (``key`` None): one set of
#: permutations of the speakers per audit, so each is drawn once (a permutation of 100,000
#: speakers costs about 2-4 ms; five discoverers x 200 used to draw 1,000 of them).  Each
#: discoverer's p-value is still an exact permutation test; the nulls of two discoverers
#: are now built on the same shuffles, which no reported number combines.
SHARED_STREAM = "speakers"
#: permutations kept in memory for reuse up to this many cells (int32: 128 MB; 200
#: permutations of 100,000 speakers are 80 MB)
KEEP_MAX_CELLS = 1 << 25

_KEPT: dict[tuple, np.ndarray] = {}


def permutation_seeds(seed: int, n_perm: int, key: str | None = None) -> list:
    """The ``n_perm`` children of ``stream(seed, "permutation", key or SHARED_STREAM)``, one per permutation."""
    return _rng.stream(int(seed), "permutation", SHARED_STREAM if key is None else key).spawn(int(n_perm))


class _SharedPermutations:
    """The audit's permutations of n rows (int32, one row per permutation) in anonymous
    shared memory, filled by whichever process runs :meth:`fill` (the audit's shared
    draws process, while discovery runs): processes forked after it was made read them
    once its ``ready`` flag is set, and draw their own otherwise."""

    def __init__(self, seeds: list, n: int):
        import mmap

        self.n = int(n)
        self.rows = {(s.entropy, tuple(s.spawn_key), self.n): i for i, s in enumerate(seeds)}
        self.seeds = seeds
        self._buf = mmap.mmap(-1, 8 + 4 * len(seeds) * self.n)
        self._flag = np.frombuffer(self._buf, np.uint8, 1, 0)
        self.table = np.frombuffer(self._buf, np.int32, len(seeds) * self.n, 8).reshape(len(seeds), self.n)

    @property
    def ready(self) -> bool:
        return bool(self._flag[0])

    def fill(self) -> None:
        for i, s in enumerate(self.seeds):
            self.table[i] = np.random.default_rng(s).permutation(self.n)   # (the same draw as _permutation)
        self._flag[0] = 1


_SHARED_PERMUTATIONS: list[_SharedPermutations] = []


def share_permutations(seed: int, n_perm: int, n: int):
    """Reserve the audit's ``n_perm`` permutations of ``n`` rows (the shared stream) in
    memory shared with processes forked from now on; returns ``fill()``, which draws them
    (the same numbers as drawing them where they are used) and marks them ready.  A no-op
    above :data:`KEEP_MAX_CELLS` cells or for n >= 2^31."""
    n_perm, n = int(n_perm), int(n)
    if n_perm <= 0 or n <= 1 or n >= 2**31 or n_perm * n > KEEP_MAX_CELLS:
        return lambda: None
    seeds = permutation_seeds(seed, n_perm)
    key = (seeds[0].entropy, tuple(seeds[0].spawn_key), n)
    for held in _SHARED_PERMUTATIONS:
        if key in held.rows and len(held.rows) == n_perm:
            return (lambda: None) if held.ready else held.fill
    _SHARED_PERMUTATIONS[:] = [_SharedPermutations(seeds, n)]   # one set at a time, as _KEPT
    return _SHARED_PERMUTATIONS[0].fill


def _permutation(s: np.random.SeedSequence, m: int) -> np.ndarray:
    """``default_rng(s).permutation(m)`` (int32 when it fits), kept for the next caller of the same draw."""
    k = (s.entropy, tuple(s.spawn_key), int(m))
    out = _KEPT.get(k)
    if out is None:
        for held in _SHARED_PERMUTATIONS:
            row = held.rows.get(k)
            if row is not None and held.ready:
                return held.table[row]
    if out is None:
        out = np.random.default_rng(s).permutation(m)
        if m < 2**31:
            out = out.astype(np.int32)
        if m * (len(_KEPT) + 1) <= KEEP_MAX_CELLS:
            _KEPT[k] = out
    return out


def _takes(n: int, positions: np.ndarray, seeds: list) -> np.ndarray:
    """(B, n) row indices of permutations (the same draws as :meth:`_Permuter.run`)."""
    if len(positions) == n:       # every row permuted (positions are 0..n-1): the permutations themselves
        # intp rows (the kept int32 permutations widened): numpy's gathers take an intp
        # index as it is, an int32 one is converted on every use (the hooks gather with it
        # several times: 1.5x slower)
        out = np.empty((len(seeds), n), dtype=np.intp)
        for b, s in enumerate(seeds):
            out[b] = _permutation(s, n)
        return out
    out = np.broadcast_to(np.arange(n, dtype=np.int64), (len(seeds), n)).copy()
    for b, s in enumerate(seeds):
        out[b, positions] = positions[_permutation(s, len(positions))]
    return out


def _block_size(n: int) -> int:
    """Permutations per block: at most ``BLOCK_CELLS`` (permutations x speakers) at once."""
    return max(1, BLOCK_CELLS // max(1, n))


def _has_hook(discoverer) -> bool:
    from ..discover.base import Discoverer

    hook = getattr(type(discoverer), "permuted_statistics", None)
    return hook is not None and hook is not Discoverer.permuted_statistics


def _hook_blocks(discoverer, speakers: pd.DataFrame, side, positions: np.ndarray, seeds: list, own: bool):
    """Blocks (gaps %, gaps abs, statistics) from the discoverer's batched hook; None for a
    block the hook declines (the caller then re-fits).

    The hook sees the same permutations as the re-fits would, in blocks of bounded memory;
    a permutation whose relative gap is undefined counts as +inf, one with no gap as 0, as
    in :meth:`_Permuter.run`.  Without an own statistic the hook may leave
    ``statistics`` None (the gaps are tested)."""
    found = discoverer.fit(speakers, side)
    n = len(speakers)
    step = _block_size(n)
    for b0 in range(0, len(seeds), step):
        block = seeds[b0:b0 + step]
        res = discoverer.permuted_statistics(speakers, side, found, _takes(n, positions, block))
        nan = np.full(len(block), np.nan)
        if res is None or (own and res.get("statistics") is None) or (
                not own and (res.get("gaps_pct") is None or res.get("gaps_abs") is None)):
            yield None
            return
        yield (np.asarray(res["gaps_pct"], dtype=float) if res.get("gaps_pct") is not None else nan,
               np.asarray(res["gaps_abs"], dtype=float) if res.get("gaps_abs") is not None else nan,
               np.asarray(res["statistics"], dtype=float) if res.get("statistics") is not None else nan)


class _FixedCohorts:
    """The audit's fixed cohorts re-measured on blocks of permutations at once.

    Cohort sums of a block are one product (permutations x speakers) @ (speakers x cohorts)
    (one ``np.bincount`` over (permutation, cohort) cells when there are many cohorts);
    bottom = highest-WER eligible cohort, top = lowest (a cohort without words ranks last,
    as in :func:`fairaudit.cohorts.rank_cohorts`), so every gap equals
    :func:`fairaudit.cohorts.headline_gap` on the permuted table."""

    def __init__(self, speakers: pd.DataFrame, assignment: pd.Series, min_speakers: int):
        row_of = pd.Index(speakers["speaker_id"].to_numpy())
        self.rows = row_of.get_indexer(assignment.index)
        self.codes, uniques = pd.factorize(assignment.to_numpy(), sort=True)
        self.k = len(uniques)
        self.eligible = np.bincount(self.codes, minlength=self.k) >= min_speakers
        self.e = speakers["errors"].to_numpy(dtype=float)
        self.w = speakers["ref_words"].to_numpy(dtype=float)
        self.n = len(speakers)
        # speakers x cohorts indicator: cohort sums of a block are one product (exact: the
        # counts are whole numbers, the indicator 0/1); many cohorts: a bincount instead
        self.onehot = None
        if len(self.codes) * self.k <= BLOCK_CELLS:
            self.onehot = np.zeros((len(self.codes), self.k))
            self.onehot[np.arange(len(self.codes)), self.codes] = 1.0
        self.all_rows = bool(len(self.rows) == self.n and np.array_equal(self.rows, np.arange(self.n)))

    def gaps(self, takes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gap %, gap abs, NaN) per permutation of ``takes`` (B, n)."""
        b = len(takes)
        nan = np.full(b, np.nan)
        if int(self.eligible.sum()) < 2:           # the audit reports no gap
            return np.zeros(b), np.zeros(b), nan
        rows = takes if self.all_rows else takes[:, self.rows]
        if self.onehot is not None:
            e, w = self.e[rows] @ self.onehot, self.w[rows] @ self.onehot
        else:
            cells = (self.codes[None, :] + self.k * np.arange(b)[:, None]).ravel()
            e, w = (np.bincount(cells, weights=x[rows].ravel(), minlength=b * self.k).reshape(b, self.k)
                    for x in (self.e, self.w))
        with np.errstate(divide="ignore", invalid="ignore"):
            wer = (e / w)[:, self.eligible]
        undefined = np.isnan(wer)
        # NaN ranks last: it is the top cohort when there is one; the bottom is the largest WER
        bottom = np.where(undefined.all(axis=1), np.nan, np.nanmax(np.where(undefined, -np.inf, wer), axis=1))
        top = np.where(undefined.any(axis=1), np.nan, wer.min(axis=1))
        gap_abs = bottom - top
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(top > 0, 100.0 * gap_abs / top, np.inf)
        return pct, gap_abs, nan

    def blocks(self, positions: np.ndarray, seeds: list):
        step = _block_size(self.n)
        for b0 in range(0, len(seeds), step):
            yield self.gaps(_takes(self.n, positions, seeds[b0:b0 + step]))
