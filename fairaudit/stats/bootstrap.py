"""Confidence intervals of micro WER and of the gap, resampling speakers.

Utterances of one speaker are correlated, so the unit of resampling is the speaker; within
each cohort its speakers are resampled with replacement (stratified by cohort).  A cohort's
WER interval is the studentised (bootstrap-t) one of :mod:`fairaudit.intervals` by
default: the percentile interval under-covers small cohorts, whose WER is skewed (issue
15: 92 % at 25 speakers, nominal 95 %).  Gap intervals are percentile intervals of the
resampled gap.  The cohorts are held fixed: the intervals are *conditional on the
discovered cohorts* and do not correct the selection bias of the search (the permutation
null and the held-out gap do).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..cohorts import relative_gap
from .. import intervals as _intervals
from ..intervals import (METHODS, cohort_interval, interval_from_resamples, overall_interval,
                         stratified_resamples)
from . import rng as _rng
from ._common import BLOCK_CELLS, as_counts, check_count, check_level, check_seed, interval

#: cohorts above this many speakers count each resample's draws with its own bincount
_ROWWISE_ABOVE = 500

BOOTSTRAP_METHOD = ("speaker bootstrap stratified by cohort (cohorts held fixed): studentised (bootstrap-t) "
                    "cohort-WER intervals, percentile intervals of the gap")


def resample_ratio(e: np.ndarray, w: np.ndarray, n_boot: int, gen: np.random.Generator) -> np.ndarray:
    """``n_boot`` speaker resamples (with replacement, same size) of sum(e)/sum(w) (ratio).

    Each resample is a multinomial count vector c over the speakers (how often each was
    drawn) and its sums are c @ [e, w]: one ``bincount`` and one product per resample, no
    gather of the drawn speakers' values (with integer counts the sums are exact, so the
    result equals summing the drawn values).  Resamples are drawn in blocks of at most
    ``BLOCK_CELLS`` speaker draws, so memory stays bounded whatever the number of speakers;
    the block size depends only on ``len(e)``, so the draws (hence the result) are fixed
    by the generator alone.
    """
    n = len(e)
    out = np.full(n_boot, np.nan)
    if n == 0:
        return out
    step = max(1, BLOCK_CELLS // n)
    itype = np.int32 if n < 2**31 else np.int64
    totals = np.column_stack([e, w])
    sums = np.empty((min(step, n_boot), 2))
    for b0 in range(0, n_boot, step):
        b = min(step, n_boot - b0)
        idx = gen.integers(0, n, size=(b, n), dtype=itype)
        if n <= _ROWWISE_ABOVE:   # small cohorts: one bincount over the whole block
            cells = (idx + (np.arange(b, dtype=np.int64) * n)[:, None]).ravel()
            sums[:b] = np.bincount(cells, minlength=b * n).reshape(b, n) @ totals
        else:                     # a loop over resamples (not speakers): n counters stay in cache
            for r in range(b):
                sums[r] = np.bincount(idx[r], minlength=n) @ totals
        with np.errstate(divide="ignore", invalid="ignore"):
            out[b0:b0 + b] = np.where(sums[:b, 1] > 0, sums[:b, 0] / sums[:b, 1], np.nan)
    return out


def bootstrap_cohorts(errors: Any, words: Any, codes: Any, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95, pairs: Sequence[tuple[int, int]] | None = None,
                      n_cohorts: int | None = None, key: str = "", method: str = "studentized",
                      table_rows: Any = None, n_table: int | None = None) -> dict:
    """Confidence intervals of cohort WERs and gaps, resampling speakers.

    ``errors``/``words``: per-speaker counts (errors = S + D + I, reference words).
    ``codes``: per-speaker cohort index 0..C-1 (C = ``n_cohorts`` or ``max(codes) + 1``).
    Within each cohort its speakers are resampled with replacement (same count), ``n_boot``
    times; each cohort's statistic is its micro WER, sum(errors) / sum(words) (ratio).
    ``pairs``: (bottom_code, top_code) pairs whose gap intervals are wanted, computed from
    the same resamples as the cohort intervals.  ``key``: names the random stream
    (``stream(seed, "bootstrap", key)``, one child per cohort), e.g. the discoverer's key.
    ``method``: the cohort-WER interval, "studentized" (default), "percentile" or "bca"
    (:func:`fairaudit.intervals.cohort_interval`).  ``table_rows``/``n_table``: each
    speaker's row in the audit's speaker table of ``n_table`` rows; given, the resamples
    are built on the table's shared base draws, completed or thinned to each cohort's size
    (:func:`fairaudit.intervals.stratified_resamples`: the same stratified bootstrap in
    distribution, at about a fiftieth of the draws), while those fit in memory
    (:data:`fairaudit.intervals.SHARED_MAX_CELLS`); otherwise each cohort is drawn afresh.

    Returns a dict:
      ``wer`` (C,) point estimates (ratio); ``lo``/``hi`` (C,) interval ends (ratio, NaN
      for a cohort without speakers); ``gap_pct``: per pair (lo, hi) of the relative gap
      100 x (b - t) / t (%), an end None when unbounded (top WER 0 in too many resamples);
      ``gap_abs``: per pair (lo, hi) of b - t (ratio); ``n_boot``, ``level``, ``seed``;
      ``resamples`` (n_boot, C) resampled WERs.
    Cost: one pass over n_boot x speakers draws, in blocks (about 1 s for 100,000
    speakers x 1000 resamples on one core).
    """
    e = as_counts(errors, "errors")
    w = as_counts(words, "words")
    c = np.asarray(codes)
    if not (len(e) == len(w) == len(c)):
        raise ValueError(f"errors, words and codes differ in length ({len(e)}, {len(w)}, {len(c)})")
    if len(c) and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0):
        raise ValueError("codes must be non-negative integer cohort indices")
    n_boot = check_count(n_boot, "number of bootstrap resamples", 1)
    level = check_level(level)
    seed = check_seed(seed)
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}: choose from {', '.join(METHODS)}")
    n_c = int(n_cohorts) if n_cohorts is not None else (int(c.max()) + 1 if len(c) else 0)

    order = np.argsort(c, kind="stable")
    es, ws, cs = e[order], w[order], c[order]
    bounds = np.searchsorted(cs, np.arange(n_c + 1))
    gens = [np.random.default_rng(s) for s in _rng.stream(seed, "bootstrap", key).spawn(n_c)]
    boot = np.full((n_boot, n_c), np.nan)
    point, lo, hi = np.full(n_c, np.nan), np.full(n_c, np.nan), np.full(n_c, np.nan)
    shared = None
    if table_rows is not None and n_table is not None and n_boot * int(n_table) <= _intervals.SHARED_MAX_CELLS:
        rows = np.asarray(table_rows, dtype=np.int64)
        if len(rows) != len(c) or (len(rows) and (rows.min() < 0 or rows.max() >= int(n_table))):
            raise ValueError("table_rows must give each speaker's row in a table of n_table rows")
        shared = stratified_resamples(seed, n_boot, int(n_table), rows[order], es, ws, bounds, gens)
    for k in range(n_c):
        a, b = bounds[k], bounds[k + 1]
        ek, wk = es[a:b], ws[a:b]
        if wk.sum() > 0:
            point[k] = ek.sum() / wk.sum()
        if shared is None:
            boot[:, k], lo[k], hi[k] = cohort_interval(ek, wk, n_boot, gens[k], level, method)
        else:
            boot[:, k] = shared[k][0]
            lo[k], hi[k] = interval_from_resamples(method, ek, wk, *shared[k], level)
    gap_pct, gap_abs = [], []
    for bc, tc in (pairs or []):
        gap_pct.append(interval(relative_gap(boot[:, bc], boot[:, tc]), level))
        gap_abs.append(interval(boot[:, bc] - boot[:, tc], level))
    return {"wer": point, "lo": lo, "hi": hi, "gap_pct": gap_pct, "gap_abs": gap_abs, "n_boot": n_boot,
            "level": level, "seed": seed, "resamples": boot}


def bootstrap_overall(errors: Any, words: Any, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float | None, float | None]:
    """Studentised interval (lo, hi) of the micro WER (ratio) of all speakers, resampling
    speakers: the shared resamples of the speaker table (:func:`fairaudit.intervals.speaker_resamples`,
    also used by the held-out gaps' intervals), not a stream of its own."""
    e = as_counts(errors, "errors")
    n_boot = check_count(n_boot, "number of bootstrap resamples", 1)
    lo, hi = overall_interval(e, as_counts(words, "words"), n_boot, check_seed(seed), check_level(level))
    return (None if np.isnan(lo) else float(lo), None if np.isnan(hi) else float(hi))
