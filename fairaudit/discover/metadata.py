"""Speaker-attribute tree: intersectional cohorts over the known speaker attributes.

The attribute cohorts (``--by age_band,accent``) show a combination only when the user
guesses it.  This discoverer searches for it: a best-first binary tree over every known
attribute column of the speaker table (age band, gender, accent, numeric age, device, ...),
whose leaves are conjunctions such as ``age_band=60+ AND accent=southern``.  It is a
searcher, so its gap is selection-corrected by the permutation null like the geographic
tree's (the statistics layer re-fits it on permuted (errors, ref_words)).

Columns
    Every speaker-table column except ids, coordinates, zip and count/derived columns
    (:data:`NOT_ATTRIBUTES`, names ending in ``_id`` or starting with ``_``), or the
    columns named by ``columns``.  A numeric column (numbers, or text whose every known
    value is a number) is split at ``x < t`` / ``x >= t`` for ``n_thresholds`` quantiles
    of the audited speakers' values (the quintiles by default), rounded to the fewest
    significant figures (at least 2) that keep them distinct: ``age >= 60``, not
    ``age >= 59.73``.  Any other column is categorical and is split into two value sets:
    its levels present in the node are ordered by WER and every prefix of that order is
    a candidate (the classic CART ordering for a binary split of a categorical by a
    ratio, L - 1 candidates for L levels instead of 2**(L-1)).  Automatically chosen
    columns with fewer than two known values, or with more than ``max_levels`` levels
    (ids, free text), are left out and listed in ``details["columns_skipped"]``.

Unknown values
    Empty, ``NA``, ``N/A``, ``null``, ``None``, ``nan`` (any case) and NaN are *unknown*,
    never a category: no candidate split isolates them.  At a split on column c, speakers
    whose c is unknown follow the side with more speakers of known c (ties: the second,
    higher-WER or ``>= t`` side); a cohort label adds "or unknown" for a column where the
    cohort holds such speakers (``(accent in {us, canada} or unknown)``).  The routing
    depends on speaker counts only, not on errors, so it cannot chase the unknowns' WER.
    :meth:`assign` routes speakers with unknown values, and values never seen at that
    node, the same way.  Speakers unknown in *every* candidate column carry no
    information for the tree and are not audited (``not_audited``).

Growth
    Best-first: the leaf whose best split has the highest criterion is split next, until
    ``max_leaves`` leaves, every leaf at ``max_depth``, or no split keeps ``min_speakers``
    speakers on both sides.  Criterion (``criterion``), for the two sides' micro WERs
    r_L, r_R (ratio) and the node's r:

    * ``"speaker_z"`` (default): (r_L - r_R) / sqrt(V_L + V_R) with V_s =
      sum_{i in s} (e_i - r w_i)^2 / W_s^2, the speaker-level (cluster-robust, ratio
      estimator) variance of a side's WER under "no difference".  Speakers differ in
      error rate far beyond binomial noise, so a side of 20 noisy speakers is judged by
      how much those speakers disagree, not by how many words they spoke.
    * ``"z"``: the same difference over its binomial standard error (words as trials).
    * ``"lr"``: the binomial likelihood-ratio (G) statistic of two rates against one.
    * ``"difference"``: |r_L - r_R| (Trinh et al.'s geographic criterion).

    Measured (benchmarks/bench_metadata.py; 600 speakers, 30 replicates, planted 1.5x on
    age_band=60+ AND accent=southern): precision / recall of the bottom cohort and power
    of the permutation test with the bottom-vs-rest statistic were 0.88 / 0.91 / 0.90 for
    speaker_z, 0.94 / 0.85 / 0.90 for z and lr, 0.25 / 0.98 / 0.63 for the difference
    (which splits off the noisiest ``min_speakers`` speakers).  With a long tail of
    utterances per speaker (log-normal counts, 800 speakers) power fell to 0.60 for both
    speaker_z and z, recall 0.89 vs 0.77, precision 0.66 vs 0.73.  speaker_z is the
    default because it is the only criterion on a calibrated scale under speaker
    heterogeneity (the best null split's binomial z is 2.6 times its speaker-level z on
    these data), so ``min_score`` means the same on any data, and it is the scale of the
    test statistic.

Speed
    Every column is coded once per fit (categorical levels or numeric bins, unknown = one
    extra bin); a node's candidates of one column come from ``np.bincount`` of its
    speakers' errors, words, speaker counts and squared residuals per bin and a cumulative
    sum over the (WER-ordered) bins: O(speakers x columns) per tree level, no loop over
    speakers or thresholds.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..cohorts import gap, rank_cohorts, rank_sums
from ..errors import UserInputError
from .base import Discoverer, Discovery, NotEnoughData, SideInputs, non_attribute_columns, register
from .cache import cached, frame_key
from .cellsums import Landing, PairSums
from .params import Interval, Options
from .planting import CohortPlanter, Planter, PooledPlanter

#: split criteria, see the module docstring
CRITERIA = ("speaker_z", "z", "lr", "difference")

#: cell values that mean "unknown" (compared stripped and lower-cased)
MISSING_TOKENS = ("", "na", "n/a", "null", "none", "nan")

#: columns that are never attributes beyond what the registry declares
#: (:func:`~fairaudit.discover.base.non_attribute_columns`: ids, counts, coordinates, zip)
NOT_ATTRIBUTES = frozenset({"cohort", "cohort_id", "system"})

NO_KNOWN_VALUE = "no known value in any attribute column"

#: joint cells (combinations of every column's bins) above which the per-bin sums are
#: taken column by column
MAX_CELLS = 4096

#: the search statistic the permutation test uses (``Discovery.statistic_name``)
STATISTIC_NAME = "bottom_vs_rest_speaker_z"

_NUMERIC = "numeric"
_CATEGORICAL = "categorical"


def is_attribute_column(name: Any) -> bool:
    """True if a speaker-table column may be a speaker attribute (by its name): not an id,
    count, coordinate or other discoverer input (what the registered discoverers and side
    inputs declare as ``non_attribute_columns``), not ``*_id`` nor ``_*``."""
    name = str(name)
    return (name not in NOT_ATTRIBUTES and name not in non_attribute_columns() and not name.endswith("_id")
            and not name.startswith("_"))


def readable_thresholds(values: np.ndarray, n: int) -> list[float]:
    """``n`` quantile cut points of ``values`` (at 1/(n+1), ..., n/(n+1)), rounded to
    the fewest significant figures (>= 2) that keep the distinct cut points distinct.

    Only cut points t with min(values) < t <= max(values) are kept (both sides of
    ``x < t`` non-empty), in increasing order.
    """
    if not len(values):
        return []
    lo, hi = float(np.min(values)), float(np.max(values))
    raw = np.unique(np.quantile(values, np.arange(1, n + 1) / (n + 1)))
    raw = raw[(raw > lo) & (raw <= hi)]
    if not len(raw):
        # Everyone at the quantiles sits on one value: split just above the minimum.
        above = values[values > lo]
        raw = np.array([float(np.min(above))]) if len(above) else raw
    for sig in range(2, 16):
        cut = np.unique([_round_sig(v, sig) for v in raw])
        cut = cut[(cut > lo) & (cut <= hi)]
        if len(cut) == len(raw):
            return [float(v) for v in cut]
    return [float(v) for v in raw]


def _round_sig(v: float, sig: int) -> float:
    if v == 0 or not math.isfinite(v):
        return v
    return round(v, sig - 1 - int(math.floor(math.log10(abs(v)))))


def _num(v: float) -> str:
    """A threshold as people write it: 60, 0.15, 52,000."""
    if float(v).is_integer():
        return f"{int(v):,}" if abs(v) >= 10000 else str(int(v))
    return f"{v:g}"


@dataclass
class _Column:
    """One attribute column coded for the search.

    ``bins``: per audited speaker, the level (categorical) or threshold bin (numeric:
    bin j holds thresholds[j-1] <= x < thresholds[j]); unknown = ``n_bins``.
    """

    name: str
    kind: str
    bins: np.ndarray
    n_bins: int
    levels: list[str] = field(default_factory=list)        # categorical: value of each bin
    thresholds: list[float] = field(default_factory=list)  # numeric: cut points


@dataclass
class _Split:
    score: float
    column: int                 # index into the coded columns
    left_bins: np.ndarray       # bins that go left (categorical: lower-WER values; numeric: x < t)
    right_bins: np.ndarray      # bins present in the node that go right
    unknown_left: bool          # unknown (and unseen) values go left
    threshold: float | None     # numeric: left = x < threshold
    wer_left: float
    wer_right: float


@dataclass
class _Prepared:
    """The count-free part of a fit (:meth:`MetadataDiscoverer._prepare`)."""

    params: dict
    rows: np.ndarray             # rows of the speaker table of the audited speakers, canonical order
    columns: list[_Column]
    skipped: dict[str, str]
    not_audited: dict[str, int]
    ids: np.ndarray              # their speaker ids
    cells: np.ndarray | None = None   # joint cell per audited speaker (:func:`_cells`)


@dataclass
class _Node:
    id: int
    members: np.ndarray          # positions into the audited-speaker arrays
    depth: int
    # per column name: ("categorical", values, unknown_ok) or ("numeric", lo, hi, unknown_ok)
    conditions: dict[str, tuple]
    split: _Split | None = None
    children: tuple[int, int] | None = None
    cells: np.ndarray | None = None   # cell-level growth: which joint cells the node holds (bool)
    size: int = 0                     # speakers in the node (count)


def _unique_texts(col: pd.Series) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(codes into the distinct values, their stripped text, which of them are unknown).

    The text work runs on the distinct values only (a few per column), never per speaker:
    the permutation null calls ``fit`` hundreds of times.  NaN/None get code -1.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    texts = [str(u).strip() for u in uniques]
    unknown = np.array([t.lower() in MISSING_TOKENS for t in texts], dtype=bool)
    return codes, texts, unknown


def _as_numbers(texts: list[str]) -> np.ndarray | None:
    """The texts as floats if every one is a finite number (and there is one), else None."""
    out = np.empty(len(texts))
    for i, t in enumerate(texts):   # a text column fails at its first value: no Series per call
        try:
            out[i] = float(t)
        except ValueError:
            return None
    return out if len(texts) and np.isfinite(out).all() else None


class _ColumnSource:
    """One speaker-table column read once for coding (:func:`_code_column`): its values as
    floats (numeric dtypes), or its distinct values' codes, texts and unknown flags; the
    text work runs on the distinct values of the whole table, so coding any subset of its
    rows (a held-out training fold) costs integer work only."""

    def __init__(self, col: pd.Series):
        self.numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        self.boolean = pd.api.types.is_bool_dtype(col)
        if self.numeric:
            self.values = col.to_numpy(dtype=float, na_value=np.nan)
        else:
            self.codes, self.texts, self.unknown = _unique_texts(col)

    def code(self, name: str, n_thresholds: int, rows: np.ndarray | None = None) -> _Column | str:
        """The column coded on its rows ``rows`` (None: all, in table order; bins in the
        order of ``rows``), or the reason it cannot be used (str): what coding a table of
        those rows alone gives."""
        if self.numeric:
            values = self.values if rows is None else self.values[rows]
        else:
            codes = self.codes if rows is None else self.codes[rows]
            # the distinct values present, in the order a factorize of these rows finds them
            # (first appearance: codes are numbered so; only the set matters below)
            present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(self.texts)) > 0)
            known = present[~self.unknown[present]]
            known_texts = [self.texts[i] for i in known]
            number = None if self.boolean else _as_numbers(known_texts)
            if number is not None:
                per_unique = np.full(len(self.texts), np.nan)
                per_unique[known] = number
                values = np.append(per_unique, np.nan)[codes]   # code -1 -> the appended NaN
            else:
                levels = sorted(set(known_texts))
                if len(levels) < 2:
                    return "fewer than two known values"
                index = {t: i for i, t in enumerate(levels)}
                per_unique = np.array([index.get(t, len(levels)) if not u else len(levels)
                                       for t, u in zip(self.texts, self.unknown)] + [len(levels)], dtype=np.int64)
                return _Column(name, _CATEGORICAL, per_unique[codes], len(levels), levels=levels)
        values = np.where(np.isfinite(values), values, np.nan)
        unknown = np.isnan(values)
        thresholds = readable_thresholds(values[~unknown], n_thresholds)
        if not thresholds:
            return "fewer than two known values"
        bins = np.searchsorted(np.asarray(thresholds), values, side="right").astype(np.int64)
        bins[unknown] = len(thresholds) + 1
        return _Column(name, _NUMERIC, bins, len(thresholds) + 1, thresholds=thresholds)


def _code_column(name: str, col: pd.Series, n_thresholds: int) -> _Column | str:
    """Code one column for the search, or the reason it cannot be used (str)."""
    return _ColumnSource(col).code(name, n_thresholds)


def _scores(criterion: str, eL, wL, qL, eR, wR, qR, p: float) -> np.ndarray:
    """Criterion of each candidate split (larger = better separated); see module docstring."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rL, rR = eL / wL, eR / wR
        diff = np.abs(rL - rR)
        if criterion == "difference":
            return diff
        if criterion == "z":
            return diff / np.sqrt(max(p * (1.0 - p), 1e-12) * (1.0 / wL + 1.0 / wR))
        if criterion == "speaker_z":
            var = qL / wL ** 2 + qR / wR ** 2
            return diff / np.sqrt(np.maximum(var, 1e-300))
        # "lr": 2 x binomial log-likelihood ratio, two rates vs the node's one (0 log 0 = 0)
        def ll(e, w, r):
            return (np.where(e > 0, e * np.log(np.where(r > 0, r, 1.0)), 0.0)
                    + np.where(w - e > 0, (w - e) * np.log(np.where(r < 1, 1.0 - r, 1.0)), 0.0))
        total_e, total_w = eL + eR, wL + wR
        return 2.0 * (ll(eL, wL, rL) + ll(eR, wR, rR) - ll(total_e, total_w, np.full_like(rL, p)))


def _cells(columns: list[_Column]) -> np.ndarray | None:
    """Each speaker's joint cell (the combination of its bins in every column), or None
    when there are more than :data:`MAX_CELLS` combinations."""
    sizes = [c.n_bins + 1 for c in columns]
    if not columns or math.prod(sizes) > MAX_CELLS:
        return None
    cell = np.zeros(len(columns[0].bins), dtype=np.int64)
    for col, size in zip(columns, sizes):
        cell = cell * size + col.bins
    return cell


def _marginals(table: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Per column, the sums of a joint-cell table over the other columns."""
    cube = table.reshape(sizes)
    return [cube.sum(axis=tuple(a for a in range(len(sizes)) if a != i)) for i in range(len(sizes))]


def _best_split(columns: list[_Column], members: np.ndarray, err: np.ndarray, words: np.ndarray,
                min_speakers: int, criterion: str) -> _Split | None:
    """The best admissible split of one node over all columns, or None.

    The per-bin sums of a column come from ``np.bincount`` of the node's speakers' bins
    (errors, words, squared residuals, speakers), accumulated in speaker order.  (The tree
    grows on joint cells instead when there are few: :func:`_best_split_cells`.)
    """
    n = len(members)
    if n < 2 * min_speakers:
        return None
    e, w = err[members], words[members]
    p = float(e.sum() / w.sum()) if w.sum() > 0 else 0.0
    q = (e - p * w) ** 2     # squared residual under "no difference" (speaker_z)
    sums = []
    for col in columns:
        bins, size = col.bins[members], col.n_bins + 1
        Q = np.bincount(bins, weights=q, minlength=size)
        E, W = (np.bincount(bins, weights=x, minlength=size) for x in (e, w))
        N = np.bincount(bins, minlength=size)
        sums.append((E, W, N, Q))
    return _choose_split(columns, sums, p, min_speakers, criterion)


#: rows of a joint-cell table (:func:`_cell_sums`): errors, words, speakers and the
#: integer moments errors^2, errors x words, words^2 of each cell's speakers
_CE, _CW, _CN, _CEE, _CEW, _CWW = range(6)


def _group_sums(groups: np.ndarray, total: int, err: np.ndarray, words: np.ndarray) -> np.ndarray:
    """(6, total) table of the sums per group 0..total-1 (joint cells, cohorts) of the
    rows :data:`_CE` ...: integers, so exact in any order (below 2**53)."""
    out = np.empty((6, total))
    for i, x in enumerate((err, words, None, err * err, err * words, words * words)):
        out[i] = np.bincount(groups, weights=x, minlength=total)
    return out


def _best_split_cells(columns: list[_Column], table: np.ndarray, mask: np.ndarray, min_speakers: int,
                      criterion: str) -> _Split | None:
    """:func:`_best_split` of the node made of the joint cells ``mask`` (bool), from the
    per-cell sums ``table`` (:func:`_cell_sums`): a pass over the cells, not the speakers.

    Errors, words and speakers per bin are the same integer sums as the speaker pass;
    the squared residuals per bin are sum (e - p w)^2 = E2 - 2 p EW + p^2 W2 from the
    integer moments (equal up to rounding; order-free)."""
    sub = table * mask
    n = float(sub[_CN].sum())
    if n < 2 * min_speakers:
        return None
    e_tot, w_tot = float(sub[_CE].sum()), float(sub[_CW].sum())
    p = e_tot / w_tot if w_tot > 0 else 0.0
    q = np.maximum(sub[_CEE] - 2.0 * p * sub[_CEW] + p * p * sub[_CWW], 0.0)
    sizes = [c.n_bins + 1 for c in columns]
    marg = [_marginals(x, sizes) for x in (sub[_CE], sub[_CW], sub[_CN], q)]
    return _choose_split(columns, [tuple(m[ci] for m in marg) for ci in range(len(columns))], p,
                         min_speakers, criterion)


def _choose_split(columns: list[_Column], sums: list[tuple], p: float, min_speakers: int,
                  criterion: str) -> _Split | None:
    """The best admissible split given per column its per-bin (errors, words, speakers,
    squared residuals) sums, the unknown bin last; ``p``: the node's rate (ratio)."""
    best: _Split | None = None
    for ci, col in enumerate(columns):
        E, W, N, Q = sums[ci]
        present = np.flatnonzero(N[:-1] > 0)
        if len(present) < 2:
            continue
        if col.kind == _CATEGORICAL:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(W[present] > 0, E[present] / np.where(W[present] > 0, W[present], 1), 0.0)
            order = present[np.lexsort((present, rate))]   # by WER, ties by level
        else:
            order = present                                # by value
        # left side = order[:k], k = 1 .. L-1; unknowns join the side with more known speakers
        cE, cW, cN, cQ = (np.cumsum(a[order])[:-1] for a in (E, W, N, Q))
        kE, kW, kN, kQ = E[order].sum(), W[order].sum(), N[order].sum(), Q[order].sum()
        uE, uW, uN, uQ = E[-1], W[-1], N[-1], Q[-1]
        ul = cN > kN - cN
        eL, wL, nL, qL = cE + ul * uE, cW + ul * uW, cN + ul * uN, cQ + ul * uQ
        eR, wR, nR, qR = kE - cE + ~ul * uE, kW - cW + ~ul * uW, kN - cN + ~ul * uN, kQ - cQ + ~ul * uQ
        ok = (nL >= min_speakers) & (nR >= min_speakers) & (wL > 0) & (wR > 0)
        if not ok.any():
            continue
        s = np.where(ok, _scores(criterion, eL, wL, qL, eR, wR, qR, p), -np.inf)
        s = np.where(np.isnan(s), -np.inf, s)
        j = int(np.argmax(s))     # first maximum: the smaller threshold / fewer low-WER levels
        if not np.isfinite(s[j]) or (best is not None and s[j] <= best.score):
            continue   # strict ">": the earlier column wins an exact tie
        k = j + 1
        threshold = col.thresholds[order[k] - 1] if col.kind == _NUMERIC else None
        best = _Split(float(s[j]), ci, order[:k].copy(), order[k:].copy(), bool(ul[j]), threshold,
                      float(eL[j] / wL[j]), float(eR[j] / wR[j]))
    return best


def bottom_vs_rest_z(cohort: np.ndarray, err: np.ndarray, words: np.ndarray, min_speakers: int) -> float:
    """The bottom cohort's WER minus the rest's, over its speaker-level standard error.

    Bottom = the highest-WER cohort with at least ``min_speakers`` speakers (ties: the
    smaller id), as the ranking module chooses it; the standard error is that of
    ``speaker_z`` (squared residuals of speakers' errors from the all-speaker rate).
    Measured on planted intersections this statistic gives the permutation test far more
    power than the bottom-vs-top gap (0.90 vs 0.57 at 600 speakers, 1.00 vs 0.87 at
    1,000; 1.5x on 9 % of speakers): the
    top cohort is itself a selected extreme and its noise enters the gap.  0.0 when
    fewer than two cohorts exist.
    """
    codes, ids = pd.factorize(cohort, sort=True)
    return _bottom_vs_rest_z(codes, len(ids), err, words, min_speakers)


def _bottom_vs_rest_z(codes: np.ndarray, k: int, err: np.ndarray, words: np.ndarray, min_speakers: int) -> float:
    """:func:`bottom_vs_rest_z` of cohort codes 0..k-1 in the order of the cohort ids."""
    if k < 2:
        return 0.0
    return _bottom_vs_rest_sums(_group_sums(codes, k, err, words), min_speakers)


def _bottom_vs_rest_sums(table: np.ndarray, min_speakers: int) -> float:
    """:func:`bottom_vs_rest_z` from per-cohort sums (rows as :func:`_cell_sums`, one
    column per cohort in id order): the squared residuals of the bottom cohort and of the
    rest from their integer moments, sum (e - p w)^2 = E2 - 2 p EW + p^2 W2, so the
    statistic is the same number whether the sums were taken over speakers or over the
    joint cells of the tree (and in any row order)."""
    k = table.shape[1]
    if k < 2:
        return 0.0
    E, W, N = table[_CE], table[_CW], table[_CN]
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = np.where(W > 0, E / W, -np.inf)
    wer = np.where(N >= min_speakers, wer, -np.inf)
    b = int(np.argmax(wer))          # first maximum = smallest id (ids are sorted)
    tot = table.sum(axis=1)
    rest = tot - table[:, b]
    e_rest, w_rest = rest[_CE], rest[_CW]
    if not np.isfinite(wer[b]) or w_rest <= 0:
        return 0.0
    p = tot[_CE] / tot[_CW]

    def q(m):    # sum of squared residuals (e - p w)^2 from integer moments
        return max(float(m[_CEE] - 2.0 * p * m[_CEW] + p * p * m[_CWW]), 0.0)

    var = q(table[:, b]) / W[b] ** 2 + q(rest) / w_rest ** 2
    return float((wer[b] - e_rest / w_rest) / math.sqrt(var)) if var > 0 else 0.0


def _permuted_cell_tables(prep: "_Prepared", errors: np.ndarray, words: np.ndarray, takes: np.ndarray):
    """Per permutation (rows of ``takes``, B x table rows), the joint-cell table of
    :func:`_group_sums` of the audited speakers' permuted counts (6 x cells).

    The cells do not move under the null: each permutation scatters the cells through it
    once and bins every row's counts and integer moments (computed once) by the cell they
    land in, two counts per ``np.bincount`` (:mod:`.cellsums`); the speakers per cell are
    fixed.  Every sum is a whole number, so the table equals :func:`_group_sums` of the
    permuted counts."""
    total = math.prod(c.n_bins + 1 for c in prep.columns)
    landing = Landing(prep.cells, total, prep.rows, takes.shape[1])
    # (errors^2, errors x words) pack where (errors^2, words^2) would not: words^2 sums are large
    pairs = [PairSums(landing, a, b) for a, b in ((errors, words), (errors * errors, errors * words))]
    squares = words * words
    sizes = np.bincount(prep.cells, minlength=total).astype(float)
    table = np.empty((6, total))
    for take in takes:
        label = landing.label(take)
        pairs[0].sums(label, table[_CE], table[_CW])
        pairs[1].sums(label, table[_CEE], table[_CEW])
        table[_CWW] = landing.sums(label, squares)
        table[_CN] = sizes
        yield table


def _leaf_sums(table: np.ndarray, leaves: list[np.ndarray]) -> np.ndarray:
    """(6, leaves) sums of a cell table per leaf of a tree grown on cells (``leaves``: each
    leaf's cells, bool, in leaf order), columns in the order of the leaves' ids (M01, M02,
    ... sorted as text, the codes a fit's factorize gives)."""
    k = len(leaves)
    rank = np.argsort(np.argsort([f"M{j + 1:02d}" for j in range(k)], kind="stable"))
    leaf_of_cell = np.zeros(table.shape[1], dtype=np.int64)
    for j, cells in enumerate(leaves):
        leaf_of_cell[cells] = rank[j]
    return np.stack([np.bincount(leaf_of_cell, weights=row, minlength=k) for row in table])


#: criteria whose batched split search (:func:`_best_splits_batched`) is exact: only
#: + - x / and square roots, correctly rounded element by element in any array layout
#: (``lr`` takes logarithms, whose vectorised kernels need not match the scalar ones)
_BATCHED_CRITERIA = ("speaker_z", "z", "difference")


def _best_splits_batched(columns: list[_Column], sub: np.ndarray, min_speakers: int, criterion: str
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_best_split_cells` of R nodes at once: ``sub`` (R, 6, cells) is each node's
    cell table with the cells outside it zeroed (``table * mask``).  Returns (score, -inf
    where the node has no admissible split; column; bins going left, (R, bins of that
    column + 1) bool with the unknown bin last).

    Every number is the one :func:`_best_split_cells` computes: sums of whole numbers
    (errors, words, speakers and their moments) are exact in any order; the squared
    residuals' per-bin marginals come from the same reduction of the same cell values, and
    their total per column is summed row by row as the single-node code sums it; the
    scores are element-wise arithmetic; ties go to the first cut (argmax) and the earlier
    column (strict >), as there."""
    r_n = len(sub)
    sizes = [c.n_bins + 1 for c in columns]
    n = sub[:, _CN].sum(axis=1)
    e_tot, w_tot = sub[:, _CE].sum(axis=1), sub[:, _CW].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(w_tot > 0, e_tot / np.where(w_tot > 0, w_tot, 1.0), 0.0)
    pc = p[:, None]
    q = np.maximum(sub[:, _CEE] - 2.0 * pc * sub[:, _CEW] + pc * pc * sub[:, _CWW], 0.0)
    cubes = [x.reshape(r_n, *sizes) for x in (sub[:, _CE], sub[:, _CW], sub[:, _CN], q)]
    best = np.full(r_n, -np.inf)
    best_col = np.full(r_n, -1)
    best_left = [None] * r_n
    splittable = n >= 2 * min_speakers
    rows = np.arange(r_n)
    for ci, col in enumerate(columns):
        axes = tuple(a + 1 for a in range(len(sizes)) if a != ci)
        E, W, N, Q = (c.sum(axis=axes) for c in cubes)          # (R, bins + 1), unknown bin last
        nb = sizes[ci] - 1
        present = N[:, :-1] > 0
        count = present.sum(axis=1)
        idx = np.broadcast_to(np.arange(nb), (r_n, nb))
        if col.kind == _CATEGORICAL:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(W[:, :-1] > 0, E[:, :-1] / np.where(W[:, :-1] > 0, W[:, :-1], 1), 0.0)
            order = np.lexsort((idx, rate, ~present), axis=-1)     # present bins by WER, ties by level
        else:
            order = np.lexsort((idx, ~present), axis=-1)           # present bins by value
        Eo, Wo, No, Qo = (np.take_along_axis(x[:, :-1], order, axis=1) for x in (E, W, N, Q))
        if nb < 2:
            continue
        cE, cW, cN, cQ = (np.cumsum(x, axis=1)[:, :-1] for x in (Eo, Wo, No, Qo))
        kE, kW, kN = ((x * present).sum(axis=1)[:, None] for x in (E[:, :-1], W[:, :-1], N[:, :-1]))
        # the residuals' total over the present bins in WER order, summed as one node's code sums it
        kQ = np.array([Qo[r, :count[r]].sum() for r in range(r_n)])[:, None]
        uE, uW, uN, uQ = (x[:, -1:] for x in (E, W, N, Q))
        ul = cN > kN - cN
        eL, wL, nL, qL = cE + ul * uE, cW + ul * uW, cN + ul * uN, cQ + ul * uQ
        eR, wR, nR, qR = kE - cE + ~ul * uE, kW - cW + ~ul * uW, kN - cN + ~ul * uN, kQ - cQ + ~ul * uQ
        ok = ((nL >= min_speakers) & (nR >= min_speakers) & (wL > 0) & (wR > 0)
              & (np.arange(nb - 1)[None, :] < (count - 1)[:, None]) & (count >= 2)[:, None] & splittable[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            sc = np.where(ok, _scores_rows(criterion, eL, wL, qL, eR, wR, qR, p), -np.inf)
        sc = np.where(np.isnan(sc), -np.inf, sc)
        j = np.argmax(sc, axis=1)
        sj = sc[rows, j]
        take = np.isfinite(sj) & (sj > best)     # strict: the earlier column wins an exact tie
        for r in np.flatnonzero(take):
            k = int(j[r]) + 1
            left = np.zeros(nb + 1, dtype=bool)
            left[order[r, :k]] = True
            left[nb] = bool(ul[r, j[r]])
            best_left[r] = left
        best = np.where(take, sj, best)
        best_col = np.where(take, ci, best_col)
    return best, best_col, best_left


def _scores_rows(criterion: str, eL, wL, qL, eR, wR, qR, p: np.ndarray) -> np.ndarray:
    """:func:`_scores` of rows of candidates, row r with the node rate ``p[r]``."""
    if criterion == "z":
        rL, rR = eL / wL, eR / wR
        diff = np.abs(rL - rR)
        return diff / np.sqrt(np.maximum(p * (1.0 - p), 1e-12)[:, None] * (1.0 / wL + 1.0 / wR))
    return _scores(criterion, eL, wL, qL, eR, wR, qR, 0.0)   # speaker_z, difference: no node rate


def _grow_batched(prep: "_Prepared", tables: np.ndarray) -> list[list[np.ndarray]]:
    """:meth:`MetadataDiscoverer._grow` on the joint-cell tables ``tables`` (B, 6, cells)
    of B count sets at once: per set, the leaves' cells (bool) in leaf order (M01, M02, ...).

    The trees grow in lockstep: each round splits the best leaf of every tree still
    growing (its own heap: highest score first, ties to the earlier node) and searches
    the new children of all trees in one batched pass (:func:`_best_splits_batched`), with
    :meth:`_grow`'s rules: the root split is always made when admissible, any other only
    when it scores at least ``min_score``; at most ``max_leaves`` leaves, no split below
    ``max_depth``."""
    params, columns = prep.params, prep.columns
    sizes = [c.n_bins + 1 for c in columns]
    total = math.prod(sizes)
    cell_bins = np.unravel_index(np.arange(total), sizes)
    b_n = len(tables)
    # per tree: nodes as [cells, depth, children or None, (score, column, left bins) or None]
    trees = [[[np.ones(total, bool), 0, None, None]] for _ in range(b_n)]
    heaps: list[list] = [[] for _ in range(b_n)]
    pending = [(b, 0) for b in range(b_n)] if params["max_depth"] > 0 else []
    leaves = np.ones(b_n, dtype=np.int64)
    growing = True
    while growing:
        if pending:
            sub = np.stack([tables[b] * trees[b][nid][0] for b, nid in pending])
            score, column, left = _best_splits_batched(columns, sub, params["min_speakers"], params["criterion"])
            for (b, nid), sc, ci, lb in zip(pending, score, column, left):
                if ci >= 0:
                    trees[b][nid][3] = (float(sc), int(ci), lb)
                    if nid == 0 or sc >= params["min_score"]:
                        heapq.heappush(heaps[b], (-float(sc), nid))
        pending, growing = [], False
        for b in range(b_n):
            if leaves[b] >= params["max_leaves"] or not heaps[b]:
                continue
            _, nid = heapq.heappop(heaps[b])
            node = trees[b][nid]
            _, ci, lb = node[3]
            go_left = lb[cell_bins[ci]]
            kids = []
            for part in (node[0] & go_left, node[0] & ~go_left):
                kids.append(len(trees[b]))
                trees[b].append([part, node[1] + 1, None, None])
            node[2] = tuple(kids)
            leaves[b] += 1
            growing = True
            pending += [(b, k) for k in kids if node[1] + 1 < params["max_depth"]]
    out = []
    for nodes in trees:
        order, stack = [], [0]
        while stack:   # leaves depth-first, left side first: M01, M02, ...
            node = nodes[stack.pop()]
            if node[2] is None:
                order.append(node[0])
            else:
                stack.extend(reversed(node[2]))
        out.append(order)
    return out


def _condition_text(name: str, cond: tuple, with_unknown: bool) -> str:
    if cond[0] == _CATEGORICAL:
        values = cond[1]
        text = f"{name}={values[0]}" if len(values) == 1 else f"{name} in {{{', '.join(values)}}}"
    else:
        lo, hi = cond[1], cond[2]
        if lo is not None and hi is not None:
            text = f"{_num(lo)} <= {name} < {_num(hi)}"
        elif lo is not None:
            text = f"{name} >= {_num(lo)}"
        else:
            text = f"{name} < {_num(hi)}"
    return f"({text} or unknown)" if with_unknown else text


@register
class MetadataDiscoverer(Discoverer):
    """Intersectional cohorts from a best-first tree over known speaker attributes.

    Parameters
    ----------
    min_speakers : int, default 20
        Minimum speakers (count) in every leaf (both sides of every split, unknowns
        included).
    max_leaves : int, default 6
        Stop when the tree has this many leaves (cohorts, count).  More leaves mean more
        noise cohorts competing with a real one for "bottom" and a larger null gap.
    max_depth : int, default 3
        A leaf at this depth (root = 0) is not split: labels are conjunctions of at most
        this many conditions.
    columns : list of str, default () (empty)
        Attribute columns to search; empty = every speaker-table column that is not an
        id, count, coordinate or zip.
    n_thresholds : int, default 4
        Candidate cut points per numeric column (count): quantiles of the audited
        speakers' values at 1/(n+1), ..., n/(n+1), rounded to readable values.
    max_levels : int, default 30
        Automatically chosen categorical columns with more levels (count) are left out
        (ids, free text); named columns are always used.
    criterion : {"speaker_z", "z", "lr", "difference"}, default "speaker_z"
        How a split is scored: the WER difference of its sides over their speaker-level
        standard error (speaker_z), over the binomial one (z), the likelihood ratio (lr),
        or the raw difference.
    min_score : float, default 1.5
        A leaf other than the root whose best split scores below this (in the criterion's
        units: a z for speaker_z and z) is not split.  Without it the tree spends its leaves on
        noise, e.g. halving the planted cohort by gender (recall 0.88 -> 0.91 at 600
        speakers, bottom-cohort precision unchanged at 0.88); at 2.0 and above the second
        split of an intersection is often refused (precision 0.78).
    seed : int, default 0
        The tree is deterministic; the seed changes nothing.  Exact ties go to the
        earlier column, the first cut point / WER-ordered prefix, the earlier node.
    """

    name = "metadata"
    title = "Speaker-attribute tree"
    description = ("A best-first binary tree over the known speaker attributes (categorical value sets, numeric "
                   "quantile thresholds) whose leaves are conjunctions such as \"age_band=60+ AND "
                   "accent=southern\": intersectional cohorts nobody had to ask for. Each split is the one whose "
                   "two sides' WERs differ most in units of their speaker-level standard error; every leaf keeps "
                   "the speaker floor; unknown values follow the larger side and are never a cohort of their own. "
                   "The gap is selection-corrected by re-growing the tree on permuted speaker error counts.")
    fixed_cohorts = False
    side_inputs = ()
    default = True
    order = 40
    _parameter_constraints = {"max_leaves": [Interval(int, 2, None)], "max_depth": [Interval(int, 1, None)],
                              "columns": [list], "n_thresholds": [Interval(int, 1, None)],
                              "max_levels": [Interval(int, 2, None)], "criterion": [Options(str, CRITERIA)],
                              "min_score": [Interval(float, 0, None)]}

    def __init__(self, max_leaves: int = 6, max_depth: int = 3, columns: list[str] | tuple[str, ...] = (),
                 n_thresholds: int = 4, max_levels: int = 30, criterion: str = "speaker_z",
                 min_score: float = 1.5, **common):
        super().__init__(**common)
        self.max_leaves = max_leaves
        self.max_depth = max_depth
        self.columns = columns
        self.n_thresholds = n_thresholds
        self.max_levels = max_levels
        self.criterion = criterion
        self.min_score = min_score

    # ------------------------------------------------------------ parameters and inputs

    def _named(self) -> list[str] | None:
        """``columns`` as a list of distinct names, or None (empty: every attribute column)."""
        if not self.columns:
            return None
        names = [str(c).strip() for c in self.columns]
        if any(not c for c in names):
            raise UserInputError(f"metadata discoverer: columns has an empty name: {list(self.columns)!r}",
                                 hint=f"pass {self.flag('columns')} COLUMN[,COLUMN]")
        return list(dict.fromkeys(names))

    def _params(self) -> dict[str, Any]:
        """The parameters as used (validated by the base class before ``fit``)."""
        return {"min_speakers": int(self.min_speakers), "max_leaves": int(self.max_leaves),
                "max_depth": int(self.max_depth), "n_thresholds": int(self.n_thresholds),
                "max_levels": int(self.max_levels), "seed": int(self.seed), "columns": self._named(),
                "criterion": self.criterion, "min_score": float(self.min_score)}

    def required_columns(self) -> list[str]:
        """Named columns must exist (and be constant per speaker in an utterance table)."""
        return self._named() or []

    def candidate_columns(self, speakers: pd.DataFrame) -> list[str]:
        """The columns this discoverer would search: ``columns`` or every attribute column."""
        named = self._named()
        if named is not None:
            return named
        return [str(c) for c in speakers.columns if is_attribute_column(c)]

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        named = self._named()
        if named is not None:
            absent = [c for c in named if c not in speakers.columns]
            if absent:
                return f"no column {absent[0]!r} in the speaker table or the utterance table"
            return None
        if not self.candidate_columns(speakers):
            return ("no speaker attribute columns (beyond ids, coordinates, zip and counts) in the speaker table "
                    "or constant per speaker in the utterance table")
        return None

    # ------------------------------------------------------------ the tree

    def _code(self, speakers: pd.DataFrame, params: dict) -> tuple[list[_Column], dict[str, str]]:
        return self._code_sources(self._sources(speakers), params)

    def _sources(self, speakers: pd.DataFrame) -> dict[str, _ColumnSource]:
        return {name: _ColumnSource(speakers[name]) for name in self.candidate_columns(speakers)}

    def _code_sources(self, sources: dict[str, _ColumnSource], params: dict, rows: np.ndarray | None = None
                      ) -> tuple[list[_Column], dict[str, str]]:
        """The usable columns coded on rows ``rows`` (None: all) and the reasons of the others."""
        named = params["columns"] is not None
        coded, skipped = [], {}
        for name, source in sources.items():
            col = source.code(name, params["n_thresholds"], rows)
            if isinstance(col, str):
                skipped[name] = col
            elif not named and col.kind == _CATEGORICAL and col.n_bins > params["max_levels"]:
                skipped[name] = f"{col.n_bins} levels (more than max_levels={params['max_levels']})"
            else:
                coded.append(col)
        return coded, skipped

    def _prepare(self, speakers: pd.DataFrame) -> "_Prepared":
        """Everything of a fit that does not depend on the error counts: canonical row
        order, the coded columns, who has a known value (kept for the next fit on the same
        speakers, :mod:`.cache`: the permutation null and power simulations re-grow only
        the tree)."""
        params = self._params()
        reason = self.missing_inputs(speakers, None)
        if reason:
            raise UserInputError(f"metadata discoverer: {reason}")
        cols = ["speaker_id", *self.candidate_columns(speakers)]
        key = frame_key(speakers, cols, repr(sorted(params.items())), repr([str(speakers[c].dtype) for c in cols]))
        return cached(self, "_prepared_cache", key, lambda: self._build_prepared(speakers, params))

    def _build_prepared(self, speakers: pd.DataFrame, params: dict) -> "_Prepared":
        # Canonical row order (by speaker id): float sums of squared residuals then do not
        # depend on the order of the input rows, so neither does any near-tie.
        rows = np.argsort(speakers["speaker_id"].to_numpy(dtype=str), kind="stable")
        return self._prepared_of(params, self._sources(speakers), rows,
                                 speakers["speaker_id"].to_numpy(dtype=object))

    def _prepared_of(self, params: dict, sources: dict[str, _ColumnSource], rows: np.ndarray,
                     ids: np.ndarray) -> "_Prepared":
        """The prepared fit of the table rows ``rows`` (canonical order) of a table with
        speaker ids ``ids`` whose columns are ``sources``: what :meth:`_build_prepared`
        gives on a table of those rows alone."""
        columns, skipped = self._code_sources(sources, params, rows)
        if not columns:
            raise NotEnoughData("metadata discoverer: no usable attribute column ("
                                + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")

        known_any = np.zeros(len(rows), bool)
        for col in columns:
            known_any |= col.bins != col.n_bins
        for col in columns:
            col.bins = col.bins[known_any]
        return _Prepared(params=params, rows=rows[known_any], columns=columns, skipped=skipped,
                         not_audited=({NO_KNOWN_VALUE: int((~known_any).sum())} if not known_any.all() else {}),
                         ids=ids[rows][known_any], cells=_cells(columns))

    def _grow(self, prep: "_Prepared", err: np.ndarray, words: np.ndarray, splits: list | None = None,
              members: bool = True, table: np.ndarray | None = None
              ) -> tuple[dict[int, "_Node"], list["_Node"], bool]:
        """Grow the tree on counts ``err``/``words`` (audited speakers, canonical order):
        (nodes, leaves in cohort order M01, M02, ..., stopped at max_leaves?).  ``splits``:
        a list to append each split's record to (the report's tree), or None.

        With joint cells (``prep.cells``) every node is a union of cells: the speakers'
        counts are summed into the cells once and the whole search runs on the cell
        table (:func:`_best_split_cells`; a permutation's tree costs one pass over the
        speakers instead of one per node).  ``members``: fill each leaf's ``members``
        (speaker positions; the permutation null needs only the cells); ``table``: the
        cells' sums when the caller has them (:meth:`_cell_table`)."""
        params, columns = prep.params, prep.columns
        min_speakers, criterion = params["min_speakers"], params["criterion"]
        by_cells = prep.cells is not None
        if by_cells:
            sizes = [c.n_bins + 1 for c in columns]
            total = math.prod(sizes)
            if table is None:
                table = _group_sums(prep.cells, total, err, words)
            cell_bins = np.unravel_index(np.arange(total), sizes)   # each cell's bin in each column
            root = _Node(0, np.zeros(0, dtype=np.int64), 0, {}, cells=np.ones(total, bool), size=len(prep.ids))
        else:
            root = _Node(0, np.arange(len(prep.ids)), 0, {}, size=len(prep.ids))
        nodes = {0: root}
        heap: list[tuple[float, int]] = []

        def consider(node: _Node) -> None:
            if node.depth < params["max_depth"]:
                node.split = (_best_split_cells(columns, table, node.cells, min_speakers, criterion) if by_cells
                              else _best_split(columns, node.members, err, words, min_speakers, criterion))
                # The root split is always made (when admissible): the audit then always
                # shows the best attribute split, and the permutation test judges it.
                if node.split is not None and (node.id == 0 or node.split.score >= params["min_score"]):
                    heapq.heappush(heap, (-node.split.score, node.id))   # ties: earlier node first

        consider(nodes[0])
        leaves = 1
        while leaves < params["max_leaves"] and heap:
            _, nid = heapq.heappop(heap)
            node = nodes[nid]
            s = node.split
            col = columns[s.column]
            left = np.zeros(col.n_bins + 1, dtype=bool)     # bin -> goes left (unknown = last bin)
            left[s.left_bins] = True
            left[col.n_bins] = s.unknown_left
            kids = []
            if by_cells:
                go_left = left[cell_bins[s.column]]
                parts = [(node.members, node.cells & go_left), (node.members, node.cells & ~go_left)]
                sized = [int(round(table[_CN][m].sum())) for _, m in parts]
            else:
                go_left = left[col.bins[node.members]]
                parts = [(node.members[go_left], None), (node.members[~go_left], None)]
                sized = [len(m) for m, _ in parts]
            for side_left, (mem, cmask), size in zip((True, False), parts, sized):
                cond = dict(node.conditions)
                cond[col.name] = self._narrow(col, cond.get(col.name), s, side_left)
                kid = _Node(len(nodes), mem, node.depth + 1, cond, cells=cmask, size=size)
                nodes[kid.id] = kid
                kids.append(kid)
            node.children = (kids[0].id, kids[1].id)
            if splits is not None:
                splits.append(self._split_record(node, col, s, kids, criterion))
            leaves += 1
            for kid in kids:
                consider(kid)

        order, stack = [], [0]
        while stack:   # leaves depth-first, left side first: M01, M02, ...
            node = nodes[stack.pop()]
            if node.children is None:
                order.append(node)
            else:
                stack.extend(reversed(node.children))
        if by_cells and members:
            for node in order:
                node.members = np.flatnonzero(node.cells[prep.cells])
        return nodes, order, leaves >= params["max_leaves"]

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Grow the tree and return one cohort per leaf (see the module docstring)."""
        prep = self._prepare(speakers)
        params, columns, skipped, ids = prep.params, prep.columns, dict(prep.skipped), prep.ids
        not_audited = dict(prep.not_audited)
        min_speakers, criterion = params["min_speakers"], params["criterion"]
        err = speakers["errors"].to_numpy(dtype=float)[prep.rows]
        words = speakers["ref_words"].to_numpy(dtype=float)[prep.rows]
        params_out = {**params, "columns": [c.name for c in columns]}
        details: dict[str, Any] = {"columns": {c.name: c.kind for c in columns}, "columns_skipped": skipped,
                                   "criterion": criterion, "splits": [],
                                   "unknown_values": "follow the side with more known speakers; never a cohort"}
        if not len(ids):
            details["stop_reason"] = "no speaker with a known attribute value"
            return Discovery(assignment=pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object),
                             labels={}, not_audited=not_audited, params=params_out, details=details)

        nodes, order, full = self._grow(prep, err, words, details["splits"])
        details["stop_reason"] = "max_leaves" if full else "no leaf can be split (min_speakers/max_depth)"
        cohort = np.empty(len(ids), dtype=object)
        labels, cohort_details, leaf_of = {}, {}, {}
        by_name = {c.name: c for c in columns}
        for i, node in enumerate(order):
            cid = f"M{i + 1:02d}"
            cohort[node.members] = cid
            leaf_of[str(node.id)] = cid
            texts, unknown = [], {}
            for name, cond in node.conditions.items():
                col = by_name[name]
                n_unknown = int((col.bins[node.members] == col.n_bins).sum())
                if n_unknown:
                    unknown[name] = n_unknown
                texts.append(_condition_text(name, cond, n_unknown > 0))
            labels[cid] = " AND ".join(texts) if texts else "all speakers"
            cohort_details[cid] = {"conditions": texts, "depth": node.depth, "node": node.id,
                                   "unknown_values": unknown}
        definition = {"kind": "metadata_tree", "missing_tokens": list(MISSING_TOKENS),
                      "columns": {c.name: c.kind for c in columns},
                      "splits": [self._split_rule(nodes[r["node"]], by_name[r["column"]]) for r in details["splits"]],
                      "leaves": leaf_of}
        found = Discovery(assignment=pd.Series(cohort, index=pd.Index(ids, name="speaker_id"), dtype=object),
                          labels=labels, not_audited=not_audited, params=params_out, details=details,
                          cohort_details=cohort_details, definition=definition,
                          statistic=bottom_vs_rest_z(cohort, err, words, min_speakers), statistic_name=STATISTIC_NAME)
        found._prepared = (speakers, prep)   # for the hooks on this fit (_held_prepare): no digest again
        return found

    @staticmethod
    def _narrow(col: _Column, cond: tuple | None, s: _Split, left: bool) -> tuple:
        """A child's condition on ``col``: the parent's narrowed by one side of ``s``."""
        unknown_ok = (s.unknown_left == left) and (cond is None or cond[-1])
        if col.kind == _CATEGORICAL:
            values = [col.levels[i] for i in sorted(s.left_bins if left else s.right_bins)]
            return (_CATEGORICAL, values, unknown_ok)
        lo, hi = (None, None) if cond is None else (cond[1], cond[2])
        if left:
            hi = s.threshold if hi is None else min(hi, s.threshold)
        else:
            lo = s.threshold if lo is None else max(lo, s.threshold)
        return (_NUMERIC, lo, hi, unknown_ok)

    @staticmethod
    def _split_rule(node: _Node, col: _Column) -> dict:
        """What a split does (the part :meth:`assign` needs): column, cut, unknown routing."""
        s = node.split
        out = {"node": node.id, "column": col.name, "kind": col.kind,
               "unknown_to": "left" if s.unknown_left else "right",
               "left": node.children[0], "right": node.children[1]}
        if col.kind == _NUMERIC:
            out["threshold"] = s.threshold
        else:
            out["left_values"] = [col.levels[i] for i in sorted(s.left_bins)]
            out["right_values"] = [col.levels[i] for i in sorted(s.right_bins)]
        return out

    def _split_record(self, node: _Node, col: _Column, s: _Split, kids: list[_Node], criterion: str) -> dict:
        """One split for ``details["splits"]``: the rule plus its score, sizes and WERs."""
        return {**self._split_rule(node, col), "depth": node.depth, "criterion": criterion, "score": s.score,
                "wer_left": s.wer_left, "wer_right": s.wer_right, "left_speakers": kids[0].size,
                "right_speakers": kids[1].size}

    # ------------------------------------------------------------ the permutation null

    def permuted_statistics(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery,
                            takes: np.ndarray) -> dict | None:
        """The statistic and gap a re-fit gives on each permutation, without the re-fit's
        text work: the columns are coded once (they do not depend on the counts) and only
        the tree is grown again on each permutation's counts (the search must run again:
        the p-value corrects for it)."""
        e_all = speakers["errors"].to_numpy(dtype=float)
        w_all = speakers["ref_words"].to_numpy(dtype=float)
        b = len(takes)
        stats, pct, gap_abs = np.full(b, -np.inf), np.zeros(b), np.zeros(b)
        min_speakers = int(self.min_speakers)
        prep = self._held_prepare(speakers, discovery)
        if prep.cells is not None and len(prep.ids):
            # the tree grows on the joint cells: only their permuted sums are needed
            tables = np.stack([t.copy() for t in _permuted_cell_tables(prep, e_all, w_all, takes)])
            if prep.params["criterion"] in _BATCHED_CRITERIA:
                grown = _grow_batched(prep, tables)
            else:
                grown = [[node.cells for node in self._grow(prep, t[_CE], t[_CW], members=False, table=t)[1]]
                         for t in tables]
            for i, (table, leaves) in enumerate(zip(tables, grown)):
                by_leaf = _leaf_sums(table, leaves)
                stats[i] = _bottom_vs_rest_sums(by_leaf, min_speakers)
                wer, ranked = rank_sums(by_leaf[_CE], by_leaf[_CW], by_leaf[_CN], min_speakers)
                if len(ranked) >= 2:
                    g_pct, gap_abs[i] = gap(float(wer[ranked[0]]), float(wer[ranked[-1]]))
                    pct[i] = math.inf if g_pct is None else g_pct
            return {"statistics": stats, "gaps_pct": pct, "gaps_abs": gap_abs}
        # Only the audited speakers' permuted counts are gathered (one index gather, then
        # the counts), not every row's and then the audited ones again.
        sub = np.take(takes, prep.rows, axis=1)   # C order: rows contiguous
        for i, (codes, k, err, words, stat) in enumerate(self._trees(speakers, e_all[sub], w_all[sub], discovery,
                                                                      audited=True)):
            stats[i] = stat
            wer, ranked = rank_cohorts(codes, k, err, words, min_speakers)
            if len(ranked) >= 2:
                g_pct, gap_abs[i] = gap(float(wer[ranked[0]]), float(wer[ranked[-1]]))
                pct[i] = math.inf if g_pct is None else g_pct
        return {"statistics": stats, "gaps_pct": pct, "gaps_abs": gap_abs}

    def refit_batch(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery, errors: np.ndarray,
                    words: np.ndarray) -> dict | None:
        """Cohorts and statistic of re-fits on rows of counts (power simulations): the
        columns coded once, one tree per row."""
        prep = self._held_prepare(speakers, discovery)
        codes = np.zeros((len(errors), len(prep.ids)), dtype=np.int64)
        stats = np.full(len(errors), -np.inf)
        for i, (c, _, _, _, stat) in enumerate(self._trees(speakers, errors, words, discovery)):
            codes[i], stats[i] = c, stat
        return {"codes": codes, "statistics": stats}

    def _held_prepare(self, speakers: pd.DataFrame, discovery: Discovery) -> "_Prepared":
        """:meth:`_prepare`, kept on ``discovery`` for the next blocks of the same
        permutation null or power world (the same table: no digest of it per block)."""
        held = getattr(discovery, "_prepared", None)
        if held is not None and held[0] is speakers:
            return held[1]
        prep = self._prepare(speakers)
        discovery._prepared = (speakers, prep)
        return prep

    def _trees(self, speakers: pd.DataFrame, errors: np.ndarray, words: np.ndarray, discovery: Discovery,
               audited: bool = False):
        """Per row of ``errors``/``words`` (B x table rows; ``audited``: B x audited speakers
        in canonical order already): (cohort codes of the audited speakers in canonical
        order, as a factorize of the ids M01, M02, ... gives them; number of cohorts; their
        errors; their words; the own statistic) of a re-fit."""
        prep = self._held_prepare(speakers, discovery)
        min_speakers = int(self.min_speakers)
        rank: dict[int, np.ndarray] = {}
        for e_row, w_row in zip(errors, words):
            err, w = (e_row, w_row) if audited else (e_row[prep.rows], w_row[prep.rows])
            if not len(prep.ids):
                yield np.zeros(0, dtype=np.int64), 0, err, w, -np.inf   # a fit without a statistic
                continue
            table = None if prep.cells is None else self._cell_table(prep, err, w)
            _, order, _ = self._grow(prep, err, w, members=prep.cells is None, table=table)
            k = len(order)
            if k not in rank:   # code of leaf j: its id's place among the sorted ids M01, M02, ...
                rank[k] = np.argsort(np.argsort([f"M{j + 1:02d}" for j in range(k)], kind="stable"))
            if table is not None:
                # every leaf is a union of cells: codes by cell, the statistic from the
                # cells' sums gathered per leaf (the same integer sums as over speakers)
                leaf_of_cell = np.zeros(table.shape[1], dtype=np.int64)
                for j, node in enumerate(order):
                    leaf_of_cell[node.cells] = rank[k][j]
                codes = leaf_of_cell[prep.cells]
                by_leaf = np.stack([np.bincount(leaf_of_cell, weights=row, minlength=k) for row in table])
                yield codes, k, err, w, _bottom_vs_rest_sums(by_leaf, min_speakers)
                continue
            codes = np.empty(len(err), dtype=np.int64)
            for j, node in enumerate(order):
                codes[node.members] = rank[k][j]
            yield codes, k, err, w, _bottom_vs_rest_z(codes, k, err, w, min_speakers)

    @staticmethod
    def _cell_table(prep: "_Prepared", err: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Per joint cell, the sums of :func:`_group_sums` (the tree grows on them)."""
        return _group_sums(prep.cells, math.prod(c.n_bins + 1 for c in prep.columns), err, words)

    # ------------------------------------------------------------ applying a saved tree

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs | None = None) -> pd.Series:
        """Place speakers in the saved tree's leaves: cohort id per speaker_id.

        ``definition``: ``Discovery.definition`` of a fit.  Each speaker descends from the
        root: numeric ``x < threshold`` goes left; a categorical value in ``left_values``
        left, in ``right_values`` right; an unknown value or one that the node did not see
        at fit time goes to ``unknown_to``.  Speakers unknown in every column of the tree
        are left out (as at fit time), and so are speakers who reach a split on a column
        that ``speakers`` does not have.
        """
        ids = speakers["speaker_id"].to_numpy(dtype=object)
        keep, cohort = _walk(definition, _assign_columns(speakers, definition), np.arange(len(ids)))
        return pd.Series(cohort[keep], index=pd.Index(ids[keep], name="speaker_id"), dtype=object)

    def heldout_folds(self, speakers: pd.DataFrame, side: SideInputs | None, in_train: np.ndarray):
        """Per training mask (rows of ``in_train``, folds x table rows, bool), what
        ``fit(speakers[mask])`` and :meth:`assign` of its tree to the other rows give
        (:meth:`fairaudit.discover.base.Discoverer.heldout_folds`): (cohort code per row,
        -1 = not placed; the fit's leaf ids, sorted), or None for a fold whose fit fails.

        The text work (distinct values of every column, their unknown flags and numbers)
        is done once for the whole table, for the fits (:class:`_ColumnSource`) and for
        placing the held-out rows (:func:`_assign_columns`); each fold codes its training
        rows from it by the fit's own code (:meth:`_prepared_of`), grows its tree
        (:meth:`_grow`) and walks the held-out rows down it (:func:`_walk`)."""
        if "speaker_id" not in speakers.columns or self.missing_inputs(speakers, None):
            return None
        self._ensure_valid()
        params = self._params()
        sources = self._sources(speakers)
        ids = speakers["speaker_id"].to_numpy(dtype=object)
        canon = np.argsort(speakers["speaker_id"].to_numpy(dtype=str), kind="stable")
        e, w = (speakers[c].to_numpy(dtype=float) for c in ("errors", "ref_words"))
        placing = _assign_columns(speakers, {})     # the tokens of every definition fit() writes
        combos: dict = {}
        out = []
        for mask in np.asarray(in_train, dtype=bool):
            try:
                prep = self._prepared_of(params, sources, canon[mask[canon]], ids)
            except NotEnoughData:
                out.append(None)
                continue
            if not len(prep.ids):
                out.append(None)
                continue
            splits: list = []
            nodes, order, _ = self._grow(prep, e[prep.rows], w[prep.rows], splits)
            k = len(order)
            rank = np.argsort(np.argsort([f"M{j + 1:02d}" for j in range(k)], kind="stable"))
            codes = np.full(len(ids), -1, dtype=np.int64)
            leaves = {}
            for j, node in enumerate(order):
                codes[prep.rows[node.members]] = rank[j]
                leaves[str(node.id)] = int(rank[j])
            by_name = {c.name: c for c in prep.columns}
            definition = {"columns": {c.name: c.kind for c in prep.columns}, "leaves": leaves,
                          "splits": [self._split_rule(nodes[r["node"]], by_name[r["column"]]) for r in splits]}
            test = np.flatnonzero(~mask)
            # the walk depends on a row's values only: walk one row of each combination of
            # the tree's columns' values and hand its leaf to the rows that share it
            combo, first = _combinations(placing, definition["columns"], combos)
            keep_c, cohort_c = _walk(definition, placing, first)
            keep, cohort = keep_c[combo[test]], cohort_c[combo[test]]
            codes[test[keep]] = cohort[keep].astype(np.int64)
            out.append((codes, np.array(sorted(f"M{j + 1:02d}" for j in range(k)), dtype=object)))
        return out

    # ------------------------------------------------------------ optional hooks

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        """Plants on the intersection of two attribute values (e.g. every speaker with
        age_band=60+ AND accent=southern), the kind of cohort this discoverer exists to
        find; :class:`IntersectionPlanter`.  With fewer than two usable columns: the
        generic planter (one of its own cohorts)."""
        table = speakers.set_index("speaker_id").loc[discovery.assignment.index].reset_index()
        columns, _ = self._code(table, self._params())
        if len(columns) < 2:
            return CohortPlanter(discovery)
        return IntersectionPlanter(columns)

    def report_section(self, entry: dict, report: dict):
        """The tree as a table (one row per split, in the order they were made) and the
        facts a reader needs: columns searched and left out, criterion, how unknown values
        were routed, why growth stopped."""
        from fairaudit import numbers as num
        from fairaudit.reports.sections import Block, ReportSection, Table, plain
        from fairaudit.units import rate_name, report_unit

        rate = rate_name(report_unit(report))
        d = entry.get("details") or {}
        facts = [("columns searched", ", ".join(f"{c} ({k})" for c, k in (d.get("columns") or {}).items()) or "none")]
        if d.get("columns_skipped"):
            facts.append(("columns left out", "; ".join(f"{c}: {why}" for c, why in d["columns_skipped"].items())))
        facts += [("split criterion", plain(d.get("criterion", ""))),
                  ("unknown values", plain(d.get("unknown_values", ""))),
                  ("growth stopped", plain(d.get("stop_reason", "")))]
        sec = ReportSection(title=self.title, method=self.description, facts=facts)
        rows = []
        for sp in d.get("splits") or []:
            left, right = _side_texts(sp)
            rows.append([str(sp["node"]), str(sp["depth"]), {"text": left, "class": "mono text"},
                         f"{num.count(sp['left_speakers'])} · {num.wer(sp['wer_left'])} %",
                         {"text": right, "class": "mono text"},
                         f"{num.count(sp['right_speakers'])} · {num.wer(sp['wer_right'])} %",
                         sp["unknown_to"], f"{sp['score']:.2f}"])
        if rows:
            sec.blocks.append(Block(
                heading="The tree", note=(f"One row per split, in the order the tree made them (best first); "
                                          f"each side: speakers · {rate}. The leaves are the cohorts above."),
                table=Table(columns=["Node", "Depth", "Left side", f"Speakers · {rate}", "Right side",
                                     f"Speakers · {rate}", "Unknown values go", "Score"],
                            rows=rows, numeric=[True, True, False, True, False, True, False, True], css="candidates")))
        for c in entry.get("cohorts") or []:   # the audit keeps Discovery.cohort_details in each cohort's details
            cid, extra = c["id"], c.get("details") or {}
            unknown = extra.get("unknown_values") or {}
            if unknown:
                sec.cohort_notes[cid] = "unknown " + ", ".join(f"{c}: {num.count(n)}" for c, n in unknown.items())
            sec.cohort_definitions[cid] = _leaf_definition(extra)
        return sec


class _AssignColumns:
    """The columns :meth:`MetadataDiscoverer.assign` reads, each read once per kind: per
    column (codes of the rows into its distinct values, the last code = missing; their
    stripped text; their number (numeric columns); their unknown flag), None for a column
    the table lacks.  The text work runs on the distinct values only, not per speaker."""

    def __init__(self, speakers: pd.DataFrame, tokens: tuple):
        self.speakers, self.tokens = speakers, tokens
        self.cache: dict[tuple[str, str], tuple | None] = {}

    def __call__(self, name: str, kind: str):
        if (name, kind) not in self.cache:
            speakers = self.speakers
            if name not in speakers.columns:
                self.cache[name, kind] = None
            else:
                codes, uniques = pd.factorize(speakers[name], use_na_sentinel=True)
                codes = np.where(codes < 0, len(uniques), codes)
                text = pd.concat([pd.Series(uniques).astype("string"), pd.Series([pd.NA], dtype="string")],
                                 ignore_index=True).str.strip()
                unknown = (text.isna() | text.str.lower().isin(self.tokens)).to_numpy(dtype=bool)
                num = None
                if kind == _NUMERIC:
                    num = pd.to_numeric(text.where(~pd.Series(unknown, index=text.index)),
                                        errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                    unknown = unknown | np.isnan(num)
                self.cache[name, kind] = (codes, text.to_numpy(dtype=object, na_value=None), num, unknown)
        return self.cache[name, kind]


def _assign_columns(speakers: pd.DataFrame, definition: dict) -> _AssignColumns:
    """The columns of ``speakers`` as :meth:`assign` reads them for a saved tree
    (``definition``: its missing-value tokens)."""
    return _AssignColumns(speakers, tuple(definition.get("missing_tokens", MISSING_TOKENS)))


def _combinations(column: _AssignColumns, kinds: dict[str, str], kept: dict) -> tuple[np.ndarray, np.ndarray]:
    """(combination id per row, one row of each combination) of the values of the columns
    ``kinds`` (name -> kind) as ``column`` reads them; kept in ``kept`` per column set."""
    key = tuple(kinds.items())
    if key not in kept:
        parts = [c[0] for c in (column(name, kind) for name, kind in key) if c is not None]
        n = len(column.speakers)
        combo = np.zeros(n, dtype=np.int64)
        if parts:
            radix = [int(p.max()) + 1 if len(p) else 1 for p in parts]
            if math.prod(radix) < 2 ** 62:
                for p, r in zip(parts, radix):
                    combo = combo * r + p
            else:
                combo = np.unique(np.stack(parts), axis=1, return_inverse=True)[1].reshape(-1)
        _, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
        kept[key] = (inverse.reshape(-1), first)
    return kept[key]


def _walk(definition: dict, column: _AssignColumns, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(placed?, leaf id) of the table rows ``rows`` walked down a saved tree (see
    :meth:`MetadataDiscoverer.assign`); ``column``: the table's columns (:func:`_assign_columns`)."""
    node = np.zeros(len(rows), dtype=np.int64)
    placed = np.ones(len(rows), bool)
    known_any = np.zeros(len(rows), bool)
    codes_of: dict[str, np.ndarray] = {}     # each column's codes of these rows, gathered once
    for name, kind in definition["columns"].items():
        col = column(name, kind)
        if col is not None:
            codes_of[name] = col[0][rows]
            known_any |= ~col[3][codes_of[name]]
    for split in definition["splits"]:   # parents come before their children
        here = node == split["node"]
        if not here.any():
            continue
        col = column(split["column"], split["kind"])
        if col is None:
            placed &= ~here
            continue
        _, vals, num, unknown = col
        codes = codes_of[split["column"]] if split["column"] in codes_of else col[0][rows]
        if split["kind"] == _NUMERIC:
            side_known_left = num < float(split["threshold"])
            known = ~unknown
        else:
            # membership of the distinct values (text or None), a few: no Index per split
            left_set, right_set = set(split["left_values"]), set(split["right_values"])
            in_left = np.fromiter((v in left_set for v in vals), dtype=bool, count=len(vals))
            in_right = np.fromiter((v in right_set for v in vals), dtype=bool, count=len(vals))
            side_known_left = in_left
            known = ~unknown & (in_left | in_right)
        go_left = np.where(known, side_known_left, split["unknown_to"] == "left")[codes]
        node = np.where(here, np.where(go_left, split["left"], split["right"]), node)
    leaves = definition["leaves"]
    # the leaf id of each distinct final node (a few), not a dict lookup per speaker
    finals, inverse = np.unique(node, return_inverse=True)
    cohort = np.array([leaves.get(str(n)) for n in finals] + [None], dtype=object)[:-1][inverse.reshape(-1)]
    return placed & known_any & pd.notna(cohort), cohort


def _leaf_definition(extra: dict) -> list[str]:
    """A leaf of the tree in sentences (its drill-down): its conditions, where it sits, and
    the speakers whose unknown values were routed into it."""
    conds = extra.get("conditions") or []
    lines = [("Speakers with " + " and ".join(conds) + ".") if conds else "All speakers (the tree made no split)."]
    if extra.get("node") is not None and extra.get("depth") is not None:
        lines.append(f"Leaf {extra['node']} of the speaker-attribute tree, at depth {extra['depth']}.")
    unknown = extra.get("unknown_values") or {}
    if unknown:
        lines.append("Of its speakers, " + ", ".join(f"{n:,} have no known {c}" for c, n in unknown.items())
                     + ": unknown values follow the side of a split with more known speakers.")
    return lines


def _side_texts(split: dict) -> tuple[str, str]:
    """The two sides of a recorded split as conditions: 'age < 60' / 'age >= 60'."""
    col = split["column"]
    if split["kind"] == _NUMERIC:
        t = _num(split["threshold"])
        return f"{col} < {t}", f"{col} >= {t}"
    return (_condition_text(col, (_CATEGORICAL, split["left_values"], False), False),
            _condition_text(col, (_CATEGORICAL, split["right_values"], False), False))


class IntersectionPlanter(PooledPlanter):
    """Plants on every speaker with one value of one attribute AND one value of another
    (numeric attributes: one of their quantile bins), drawn at random among the
    intersections whose size is within a factor 1.5 of the target (the closest when none
    is).  Sizes of all intersections come from one ``np.bincount`` per column pair."""

    kind = "the intersection of two attribute values"
    empty = "no intersection of two attribute values"

    def __init__(self, columns: list[_Column]):
        super().__init__(len(columns[0].bins))
        self.columns = columns
        cells = []   # (column a, bin a, column b, bin b, size)
        for i in range(len(columns)):
            for j in range(i + 1, len(columns)):
                a, b = columns[i], columns[j]
                size_b = b.n_bins + 1
                sizes = np.bincount(a.bins * size_b + b.bins, minlength=(a.n_bins + 1) * size_b)
                for cell in np.flatnonzero(sizes):
                    va, vb = divmod(int(cell), size_b)
                    if va < a.n_bins and vb < b.n_bins:   # never an "unknown" cell
                        cells.append((i, va, j, vb, int(sizes[cell])))
        self.cells = cells
        self.sizes = np.array([c[4] for c in cells], dtype=float)

    def _text(self, k: int, v: int) -> str:
        col = self.columns[k]
        if col.kind == _CATEGORICAL:
            return f"{col.name}={col.levels[v]}"
        t = col.thresholds
        lo, hi = (t[v - 1] if v > 0 else None), (t[v] if v < len(t) else None)
        return _condition_text(col.name, (_NUMERIC, lo, hi, False), False)

    def members(self, k: int) -> tuple[np.ndarray, str]:
        i, va, j, vb, _ = self.cells[k]
        idx = np.flatnonzero((self.columns[i].bins == va) & (self.columns[j].bins == vb))
        return idx, f"the {len(idx)} speakers with {self._text(i, va)} AND {self._text(j, vb)}"
