"""The held-out gap: discover on some speakers, measure on the others (cross-fitting).

A discoverer that searches for the worst split reports a gap inflated by the search
(selection bias).  Splitting each speaker's *utterances* does not remove it: a speaker's
own error level sits in both halves (measured on the issue-15 world: +87 % on average with
no disparity at all).  This module holds out **speakers**:

1. the speakers are dealt at random into ``folds`` folds (optionally within strata);
2. for each fold, the discoverer is fitted on the other folds, its bottom and top cohorts
   are chosen there (:func:`fairaudit.result.cohort_statistics`: highest / lowest WER among
   cohorts of at least ``min_speakers``), and its cohort definitions (boxes, windows,
   rules, centroids, values) are applied to the held-out fold's speakers;
3. every speaker is now held out exactly once and labelled by a fit that never saw them:
   "bottom", "top" or neither; the held-out gap of the repetition is
   100 x (WER_bottom - WER_top) / WER_top (%) over the speakers so labelled (micro WER:
   sum(errors) / sum(ref_words));
4. steps 1-3 are repeated ``repeats`` times with new random folds and the gaps averaged
   (cross-fitting: the estimate does not hang on one lucky split).

Interval: a speaker bootstrap of the held-out measurement with the labels held fixed:
each resample draws the speakers with replacement (one multinomial count vector, shared
by all repetitions, and the audit's shared speaker resamples,
:func:`fairaudit.intervals.speaker_resamples`), recomputes every repetition's gap and their mean; the percentile
interval of that mean, widened about the estimate by the split-to-split spread of the
repetitions (s^2 / R more variance: which speakers happened to be held out, a part of the
estimate's noise the fixed-label bootstrap cannot see; see :func:`_widened`).

A discoverer whose cohorts do not depend on the error counts (``fixed_cohorts``: known
attributes, embedding clusters) is fitted once on everybody; only the choice of bottom and
top is made on the training folds.  A discoverer that cannot place new speakers (no
``assign``) gets no honest estimate, with the reason.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd

from .cohorts import rank_cohorts
from .discover.base import NotEnoughData
from .errors import UserInputError
from . import intervals as _intervals
from .intervals import COUNT_BLOCK_CELLS, marginal_counts, speaker_resamples
from .stats import rng as _rng

HELDOUT_METHOD = ("speakers split at random into {folds} folds, {repeats} times; for each fold the cohorts are "
                  "discovered on the other folds (bottom and top chosen there) and applied to the held-out "
                  "speakers; gap = WER of held-out speakers placed in the bottom vs the top cohort, mean over "
                  "repetitions; percentile speaker-bootstrap interval (placements held fixed) widened for the "
                  "split-to-split spread")

#: the labels of held-out speakers
OTHER, BOTTOM, TOP = 0, 1, 2

Assigner = Callable[[Any, pd.DataFrame, Any], "pd.Series | None"]


def speaker_folds(speaker_ids: Any, folds: int = 2, repeats: int = 5, seed: int = 0,
                  strata: Any = None, key: str = "") -> np.ndarray:
    """(repeats x n) fold index (0..folds-1) of each speaker, for each repetition.

    Speakers are first put in speaker-id order (the folds do not depend on row order),
    then shuffled (stream ``(seed, "heldout", key, "folds")``, one child per repetition)
    and dealt round-robin, within each stratum when ``strata`` (one value per speaker) is
    given, so every fold gets its share of each stratum.
    """
    # (the numpy strings themselves are sorted: the same order as Python's for them, without
    # an Index and back, 26 ms at 100,000 speakers)
    ids = np.asarray(speaker_ids).astype(str)
    n = len(ids)
    canon = np.argsort(ids, kind="stable")
    groups = (np.zeros(n, dtype=np.int64) if strata is None
              else pd.factorize(pd.Series(np.asarray(strata, dtype=object)).astype(str), sort=True)[0])
    out = np.empty((int(repeats), n), dtype=np.int64)
    for r, child in enumerate(_rng.stream(int(seed), "heldout", key, "folds").spawn(int(repeats))):
        rng = np.random.default_rng(child)
        draw = np.empty(n)
        draw[canon] = rng.random(n)
        order = np.lexsort((draw, groups))             # shuffled within each stratum
        g_sorted = groups[order]
        start = np.r_[0, np.flatnonzero(g_sorted[1:] != g_sorted[:-1]) + 1]
        rank = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
        # Each stratum starts dealing where the previous one stopped: folds stay balanced.
        offset = np.repeat(np.cumsum(np.r_[0, np.diff(np.r_[start, n])[:-1]]), np.diff(np.r_[start, n]))
        out[r, order] = (rank + offset) % int(folds)
    return out


def _definition(found: Any) -> Any:
    definition = getattr(found, "definition", None)
    if definition is None and isinstance(getattr(found, "details", None), dict):
        definition = found.details.get("definition")
    return definition


def resolve_assigner(discoverer: Any) -> tuple[str, Assigner | None, str | None]:
    """How held-out speakers get their cohorts: (kind, assign function, reason if none).

    ``kind``: "fixed" (cohorts do not depend on errors: the fit on everybody places
    everybody), "assign" (the discoverer's ``assign(definition, speakers, side)`` hook) or
    "none" (with the reason the report shows).
    """
    if getattr(discoverer, "fixed_cohorts", False):
        return "fixed", None, None
    fn = getattr(discoverer, "assign", None)
    # The base class's assign returns None ("cannot"): only an override can place speakers.
    from .discover.base import Discoverer

    overridden = callable(fn) and getattr(type(discoverer), "assign", None) is not Discoverer.assign
    if overridden:
        def apply(found, speakers, side):
            return fn(_definition(found), speakers, side)
        return "assign", apply, None
    name = getattr(discoverer, "name", type(discoverer).__name__)
    return "none", None, (f"the {name} discoverer cannot apply its cohort definitions to speakers it did not "
                          "see, so its gap has no honest (held-out) estimate")


def _no_estimate(reason: str, folds: int, repeats: int, seed: int) -> dict:
    return {"gap_pct": None, "ci_pct": None, "gap_abs": None, "ci_abs": None, "splits": 0, "folds": int(folds),
            "repeats": int(repeats), "seed": int(seed), "method": HELDOUT_METHOD.format(folds=folds, repeats=repeats),
            "estimate": False, "reason": reason}


def _fit(discoverer, table: pd.DataFrame, side) -> Any:
    try:
        return discoverer.fit(table, side)
    except NotEnoughData:
        return None


def heldout_gap(discoverer, speakers: pd.DataFrame, side=None, *, folds: int = 2, repeats: int = 5,
                seed: int = 0, n_boot: int = 1000, level: float = 0.95, stratify: str | None = None,
                assigner: Assigner | None = None, assignment: pd.Series | None = None,
                key: str | None = None, batched: bool = True) -> dict:
    """Bottom-vs-top gap measured on speakers the discovery did not see (module docstring).

    ``speakers``: per-speaker table (``speaker_id``, ``errors``, ``ref_words`` and what the
    discoverer reads); ``side``: its side inputs; ``folds`` x ``repeats`` fits (2 x 5 by
    default; a fixed-cohort discoverer is fitted once); ``n_boot``: bootstrap resamples
    for the interval (0 = none); ``level``: its confidence level (ratio); ``stratify``: a
    column of ``speakers`` to balance the folds on; ``assigner``: overrides how held-out
    speakers are placed (``assigner(found, speakers, side) -> cohort id per speaker_id``);
    ``assignment``: the audit's own cohorts, reused for a ``fixed_cohorts`` discoverer
    instead of a fit; ``key``: names the random streams (``stream(seed, "heldout", key,
    ...)``, default the discoverer's key).
    ``batched``: use the discoverer's :meth:`~fairaudit.discover.base.Discoverer.heldout_folds`
    hook (every fold's fit at once, the same cohorts; :func:`_hook_folds`) when it has one;
    False fits fold by fold (tests compare the two).

    Returns ``gap_pct`` (mean held-out relative gap, %), ``ci_pct`` [lo, hi] (%),
    ``gap_abs``/``ci_abs`` (WER_bottom - WER_top, ratio), ``bottom_wer``/``top_wer`` (mean
    held-out WERs, ratios), ``heldout_bottom_speakers``/``heldout_top_speakers`` (mean
    counts per repetition), ``per_repeat_gap_pct`` (list), ``splits`` (fits used),
    ``splits_without_estimate`` (count), ``folds``, ``repeats``, ``seed``, ``method``,
    ``estimate`` (bool) and, when there is no estimate, ``reason``.
    """
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise UserInputError(f"held-out folds must be a whole number >= 2, not {folds!r}", hint="fix --heldout-folds")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise UserInputError(f"held-out repetitions must be a whole number >= 1, not {repeats!r}",
                             hint="fix --heldout-splits")
    folds, repeats = int(folds), int(repeats)
    key = getattr(discoverer, "key", "") if key is None else key
    kind, assign, reason = ("assign", assigner, None) if assigner is not None else resolve_assigner(discoverer)
    if kind == "none":
        return _no_estimate(reason, folds, repeats, seed)
    table = speakers.reset_index(drop=True)
    ids = table["speaker_id"].astype(str).to_numpy(dtype=object)
    if stratify is not None and stratify not in table.columns:
        raise UserInputError(f"no column {stratify!r} to stratify the held-out folds on", hint="pass a column of the speaker table as stratify")
    fold_of = speaker_folds(ids, folds, repeats, seed, None if stratify is None else table[stratify].to_numpy(),
                            key=key)
    e = table["errors"].to_numpy(dtype=float)
    w = table["ref_words"].to_numpy(dtype=float)
    pos = pd.Index(ids)
    min_speakers = discoverer.min_speakers

    if kind == "fixed":
        if assignment is None:
            found = _fit(discoverer, table, side)
            assignment = None if found is None else found.assignment
        if assignment is None or not len(assignment):
            return _no_estimate("the discoverer found no cohorts on these speakers", folds, repeats, seed)
        # The cohorts are fixed: each speaker's cohort code is looked up once (integer
        # positions), not per fold (a string reindex of every fold cost a second at 100k).
        fixed_codes, fixed_ids = _row_codes(assignment, pos, ids)

    labels = np.zeros((repeats, len(ids)), dtype=np.int8)
    failed = 0
    fits = 0
    hooked = _hook_folds(discoverer, table, side, fold_of, folds) if (
        batched and kind == "assign" and assigner is None) else None
    for r in range(repeats):
        # Each fold's rows taken once per repetition: with two folds a fold's training
        # speakers are the other fold's held-out ones, the same table (rows in table
        # order either way), so 2 takes of the table instead of 4 (10 ms each at 100,000)
        parts: dict[int, pd.DataFrame] = {}

        def part(k: int, r: int = r) -> pd.DataFrame:
            if k not in parts:
                parts[k] = table.iloc[np.flatnonzero(fold_of[r] == k)]
            return parts[k]

        for f in range(folds):
            in_test = fold_of[r] == f
            if hooked is not None:
                fits += 1
                if not _label_fold(labels[r], hooked[r * folds + f], in_test, e, w, min_speakers):
                    failed += 1
                continue
            if kind == "fixed":
                if not _label_fold(labels[r], (fixed_codes, fixed_ids), in_test, e, w, min_speakers):
                    failed += 1
                continue
            train_rows = np.flatnonzero(~in_test)
            test_rows = np.flatnonzero(in_test)
            found = _fit(discoverer, part(1 - f) if folds == 2 else table.iloc[train_rows], side)
            fits += 1
            if found is None:
                failed += 1
                continue
            test_assign = assign(found, part(f), side)
            if test_assign is None:
                name = getattr(discoverer, "name", type(discoverer).__name__)
                return _no_estimate(f"the {name} discoverer could not apply its cohort definitions to held-out "
                                    "speakers", folds, repeats, seed)
            codes, uniques = _row_codes(found.assignment, pos, ids, train_rows)
            pair = _bottom_top_codes(codes, len(uniques), e, w, min_speakers)
            if pair is None:
                failed += 1
                continue
            bottom, top = uniques[pair[0]], uniques[pair[1]]
            where = _rows_of(test_assign.index, pos, ids, test_rows)
            cohort = test_assign.to_numpy()
            labels[r, where[cohort == bottom]] = BOTTOM
            labels[r, where[cohort == top]] = TOP

    # Only the speakers labelled in some repetition carry weight in the sums: the
    # bootstrap draws the full speaker resample's counts on them alone (marginal_counts).
    labelled = np.flatnonzero((labels != OTHER).any(axis=0))
    cols = []
    for r in range(repeats):
        for lab in (BOTTOM, TOP):
            m = labels[r, labelled] == lab
            cols += [e[labelled] * m, w[labelled] * m]
    x = np.column_stack(cols)                    # (m labelled speakers, 4 R)
    point = _gaps(x.sum(axis=0)[None, :], repeats)
    ok = np.isfinite(point[0]) & (point[1] > 0)
    out = {"splits": fits if kind != "fixed" else folds * repeats, "splits_without_estimate": int(failed),
           "folds": folds, "repeats": repeats, "seed": int(seed),
           "method": HELDOUT_METHOD.format(folds=folds, repeats=repeats), "assignment": kind}
    if not ok.any():
        return {**_no_estimate("no split gave held-out speakers in both the bottom and the top cohort",
                               folds, repeats, seed), **{k: v for k, v in out.items() if k != "method"}}
    rel, wt, wb = point[0], point[1], point[2]
    gap_abs_r = wb - wt
    out.update({"estimate": True, "gap_pct": _mean_or_none(rel[ok]), "gap_abs": float(np.mean(gap_abs_r[ok])),
                "bottom_wer": float(np.mean(wb[ok])), "top_wer": float(np.mean(wt[ok])),
                "heldout_bottom_speakers": float(np.mean((labels == BOTTOM).sum(axis=1)[ok])),
                "heldout_top_speakers": float(np.mean((labels == TOP).sum(axis=1)[ok])),
                "per_repeat_gap_pct": [None if not np.isfinite(v) else float(v) for v in rel],
                "ci_pct": None, "ci_abs": None, "level": float(level), "n_boot": int(n_boot)})
    if n_boot > 0:
        rel_b, abs_b = [], []
        product = _repeat_sums(labels, labelled, x, repeats)
        for counts in _resamples(int(seed), key, int(n_boot), len(ids), labelled):
            g = _gaps(product(counts), repeats)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                # a resample with no held-out bottom or top speaker has no gap: NaN, skipped
                warnings.simplefilter("ignore", RuntimeWarning)
                rel_b.append(np.nanmean(np.where(ok[None, :], g[0], np.nan), axis=1))
                abs_b.append(np.nanmean(np.where(ok[None, :], g[2] - g[1], np.nan), axis=1))
        a = (1.0 - level) / 2.0
        out["ci_pct"] = _widened(np.concatenate(rel_b), rel[ok], out["gap_pct"], a)
        out["ci_abs"] = _widened(np.concatenate(abs_b), gap_abs_r[ok], out["gap_abs"], a)
    return out


def _hook_folds(discoverer, table: pd.DataFrame, side, fold_of: np.ndarray, folds: int) -> list | None:
    """Every fold's (codes, cohort ids) from the discoverer's ``heldout_folds`` hook, in
    (repetition, fold) order, or None when it has no such hook or declines."""
    from .discover.base import Discoverer

    hook = getattr(type(discoverer), "heldout_folds", None)
    if hook is None or hook is Discoverer.heldout_folds:
        return None
    in_train = np.stack([fold_of[r] != f for r in range(len(fold_of)) for f in range(folds)])
    got = discoverer.heldout_folds(table, side, in_train)
    return None if got is None or len(got) != len(in_train) else list(got)


def _label_fold(labels: np.ndarray, fold: tuple | None, in_test: np.ndarray, e: np.ndarray, w: np.ndarray,
                min_speakers: int) -> bool:
    """Label the held-out speakers of one fold from a hook's (codes, cohort ids): bottom
    and top chosen on the training rows as the audit ranks; False when the fold gives no
    estimate (the fit failed, or fewer than two eligible cohorts)."""
    if fold is None:
        return False
    codes, uniques = fold
    pair = _bottom_top_codes(np.where(in_test, -1, codes), len(uniques), e, w, min_speakers)
    if pair is None:
        return False
    test_codes = np.where(in_test, codes, -1)
    labels[test_codes == pair[0]] = BOTTOM
    labels[test_codes == pair[1]] = TOP
    return True


def _repeat_sums(labels: np.ndarray, labelled: np.ndarray, x: np.ndarray, repeats: int):
    """counts (b x labelled) -> the (b x 4 R) sums [eb, wb, et, wt] per repetition: counts @ x.

    When every labelled speaker is labelled (bottom or top) in every repetition (two
    cohorts: gender, a census rule, a hot spot and the rest), one label's sums are the
    totals minus the other's: the totals take two matrix-vector products over all the
    labelled speakers, and the rarer label's 2 R sums a product over only the speakers
    who carry it in some repetition (a hot spot: 6 % of the speakers), instead of 2 R + 2
    columns over everybody (0.1 s instead of 0.22 s per 1,000 resamples of 100,000
    speakers).  Integer sums: exact in any order, so the same numbers either way."""
    if not (labels[:, labelled] != OTHER).all():
        return lambda counts: counts @ x
    xb = x.reshape(len(x), repeats, 4)
    lab = labels[:, labelled]
    carriers = [np.flatnonzero((lab == which).any(axis=0)) for which in (BOTTOM, TOP)]
    rare = 0 if len(carriers[0]) <= len(carriers[1]) else 1      # 0: bottom, 1: top
    rows = carriers[rare]
    part = np.column_stack([xb[rows, :, 2 * rare], xb[rows, :, 2 * rare + 1]])   # (rows, 2 R): errors, words
    e_all = xb[:, 0, 0] + xb[:, 0, 2]                 # every labelled speaker is bottom or top
    w_all = xb[:, 0, 1] + xb[:, 0, 3]
    every = len(rows) == len(xb)

    def product(counts: np.ndarray) -> np.ndarray:
        e_tot, w_tot = (counts @ e_all)[:, None], (counts @ w_all)[:, None]
        s = (counts if every else np.take(counts, rows, axis=1)) @ part
        e_r, w_r = s[:, :repeats], s[:, repeats:]
        pair = [e_r, w_r, e_tot - e_r, w_tot - w_r] if rare == 0 else [e_tot - e_r, w_tot - w_r, e_r, w_r]
        return np.stack(pair, axis=2).reshape(len(counts), 4 * repeats)
    return product


def _resamples(seed: int, key: str, n_boot: int, n: int, labelled: np.ndarray):
    """Blocks of speaker-bootstrap multiplicities of the ``labelled`` rows (ascending; the only ones
    with weight in the held-out sums) in ``n_boot`` resamples of all n speakers.

    The audit's shared speaker resamples (:func:`fairaudit.intervals.speaker_resamples`:
    drawn once, also serving the overall interval and every other discoverer's held-out
    gap) when they fit in memory; otherwise this gap's own stream ``(seed, "heldout", key,
    "bootstrap")``, drawing only the labelled speakers' counts (:func:`marginal_counts`)."""
    if n_boot * n <= _intervals.SHARED_MAX_CELLS:
        yield from speaker_resamples(seed, n_boot, n, None if len(labelled) == n else labelled)
        return
    rng = _rng.generator(seed, "heldout", key, "bootstrap")
    step = max(1, COUNT_BLOCK_CELLS // max(1, len(labelled)))
    buf = np.empty((min(step, n_boot), len(labelled)))
    for b0 in range(0, n_boot, step):
        yield marginal_counts(rng, n, len(labelled), min(step, n_boot - b0), out=buf)


def _rows_of(index: pd.Index, pos: pd.Index, ids: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Row positions in the speaker table of the speaker ids ``index`` (-1: not there).

    ``rows``: the table rows the ids most likely are, in order (a fit's assignment is
    usually indexed by the very rows it was given); checked by one comparison, the
    string lookup only when they differ."""
    if rows is not None and len(index) == len(rows):
        got = index.astype(str)
        if got.dtype == pos.dtype and got.dtype != object:
            # string arrays compared as they are (no 50,000 Python strings made: 5 ms a fold)
            if not got.hasnans and got.equals(pos[rows]):
                return rows
        elif np.array_equal(np.asarray(got, dtype=object), ids[rows]):
            return rows
    return pos.get_indexer(index.astype(str))


def _row_codes(assignment: pd.Series, pos: pd.Index, ids: np.ndarray, rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(cohort code per table row, -1 when not assigned; the cohort ids, sorted) of an
    assignment (cohort id per speaker_id): codes from a sorted factorize, as the audit ranks."""
    codes = np.full(len(ids), -1, dtype=np.int64)
    if not len(assignment):
        return codes, np.zeros(0, dtype=object)
    where = _rows_of(assignment.index, pos, ids, rows)
    c, uniques = pd.factorize(assignment.to_numpy(), sort=True)
    keep = where >= 0
    codes[where[keep]] = c[keep]
    return codes, np.asarray(uniques, dtype=object)


def _bottom_top_codes(codes: np.ndarray, n_cohorts: int, e: np.ndarray, w: np.ndarray, min_speakers: int
                      ) -> tuple[int, int] | None:
    """(bottom code, top code) among rows with a code >= 0, ranked as the audit ranks
    (None: fewer than 2 eligible cohorts)."""
    have = codes >= 0
    if not have.any():
        return None
    _, ranked = rank_cohorts(codes[have], n_cohorts, e[have], w[have], min_speakers)
    if len(ranked) < 2:
        return None
    return int(ranked[0]), int(ranked[-1])


def _gaps(sums: np.ndarray, repeats: int) -> np.ndarray:
    """(3, B, R) = relative gap %, top WER, bottom WER from (B, 4R) sums [eb, wb, et, wt] per repeat."""
    s = sums.reshape(sums.shape[0], repeats, 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        wb = np.where(s[..., 1] > 0, s[..., 0] / s[..., 1], np.nan)
        wt = np.where(s[..., 3] > 0, s[..., 2] / s[..., 3], np.nan)
        rel = np.where(wt > 0, 100.0 * (wb - wt) / wt, np.nan)
    if sums.shape[0] == 1:
        return np.stack([rel[0], wt[0], wb[0]])
    return np.stack([rel, wt, wb])


def _mean_or_none(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _widened(boot: np.ndarray, per_repeat: np.ndarray, estimate: float | None, a: float) -> list[float | None]:
    """Percentile interval of the bootstrap means, widened about the estimate for split noise.

    The bootstrap holds the placements fixed, so it misses how much the estimate depends
    on which speakers were held out: the repetitions' gaps vary by s (their standard
    deviation) around their mean, which adds s^2 / R to its variance.  The interval's
    distances from the estimate are scaled by sqrt(sd_boot^2 + s^2 / R) / sd_boot.
    (Measured on the issue-15 null world, 2 folds x 5: coverage of 0 goes from 85 % to 95 %.)
    """
    boot = boot[np.isfinite(boot)]
    if not len(boot) or estimate is None:
        return [None, None]
    lo, hi = np.quantile(boot, [a, 1.0 - a])
    sd = float(boot.std())
    per_repeat = per_repeat[np.isfinite(per_repeat)]
    if len(per_repeat) >= 2 and sd > 0:
        factor = math.sqrt(sd ** 2 + float(per_repeat.var(ddof=1)) / len(per_repeat)) / sd
        lo, hi = estimate + factor * (lo - estimate), estimate + factor * (hi - estimate)
    return [float(lo), float(hi)]
