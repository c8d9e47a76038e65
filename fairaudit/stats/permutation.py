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
from ._common import check_count, check_seed, cpu_count, quantile

#: the permutation null uses a process pool only when the serial run would take longer (s)
_PARALLEL_MIN_SECONDS = 1.0
#: count columns of the per-speaker table that travel together in a permutation
_COUNT_COLUMNS = ("utterances", "ref_words", "substitutions", "deletions", "insertions", "errors", "wer")

PERMUTATION_METHOD = "permutation of speakers' (errors, ref_words) across speakers; discovery re-run each time"
PERMUTATION_BATCHED_METHOD = ("permutation of speakers' (errors, ref_words) across speakers; the discoverer's own "
                              "statistic evaluated for all permutations in one batched pass (the same values a re-fit "
                              "gives)")


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
        gen = np.random.default_rng(seed_seq)
        take = np.arange(self.n)
        take[self.positions] = self.positions[gen.permutation(len(self.positions))]
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
                     statistic_name: str | None = None, key: str | None = None) -> dict:
    """Null distribution of the discovered gap when WER is unrelated to the features.

    Each permutation shuffles the speakers' count columns (utterances, ref_words, S, D, I,
    errors, wer) jointly across the audited speakers, so every speaker keeps a real
    (errors, ref_words) pair but WER no longer depends on lat/lon, zip, embedding or
    attributes; then ``discoverer.fit`` runs again (same parameters and seed) and the gap
    is taken as the audit takes it (:func:`fairaudit.cohorts.headline_gap` with the
    discoverer's ``min_speakers``).  A discoverer with ``fixed_cohorts`` is not re-fitted:
    its ``assignment`` (the audit's, or one fit) is re-measured on each permutation.

    Test statistic: the relative gap ``observed_gap_pct`` (%); when it is None (top cohort
    WER 0) the absolute gap ``observed_gap_abs`` (ratio).  When ``observed_statistic`` is
    given (the discoverer's own search statistic, ``Discovery.statistic``, named
    ``statistic_name``) the p-value is that statistic's: every permutation re-fits and
    compares ``Discovery.statistic`` (None counts as -inf).  In a null run the relative gap
    is +inf when undefined (top WER 0) and 0 with fewer than two eligible cohorts.
    ``audited``: speaker ids the discoverer audited (default: ``assignment.index``, or one
    fit); only their counts are permuted.
    ``key``: names the random stream, ``stream(seed, "permutation", key)`` (default the
    discoverer's key); one child per permutation, so results are identical for any number
    of ``workers`` (processes; default all cores, used only when the serial run would take
    longer than about a second).

    Returns ``{"n", "statistic", "observed", "null_gap_median_pct", "null_gap_p95_pct",
    "null_gap_median_abs", "null_gap_p95_abs", "p_value", "seed", "method"}`` (plus
    ``null_statistic_median``/``null_statistic_p95`` with an own statistic) with
    p = (1 + #{null >= observed}) / (1 + n_perm), and ``null_gaps_pct``/``null_gaps_abs``/
    ``null_statistics`` (arrays, for plots and tests; not meant for the report).
    """
    n_perm = check_count(n_perm, "number of permutations", 1)
    seed = check_seed(seed)
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
    positions = np.flatnonzero(speakers["speaker_id"].isin(pd.Index(audited)).to_numpy())
    stream_key = discoverer.key if key is None else key

    seeds = _rng.stream(seed, "permutation", stream_key).spawn(n_perm)
    batched = _batched(discoverer, speakers, side, positions, seeds) if own else None
    if batched is not None:
        out = _result(n_perm, statistic, observed, seed, *batched, own=True)
        out["method"] = PERMUTATION_BATCHED_METHOD
        return out
    args = (discoverer, speakers, side, positions, assignment, own)
    # The first permutation runs here; its time decides whether a pool pays for itself.
    local = _Permuter(*args)
    t0 = time.perf_counter()
    results = [local.run(seeds[0])]
    elapsed = time.perf_counter() - t0
    rest = seeds[1:]
    nworkers = min(cpu_count() if workers is None else max(1, int(workers)), max(1, len(rest)))
    if workers is None and elapsed * len(rest) < _PARALLEL_MIN_SECONDS:
        nworkers = 1
    if nworkers > 1 and rest:
        # ~4 blocks per worker keeps both busy to the end; order of results = order of seeds.
        size = max(1, math.ceil(len(rest) / (4 * nworkers)))
        blocks = [rest[i:i + size] for i in range(0, len(rest), size)]
        with ProcessPoolExecutor(max_workers=nworkers, initializer=_init_worker, initargs=args) as pool:
            for part in pool.map(_run_block, blocks):
                results.extend(part)
    else:
        results.extend(local.run(s) for s in rest)

    return _result(n_perm, statistic, observed, seed, np.array([r[0] for r in results]),
                   np.array([r[1] for r in results]), np.array([r[2] for r in results]), own=own)


def _takes(n: int, positions: np.ndarray, seeds: list) -> np.ndarray:
    """(B, n) row indices of permutations (the same draws as :meth:`_Permuter.run`)."""
    out = np.tile(np.arange(n), (len(seeds), 1))
    for b, s in enumerate(seeds):
        out[b, positions] = positions[np.random.default_rng(s).permutation(len(positions))]
    return out


def _batched(discoverer, speakers: pd.DataFrame, side, positions: np.ndarray, seeds: list):
    """(gaps %, gaps abs, statistics) from the discoverer's batched hook, or None (re-fit).

    The hook sees the same permutations as the re-fits would, in blocks of bounded memory;
    a permutation whose relative gap is undefined counts as +inf, one with no gap as 0, as
    in :meth:`_Permuter.run`."""
    from ..discover.base import Discoverer

    hook = getattr(type(discoverer), "permuted_statistics", None)
    if hook is None or hook is Discoverer.permuted_statistics:
        return None
    found = discoverer.fit(speakers, side)
    n = len(speakers)
    step = max(1, (1 << 22) // max(1, n))
    stats, pct, gap_abs = [], [], []
    for b0 in range(0, len(seeds), step):
        block = seeds[b0:b0 + step]
        res = discoverer.permuted_statistics(speakers, side, found, _takes(n, positions, block))
        if res is None:
            return None
        stats.append(np.asarray(res["statistics"], dtype=float))
        nan = np.full(len(block), np.nan)
        pct.append(nan if res.get("gaps_pct") is None else np.asarray(res["gaps_pct"], dtype=float))
        gap_abs.append(nan if res.get("gaps_abs") is None else np.asarray(res["gaps_abs"], dtype=float))
    return np.concatenate(pct), np.concatenate(gap_abs), np.concatenate(stats)


def _result(n_perm: int, statistic: str, observed: float, seed: int, null_pct: np.ndarray, null_abs: np.ndarray,
            null_stat: np.ndarray, *, own: bool) -> dict:
    null = null_stat if own else (null_pct if statistic == "wer_gap_pct" else null_abs)
    # tolerance: a null run that reproduces the observed split must count as ">="
    hits = int(np.sum(null >= observed - 1e-9 * max(1.0, abs(observed))))
    out = {"n": n_perm, "statistic": statistic, "observed": observed,
           "null_gap_median_pct": quantile(null_pct, 0.5), "null_gap_p95_pct": quantile(null_pct, 0.95),
           "null_gap_median_abs": quantile(null_abs, 0.5), "null_gap_p95_abs": quantile(null_abs, 0.95),
           "p_value": (1 + hits) / (1 + n_perm), "seed": seed, "method": PERMUTATION_METHOD,
           "null_gaps_pct": null_pct, "null_gaps_abs": null_abs, "null_statistics": null_stat}
    if own:
        out["null_statistic_median"] = quantile(null_stat, 0.5)
        out["null_statistic_p95"] = quantile(null_stat, 0.95)
    return out
