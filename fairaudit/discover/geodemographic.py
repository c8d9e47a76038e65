"""Geodemographic cohorts (Dheram et al., Interspeech 2022): the worst census-defined split.

Each speaker's zip code joins a census table (:func:`fairaudit.io.census.read_census`).
Candidate predicates ("literals") on a zip's census row:

* share columns (fractions of the zip's population): ``c > 50%`` ("majority-X zip") and
  its negation ``c <= 50%``;
* other numeric columns (e.g. ``median_income``): ``c < t`` and ``c >= t`` for ``t`` at
  the 25th, 50th and 75th percentiles of the audited speakers' values, rounded to 3
  significant figures so the rule reads well (52,347 -> 52,300).

A candidate rule is one literal or a conjunction (AND) of up to ``max_depth`` literals on
different columns; it splits the audited speakers into those matching it and the rest,
and both sides need ``min_speakers`` speakers.  A census value that is missing makes every
literal on that column false for the zip.

Ranking of rules: by the relative WER gap between the two sides,
100 x (WER_hi - WER_lo) / WER_lo (%), largest first.  When WER_lo = 0 the relative gap is
undefined: such rules rank after every rule with a finite gap (a side without a single
error is almost always a small-sample accident, and an infinite gap would otherwise always
win), ordered among themselves by the absolute difference WER_hi - WER_lo.  Remaining ties
(e.g. a literal and its negation, or a conjunction whose extra literal excludes nobody)
go to fewer literals, then to the rule whose matching side has the higher WER (so the
rule describes the bottom cohort), then to the rule text.

Choice of rule (parsimony): the best single literal is kept unless the best rule of two
literals beats its gap by more than ``min_gain_pct`` % (relative; default 10 %), and so on
up to ``max_depth``.  Without this margin a conjunction that drops a few speakers of the
true group by chance (``pct_black > 50% AND median_income < 86,300`` instead of
``pct_black > 50%``) wins by noise of about one percent; ``min_gain_pct=0`` gives the
plain largest gap.  ``details["candidates"]`` stays ranked by gap alone, so the chosen
rule need not be its first entry; ``details["best_gap_pct_by_depth"]`` shows why.

Cohort "A" = speakers matching the chosen rule, "B" = the rest (labelled ``NOT (...)``).

Speed: literals depend only on the zip, so speakers are first summed per zip (errors,
reference words, speakers); the sums of every conjunction come from boolean matrix
products (zips x prefixes)^T @ (zips x literals), one per depth, so a fit costs
O(speakers + zips x literals^depth) and never loops over speakers.  Prefixes matching
fewer than ``min_speakers`` speakers are not extended (a conjunction only shrinks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UserInputError
from ..io.census import normalize_zip, prepare_census
from .base import Discoverer, Discovery, SideInputs, register
from .params import Interval
from .planting import Planter, pool_near

MAX_DEPTH_LIMIT = 3  # candidates grow as literals**depth, and deep rules overfit small cells
#: most candidate rules the report lists
MAX_CANDIDATES_LISTED = 25
PERCENTILES = (25, 50, 75)
REASON_BAD_ZIP = "missing or invalid zip"
REASON_NOT_IN_CENSUS = "zip not in census table"
# Cap on prefixes x zips materialised at once (booleans/floats), to bound memory.
_CHUNK_CELLS = 4_000_000


@dataclass
class _Literal:
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


def _round_sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant figures (a readable threshold)."""
    return float(f"{x:.{digits}g}") if np.isfinite(x) and x != 0 else float(x)


def _fmt_number(x: float) -> str:
    """52000.0 -> '52,000'; 0.0345 -> '0.0345'; thousands separators, no trailing zeros."""
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.10f}".rstrip("0").rstrip(".")


def _census_frame(side: SideInputs) -> pd.DataFrame:
    census = side.census
    if "share_columns" in census.attrs and census.index.name == "zip":
        return census  # already through read_census/prepare_census
    return prepare_census(census, side.census_path)


def _numeric_columns(census: pd.DataFrame) -> list[str]:
    return [c for c in census.columns if pd.api.types.is_numeric_dtype(census[c].dtype)
            and not pd.api.types.is_bool_dtype(census[c].dtype)]


def _census_rows(zips: pd.Series, census: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(zip valid?, census row or -1) per speaker; each distinct zip is normalised once."""
    codes, uniques = pd.factorize(zips, use_na_sentinel=True)
    norm = normalize_zip(pd.Series(np.asarray(uniques, dtype=object)))
    valid_u = norm.notna().to_numpy()
    row_u = census.index.get_indexer(norm.to_numpy(dtype=object, na_value=""))
    ok_zip = (codes >= 0)
    ok_zip[ok_zip] = valid_u[codes[ok_zip]]
    row = np.full(len(codes), -1, dtype=np.int64)
    row[ok_zip] = row_u[codes[ok_zip]]
    return ok_zip, row


@register
class GeodemographicDiscoverer(Discoverer):
    """Binary partition of speakers by a census rule on their zip code (see module docstring).

    Parameters
    ----------
    max_depth : int, default 2
        Most literals AND-ed in one rule (1-3).
    max_candidates_shown : int, default 20
        How many of the best rules the report lists (details["candidates"]).
    min_gain_pct : float, default 10.0
        A rule with more literals is chosen only if its gap is this much (%, relative) larger than the best
        rule with fewer literals (0 = pure largest gap).
    min_speakers : int, default 20
        Minimum speakers (count) on each side of the partition.
    seed : int, default 0
        Recorded only; the search is exhaustive and deterministic.
    """

    name = "geodemographic"
    title = "Geodemographic partition (census)"
    description = ("Speakers' zip codes join the census table; zip codes are split by majority-attribute rules "
                   "(and conjunctions), keeping the rule with the largest WER discrepancy (Dheram et al. 2022).")
    default = True
    order = 20
    side_inputs = ("census",)
    non_attribute_columns = ("zip",)
    flag_aliases = {"max_depth": ("--max-depth",)}
    _parameter_constraints = {"max_depth": [Interval(int, 1, MAX_DEPTH_LIMIT)],
                              "max_candidates_shown": [Interval(int, 0, None)],
                              "min_gain_pct": [Interval(float, 0, math.inf, closed="left")]}

    def __init__(self, max_depth: int = 2, max_candidates_shown: int = 20, min_gain_pct: float = 10.0, **common):
        super().__init__(**common)
        self.max_depth = max_depth
        self.max_candidates_shown = max_candidates_shown
        self.min_gain_pct = min_gain_pct

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        if "zip" not in speakers.columns:
            return "no zip column in the speaker table (pass --speakers FILE with a zip column)"
        if side is None or side.census is None:
            return "no census table (pass --census FILE with a zip column and demographic columns)"
        return None

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        reason = self.missing_inputs(speakers, side)
        if reason:
            raise UserInputError(f"geodemographic cohorts cannot be found: {reason}")
        census = _census_frame(side)
        share_scales = dict(census.attrs.get("share_columns", {}))
        columns = _numeric_columns(census)
        values_all = census[columns].to_numpy(dtype=float, na_value=np.nan)

        ids = (speakers["speaker_id"] if "speaker_id" in speakers.columns else speakers.index.to_series()).to_numpy()
        ok_zip, row = _census_rows(speakers["zip"], census)
        audited = row >= 0
        not_audited = {}
        if (~ok_zip).sum():
            not_audited[REASON_BAD_ZIP] = int((~ok_zip).sum())
        if (ok_zip & ~audited).sum():
            not_audited[REASON_NOT_IN_CENSUS] = int((ok_zip & ~audited).sum())

        params = {"min_speakers": int(self.min_speakers), "seed": int(self.seed),
                  "max_depth": int(self.max_depth), "max_candidates_shown": int(self.max_candidates_shown),
                  "min_gain_pct": float(self.min_gain_pct)}
        errors = speakers["errors"].to_numpy(dtype=float)[audited]
        words = speakers["ref_words"].to_numpy(dtype=float)[audited]
        aud_ids = ids[audited]
        row = row[audited]

        # Per-zip sums: every literal is constant within a zip.
        present = np.bincount(row, minlength=len(census)) > 0
        zip_rows = np.flatnonzero(present)
        remap = np.full(len(census), -1, dtype=np.int64)
        remap[zip_rows] = np.arange(len(zip_rows))
        zip_of = remap[row]
        n_z = np.bincount(zip_of, minlength=len(zip_rows)).astype(float)
        e_z = np.bincount(zip_of, weights=errors, minlength=len(zip_rows))
        w_z = np.bincount(zip_of, weights=words, minlength=len(zip_rows))
        values = values_all[zip_rows]

        literals, masks, thresholds = self._literals(columns, share_scales, values, n_z)
        result = _search(masks, [columns.index(l.column) for l in literals], n_z, e_z, w_z,
                         self.min_speakers, self.max_depth)
        details = {"rule": None, "candidates": [], "candidates_evaluated": result["evaluated"],
                   "candidates_valid": result["valid"], "share_columns": share_scales,
                   "thresholds": thresholds}
        if not len(aud_ids):
            return Discovery(pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object),
                             {}, not_audited, params, details, {})

        chosen, best_by_depth = _choose(result, literals, self.max_depth, float(self.min_gain_pct))
        shown = _ordered(result, literals, np.flatnonzero(result["valid_mask"]), self.max_candidates_shown)
        details["candidates"] = [{k: v for k, v in c.items() if not k.startswith("_") and k != "literal_ids"}
                                 for c in shown]
        details["best_gap_pct_by_depth"] = best_by_depth
        if chosen is None:
            label = f"all audited speakers (no census rule leaves >= {self.min_speakers} speakers on both sides)"
            assignment = pd.Series("all", index=pd.Index(aud_ids, name="speaker_id"), dtype=object)
            details["note"] = label
            return Discovery(assignment, {"all": label}, not_audited, params, details, {"all": {"rule": None}},
                             definition={"kind": "census rule", "literals": [], "in_rule": "all", "rest": "all"})

        in_rule = np.ones(len(zip_rows), dtype=bool)
        for li in chosen["literal_ids"]:
            in_rule &= masks[:, li]
        assignment = pd.Series(np.where(in_rule[zip_of], "A", "B"), index=pd.Index(aud_ids, name="speaker_id"),
                               dtype=object)
        rule = chosen["rule"]
        labels = {"A": rule, "B": f"NOT ({rule})"}
        details["rule"] = rule
        definition = {"kind": "census rule", "rule": rule, "in_rule": "A", "rest": "B",
                      "literals": [literals[li].as_dict() for li in chosen["literal_ids"]]}
        return Discovery(assignment, labels, not_audited, params, details,
                         {"A": {"rule": labels["A"]}, "B": {"rule": labels["B"]}}, definition=definition)

    # ------------------------------------------------------------ hooks

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """A or B for every speaker whose zip is in the census table, by the saved rule."""
        empty = pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        if "zip" not in speakers.columns or side is None or side.census is None:
            return empty
        census = _census_frame(side)
        _, row = _census_rows(speakers["zip"], census)
        ok = row >= 0
        inside = np.ones(int(ok.sum()), dtype=bool)
        for lit in definition.get("literals", []):
            if lit["column"] not in census.columns:
                return empty   # the rule names a column this census table does not have
            v = census[lit["column"]].to_numpy(dtype=float, na_value=np.nan)[row[ok]]
            inside &= _Literal(lit["column"], lit["op"], float(lit["threshold"]), bool(lit["share"])).holds(v)
        cohort = np.where(inside, definition.get("in_rule", "A"), definition.get("rest", "B"))
        ids = speakers["speaker_id"].to_numpy(dtype=object)[ok]
        return pd.Series(cohort.astype(object), index=pd.Index(ids, name="speaker_id"), dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        return RulePlanter(self, speakers, side, discovery)

    def report_section(self, entry: dict, report: dict):
        """The chosen rule in words, and the best candidate rules with their gaps."""
        from fairaudit import numbers as num
        from fairaudit.reports.sections import Block, ReportSection, Table, plain

        sec = ReportSection(title=self.title, method=self.description)
        d = entry.get("details") or {}
        if not d:
            return sec
        by_id = {c["id"]: c for c in entry.get("cohorts", [])}
        rule = d.get("rule")
        if rule:
            spans = [("Speakers whose zip code matches ", ""), (rule, "bmono")]
            inside, rest = by_id.get("A"), by_id.get("B")
            if inside:
                spans.append((f": {num.count(inside['speakers'])} speakers, WER {num.wer(inside['wer'])} %", ""))
            if rest:
                spans.append((f"; the rest: {num.count(rest['speakers'])} speakers, WER {num.wer(rest['wer'])} %", ""))
            spans.append((".", ""))
            sec.intro.append(Block(heading="Chosen rule", spans=spans))
        cands = sorted(d.get("candidates") or [],
                       key=lambda c: -(c.get("gap_pct") if c.get("gap_pct") is not None else -math.inf))
        cands = cands[:MAX_CANDIDATES_LISTED]
        rows = [[str(i + 1), {"text": c["rule"], "tag": "chosen" if c["rule"] == rule else "", "class": "mono text"},
                 num.count(c.get("speakers_in_rule")), num.count(c.get("speakers_rest")),
                 num.wer(c.get("wer_in_rule")), num.wer(c.get("wer_rest")), num.pct(c.get("gap_pct"))]
                for i, c in enumerate(cands)]
        evaluated = d.get("candidates_evaluated")
        note = (f"{num.count(evaluated)} rules evaluated; " if evaluated is not None else "") + (
            f"the {len(cands)} with the largest WER gap are listed (gap = 100 × (higher WER − lower WER) / "
            "lower WER, of the two sides). The chosen rule is highlighted.")
        extra = [(k, plain(v)) for k, v in d.items() if k not in ("rule", "candidates", "candidates_evaluated")]
        sec.blocks.append(Block(
            heading="Candidate rules", note=note, facts=extra,
            table=Table(columns=["#", "Rule", "Speakers in rule", "Speakers rest", "WER in rule %", "WER rest %",
                                 "Gap %"], rows=rows, numeric=[True, False, True, True, True, True, True],
                        row_classes=["chosen" if c["rule"] == rule else "" for c in cands], css="candidates")))
        return sec

    def _literals(self, columns: list[str], share_scales: dict[str, str], values: np.ndarray,
                  n_z: np.ndarray) -> tuple[list[_Literal], np.ndarray, dict[str, list]]:
        """Candidate literals, their zips x literals truth matrix, and the thresholds used."""
        literals: list[_Literal] = []
        cols: list[np.ndarray] = []
        thresholds: dict[str, list] = {}
        counts = n_z.astype(np.int64)
        for j, col in enumerate(columns):
            v = values[:, j]
            with np.errstate(invalid="ignore"):
                if col in share_scales:
                    cands = [(_Literal(col, ">", 0.5, True), v > 0.5), (_Literal(col, "<=", 0.5, True), v <= 0.5)]
                else:
                    # Percentiles of the audited speakers' values (each zip counted per speaker).
                    per_speaker = np.repeat(v, counts)
                    per_speaker = per_speaker[~np.isnan(per_speaker)]
                    if not len(per_speaker):
                        thresholds[col] = [None] * len(PERCENTILES)
                        continue
                    ts = [_round_sig(float(t)) for t in np.percentile(per_speaker, PERCENTILES)]
                    thresholds[col] = ts
                    cands = []
                    for t in sorted(set(ts)):
                        cands += [(_Literal(col, "<", t, False), v < t), (_Literal(col, ">=", t, False), v >= t)]
            for lit, mask in cands:
                literals.append(lit)
                cols.append(mask)
        masks = np.column_stack(cols) if cols else np.zeros((len(n_z), 0), dtype=bool)
        # A literal true for too few speakers can be in no valid rule (AND only shrinks);
        # one true for everybody adds nothing to a conjunction.
        n_in = n_z @ masks if masks.shape[1] else np.zeros(0)
        keep = (n_in >= self.min_speakers) & (n_in < n_z.sum())
        return [l for l, k in zip(literals, keep) if k], masks[:, keep], thresholds


def _search(masks: np.ndarray, lit_col: list[int], n_z: np.ndarray, e_z: np.ndarray, w_z: np.ndarray,
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
    n_tot, e_tot, w_tot = n_z.sum(), e_z.sum(), w_z.sum()
    n_rest, e_rest, w_rest = n_tot - n_in, e_tot - e_in, w_tot - w_in
    valid = (n_in >= min_speakers) & (n_rest >= min_speakers) & (w_in > 0) & (w_rest > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        wer_in = np.where(w_in > 0, e_in / np.where(w_in > 0, w_in, 1), np.nan)
        wer_rest = np.where(w_rest > 0, e_rest / np.where(w_rest > 0, w_rest, 1), np.nan)
        hi, lo = np.maximum(wer_in, wer_rest), np.minimum(wer_in, wer_rest)
        finite = lo > 0
        gap = np.where(finite, 100.0 * (hi - lo) / np.where(finite, lo, 1), np.nan)
    return {"lits": lits, "n_in": n_in, "n_rest": n_rest, "wer_in": wer_in, "wer_rest": wer_rest,
            "gap": gap, "abs": hi - lo, "finite": finite, "valid": int(valid.sum()), "valid_mask": valid,
            "evaluated": int(len(n_in))}


def _ordered(result: dict, literals: list[_Literal], idx: np.ndarray, top: int) -> list[dict]:
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


def _choose(result: dict, literals: list[_Literal], max_depth: int, min_gain_pct: float) -> tuple[dict | None, dict]:
    """The chosen rule and the best gap (%) per depth.

    Start from the best single literal; the best rule of each next depth replaces the
    current choice only if its gap is more than ``min_gain_pct`` % (relative) larger (or if
    it has a finite gap and the current choice has none).
    """
    valid = result["valid_mask"]
    depth = (result["lits"] >= 0).sum(axis=1)
    chosen, best_by_depth = None, {}
    for d in range(1, max_depth + 1):
        best = _ordered(result, literals, np.flatnonzero(valid & (depth == d)), 1)
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


class RulePlanter(Planter):
    """Plants on the speakers of the zips matching one census rule the discoverer itself
    would consider (its literals and conjunctions up to ``max_depth``), drawn at random
    among the rules whose speaker count is within a factor 1.5 of the target (the closest
    rule when none is); the achieved share is reported."""

    kind = "census rule the geodemographic discoverer considers"

    def __init__(self, disc: GeodemographicDiscoverer, table: pd.DataFrame, side: SideInputs, discovery: Discovery):
        ids = discovery.assignment.index.astype(str).to_numpy(dtype=object)
        audited_rows = pd.Index(table["speaker_id"].astype(str).to_numpy()).get_indexer(ids)
        super().__init__(len(audited_rows))
        census = _census_frame(side)
        share_scales = dict(census.attrs.get("share_columns", {}))
        columns = _numeric_columns(census)
        zips = normalize_zip(pd.Series(table["zip"].to_numpy(dtype=object)[audited_rows]))
        row = census.index.get_indexer(zips.to_numpy(dtype=object, na_value=""))
        if (row < 0).any():  # cannot happen: audited speakers are those whose zip joined
            raise ValueError("an audited speaker's zip is not in the census table")
        zip_rows, zip_of = np.unique(row, return_inverse=True)
        n_z = np.bincount(zip_of, minlength=len(zip_rows)).astype(float)
        values = census[columns].to_numpy(dtype=float, na_value=np.nan)[zip_rows]
        # The discoverer's own literals and conjunctions, but down to one speaker: a rule
        # too small for min_speakers is still a cohort that may exist (and not be found).
        loose = disc.clone(min_speakers=1)
        literals, masks, _ = loose._literals(columns, share_scales, values, n_z)
        ones = np.ones(len(n_z))
        found = _search(masks, [columns.index(lit.column) for lit in literals], n_z, ones, n_z, 1, int(disc.max_depth))
        keep = found["valid_mask"]
        self.lits = found["lits"][keep]
        self.sizes = found["n_in"][keep]
        self.literals, self.masks, self.zip_of = literals, masks, zip_of
        self.pools: dict[str, np.ndarray] = {}

    def rows(self, shares):
        rows = super().rows(shares)
        for r in rows:
            self.pools[r.key] = pool_near(self.sizes, r.size)
        return rows

    def draw(self, gen, row):
        pool = self.pools[row.key]
        if not len(pool):
            return np.zeros(0, dtype=np.int64), "no census rule splits the audited speakers"
        r = int(pool[gen.integers(len(pool))])
        in_zip = np.ones(self.masks.shape[0], dtype=bool)
        lit_ids = [int(li) for li in self.lits[r] if li >= 0]
        for li in lit_ids:
            in_zip &= self.masks[:, li]
        idx = np.flatnonzero(in_zip[self.zip_of])
        rule = " AND ".join(self.literals[li].text for li in lit_ids)
        return idx, f"{len(idx)} speakers in zips where {rule}"
