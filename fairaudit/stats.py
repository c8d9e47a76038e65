"""Honest statistics: speaker bootstrap, permutation null, held-out gap, paired comparison.

A discoverer that searches for the worst split finds a gap even when WER is unrelated to
every feature (selection bias).  This module puts error bars and a null reference next to
each discoverer's headline numbers:

* :func:`bootstrap_cohorts` / :func:`bootstrap_overall`: percentile confidence intervals
  of micro WER (ratio) and of the bottom-vs-top gap, resampling **speakers** (utterances of
  one speaker are correlated), stratified by cohort: the cohorts are held fixed, so these
  intervals are *conditional on the discovered cohorts* and do not correct selection bias.
* :func:`permutation_null`: how large a gap the same search finds when the speakers'
  (errors, ref_words) are shuffled across speakers, and the permutation p-value of the
  observed gap.  This is the selection-bias-aware significance test.
* :func:`honest_gap`: discover on one random half of every speaker's utterances and measure
  the chosen bottom/top cohorts on the other half.
* :func:`paired_delta`: two systems on the same speakers (NIST sc_stats matched pairs,
  with speakers as the unit).
* :func:`add_statistics` / :func:`overall_ci`: write all of the above into report entries.

Every function is deterministic for a given ``seed`` (numpy ``default_rng`` /
``SeedSequence``), whatever the number of worker processes.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import UserInputError
from .result import cohort_statistics

#: cells (resamples x speakers) materialised at once by the resampling loops
_BLOCK_CELLS = 1 << 22
#: the permutation null uses a process pool only when the serial run would take longer (s)
_PARALLEL_MIN_SECONDS = 1.0
#: count columns of the per-speaker table that travel together in a permutation
_COUNT_COLUMNS = ("utterances", "ref_words", "substitutions", "deletions", "insertions", "errors", "wer")

BOOTSTRAP_METHOD = "percentile bootstrap over speakers, stratified by cohort (cohorts held fixed)"
PERMUTATION_METHOD = "permutation of speakers' (errors, ref_words) across speakers; discovery re-run each time"
HONEST_METHOD = ("each speaker's utterances split at random into halves; cohorts discovered and bottom/top "
                 "chosen on half A, their WER measured on half B")
PAIRED_METHOD = ("matched pairs over speakers: percentile bootstrap of speakers for the CI, two-sided "
                 "sign-flip permutation of per-speaker error differences for the p-value")


# ------------------------------------------------------------------ validation helpers

# The CLI flag behind each checked setting, for the one-line error's hint.
_FLAGS = {"number of bootstrap resamples": "--bootstrap", "number of permutations": "--permutations",
          "seed": "--seed"}


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UserInputError(f"{name} must be a whole number >= {minimum}, not {value!r}",
                             hint=f"fix {_FLAGS.get(name, 'the ' + name + ' option')}")
    return int(value)


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < float(level) < 1:
        raise UserInputError(f"confidence level must be a number between 0 and 1 (e.g. 0.95), not {level!r}",
                             hint="fix --ci-level")
    return float(level)


def _check_seed(seed: Any) -> int:
    from .limits import check_seed  # 0 .. 2**32 - 1: what scikit-learn's random_state takes

    return check_seed(_check_count(seed, "seed", 0))


def _as_counts(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if np.isnan(a).any() or (a < 0).any():
        raise ValueError(f"{name} must be non-negative counts without NaN")
    return a


# ------------------------------------------------------------------ percentile helpers

def _interval(x: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval of resampled values (linear interpolation, numpy's default).

    NaN values (statistic undefined in that resample) are left out; an end that falls on
    or next to +/-inf (e.g. a relative gap whose top cohort had WER 0) is None: unbounded.
    """
    a = (1.0 - level) / 2.0
    return _quantile(x, a), _quantile(x, 1.0 - a)


def _quantile(x: np.ndarray, p: float) -> float | None:
    """Quantile p (0-1) of values that may contain +inf; None if it is not finite."""
    x = np.sort(np.asarray(x, dtype=float)[~np.isnan(x)])
    if not len(x):
        return None
    pos = p * (len(x) - 1)
    i, j = int(math.floor(pos)), int(math.ceil(pos))
    v0, v1 = x[i], x[j]
    if not (np.isfinite(v0) and np.isfinite(v1)):
        return None
    return float(v0 + (v1 - v0) * (pos - i))


def _relative_gap(bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    """100 x (bottom - top) / top (%); +inf when top is 0 < bottom, NaN when both are 0."""
    bottom, top = np.asarray(bottom, float), np.asarray(top, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (bottom - top) / top
    out = np.where(top > 0, out, np.where(bottom > top, np.inf, np.nan))
    return np.where(np.isnan(bottom) | np.isnan(top), np.nan, out)


# ------------------------------------------------------------------ bootstrap

def _resample_ratio(e: np.ndarray, w: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` speaker resamples (with replacement, same size) of sum(e)/sum(w) (ratio).

    Resamples are drawn in blocks of at most ``_BLOCK_CELLS`` speaker draws, so memory stays
    bounded whatever the number of speakers; the block size depends only on ``len(e)``, so
    the draws (hence the result) are fixed by the generator alone.
    """
    n = len(e)
    out = np.full(n_boot, np.nan)
    if n == 0:
        return out
    step = max(1, _BLOCK_CELLS // n)
    itype = np.int32 if n < 2**31 else np.int64
    for b0 in range(0, n_boot, step):
        b = min(step, n_boot - b0)
        idx = rng.integers(0, n, size=(b, n), dtype=itype)
        se = e[idx].sum(axis=1)
        sw = w[idx].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[b0:b0 + b] = np.where(sw > 0, se / sw, np.nan)
    return out


def bootstrap_cohorts(errors: Any, words: Any, codes: Any, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95, pairs: Sequence[tuple[int, int]] | None = None,
                      n_cohorts: int | None = None) -> dict:
    """Percentile confidence intervals of cohort WERs and gaps, resampling speakers.

    ``errors``/``words``: per-speaker counts (errors = S + D + I, reference words).
    ``codes``: per-speaker cohort index 0..C-1 (C = ``n_cohorts`` or ``max(codes) + 1``).
    Within each cohort its speakers are resampled with replacement (same count), ``n_boot``
    times; each cohort's statistic is its micro WER, sum(errors) / sum(words) (ratio).
    Cohorts are strata: they are fixed by the discovery, so the intervals are conditional
    on it (they do not account for the search that chose the cohorts).
    ``pairs``: (bottom_code, top_code) pairs whose gap intervals are wanted, computed from
    the same resamples as the cohort intervals.

    Returns a dict:
      ``wer`` (C,) point estimates (ratio); ``lo``/``hi`` (C,) interval ends (ratio, NaN
      for a cohort without speakers); ``gap_pct``: per pair (lo, hi) of the relative gap
      100 x (b - t) / t (%), an end None when unbounded (top WER 0 in too many resamples);
      ``gap_abs``: per pair (lo, hi) of b - t (ratio); ``n_boot``, ``level``, ``seed``;
      ``resamples`` (n_boot, C) resampled WERs.
    Cost: one pass over n_boot x speakers draws, in blocks (about 1 s for 100,000
    speakers x 1000 resamples on one core).
    """
    e = _as_counts(errors, "errors")
    w = _as_counts(words, "words")
    c = np.asarray(codes)
    if not (len(e) == len(w) == len(c)):
        raise ValueError(f"errors, words and codes differ in length ({len(e)}, {len(w)}, {len(c)})")
    if len(c) and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0):
        raise ValueError("codes must be non-negative integer cohort indices")
    n_boot = _check_count(n_boot, "number of bootstrap resamples", 1)
    level = _check_level(level)
    seed = _check_seed(seed)
    n_c = int(n_cohorts) if n_cohorts is not None else (int(c.max()) + 1 if len(c) else 0)

    order = np.argsort(c, kind="stable")
    es, ws, cs = e[order], w[order], c[order]
    bounds = np.searchsorted(cs, np.arange(n_c + 1))
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_c)]
    boot = np.full((n_boot, n_c), np.nan)
    point = np.full(n_c, np.nan)
    for k in range(n_c):
        a, b = bounds[k], bounds[k + 1]
        ek, wk = es[a:b], ws[a:b]
        if wk.sum() > 0:
            point[k] = ek.sum() / wk.sum()
        boot[:, k] = _resample_ratio(ek, wk, n_boot, rngs[k])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.full(n_c, np.nan), np.full(n_c, np.nan)
    has = ~np.isnan(boot).all(axis=0)
    if has.any():
        q = np.nanquantile(boot[:, has], [alpha, 1.0 - alpha], axis=0)
        lo[has], hi[has] = q[0], q[1]
    gap_pct, gap_abs = [], []
    for bc, tc in (pairs or []):
        gap_pct.append(_interval(_relative_gap(boot[:, bc], boot[:, tc]), level))
        gap_abs.append(_interval(boot[:, bc] - boot[:, tc], level))
    return {"wer": point, "lo": lo, "hi": hi, "gap_pct": gap_pct, "gap_abs": gap_abs, "n_boot": n_boot,
            "level": level, "seed": seed, "resamples": boot}


def bootstrap_overall(errors: Any, words: Any, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval (lo, hi) of the micro WER (ratio) of all speakers, resampling speakers."""
    e = _as_counts(errors, "errors")
    res = bootstrap_cohorts(e, words, np.zeros(len(e), dtype=np.int64), n_boot=n_boot, seed=seed, level=level,
                            n_cohorts=1)
    lo, hi = res["lo"][0], res["hi"][0]
    return (None if np.isnan(lo) else float(lo), None if np.isnan(hi) else float(hi))


# ------------------------------------------------------------------ permutation null

def rank_cohorts(codes: np.ndarray, n_cohorts: int, errors: np.ndarray, words: np.ndarray,
                 min_speakers: int) -> tuple[np.ndarray, np.ndarray]:
    """(WER per cohort code (ratio), eligible cohort codes ranked bottom first).

    The ranking of :func:`fairaudit.result.cohort_statistics`: WER descending, NaN last,
    ties by code (= sorted id when ``codes`` come from a sorted factorize); only cohorts of
    at least ``min_speakers`` speakers are eligible.
    """
    size = np.bincount(codes, minlength=n_cohorts)
    e = np.bincount(codes, weights=errors, minlength=n_cohorts)
    w = np.bincount(codes, weights=words, minlength=n_cohorts)
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = e / w
    nan = np.isnan(wer)
    order = np.lexsort((np.arange(n_cohorts), -np.where(nan, 0.0, wer), nan))
    return wer, order[size[order] >= min_speakers]


def _headline_gap(errors: np.ndarray, words: np.ndarray, cohort: np.ndarray, min_speakers: int
                  ) -> tuple[float | None, float | None]:
    """(wer_gap_pct, wer_gap_abs) by the rules of :func:`fairaudit.result.cohort_statistics`.

    ``errors``/``words``: counts of the audited speakers; ``cohort``: their cohort ids.
    The same ranking (WER descending, NaN last, ties by id), the same eligibility
    (``min_speakers``) and the same None cases, in numpy: the permutation null calls it
    hundreds of times (a test checks it against ``cohort_statistics``).
    """
    codes, ids = pd.factorize(cohort, sort=True)
    wer, ranked = rank_cohorts(codes, len(ids), errors, words, min_speakers)
    if len(ranked) < 2:
        return None, None
    wb, wt = float(wer[ranked[0]]), float(wer[ranked[-1]])
    gap_abs = wb - wt
    return (100.0 * gap_abs / wt if wt > 0 else None), gap_abs


class _Permuter:
    """Builds permuted copies of a speaker table and measures the discovered gap on each.

    One instance lives in each worker process (or in the caller, serially); the table is
    copied once and only its count columns are overwritten per permutation.
    """

    def __init__(self, discoverer, speakers: pd.DataFrame, side, positions: np.ndarray):
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
        # Cohorts that do not depend on the counts (attribute values, embedding clusters)
        # are the same in every permutation: fit once, re-measure the gap each time.
        self.fixed = bool(getattr(discoverer, "fixed_cohorts", False))
        self.assignment: pd.Series | None = None

    def gap(self, seed_seq: np.random.SeedSequence) -> tuple[float, float]:
        rng = np.random.default_rng(seed_seq)
        take = np.arange(self.n)
        take[self.positions] = self.positions[rng.permutation(len(self.positions))]
        if self.fixed and self.assignment is not None:
            assignment = self.assignment
        else:
            for c in self.columns:
                self.table[c] = self.source[c].take(take)
            assignment = self.discoverer.fit(self.table, self.side).assignment
            if self.fixed:
                self.assignment = assignment
        rows = take[self.row_of.get_indexer(assignment.index)]
        pct, gap_abs = _headline_gap(self.errors[rows], self.words[rows], assignment.to_numpy(),
                                     self.discoverer.min_speakers)
        if gap_abs is None:      # fewer than two eligible cohorts: the audit reports no gap
            return 0.0, 0.0
        if pct is None:          # top cohort without errors: relative gap unbounded
            pct = math.inf
        return float(pct), float(gap_abs)


_WORKER: _Permuter | None = None


def _init_worker(discoverer, speakers, side, positions) -> None:
    global _WORKER
    _WORKER = _Permuter(discoverer, speakers, side, positions)


def _run_block(seeds: list[np.random.SeedSequence]) -> list[tuple[float, float]]:
    return [_WORKER.gap(s) for s in seeds]


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def permutation_null(discoverer, speakers: pd.DataFrame, side, observed_gap_pct: float | None,
                     n_perm: int = 200, seed: int = 0, workers: int | None = None, *,
                     observed_gap_abs: float | None = None, audited: Any = None) -> dict:
    """Null distribution of the discovered gap when WER is unrelated to the features.

    Each permutation shuffles the speakers' count columns (utterances, ref_words, S, D, I,
    errors, wer) jointly across the audited speakers, so every speaker keeps a real
    (errors, ref_words) pair but WER no longer depends on lat/lon, zip, embedding or
    attributes; then ``discoverer.fit`` runs again (same parameters and seed) and the gap
    is taken as the audit takes it (:func:`fairaudit.result.cohort_statistics` with the
    discoverer's ``min_speakers``).

    ``observed_gap_pct``: the audit's relative gap (%).  When it is None (top cohort WER 0)
    the test statistic is the absolute gap instead and ``observed_gap_abs`` (ratio) is
    required; ``statistic`` in the result says which was used.  In a null run where the
    relative gap is undefined (top WER 0) it counts as +inf; a null run with fewer than two
    eligible cohorts counts as gap 0 (the audit would report no gap).
    ``audited``: speaker ids the discoverer audited (e.g. ``assignment.index``); only their
    counts are permuted.  Default: found by one fit on ``speakers``.
    ``workers``: processes (default: all cores, used only when the serial run would take
    longer than about a second); results are identical for any ``workers`` because each
    permutation draws from its own ``SeedSequence(seed).spawn(n_perm)`` child.

    Returns ``{"n", "statistic", "null_gap_median_pct", "null_gap_p95_pct",
    "null_gap_median_abs", "null_gap_p95_abs", "p_value", "seed", "method"}`` with
    p = (1 + #{null >= observed}) / (1 + n_perm), and ``null_gaps_pct``/``null_gaps_abs``
    (arrays, for plots and tests; not meant for the report).
    """
    n_perm = _check_count(n_perm, "number of permutations", 1)
    seed = _check_seed(seed)
    if observed_gap_pct is None and observed_gap_abs is None:
        raise ValueError("permutation_null needs observed_gap_pct or observed_gap_abs")
    statistic = "wer_gap_pct" if observed_gap_pct is not None else "wer_gap_abs"
    observed = float(observed_gap_pct if observed_gap_pct is not None else observed_gap_abs)
    if audited is None:
        audited = discoverer.fit(speakers, side).assignment.index
    positions = np.flatnonzero(speakers["speaker_id"].isin(pd.Index(audited)).to_numpy())

    seeds = np.random.SeedSequence(seed).spawn(n_perm)
    # The first permutation runs here; its time decides whether a pool pays for itself.
    local = _Permuter(discoverer, speakers, side, positions)
    t0 = time.perf_counter()
    results = [local.gap(seeds[0])]
    elapsed = time.perf_counter() - t0
    rest = seeds[1:]
    nworkers = min(_cpu_count() if workers is None else max(1, int(workers)), max(1, len(rest)))
    if workers is None and elapsed * len(rest) < _PARALLEL_MIN_SECONDS:
        nworkers = 1
    if nworkers > 1 and rest:
        # ~4 blocks per worker keeps both busy to the end; order of results = order of seeds.
        size = max(1, math.ceil(len(rest) / (4 * nworkers)))
        blocks = [rest[i:i + size] for i in range(0, len(rest), size)]
        with ProcessPoolExecutor(max_workers=nworkers, initializer=_init_worker,
                                 initargs=(discoverer, speakers, side, positions)) as pool:
            for part in pool.map(_run_block, blocks):
                results.extend(part)
    else:
        results.extend(local.gap(s) for s in rest)

    null_pct = np.array([r[0] for r in results])
    null_abs = np.array([r[1] for r in results])
    null = null_pct if statistic == "wer_gap_pct" else null_abs
    # tolerance: a null run that reproduces the observed split must count as ">="
    hits = int(np.sum(null >= observed - 1e-9 * max(1.0, abs(observed))))
    return {"n": n_perm, "statistic": statistic,
            "null_gap_median_pct": _quantile(null_pct, 0.5), "null_gap_p95_pct": _quantile(null_pct, 0.95),
            "null_gap_median_abs": _quantile(null_abs, 0.5), "null_gap_p95_abs": _quantile(null_abs, 0.95),
            "p_value": (1 + hits) / (1 + n_perm), "seed": seed, "method": PERMUTATION_METHOD,
            "null_gaps_pct": null_pct, "null_gaps_abs": null_abs}


# ------------------------------------------------------------------ held-out (honest) gap

def _half_table(speakers: pd.DataFrame, utts: pd.DataFrame) -> pd.DataFrame:
    """``speakers`` rows that have utterances in ``utts``, counts recomputed from them."""
    cols = [c for c in ("ref_words", "substitutions", "deletions", "insertions", "errors") if c in utts.columns]
    g = utts.groupby("speaker_id", sort=False)
    sums = g[cols].sum(min_count=1)
    sums.insert(0, "utterances", g.size())
    table = speakers.loc[speakers["speaker_id"].isin(sums.index)].copy()
    sums = sums.reindex(table["speaker_id"].to_numpy())
    for c in ("utterances", *cols):
        table[c] = sums[c].to_numpy()
    for c in ("substitutions", "deletions", "insertions"):
        if c in table.columns and c not in cols:   # not measurable per half: unknown
            table[c] = pd.array([pd.NA] * len(table), dtype="Int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        table["wer"] = table["errors"].to_numpy(dtype=float) / table["ref_words"].to_numpy(dtype=float)
    return table


def split_utterances(utterances: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Boolean mask: True = utterance in half A (discovery), False = half B (held out).

    Each speaker's utterances are shuffled (seeded) and the first ceil(m / 2) of its m
    utterances go to A: a speaker with one utterance is in A only.  Utterances are first
    put in (speaker_id, utt_id) order, so the split does not depend on row order.
    """
    rng = np.random.default_rng(_check_seed(seed))
    spk = pd.factorize(utterances["speaker_id"].astype(str), sort=True)[0]
    if "utt_id" in utterances.columns:
        utt = pd.factorize(utterances["utt_id"].astype(str), sort=True)[0]
        canon = np.lexsort((utt, spk))
    else:
        canon = np.argsort(spk, kind="stable")
    key = np.empty(len(spk))
    key[canon] = rng.random(len(spk))
    order = np.lexsort((key, spk))
    spk_sorted = spk[order]
    counts = np.bincount(spk_sorted, minlength=spk.max() + 1 if len(spk) else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank = np.arange(len(spk)) - starts[spk_sorted]
    in_a = np.empty(len(spk), dtype=bool)
    in_a[order] = rank < (counts[spk_sorted] + 1) // 2
    return in_a


def _cohort_wer(table: pd.DataFrame, members: pd.Index) -> tuple[float | None, int]:
    sub = table.loc[table["speaker_id"].isin(members)]
    w = float(sub["ref_words"].sum())
    return (float(sub["errors"].sum()) / w if w > 0 else None), int(len(sub))


def honest_gap(discoverer, utterances: pd.DataFrame, speakers: pd.DataFrame, side, seed: int = 0) -> dict:
    """The discovered gap measured on utterances the discovery did not see.

    Each speaker's utterances are split at random into halves A and B
    (:func:`split_utterances`; speakers with one utterance are in A only).  Two per-speaker
    tables are built with the attribute columns of ``speakers`` and utterances, ref_words,
    errors (and S/D/I when present) recomputed from ``utterances`` (columns speaker_id,
    ref_words, errors; utt_id used for ordering).  The discoverer is fitted on A and the
    bottom/top cohorts are chosen on A as the audit does; the WERs of those same cohorts'
    speakers are then measured on B.

    The held-out gap removes the selection on utterance-level noise; a speaker's own WER
    level is shared by both halves, so the part of the selection bias due to speaker-level
    noise remains (the held-out gap lies between the truth and the discovery gap).  The
    permutation test is the significance check; this figure shows how much the headline
    shrinks on fresh utterances.

    Returns ``{"discovery_gap_pct", "discovery_gap_abs", "discovery_bottom_wer",
    "discovery_top_wer", "heldout_gap_pct", "heldout_gap_abs", "heldout_bottom_wer",
    "heldout_top_wer", "heldout_bottom_speakers", "heldout_top_speakers", "bottom", "top",
    "seed", "method"}``: gaps in % (relative, None when the top WER is 0) and ratio
    (absolute), WERs as ratios, speakers as counts; all None (with ``note``) when the
    discovery half gives fewer than two eligible cohorts.
    """
    missing = [c for c in ("speaker_id", "ref_words", "errors") if c not in utterances.columns]
    if missing:
        raise UserInputError(f"the utterance table has no {missing[0]!r} column; the held-out gap needs "
                             "per-utterance errors and ref_words")
    seed = _check_seed(seed)
    utts = utterances.loc[utterances["speaker_id"].isin(speakers["speaker_id"])]
    in_a = split_utterances(utts, seed)
    table_a = _half_table(speakers, utts.loc[in_a])
    table_b = _half_table(speakers, utts.loc[~in_a])
    found = discoverer.fit(table_a, side)
    _, summ = cohort_statistics(table_a, found.assignment, found.labels, discoverer.min_speakers)
    out: dict[str, Any] = {k: None for k in (
        "discovery_gap_pct", "discovery_gap_abs", "discovery_bottom_wer", "discovery_top_wer", "heldout_gap_pct",
        "heldout_gap_abs", "heldout_bottom_wer", "heldout_top_wer", "heldout_bottom_speakers",
        "heldout_top_speakers", "bottom", "top")}
    out.update({"seed": seed, "method": HONEST_METHOD})
    if summ["bottom"] is None:
        out["note"] = summ.get("note", "fewer than two eligible cohorts on the discovery half")
        return out
    bottom, top = summ["bottom"], summ["top"]
    assign = found.assignment
    b_members = assign.index[assign.to_numpy() == bottom]
    t_members = assign.index[assign.to_numpy() == top]
    wb_a, _ = _cohort_wer(table_a, b_members)
    wt_a, _ = _cohort_wer(table_a, t_members)
    wb, nb = _cohort_wer(table_b, b_members)
    wt, nt = _cohort_wer(table_b, t_members)
    out.update({"bottom": bottom, "top": top, "discovery_gap_pct": summ["wer_gap_pct"],
                "discovery_gap_abs": summ["wer_gap_abs"], "discovery_bottom_wer": wb_a, "discovery_top_wer": wt_a,
                "heldout_bottom_wer": wb, "heldout_top_wer": wt, "heldout_bottom_speakers": nb,
                "heldout_top_speakers": nt})
    if wb is not None and wt is not None:
        out["heldout_gap_abs"] = wb - wt
        out["heldout_gap_pct"] = 100.0 * (wb - wt) / wt if wt > 0 else None
    return out


# ------------------------------------------------------------------ two systems

def paired_delta(errors_a: Any, errors_b: Any, words: Any, n_resamples: int = 10000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Compare two systems decoded on the same speakers (matched pairs over speakers).

    ``errors_a``/``errors_b``: per-speaker error counts of systems A and B; ``words``: the
    speakers' reference words (counts).  ΔWER = (sum e_B - sum e_A) / sum w (ratio; > 0
    means B is worse).  CI: percentile bootstrap resampling speakers (``n_resamples``
    times).  p-value: two-sided sign-flip permutation test of the per-speaker differences
    d = e_B - e_A (under "no difference" each d is as likely to have either sign):
    p = (1 + #{|sum s·d| >= |sum d|}) / (1 + n_resamples).

    Returns ``{"delta_wer", "ci_low", "ci_high", "p_value", "n_speakers", "n_resamples",
    "level", "seed", "method"}``.
    """
    ea, eb, w = _as_counts(errors_a, "errors_a"), _as_counts(errors_b, "errors_b"), _as_counts(words, "words")
    if not (len(ea) == len(eb) == len(w)):
        raise ValueError(f"errors_a, errors_b and words differ in length ({len(ea)}, {len(eb)}, {len(w)})")
    n_resamples = _check_count(n_resamples, "number of resamples", 1)
    level, seed = _check_level(level), _check_seed(seed)
    total_w = float(w.sum())
    if total_w <= 0:
        raise UserInputError("no reference words: the WER difference is undefined")
    d = eb - ea
    n = len(d)
    boot_rng, flip_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    deltas = _resample_ratio(d, w, n_resamples, boot_rng)
    lo, hi = _interval(deltas, level)

    observed = abs(float(d.sum()))
    total_d = float(d.sum())
    hits = 0
    step = max(1, _BLOCK_CELLS // max(n, 1))
    nbytes = (n + 7) // 8
    for b0 in range(0, n_resamples, step):
        b = min(step, n_resamples - b0)
        # 8 random signs per random byte
        bits = np.unpackbits(flip_rng.integers(0, 256, size=(b, nbytes), dtype=np.uint8), axis=1, count=n)
        stat = 2.0 * (bits.astype(np.float64) @ d) - total_d   # sum of s_i d_i with s_i = +-1
        # integer-valued sums in float64 are exact; the tolerance only guards rounding
        hits += int(np.sum(np.abs(stat) >= observed - 1e-9 * max(1.0, observed)))
    return {"delta_wer": float(total_d / total_w), "ci_low": lo, "ci_high": hi,
            "p_value": (1 + hits) / (1 + n_resamples), "n_speakers": int(n), "n_resamples": n_resamples,
            "level": level, "seed": seed, "method": PAIRED_METHOD}


# ------------------------------------------------------------------ report entries

def overall_ci(speakers: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
               ) -> list[float | None] | None:
    """[lo, hi] percentile interval of the overall WER (ratio), resampling speakers; None if n_boot == 0."""
    if _check_count(n_boot, "number of bootstrap resamples", 0) == 0 or not len(speakers):
        return None
    lo, hi = bootstrap_overall(speakers["errors"].to_numpy(dtype=float), speakers["ref_words"].to_numpy(dtype=float),
                               n_boot=n_boot, seed=seed, level=level)
    return [lo, hi]


def add_statistics(entry: dict, discoverer, speakers: pd.DataFrame, utterances: pd.DataFrame | None, side,
                   assignment: pd.Series, n_boot: int = 1000, n_perm: int = 200, seed: int = 0,
                   level: float = 0.95, honest: bool = True, *, alpha: float = 0.05,
                   workers: int | None = None) -> None:
    """Add confidence intervals, the permutation null and the held-out gap to one report entry.

    ``entry``: the dict built by :func:`fairaudit.audit.run_discoverer` (mutated in place);
    ``assignment``: its cohort id per speaker_id; ``speakers``/``utterances``: the scored
    per-speaker and per-utterance tables (``utterances`` may be None: no held-out gap).

    Adds to each cohort ``wer_ci_low``/``wer_ci_high`` (ratio) and to the entry
    ``wer_gap_ci_pct`` [lo, hi] (%; None when the gap is undefined), ``wer_gap_abs_ci``
    [lo, hi] (ratio), ``ci_level``, ``bootstrap`` {n, unit, method, seed}, ``permutation``
    (see :func:`permutation_null`; None when ``n_perm`` is 0), ``p_value`` (its copy),
    ``significant`` (p_value < ``alpha``; None when not tested) and ``honest_gap`` (see
    :func:`honest_gap`; None when ``honest`` is false or there are no utterances).
    With ``n_boot`` = 0 the intervals are None.  A skipped entry is left alone.
    """
    if entry.get("skipped"):
        return
    n_boot = _check_count(n_boot, "number of bootstrap resamples", 0)
    n_perm = _check_count(n_perm, "number of permutations", 0)
    level, seed = _check_level(level), _check_seed(seed)
    cohorts = entry.get("cohorts", [])
    ids = [c["id"] for c in cohorts]
    bottom, top = entry.get("bottom"), entry.get("top")

    entry["ci_level"] = level
    entry["wer_gap_ci_pct"] = None
    entry["wer_gap_abs_ci"] = None
    if n_boot > 0 and ids:
        sp = speakers.set_index("speaker_id").loc[assignment.index]
        codes = pd.Index(ids).get_indexer(assignment.to_numpy())
        if (codes < 0).any():
            raise ValueError("assignment names a cohort that is not in the entry")
        pairs = [(ids.index(bottom), ids.index(top))] if bottom is not None and top is not None else []
        res = bootstrap_cohorts(sp["errors"].to_numpy(dtype=float), sp["ref_words"].to_numpy(dtype=float), codes,
                                n_boot=n_boot, seed=seed, level=level, pairs=pairs, n_cohorts=len(ids))
        for k, c in enumerate(cohorts):
            c["wer_ci_low"] = None if np.isnan(res["lo"][k]) else float(res["lo"][k])
            c["wer_ci_high"] = None if np.isnan(res["hi"][k]) else float(res["hi"][k])
        if pairs:
            entry["wer_gap_abs_ci"] = list(res["gap_abs"][0])
            if entry.get("wer_gap_pct") is not None:
                entry["wer_gap_ci_pct"] = list(res["gap_pct"][0])
    else:
        for c in cohorts:
            c["wer_ci_low"] = c["wer_ci_high"] = None
    entry["bootstrap"] = {"n": n_boot, "unit": "speaker", "method": BOOTSTRAP_METHOD, "seed": seed}

    entry["permutation"] = None
    entry["p_value"] = None
    entry["significant"] = None
    if n_perm > 0 and bottom is not None:
        perm = permutation_null(discoverer, speakers, side, entry.get("wer_gap_pct"), n_perm=n_perm, seed=seed,
                                workers=workers, observed_gap_abs=entry.get("wer_gap_abs"),
                                audited=assignment.index)
        perm = {k: v for k, v in perm.items() if not k.startswith("null_gaps")}
        entry["permutation"] = perm
        entry["p_value"] = perm["p_value"]
        entry["significant"] = bool(perm["p_value"] < alpha)

    entry["honest_gap"] = None
    if honest and utterances is not None and bottom is not None:
        entry["honest_gap"] = honest_gap(discoverer, utterances, speakers, side, seed=seed)
