"""Did mitigation work?  Trinh et al.'s criteria across cohorts, before vs after, paired.

Trinh et al. judge a mitigated model by the WER **mean, maximum and variance across
regions**; a fairness audit adds the relative gap between the best- and worst-served
cohort.  :func:`paired_criteria` computes the four for two systems decoded on the same
speakers and cohorts (the baseline's cohorts, held fixed), and their changes with a
paired percentile bootstrap over speakers: the speakers of each cohort are resampled
with replacement (stratified by cohort, same count), and **the same resampled speakers**
score both systems, so the interval of a change reflects only how the two systems
differ on the same people.  The gap "shrank beyond its interval" when the whole
interval of its change lies below 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import rng as _rng
from ._common import BLOCK_CELLS, as_counts, check_count, check_level, check_seed, interval

CRITERIA_METHOD = ("paired percentile bootstrap over speakers, stratified by cohort (the baseline's cohorts held "
                   "fixed): the same resampled speakers score both systems; mean, max and variance "
                   "(population, ddof 0) of the cohort WERs and the relative gap 100 (max - min) / min, over "
                   "the cohorts with at least the minimum number of speakers")
#: the criteria, in report order
NAMES = ("wer_mean", "wer_max", "wer_variance", "wer_gap_pct")


def _stats(wer: np.ndarray) -> dict[str, np.ndarray]:
    """Criteria over the last axis of ``wer`` (cohort WERs, ratios)."""
    lo = wer.min(axis=-1)
    hi = wer.max(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(lo > 0, 100.0 * (hi - lo) / lo, np.where(hi > lo, np.inf, np.nan))
    return {"wer_mean": wer.mean(axis=-1), "wer_max": hi, "wer_variance": wer.var(axis=-1), "wer_gap_pct": gap}


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def paired_criteria(errors_a: Any, errors_b: Any, words: Any, codes: Any, n_resamples: int = 2000,
                    seed: int = 0, level: float = 0.95, key: str = "") -> dict:
    """Trinh et al.'s criteria of systems A (baseline) and B (candidate) across cohorts,
    and their changes B - A with paired bootstrap intervals.

    ``errors_a``/``errors_b``/``words``: per-speaker counts of the two systems and the
    reference words; ``codes``: per-speaker cohort index (0..C-1) of the cohorts the
    criteria run over (speakers of other cohorts are left out by the caller).  Every
    cohort's WER is its micro WER, sum(errors) / sum(words) (ratio).  ``key`` names the
    random stream (``stream(seed, "paired", key, "criteria")``, one child per cohort).

    Returns ``{"cohorts": C, "baseline": {criterion: value}, "candidate": {...},
    "change": {criterion: {"delta", "ci_low", "ci_high"}}, "gap_shrank": bool | None,
    "n_resamples", "level", "seed", "method"}``; WER criteria are ratios (variance: ratio
    squared), the gap in %; None where undefined (fewer than two cohorts, a zero WER).
    """
    ea, eb, w = as_counts(errors_a, "errors_a"), as_counts(errors_b, "errors_b"), as_counts(words, "words")
    c = np.asarray(codes, dtype=np.int64)
    if not (len(ea) == len(eb) == len(w) == len(c)):
        raise ValueError("errors_a, errors_b, words and codes differ in length")
    n_resamples = check_count(n_resamples, "number of resamples", 1)
    level, seed = check_level(level), check_seed(seed)
    n_c = int(c.max()) + 1 if len(c) else 0
    out: dict[str, Any] = {"cohorts": n_c, "n_resamples": n_resamples, "level": level, "seed": seed,
                           "method": CRITERIA_METHOD}
    if n_c < 2:
        none = {k: None for k in NAMES}
        return {**out, "baseline": none, "candidate": dict(none),
                "change": {k: {"delta": None, "ci_low": None, "ci_high": None} for k in NAMES}, "gap_shrank": None}
    order = np.argsort(c, kind="stable")
    ea, eb, w, c = ea[order], eb[order], w[order], c[order]
    bounds = np.searchsorted(c, np.arange(n_c + 1))
    point_a = np.array([ea[bounds[k]:bounds[k + 1]].sum() / max(w[bounds[k]:bounds[k + 1]].sum(), 1e-300)
                        for k in range(n_c)])
    point_b = np.array([eb[bounds[k]:bounds[k + 1]].sum() / max(w[bounds[k]:bounds[k + 1]].sum(), 1e-300)
                        for k in range(n_c)])
    boot_a = np.full((n_resamples, n_c), np.nan)
    boot_b = np.full((n_resamples, n_c), np.nan)
    gens = [np.random.default_rng(s) for s in _rng.stream(seed, "paired", key, "criteria").spawn(n_c)]
    for k in range(n_c):
        a0, a1 = bounds[k], bounds[k + 1]
        n = a1 - a0
        xa, xb, xw = ea[a0:a1], eb[a0:a1], w[a0:a1]
        step = max(1, BLOCK_CELLS // max(n, 1))
        for b0 in range(0, n_resamples, step):
            b = min(step, n_resamples - b0)
            idx = gens[k].integers(0, n, size=(b, n))
            sw = xw[idx].sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                boot_a[b0:b0 + b, k] = np.where(sw > 0, xa[idx].sum(axis=1) / sw, np.nan)
                boot_b[b0:b0 + b, k] = np.where(sw > 0, xb[idx].sum(axis=1) / sw, np.nan)
    sa, sb = _stats(point_a), _stats(point_b)
    ra, rb = _stats(boot_a), _stats(boot_b)
    change = {}
    for name in NAMES:
        with np.errstate(invalid="ignore"):
            d = rb[name] - ra[name]
        d = d[~np.isnan(d)]   # inf - inf (a zero WER on both sides) has no change; +-inf stays
        lo, hi = interval(d, level) if len(d) else (None, None)
        delta = float(sb[name] - sa[name]) if np.isfinite(sb[name]) and np.isfinite(sa[name]) else None
        change[name] = {"delta": delta, "ci_low": lo, "ci_high": hi}
    gap = change["wer_gap_pct"]
    shrank = None if gap["ci_high"] is None else bool(gap["ci_high"] < 0)
    return {**out, "baseline": {k: _finite_or_none(sa[k]) for k in NAMES},
            "candidate": {k: _finite_or_none(sb[k]) for k in NAMES}, "change": change, "gap_shrank": shrank}
