"""Alignment as NIST sclite aligns: substitutions/deletions/insertions identical to sclite's.

sclite (SCTK, ``src/sclite/net_dp.c`` and ``word.c``) fills a dynamic-programming table
over (reference word a, hypothesis word b) with the word-to-word distance of
``wwd_WORD``: correct 0, substitution 4, insertion 3, deletion 3.  Each cell keeps one
back pointer, chosen in ``calculate_internal_cells`` as::

    if sub <= del and sub <= ins:  diagonal (correct or substitution)
    elif del < ins:                deletion  (reference word unmatched)
    else:                          insertion (hypothesis word unmatched)

so ties go to the diagonal first, then to the insertion.  The first row is all
insertions, the first column all deletions, and the alignment is the back-pointer path
from the last cell.  Because sclite minimises 4S + 3(D + I) rather than S + D + I, its
split differs from Levenshtein's (jiwer's) where a substitution and a deletion +
insertion pair compete, and in long, error-dense utterances even the total can differ.

Not emulated (fairaudit's normalisation removes the characters they need): sclite's
null word ``@``, alternations ``{a / b}``, optionally deletable ``(words)`` under ``-D``,
fragments under ``-F``, and its case folding: sclite compares words case-insensitively
unless run with ``-s``; fairaudit compares the normalised tokens exactly (the default
normalisation lower-cases).

:func:`sclite_ops` is the plain-Python reading of that code (display, tests);
:func:`sclite_counts` is the same recurrence vectorised over a batch of utterances with
numpy (one pass over reference positions; the insertion chain along a row is a running
minimum), used for scoring.
"""
from __future__ import annotations

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

SUB, INS, DEL = 4, 3, 3
ALIGNMENTS = ("jiwer", "sclite")

# Cells of the DP table per numpy batch (utterances x hypothesis length): large enough
# that numpy's per-call overhead is noise, small enough to stay in cache.
_BATCH_CELLS = 1 << 17


def check_alignment(alignment: str) -> str:
    """``alignment`` if it is one of :data:`ALIGNMENTS`, else a one-line user error."""
    if alignment not in ALIGNMENTS:
        from .errors import UserInputError

        raise UserInputError(f"unknown alignment {alignment!r}", hint=f"--align takes one of: {', '.join(ALIGNMENTS)}")
    return alignment


def sclite_ops(ref: list, hyp: list) -> list[tuple[str, int | None, int | None]]:
    """sclite's alignment of two token lists: ``(op, ref index, hyp index)`` in order,
    op in ``equal``/``sub``/``del``/``ins`` (None for the missing side)."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [[""] * (m + 1) for _ in range(n + 1)]
    for b in range(1, m + 1):
        cost[0][b], back[0][b] = cost[0][b - 1] + INS, "ins"
    for a in range(1, n + 1):
        cost[a][0], back[a][0] = cost[a - 1][0] + DEL, "del"
        for b in range(1, m + 1):
            sub = cost[a - 1][b - 1] + (0 if ref[a - 1] == hyp[b - 1] else SUB)
            dele = cost[a - 1][b] + DEL
            ins = cost[a][b - 1] + INS
            if sub <= dele and sub <= ins:
                cost[a][b], back[a][b] = sub, "diag"
            elif dele < ins:
                cost[a][b], back[a][b] = dele, "del"
            else:
                cost[a][b], back[a][b] = ins, "ins"
    out = []
    a, b = n, m
    while a > 0 or b > 0:
        step = back[a][b]
        if step == "diag":
            a, b = a - 1, b - 1
            out.append(("equal" if ref[a] == hyp[b] else "sub", a, b))
        elif step == "del":
            a -= 1
            out.append(("del", a, None))
        else:
            b -= 1
            out.append(("ins", None, b))
    return out[::-1]


def _padded(offsets: np.ndarray, codes: np.ndarray, rows: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Tokens of ``rows`` as a (rows, width) int64 matrix, right-padded with ``pad``."""
    lens = offsets[rows + 1] - offsets[rows]
    out = np.full((len(rows), max(width, 1)), pad, np.int64)
    total = int(lens.sum())
    if total:
        which = np.repeat(np.arange(len(rows)), lens)
        first = np.repeat(np.cumsum(lens) - lens, lens)
        pos = np.arange(total) - first
        src = np.repeat(offsets[rows], lens) + pos
        out[which, pos] = codes[src]
    return out


def _dp_batch(R: np.ndarray, H: np.ndarray, n: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sclite's (S, D) for a batch: R (B, N) reference and H (B, M) hypothesis token ids,
    padded with values that never match; n, m the true lengths.

    Row a of the table from row a-1: T[b] = min(diagonal, from above); the insertion
    chain along the row makes cost[a][b] = 3b + running-min(T[k] - 3k), exactly the
    sequential recurrence.  Back pointers then follow sclite's tie rule, and the (S, D)
    counts of the chosen path ride along: a cell reached by an insertion inherits the
    counts of the last non-insertion cell to its left.
    """
    B, M = H.shape
    cols = np.arange(M + 1, dtype=np.int64)
    ins_ramp = INS * cols
    cost = np.broadcast_to(ins_ramp, (B, M + 1)).copy()
    subs = np.zeros((B, M + 1), np.int64)
    dels = np.zeros((B, M + 1), np.int64)
    out_s = np.zeros(B, np.int64)
    out_d = np.zeros(B, np.int64)
    rows_idx = np.arange(B)
    pick = n == 0
    out_s[pick], out_d[pick] = subs[pick, m[pick]], dels[pick, m[pick]]
    T = np.empty((B, M + 1), np.int64)
    for a in range(1, int(n.max()) + 1 if len(n) else 1):
        miss = R[:, a - 1, None] != H                        # (B, M)
        diag = cost[:, :-1] + SUB * miss
        up = cost[:, 1:] + DEL
        T[:, 0] = DEL * a
        np.minimum(diag, up, out=T[:, 1:])
        new_cost = np.minimum.accumulate(T - ins_ramp, axis=1) + ins_ramp
        ins = new_cost[:, :-1] + INS
        is_diag = (diag <= up) & (diag <= ins)
        not_ins = np.empty((B, M + 1), bool)
        not_ins[:, 0] = True                                  # first column: deletions
        np.logical_or(is_diag, up < ins, out=not_ins[:, 1:])
        s_here = np.empty((B, M + 1), np.int64)
        d_here = np.empty((B, M + 1), np.int64)
        s_here[:, 0], d_here[:, 0] = 0, a
        s_here[:, 1:] = np.where(is_diag, subs[:, :-1] + miss, subs[:, 1:])
        d_here[:, 1:] = np.where(is_diag, dels[:, :-1], dels[:, 1:] + 1)
        # Insertion cells take the counts of the last non-insertion cell to their left.
        src = np.maximum.accumulate(np.where(not_ins, cols, 0), axis=1)
        subs = np.take_along_axis(s_here, src, axis=1)
        dels = np.take_along_axis(d_here, src, axis=1)
        cost = new_cost
        pick = n == a
        if pick.any():
            out_s[pick] = subs[rows_idx[pick], m[pick]]
            out_d[pick] = dels[rows_idx[pick], m[pick]]
    return out_s, out_d


def sclite_dp(ref_offsets: np.ndarray, ref_codes: np.ndarray, hyp_offsets: np.ndarray, hyp_codes: np.ndarray,
              rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """sclite's substitutions and deletions (counts) of ``rows`` (default: all), from
    flat integer token ids with per-utterance offsets; equal ids are equal tokens."""
    nref_all = np.diff(ref_offsets)
    nhyp_all = np.diff(hyp_offsets)
    rows = np.arange(len(nref_all)) if rows is None else np.asarray(rows, np.int64)
    subs = np.zeros(len(rows), np.int64)
    dels = np.zeros(len(rows), np.int64)
    if not len(rows):
        return subs, dels
    n, m = nref_all[rows], nhyp_all[rows]
    rc = ref_codes.astype(np.int64, copy=False)
    hc = hyp_codes.astype(np.int64, copy=False)
    # One batch per hypothesis length (no padding along b), reference lengths sorted
    # within it (little padding along a).
    order = np.lexsort((n, m))
    ms = m[order]
    bounds = np.flatnonzero(np.diff(ms)) + 1
    for group in np.split(order, bounds):
        width = int(m[group[0]])
        size = max(1, _BATCH_CELLS // (width + 1))
        for start in range(0, len(group), size):
            sel = group[start:start + size]
            r = rows[sel]
            R = _padded(ref_offsets, rc, r, int(n[sel].max()), -1)
            H = _padded(hyp_offsets, hc, r, width, -2)[:, :width]
            subs[sel], dels[sel] = _dp_batch(R, H, n[sel], m[sel])
    return subs, dels


def _settled_by_cost(cost: np.ndarray, slack: np.ndarray, delta: np.ndarray, nref: np.ndarray, nhyp: np.ndarray):
    """(S, D, settled) from sclite's optimal cost alone, where that leaves one split.

    Every alignment has D = k + max(delta, 0) and I = k + max(-delta, 0) for some k >= 0,
    so cost = 4S + 3|delta| + 6k, and S + 2k >= slack (Levenshtein's minimum).  When only
    one (S, k) fits those and the lengths, every optimal alignment has that split, so the
    tie rule cannot matter and no DP is needed (two substitutions, one substitution plus a
    deletion/insertion pair, ...).
    """
    rest = cost - 3 * np.abs(delta)
    found = np.zeros(len(cost), np.int64)
    s_out = np.zeros(len(cost), np.int64)
    k_out = np.zeros(len(cost), np.int64)
    pos, neg = np.maximum(delta, 0), np.maximum(-delta, 0)
    for k in range(int(rest.max()) // 6 + 1 if len(rest) else 0):
        left = rest - 6 * k
        s = left // 4
        ok = (left >= 0) & (left % 4 == 0) & (s + 2 * k >= slack) & (s + k + pos <= nref) & (s + k + neg <= nhyp)
        found += ok
        s_out[ok], k_out[ok] = s[ok], k
    return s_out, k_out + pos, found == 1


def sclite_counts(ref_offsets: np.ndarray, ref_codes: np.ndarray, hyp_offsets: np.ndarray, hyp_codes: np.ndarray,
                  refs: list[str] | None = None, hyps: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """sclite's substitutions and deletions per utterance (counts; insertions follow).

    ``refs``/``hyps``: the utterances as strings of one character per token (as
    :mod:`fairaudit.scoring` builds them), when available.  Then two batched rapidfuzz
    calls settle most utterances exactly, and the DP runs on the rest:

    1. Levenshtein distance: with slack = distance - |n - m| of 0 or 1 the only
       alignments of lowest sclite cost have exactly ``slack`` substitutions (a
       substitution, 4, is cheaper than a deletion + insertion, 6), so sclite's split is
       forced;
    2. the weighted distance with sclite's costs (insertion 3, deletion 3,
       substitution 4) settles the rows where that cost admits one split
       (:func:`_settled_by_cost`).
    """
    nref, nhyp = np.diff(ref_offsets), np.diff(hyp_offsets)
    delta = nref - nhyp
    if refs is None or hyps is None:
        return sclite_dp(ref_offsets, ref_codes, hyp_offsets, hyp_codes)
    dist = process.cpdist(refs, hyps, scorer=Levenshtein.distance, dtype=np.int64, workers=1)
    slack = dist - np.abs(delta)
    subs = slack.copy()
    dels = (dist - subs + delta) // 2
    rows = np.flatnonzero(slack >= 2)
    if len(rows):
        cost = process.cpdist([refs[i] for i in rows.tolist()], [hyps[i] for i in rows.tolist()],
                              scorer=Levenshtein.distance, scorer_kwargs={"weights": (INS, DEL, SUB)},
                              dtype=np.int64, workers=1)
        s, d, settled = _settled_by_cost(cost, slack[rows], delta[rows], nref[rows], nhyp[rows])
        subs[rows[settled]], dels[rows[settled]] = s[settled], d[settled]
        rows = rows[~settled]
    if len(rows):
        subs[rows], dels[rows] = sclite_dp(ref_offsets, ref_codes, hyp_offsets, hyp_codes, rows)
    return subs, dels
