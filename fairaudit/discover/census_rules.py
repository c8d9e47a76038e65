"""The census-rule search of the geodemographic discoverer: literals on a zip's census
row, every conjunction's sums by matrix products, the ranking and the parsimonious choice
(see :mod:`.geodemographic` for the method)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PERCENTILES = (25, 50, 75)
# Cap on prefixes x zips materialised at once (booleans/floats), to bound memory.
_CHUNK_CELLS = 4_000_000


@dataclass
class Literal:
    column: str
    op: str        # ">", "<=", "<", ">="
    threshold: float
    share: bool

    @property
    def text(self) -> str:
        value = "50%" if self.share else _fmt_number(self.threshold)
        return f"{self.column} {self.op} {value}"

    def as_dict(self) -> dict:
        return {"column": self.column, "op": self.op, "threshold": self.threshold, "share": self.share}

    def holds(self, v: np.ndarray) -> np.ndarray:
        """The literal on census values ``v`` (a missing value makes it false)."""
        with np.errstate(invalid="ignore"):
            return {">": v > self.threshold, "<=": v <= self.threshold, "<": v < self.threshold,
                    ">=": v >= self.threshold}[self.op] & ~np.isnan(v)


def round_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant figures (a readable threshold)."""
    return float(f"{x:.{digits}g}") if np.isfinite(x) and x != 0 else float(x)


def _fmt_number(x: float) -> str:
    """52000.0 -> '52,000'; 0.0345 -> '0.0345'; thousands separators, no trailing zeros."""
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.10f}".rstrip("0").rstrip(".")


def candidate_literals(columns: list[str], share_scales: dict[str, str], values: np.ndarray, n_z: np.ndarray,
                       min_speakers: int) -> tuple[list[Literal], np.ndarray, dict[str, list]]:
    """Candidate literals, their zips x literals truth matrix, and the thresholds used."""
    literals: list[Literal] = []
    cols: list[np.ndarray] = []
    thresholds: dict[str, list] = {}
    counts = n_z.astype(np.int64)
    for j, col in enumerate(columns):
        v = values[:, j]
        with np.errstate(invalid="ignore"):
            if col in share_scales:
                cands = [(Literal(col, ">", 0.5, True), v > 0.5), (Literal(col, "<=", 0.5, True), v <= 0.5)]
            else:
                # Percentiles of the audited speakers' values (each zip counted per speaker).
                per_speaker = np.repeat(v, counts)
                per_speaker = per_speaker[~np.isnan(per_speaker)]
                if not len(per_speaker):
                    thresholds[col] = [None] * len(PERCENTILES)
                    continue
                ts = [round_sig(float(t)) for t in np.percentile(per_speaker, PERCENTILES)]
                thresholds[col] = ts
                cands = []
                for t in sorted(set(ts)):
                    cands += [(Literal(col, "<", t, False), v < t), (Literal(col, ">=", t, False), v >= t)]
        for lit, mask in cands:
            literals.append(lit)
            cols.append(mask)
    masks = np.column_stack(cols) if cols else np.zeros((len(n_z), 0), dtype=bool)
    # A literal true for too few speakers can be in no valid rule (AND only shrinks);
    # one true for everybody adds nothing to a conjunction.
    n_in = n_z @ masks if masks.shape[1] else np.zeros(0)
    keep = (n_in >= min_speakers) & (n_in < n_z.sum())
    return [l for l, k in zip(literals, keep) if k], masks[:, keep], thresholds



def search(masks: np.ndarray, lit_col: list[int], n_z: np.ndarray, e_z: np.ndarray, w_z: np.ndarray,
            min_speakers: int, max_depth: int) -> dict:
    """Sums (speakers, errors, words) of every rule of up to ``max_depth`` literals on distinct columns."""
    n_lit = masks.shape[1]
    lit_col_a = np.asarray(lit_col, dtype=np.int64)
    A = masks.astype(float)
    # One product gives all three sums: columns [speakers | errors | words] per literal.
    weighted = np.hstack([A * n_z[:, None], A * e_z[:, None], A * w_z[:, None]])
    prefixes = np.zeros((1, 0), dtype=np.int64)           # literal ids of each prefix
    prefix_masks = np.ones((len(n_z), 1), dtype=bool)     # zips x prefixes
    out_lits, out_n, out_e, out_w = [], [], [], []
    for depth in range(1, max_depth + 1):
        if not len(prefixes) or not n_lit:
            break
        # Extensions: a literal after the prefix's last one (each set once), on a new column.
        allowed = np.ones((len(prefixes), n_lit), dtype=bool)
        if depth > 1:
            allowed &= np.arange(n_lit)[None, :] > prefixes[:, -1][:, None]
            for k in range(prefixes.shape[1]):
                allowed &= lit_col_a[None, :] != lit_col_a[prefixes[:, k]][:, None]
        sums = np.empty((len(prefixes), 3 * n_lit))
        step = max(1, _CHUNK_CELLS // max(len(n_z), 1))
        for s in range(0, len(prefixes), step):
            sums[s:s + step] = prefix_masks[:, s:s + step].T.astype(float) @ weighted
        pi, li = np.nonzero(allowed)
        n_in = sums[pi, li]
        out_lits.append(np.column_stack([prefixes[pi], li,
                                         np.full((len(pi), max_depth - depth), -1, dtype=np.int64)]))
        out_n.append(n_in)
        out_e.append(sums[pi, n_lit + li])
        out_w.append(sums[pi, 2 * n_lit + li])
        if depth < max_depth:
            grow = n_in >= min_speakers
            pi, li = pi[grow], li[grow]
            prefixes = np.column_stack([prefixes[pi], li])
            prefix_masks = prefix_masks[:, pi] & masks[:, li]
    if out_lits:
        lits = np.vstack(out_lits)
        n_in, e_in, w_in = (np.concatenate(x) for x in (out_n, out_e, out_w))
    else:
        lits = np.zeros((0, max_depth), dtype=np.int64)
        n_in = e_in = w_in = np.zeros(0)
    n_rest = n_z.sum() - n_in
    out = _two_sides(n_in, n_rest, e_in, w_in, e_z.sum() - e_in, w_z.sum() - w_in, min_speakers)
    return {"lits": lits, "n_in": n_in, "n_rest": n_rest, **out, "valid": int(out["valid_mask"].sum()),
            "evaluated": int(len(n_in))}


def _two_sides(n_in, n_rest, e_in, w_in, e_rest, w_rest, min_speakers: int) -> dict:
    """Both sides' WERs (ratios), the relative gap (%, NaN when the lower WER is 0), the
    absolute gap and validity of rules from their sums (arrays of any matching shape)."""
    valid = (n_in >= min_speakers) & (n_rest >= min_speakers) & (w_in > 0) & (w_rest > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        wer_in = np.where(w_in > 0, e_in / np.where(w_in > 0, w_in, 1), np.nan)
        wer_rest = np.where(w_rest > 0, e_rest / np.where(w_rest > 0, w_rest, 1), np.nan)
        hi, lo = np.maximum(wer_in, wer_rest), np.minimum(wer_in, wer_rest)
        finite = lo > 0
        gap = np.where(finite, 100.0 * (hi - lo) / np.where(finite, lo, 1), np.nan)
    return {"wer_in": wer_in, "wer_rest": wer_rest, "gap": gap, "abs": hi - lo, "finite": finite,
            "valid_mask": valid}


def ordered(result: dict, literals: list[Literal], idx: np.ndarray, top: int) -> list[dict]:
    """The best ``top`` rules among candidates ``idx`` (plus any tied with the last), best first.

    Order: finite relative gap first, then larger gap (or absolute difference when the gap
    is undefined), fewer literals, matching side has the higher WER, rule text.
    """
    if not len(idx) or top < 1:
        return []
    finite = result["finite"][idx]
    value = np.where(finite, result["gap"][idx], result["abs"][idx])
    depth = (result["lits"][idx] >= 0).sum(axis=1)
    in_hi = result["wer_in"][idx] > result["wer_rest"][idx]
    order = np.lexsort((~in_hi, depth, -value, ~finite))
    key = np.column_stack([~finite, -value, depth, ~in_hi])[order]
    end = min(top, len(order))
    # Extend over ties with the last kept rule so the text tie-break sees all of them.
    while end < len(order) and np.array_equal(key[end], key[end - 1]):
        end += 1
    rows = []
    for pos in range(end):
        i = idx[order[pos]]
        lit_ids = [int(l) for l in result["lits"][i] if l >= 0]
        gap = float(result["gap"][i])
        rows.append({
            "rule": " AND ".join(literals[l].text for l in lit_ids),
            "speakers_in_rule": int(round(result["n_in"][i])),
            "speakers_rest": int(round(result["n_rest"][i])),
            "wer_in_rule": float(result["wer_in"][i]),
            "wer_rest": float(result["wer_rest"][i]),
            "gap_pct": gap if math.isfinite(gap) else None,
            "gap_abs": float(result["abs"][i]),
            "literal_ids": lit_ids,
            "_key": tuple(key[pos]),
        })
    rows.sort(key=lambda r: (r["_key"], r["rule"]))
    for r in rows:
        r["_score"] = (not bool(r["_key"][0]), -float(r["_key"][1]))  # (finite gap?, value): larger is better
        del r["_key"]
    return rows[:top]


def choose(result: dict, literals: list[Literal], max_depth: int, min_gain_pct: float) -> tuple[dict | None, dict]:
    """The chosen rule and the best gap (%) per depth.

    Start from the best single literal; the best rule of each next depth replaces the
    current choice only if its gap is more than ``min_gain_pct`` % (relative) larger (or if
    it has a finite gap and the current choice has none).
    """
    valid = result["valid_mask"]
    depth = (result["lits"] >= 0).sum(axis=1)
    chosen, best_by_depth = None, {}
    for d in range(1, max_depth + 1):
        best = ordered(result, literals, np.flatnonzero(valid & (depth == d)), 1)
        if not best:
            continue
        best = best[0]
        best_by_depth[str(d)] = best["gap_pct"]
        if chosen is None:
            chosen = best
            continue
        (fin_c, val_c), (fin_b, val_b) = chosen["_score"], best["_score"]
        if (fin_b and not fin_c) or (fin_b == fin_c and val_b > val_c * (1 + min_gain_pct / 100.0)):
            chosen = best
    return chosen, best_by_depth


def memberships(masks: np.ndarray, lits: np.ndarray) -> np.ndarray:
    """(zips x rules) truth matrix of rules given as rows of literal ids (-1 = none)."""
    out = np.ones((masks.shape[0], len(lits)), dtype=bool)
    for k in range(lits.shape[1] if lits.ndim == 2 else 0):
        li = lits[:, k]
        used = li >= 0
        out[:, used] &= masks[:, li[used]]
    return out


def rule_texts(literals: list[Literal], lits: np.ndarray) -> list[str]:
    """The text of each rule (literal ids, -1 = none), as :func:`ordered` writes it."""
    return [" AND ".join(literals[int(l)].text for l in row if l >= 0) for row in lits]


def choose_batched(n_in: np.ndarray, n_tot: float, e_in: np.ndarray, w_in: np.ndarray, e_tot: np.ndarray,
                   w_tot: np.ndarray, lits: np.ndarray, text_rank: np.ndarray, min_speakers: int, max_depth: int,
                   min_gain_pct: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`search`'s ranking and :func:`choose` for B sets of sums at once (the permutation null).

    ``n_in`` (rules,): speakers in each rule, ``n_tot`` all speakers (the same in every
    set); ``e_in``/``w_in`` (B, rules): errors and words in each rule; ``e_tot``/``w_tot``
    (B,): totals; ``lits`` (rules, max_depth): literal ids of each rule (-1 = none);
    ``text_rank`` (rules,): rank of each rule's text (the last tie-break of
    :func:`ordered`).  Returns (chosen rule per set, -1 when no rule is valid; WER in the
    rule; WER of the rest), ratios, computed with :func:`search`'s arithmetic so every
    value equals a one-set search and choice on the same sums.
    """
    r = _two_sides(n_in, n_tot - n_in, e_in, w_in, e_tot[:, None] - e_in, w_tot[:, None] - w_in, min_speakers)
    valid, wer_in, wer_rest, finite = r["valid_mask"], r["wer_in"], r["wer_rest"], r["finite"]
    value = np.where(finite, r["gap"], r["abs"])
    in_hi = wer_in > wer_rest
    depth = (lits >= 0).sum(axis=1)
    rows = np.arange(len(e_in))
    chosen = np.full(len(e_in), -1)
    fin_c, val_c = np.zeros(len(e_in), dtype=bool), np.zeros(len(e_in))
    for d in range(1, max_depth + 1):
        best = _best_rule(valid & (depth == d)[None, :], finite, value, in_hi, text_rank)
        has = best >= 0
        pick = np.where(has, best, 0)
        fin_b, val_b = finite[rows, pick], value[rows, pick]
        first = has & (chosen < 0)
        better = has & (chosen >= 0) & ((fin_b & ~fin_c) | ((fin_b == fin_c) & (val_b > val_c * (1 + min_gain_pct / 100.0))))
        take = first | better
        chosen = np.where(take, best, chosen)
        fin_c, val_c = np.where(take, fin_b, fin_c), np.where(take, val_b, val_c)
    pick = np.where(chosen >= 0, chosen, 0)
    return chosen, wer_in[rows, pick], wer_rest[rows, pick]


def _best_rule(mask: np.ndarray, finite: np.ndarray, value: np.ndarray, in_hi: np.ndarray,
               text_rank: np.ndarray) -> np.ndarray:
    """Per row, :func:`ordered`'s first rule among ``mask``: a finite gap first, then the
    larger gap (absolute difference when undefined), then the rule whose matching side has
    the higher WER, then the rule text; -1 when the row has none."""
    has = mask.any(axis=1)
    fin = mask & finite
    m = np.where(fin.any(axis=1)[:, None], fin, mask)
    v = np.where(m, value, -np.inf)
    m &= v == v.max(axis=1)[:, None]
    hi = m & in_hi
    m = np.where(hi.any(axis=1)[:, None], hi, m)
    rank = np.where(m, text_rank[None, :], len(text_rank))
    return np.where(has, rank.argmin(axis=1), -1)
