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
from .cache import cached, frame_key
from .cellsums import Landing, PairSums
from .census_rules import (Literal, candidate_literals, choose, choose_batched, memberships, ordered, rule_texts,
                           search)
from .params import Interval
from .planting import Planter, PooledPlanter

MAX_DEPTH_LIMIT = 3  # candidates grow as literals**depth, and deep rules overfit small cells
#: most candidate rules the report lists
MAX_CANDIDATES_LISTED = 25
REASON_BAD_ZIP = "missing or invalid zip"
REASON_NOT_IN_CENSUS = "zip not in census table"


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


def _permuted_zip_sums(st: "_Structure", errors: np.ndarray, words: np.ndarray,
                       takes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per permutation (rows of ``takes``, B x table rows) and zip, the sums of the audited
    speakers' permuted errors and words (B x zips, whole numbers as floats).

    The zips and who lives in them do not move under the null, only the counts: per
    permutation one scatter of the zips through it and one ``np.bincount`` of the packed
    counts (:mod:`.cellsums`: the same sums as two bincounts of the gathered counts)."""
    landing = Landing(st.zip_of, len(st.n_z), st.audited, takes.shape[1])
    pairs = PairSums(landing, errors, words)
    e_z, w_z = np.empty((len(takes), len(st.n_z))), np.empty((len(takes), len(st.n_z)))
    for b, take in enumerate(takes):
        pairs.sums(landing.label(take), e_z[b], w_z[b])
    return e_z, w_z


@dataclass
class _Structure:
    """The count-free part of a fit (:meth:`GeodemographicDiscoverer._structure`)."""

    audited: np.ndarray          # rows of the speaker table whose zip joined the census
    ids: np.ndarray              # their speaker ids
    zip_of: np.ndarray           # per audited speaker: index into the zips present
    n_z: np.ndarray              # speakers per zip (count, as float)
    columns: list[str]
    share_scales: dict
    literals: list[Literal]
    masks: np.ndarray            # zips x literals
    lit_col: list[int]
    thresholds: dict
    not_audited: dict

    def sums(self, errors: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-zip sums of the audited speakers' errors and words (counts; rows of the table)."""
        z = len(self.n_z)
        return (np.bincount(self.zip_of, weights=errors[self.audited], minlength=z),
                np.bincount(self.zip_of, weights=words[self.audited], minlength=z))


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

    def _structure(self, speakers: pd.DataFrame, side: SideInputs) -> "_Structure":
        """Everything of a fit that does not depend on the error counts: the census join,
        the zips of the audited speakers, the candidate literals (kept for the next fit on
        the same speakers and census: :mod:`.cache`)."""
        reason = self.missing_inputs(speakers, side)
        if reason:
            raise UserInputError(f"geodemographic cohorts cannot be found: {reason}")
        census = _census_frame(side)
        if "speaker_id" not in speakers.columns:     # ids from the index: not worth a key
            return self._build_structure(speakers, census)
        key = frame_key(speakers, ["speaker_id", "zip"], int(self.min_speakers))
        return cached(self, "_structure_cache", key, lambda: self._build_structure(speakers, census),
                      same=(side.census, census))

    def _build_structure(self, speakers: pd.DataFrame, census: pd.DataFrame) -> "_Structure":
        ids = (speakers["speaker_id"] if "speaker_id" in speakers.columns else speakers.index.to_series()).to_numpy()
        ok_zip, row = _census_rows(speakers["zip"], census)
        return self._structure_of(ids, ok_zip, row, census)

    def _structure_of(self, ids: np.ndarray, ok_zip: np.ndarray, row: np.ndarray, census: pd.DataFrame,
                      values_all: np.ndarray | None = None) -> "_Structure":
        """The structure of speakers ``ids`` from their census join (:func:`_census_rows`:
        zip valid?, census row or -1); ``values_all``: the census table's numeric columns
        as floats, when the caller has them."""
        share_scales = dict(census.attrs.get("share_columns", {}))
        columns = _numeric_columns(census)
        if values_all is None:
            values_all = census[columns].to_numpy(dtype=float, na_value=np.nan)
        audited = row >= 0
        not_audited = {}
        if (~ok_zip).sum():
            not_audited[REASON_BAD_ZIP] = int((~ok_zip).sum())
        if (ok_zip & ~audited).sum():
            not_audited[REASON_NOT_IN_CENSUS] = int((ok_zip & ~audited).sum())
        row = row[audited]

        # Per-zip sums: every literal is constant within a zip.
        present = np.bincount(row, minlength=len(census)) > 0
        zip_rows = np.flatnonzero(present)
        remap = np.full(len(census), -1, dtype=np.int64)
        remap[zip_rows] = np.arange(len(zip_rows))
        zip_of = remap[row]
        n_z = np.bincount(zip_of, minlength=len(zip_rows)).astype(float)
        literals, masks, thresholds = candidate_literals(columns, share_scales, values_all[zip_rows], n_z,
                                                         self.min_speakers)
        return _Structure(audited=np.flatnonzero(audited), ids=ids[audited], zip_of=zip_of, n_z=n_z,
                          columns=columns, share_scales=share_scales, literals=literals, masks=masks,
                          lit_col=[columns.index(lit.column) for lit in literals], thresholds=thresholds,
                          not_audited=not_audited)

    def _search(self, st: "_Structure", e_z: np.ndarray, w_z: np.ndarray) -> tuple[dict, dict | None, dict]:
        """(every rule's sums and gaps, the chosen rule or None, best gap % per depth) from
        the per-zip sums of errors and words (counts)."""
        result = search(st.masks, st.lit_col, st.n_z, e_z, w_z, self.min_speakers, self.max_depth)
        if not len(st.ids):
            return result, None, {}
        chosen, best_by_depth = choose(result, st.literals, self.max_depth, float(self.min_gain_pct))
        return result, chosen, best_by_depth

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        st = self._structure(speakers, side)
        not_audited, aud_ids, zip_of, masks, literals = dict(st.not_audited), st.ids, st.zip_of, st.masks, st.literals
        params = {"min_speakers": int(self.min_speakers), "seed": int(self.seed),
                  "max_depth": int(self.max_depth), "max_candidates_shown": int(self.max_candidates_shown),
                  "min_gain_pct": float(self.min_gain_pct)}
        e_z, w_z = st.sums(speakers["errors"].to_numpy(dtype=float), speakers["ref_words"].to_numpy(dtype=float))
        result, chosen, best_by_depth = self._search(st, e_z, w_z)
        share_scales, thresholds = st.share_scales, st.thresholds
        details = {"rule": None, "candidates": [], "candidates_evaluated": result["evaluated"],
                   "candidates_valid": result["valid"], "share_columns": share_scales,
                   "thresholds": thresholds}
        if not len(aud_ids):
            return Discovery(pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object),
                             {}, not_audited, params, details, {})

        shown = ordered(result, literals, np.flatnonzero(result["valid_mask"]), self.max_candidates_shown)
        details["candidates"] = [{k: v for k, v in c.items() if not k.startswith("_") and k != "literal_ids"}
                                 for c in shown]
        details["best_gap_pct_by_depth"] = best_by_depth
        if chosen is None:
            label = f"all audited speakers (no census rule leaves >= {self.min_speakers} speakers on both sides)"
            assignment = pd.Series("all", index=pd.Index(aud_ids, name="speaker_id"), dtype=object)
            details["note"] = label
            return Discovery(assignment, {"all": label}, not_audited, params, details, {"all": {"rule": None}},
                             definition={"kind": "census rule", "literals": [], "in_rule": "all", "rest": "all"})

        in_rule = np.ones(len(st.n_z), dtype=bool)
        for li in chosen["literal_ids"]:
            in_rule &= masks[:, li]
        assignment = pd.Series(np.where(in_rule[zip_of], "A", "B"), index=pd.Index(aud_ids, name="speaker_id"),
                               dtype=object)
        rule = chosen["rule"]
        labels = {"A": rule, "B": f"NOT ({rule})"}
        details["rule"] = rule
        definition = {"kind": "census rule", "rule": rule, "in_rule": "A", "rest": "B",
                      "literals": [literals[li].as_dict() for li in chosen["literal_ids"]]}
        found = Discovery(assignment, labels, not_audited, params, details,
                          {"A": {"rule": labels["A"]}, "B": {"rule": labels["B"]}}, definition=definition)
        found._structure = (speakers, side, st)   # for the hooks on this fit (_batch_structure): no digest again
        return found

    # ------------------------------------------------------------ hooks

    def permuted_statistics(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery,
                            takes: np.ndarray) -> dict | None:
        """The headline gap a re-fit gives on each permutation, for a block at once.

        Under the null only the counts move between speakers: zips, literals and the rules
        the search grows (their speaker counts) stay, so the rules' sums are one product
        (permutations x zips) @ (zips x rules) and the choice is :func:`choose_batched`,
        the same ranking, parsimony margin and tie-breaks as :func:`choose`."""
        b = len(takes)
        st = self._batch_structure(speakers, side, discovery)[0]
        e_z, w_z = _permuted_zip_sums(st, speakers["errors"].to_numpy(dtype=float),
                                      speakers["ref_words"].to_numpy(dtype=float), takes)
        chosen, wer_in, wer_rest = self._choice_from_sums(speakers, side, e_z, w_z, discovery)[2:]
        if chosen is None:                          # no rule: one cohort, no gap
            return {"statistics": None, "gaps_pct": np.zeros(b), "gaps_abs": np.zeros(b)}
        bottom, top = np.maximum(wer_in, wer_rest), np.minimum(wer_in, wer_rest)
        gap_abs = np.where(chosen >= 0, bottom - top, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(chosen < 0, 0.0, np.where(top > 0, 100.0 * gap_abs / top, np.inf))
        return {"statistics": None, "gaps_pct": pct, "gaps_abs": gap_abs}

    def refit_batch(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery, errors: np.ndarray,
                    words: np.ndarray) -> dict | None:
        """Cohorts of re-fits on rows of counts at once (power simulations): code 0 = "A"
        (in the chosen rule), 1 = "B"; all 0 ("all") when no rule is valid."""
        st, member, chosen = self._batched_choice(speakers, side, errors, words, discovery)[:3]
        codes = np.zeros((len(errors), len(st.ids)), dtype=np.int64)
        if chosen is not None:
            has = chosen >= 0
            inside = member[st.zip_of][:, np.where(has, chosen, 0)].T > 0
            codes[has] = np.where(inside[has], 0, 1)
        return {"codes": codes, "statistics": None}

    def heldout_folds(self, speakers: pd.DataFrame, side: SideInputs, in_train: np.ndarray):
        """Per training mask (rows of ``in_train``, folds x table rows, bool), what
        ``fit(speakers[mask])`` and ``assign`` of its rule to the other rows give
        (:meth:`fairaudit.discover.base.Discoverer.heldout_folds`): (cohort code per row,
        -1 = not placed; cohort ids "A", "B", or "all" when no rule is valid), or None
        for a fold without audited speakers.

        The census join (the text work on the zips) is made once for the whole table;
        each fold's structure (its zips, literals and percentile thresholds) comes from
        its rows of that join by the very code a fit uses (:meth:`_structure_of`), and the
        held-out rows are placed by the rule's literals on their census rows as
        :meth:`assign` does."""
        if self.missing_inputs(speakers, side) or "speaker_id" not in speakers.columns:
            return None
        self._ensure_valid()
        census = _census_frame(side)
        values_all = census[_numeric_columns(census)].to_numpy(dtype=float, na_value=np.nan)
        ids = speakers["speaker_id"].to_numpy()
        ok_zip, row = _census_rows(speakers["zip"], census)
        e, w = (speakers[c].to_numpy(dtype=float) for c in ("errors", "ref_words"))
        out = []
        for mask in np.asarray(in_train, dtype=bool):
            rows = np.flatnonzero(mask)
            st = self._structure_of(ids[rows], ok_zip[rows], row[rows], census, values_all)
            if not len(st.ids):
                out.append(None)
                continue
            _, chosen, _ = self._search(st, *st.sums(e[rows], w[rows]))
            codes = np.full(len(ids), -1, dtype=np.int64)
            test = np.flatnonzero(~mask & (row >= 0))
            if chosen is None:               # one cohort "all": every speaker with a census row
                codes[rows[st.audited]] = 0
                codes[test] = 0
                out.append((codes, np.array(["all"], dtype=object)))
                continue
            in_rule = np.ones(len(st.n_z), dtype=bool)
            for li in chosen["literal_ids"]:
                in_rule &= st.masks[:, li]
            codes[rows[st.audited]] = np.where(in_rule[st.zip_of], 0, 1)
            inside = np.ones(len(test), dtype=bool)
            for li in chosen["literal_ids"]:
                lit = st.literals[li]
                inside &= lit.holds(values_all[row[test], st.columns.index(lit.column)])
            codes[test] = np.where(inside, 0, 1)
            out.append((codes, np.array(["A", "B"], dtype=object)))
        return out

    def _batched_choice(self, speakers: pd.DataFrame, side: SideInputs, errors: np.ndarray, words: np.ndarray,
                        discovery: Discovery | None = None):
        """(structure, zips x rules memberships, chosen rule per row or -1, WER in it, WER
        of the rest) of re-fits on the rows of ``errors``/``words`` (B x table rows); the
        last three None when no rule can be formed."""
        st = self._batch_structure(speakers, side, discovery)[0]
        b, z = len(errors), len(st.n_z)
        cells = (st.zip_of[None, :] + z * np.arange(b)[:, None]).ravel()
        sums = [np.bincount(cells, weights=np.take(x, st.audited, axis=1).ravel(),
                            minlength=b * z).reshape(b, z) for x in (errors, words)]
        return self._choice_from_sums(speakers, side, sums[0], sums[1], discovery)

    def _choice_from_sums(self, speakers: pd.DataFrame, side: SideInputs, e_z: np.ndarray, w_z: np.ndarray,
                          discovery: Discovery | None = None):
        """:meth:`_batched_choice` from per-zip sums (B x zips) of errors and words."""
        st, member, n_in, lits, text_rank = self._batch_structure(speakers, side, discovery)
        if not len(st.ids) or not len(lits):
            return st, member, None, None, None
        e_in, w_in = (x @ member for x in (e_z, w_z))
        chosen, wer_in, wer_rest = choose_batched(n_in, float(st.n_z.sum()), e_in, w_in, e_z.sum(axis=1),
                                                  w_z.sum(axis=1), lits, text_rank, self.min_speakers,
                                                  self.max_depth, float(self.min_gain_pct))
        return st, member, chosen, wer_in, wer_rest

    def _batch_structure(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery | None = None):
        """(structure, zips x rules memberships, speakers per rule, rules, text ranks), kept
        for the next blocks (:mod:`.cache`: built from the structure of the same speakers).
        The blocks of one permutation null or power world pass the same ``discovery`` and
        table: their structure is kept on that discovery (no digest of the table per block)."""
        held = getattr(discovery, "_batch_structure", None)
        if held is not None and held[0] is speakers:
            return held[1]
        own = getattr(discovery, "_structure", None)
        mine = own is not None and own[0] is speakers and own[1] is side
        st = own[2] if mine else self._structure(speakers, side)

        def build():
            zeros = np.zeros(len(st.n_z))
            lits = search(st.masks, st.lit_col, st.n_z, zeros, zeros, self.min_speakers, self.max_depth)["lits"]
            member = memberships(st.masks, lits).astype(float)
            texts = rule_texts(st.literals, lits)
            text_rank = np.empty(len(texts), dtype=np.int64)
            text_rank[sorted(range(len(texts)), key=texts.__getitem__)] = np.arange(len(texts))
            return st, member, st.n_z @ member, lits, text_rank

        out = cached(self, "_batch_cache", repr((int(self.min_speakers), int(self.max_depth))), build, same=(st,))
        if discovery is not None:
            discovery._batch_structure = (speakers, out)
        return out

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
            inside &= Literal(lit["column"], lit["op"], float(lit["threshold"]), bool(lit["share"])).holds(v)
        cohort = np.where(inside, definition.get("in_rule", "A"), definition.get("rest", "B"))
        ids = speakers["speaker_id"].to_numpy(dtype=object)[ok]
        return pd.Series(cohort.astype(object), index=pd.Index(ids, name="speaker_id"), dtype=object)

    def assign_reasons(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """No zip, an invalid zip, a zip the census table lacks, or a census table without
        the rule's columns."""
        ids = speakers["speaker_id"].to_numpy(dtype=object)
        if "zip" not in speakers.columns:
            return pd.Series("no zip column in the speaker table", index=ids, dtype=object)
        if side is None or side.census is None:
            return pd.Series("no census table (pass --census)", index=ids, dtype=object)
        census = _census_frame(side)
        lacking = [lit["column"] for lit in definition.get("literals", []) if lit["column"] not in census.columns]
        if lacking:
            return pd.Series(f"the census table has no column {lacking[0]!r} of the saved rule", index=ids,
                             dtype=object)
        ok_zip, row = _census_rows(speakers["zip"], census)
        reason = np.select([~ok_zip, row < 0], [REASON_BAD_ZIP, REASON_NOT_IN_CENSUS], default="")
        keep = reason != ""
        return pd.Series(reason[keep].astype(object), index=ids[keep], dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        return RulePlanter(self, speakers, side, discovery)

    def report_section(self, entry: dict, report: dict):
        """The chosen rule in words, and the best candidate rules with their gaps."""
        from fairaudit import numbers as num
        from fairaudit.reports.explore import collapse_candidates
        from fairaudit.reports.sections import Block, ReportSection, Table, fact_rows
        from fairaudit.units import rate_name, report_unit

        rate = rate_name(report_unit(report))   # WER, or CER/MER when the audit scored characters
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
                spans.append((f": {num.count(inside['speakers'])} speakers, {rate} {num.wer(inside['wer'])} %", ""))
            if rest:
                spans.append((f"; the rest: {num.count(rest['speakers'])} speakers, {rate} {num.wer(rest['wer'])} %", ""))
            spans.append((".", ""))
            sec.intro.append(Block(heading="Chosen rule", spans=spans))
        ranked = sorted(d.get("candidates") or [],
                        key=lambda c: -(c.get("gap_pct") if c.get("gap_pct") is not None else -math.inf))
        # rules that split the speakers identically (a rule and its complement, a conjunction
        # whose extra condition excludes nobody) are one row, the others named in it
        distinct = collapse_candidates(ranked, rule)
        cands = distinct[:MAX_CANDIDATES_LISTED]
        rows = [[str(i + 1), {"text": c["rule"], "tag": "chosen" if c["rule"] == rule else "", "class": "mono text",
                              "note": ("same split: " + "; ".join(c["equivalent"])) if c["equivalent"] else ""},
                 num.count(c.get("speakers_in_rule")), num.count(c.get("speakers_rest")),
                 num.wer(c.get("wer_in_rule")), num.wer(c.get("wer_rest")), num.pct(c.get("gap_pct"))]
                for i, c in enumerate(cands)]
        evaluated = d.get("candidates_evaluated")
        note = (f"{num.count(evaluated)} rules evaluated; " if evaluated is not None else "") + (
            f"of the {len(ranked)} with the largest {rate} gap, {len(distinct)} split the speakers differently: "
            f"{len(cands)} are listed, each once (gap = 100 × (higher {rate} − lower {rate}) / lower {rate}, of the "
            f"two sides). Rules that split the speakers the same way (same speakers and {rate} on both sides: a rule "
            "and its complement, or a condition that excludes nobody) are named under the row. The chosen rule is "
            "highlighted.")
        extra = fact_rows(d, exclude=("rule", "candidates", "candidates_evaluated"))
        sec.blocks.append(Block(
            heading="Candidate rules", note=note, facts=extra,
            table=Table(columns=["#", "Rule", "Speakers in rule", "Speakers rest", f"{rate} in rule %",
                                 f"{rate} rest %", "Gap %"], rows=rows, numeric=[True, False, True, True, True, True, True],
                        row_classes=["chosen" if c["rule"] == rule else "" for c in cands], css="candidates",
                        filename="candidate-rules.csv")))
        for cid, c in by_id.items():
            text = str((c.get("details") or {}).get("rule") or "")
            inner = text[5:-1] if text.startswith("NOT (") and text.endswith(")") else None
            if inner is not None:
                sec.cohort_definitions[cid] = [f"Speakers whose zip code's census row does not satisfy {inner}: "
                                               "every other speaker with a census row."]
            elif text:
                sec.cohort_definitions[cid] = [f"Speakers whose zip code's census row satisfies {text}."]
        return sec

class RulePlanter(PooledPlanter):
    """Plants on the speakers of the zips matching one census rule the discoverer itself
    would consider (its literals and conjunctions up to ``max_depth``), drawn at random
    among the rules whose speaker count is within a factor 1.5 of the target (the closest
    rule when none is); the achieved share is reported."""

    kind = "census rule the geodemographic discoverer considers"
    empty = "no census rule splits the audited speakers"

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
        literals, masks, _ = candidate_literals(columns, share_scales, values, n_z, 1)
        ones = np.ones(len(n_z))
        found = search(masks, [columns.index(lit.column) for lit in literals], n_z, ones, n_z, 1, int(disc.max_depth))
        keep = found["valid_mask"]
        self.lits = found["lits"][keep]
        self.sizes = found["n_in"][keep]
        self.literals, self.masks, self.zip_of = literals, masks, zip_of

    def members(self, r):
        in_zip = np.ones(self.masks.shape[0], dtype=bool)
        lit_ids = [int(li) for li in self.lits[r] if li >= 0]
        for li in lit_ids:
            in_zip &= self.masks[:, li]
        idx = np.flatnonzero(in_zip[self.zip_of])
        rule = " AND ".join(self.literals[li].text for li in lit_ids)
        return idx, f"{len(idx)} speakers in zips where {rule}"
