"""What the report needs to let a reader go from a cohort to its speakers and utterances.

The audit writes, once, into report.json:

* ``speaker_table``: one column per field, one entry per scored speaker (sorted by id):
  ``speaker_id``, ``utterances``, ``ref_words``, ``errors`` (counts) and
  ``wer_ci_low``/``wer_ci_high`` (ratios): an exact Poisson interval of the speaker's
  WER (see :func:`poisson_wer_interval`).
* per discoverer, ``drilldown``: ``members`` (for every speaker of ``speaker_table``, the
  index of its cohort in the discoverer's ``cohorts`` list, -1 when not audited),
  ``worst`` (cohort id -> its worst utterances, aligned unless text is redacted) and, when
  several systems were audited, ``systems`` (cohort id -> system -> WER of the same
  speakers under that system).

Views (the HTML report) read these and recompute nothing.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .alignment import worst_utterances
from .lookup import _arrow, positions

#: worst utterances kept per cohort (the bottom cohort keeps ``worst_n`` in its entry)
WORST_PER_COHORT = 3
#: cohorts (by rank, worst first) that get worst utterances; the rest get none
MAX_COHORTS_WITH_WORST = 200
#: decimals kept for the per-speaker interval ends (ratios): 0.01 percentage point
CI_DECIMALS = 4

POISSON_METHOD = ("exact Poisson interval of the speaker's error count over its reference words "
                  "(treats errors as independent: narrower than the truth when a speaker's errors cluster "
                  "in a few utterances)")


def poisson_wer_interval(errors: Any, words: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) Poisson interval of a WER: errors (count) per reference word (count).

    Returns (low, high) as ratios, NaN where ``words`` is 0.  A WER can exceed 1
    (insertions), which a binomial interval cannot show; a Poisson rate can.
    """
    # chi2.ppf(p, 2k) / 2 == gammaincinv(k, p); scipy.special imports in a fraction of scipy.stats' time
    from scipy.special import gammaincinv

    e = np.asarray(errors, dtype=float)
    w = np.asarray(words, dtype=float)
    alpha = 1.0 - level
    # the quantiles depend on the error count only: evaluated once per distinct count
    # (a few hundred among 100k speakers), the same numbers
    counts, which = np.unique(e, return_inverse=True)
    which = which.reshape(e.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(e > 0, gammaincinv(np.maximum(counts, 1e-300), alpha / 2)[which], 0.0) / w
        high = gammaincinv(counts + 1, 1 - alpha / 2)[which] / w
    bad = w <= 0
    low[bad] = np.nan
    high[bad] = np.nan
    return low, high


def _floats_or_none(values: np.ndarray) -> list:
    """``values`` as a list of floats, None where NaN (JSON has no NaN): one ``tolist`` and
    a pass over the NaNs only, not a Python test per speaker."""
    out = values.tolist()
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = None
    return out


def speaker_table(speakers: pd.DataFrame, level: float = 0.95) -> dict[str, Any]:
    """The ``speaker_table`` block of report.json (columns as lists, speakers sorted by id)."""
    sp = speakers.sort_values("speaker_id", kind="stable")
    low, high = poisson_wer_interval(sp["errors"], sp["ref_words"], level)
    return {
        "speaker_id": sp["speaker_id"].astype(str).tolist(),
        "utterances": sp["utterances"].astype(int).tolist(),
        "ref_words": sp["ref_words"].astype(int).tolist(),
        "errors": sp["errors"].astype(int).tolist(),
        "wer_ci_low": _floats_or_none(np.round(low, CI_DECIMALS)),
        "wer_ci_high": _floats_or_none(np.round(high, CI_DECIMALS)),
        "ci_level": level,
        "ci_method": POISSON_METHOD,
    }


class UtteranceRanking:
    """Which utterances are whose, and how bad they are, worked out once per scored set and
    shared by every discoverer's worst utterances: the bottom cohort's in
    :func:`fairaudit.audit.discover_all` and every cohort's in :func:`add_drilldown`.

    ``rows``: each utterance's row in the speaker table (-1: not in it), so a cohort is an
    integer code per speaker row and its utterances one gather, with no string look-up
    (pandas' Arrow-string look-ups cost 0.3 s per 1M utterances); ``level``: each
    utterance's error count as a dense non-negative integer (same order), or None when an
    error count is missing.
    """

    #: largest cohorts x error levels table the candidate thresholds are counted in
    MAX_CELLS = 20_000_000
    #: candidates of one cohort above which ties at its threshold are cut by WER
    REFINE_ABOVE = 2048

    def __init__(self, utterances: pd.DataFrame, speakers: pd.DataFrame):
        self.utterances, self.speakers = utterances, speakers
        self.speaker_ids = speakers["speaker_id"]
        self.rows = positions(utterances["speaker_id"], self.speaker_ids).astype(np.int32)
        errors = utterances["errors"].to_numpy()
        self.level: np.ndarray | None
        if errors.dtype.kind in "iu" and (not len(errors) or (errors.min() >= 0 and errors.max() < 100_000)):
            self.level = errors.astype(np.int32)
        elif errors.dtype.kind in "iuf" and not np.isnan(errors.astype(float)).any():
            self.level = np.unique(errors, return_inverse=True)[1].reshape(-1).astype(np.int32)
        else:
            self.level = None
        self.n_levels = int(self.level.max()) + 1 if self.level is not None and len(self.level) else 1
        self.wer = utterances["wer"].to_numpy(dtype=float)
        self._sorted: tuple[list[str], np.ndarray] | None = None

    def per_row(self, speaker_ids: Any, codes: np.ndarray) -> np.ndarray:
        """``codes`` (int, one per id of ``speaker_ids``) placed on the speaker table's rows,
        plus one: int32 array of len(speaker table) + 1, 0 for rows not given (and in the
        last slot, which stands for an utterance whose speaker is not in the table)."""
        codes = np.asarray(codes, dtype=np.int32) + 1
        out = np.zeros(len(self.speaker_ids) + 1, np.int32)
        if len(codes) == len(self.speaker_ids) and _same_ids(speaker_ids, self.speaker_ids):
            out[:-1] = codes   # the usual case: an assignment over the speaker table, in its order
            return out
        pos = positions(speaker_ids, self.speaker_ids)
        ok = pos >= 0
        out[pos[ok]] = codes[ok]
        return out

    def candidates(self, row_codes: np.ndarray, n_cohorts: int, n: int) -> list[np.ndarray]:
        """Per cohort code 0..n_cohorts-1 (``row_codes`` from :meth:`per_row`), the positions
        (ascending) of the utterances that can be among its ``n`` worst: those with at least
        the cohort's n-th largest error count (all of them when it has n or fewer, or when
        an error count is missing).  :func:`worst_utterances` on them gives what it gives
        on all of the cohort's utterances: the order it sorts by starts with errors."""
        cohort = row_codes[self.rows]   # cohort code + 1 per utterance (0: none; rows == -1 read the last slot)
        levels = self.n_levels
        if self.level is not None and n > 0 and n_cohorts and (n_cohorts + 1) * levels <= self.MAX_CELLS:
            counts = np.bincount(cohort * levels + self.level, minlength=(n_cohorts + 1) * levels)
            # at_least[c, l]: utterances of cohort c - 1 with an error level >= l
            at_least = counts.reshape(n_cohorts + 1, levels)[:, ::-1].cumsum(axis=1)[:, ::-1]
            enough = at_least >= n
            top = levels - 1 - np.argmax(enough[:, ::-1], axis=1)   # highest level with n at or above it
            threshold = np.where(enough.any(axis=1), top, 0).astype(np.int32)
            threshold[0] = levels   # speakers of no cohort: never
            take = np.flatnonzero(self.level >= threshold[cohort])
        else:
            take = np.flatnonzero(cohort > 0)
        group = cohort[take]
        order = np.argsort(group, kind="stable")
        out = np.split(take[order], np.searchsorted(group[order], np.arange(2, n_cohorts + 1)))[:n_cohorts] \
            if n_cohorts else []
        return [self._by_wer(rows, n) if len(rows) > self.REFINE_ABOVE else rows for rows in out]

    def _by_wer(self, rows: np.ndarray, n: int) -> np.ndarray:
        """``rows`` (one cohort's candidates) cut down when many tie at its threshold error
        count (a near-perfect system: most utterances have 0 errors): of the tied rows, only
        those with at least the k-th largest WER can fill the k places left (WER is the
        second sort key), and of those tied in WER too, the k' smallest utt_ids (the third);
        NaN WERs (sorted last) keep every row."""
        if self.level is None or n <= 0:
            return rows
        level = self.level[rows]
        tied = level == level.min()
        k = n - int((~tied).sum())
        wer = self.wer[rows]
        if k <= 0 or k >= tied.sum() or np.isnan(wer[tied]).any():
            return rows
        kth = np.partition(wer[tied], -k)[-k]
        sure = ~tied | (wer > kth)
        boundary = tied & (wer == kth)
        k_id = n - int(sure.sum())
        if int(boundary.sum()) <= max(k_id, self.REFINE_ABOVE):
            return rows[sure | boundary]
        ids = _take(self.utterances[["utt_id"]], rows[boundary])["utt_id"].to_numpy(dtype=object)
        try:
            last = np.partition(ids, k_id - 1)[k_id - 1]
            keep_id = ids <= last
        except TypeError:   # ids that do not compare (mixed types): keep them all
            return rows[sure | boundary]
        boundary[np.flatnonzero(boundary)[~keep_id]] = False
        return rows[sure | boundary]

    def sorted_speakers(self) -> tuple[list[str], np.ndarray]:
        """(speaker ids as str, sorted: the ``speaker_table`` order; the speaker-table row of each)."""
        if self._sorted is None:
            ids = self.speaker_ids.astype(str)
            if pd.Index(ids).is_monotonic_increasing:   # the scored table is sorted by id already
                order = np.arange(len(ids))
            else:
                order = np.argsort(ids.to_numpy(dtype=object), kind="stable")
            self._sorted = (ids.to_numpy(dtype=object)[order].tolist(), order)
        return self._sorted


def _same_ids(a: Any, b: Any) -> bool:
    """Whether two id columns hold the same ids in the same order (cheap on Arrow strings)."""
    arrow_a, arrow_b = _arrow(a), _arrow(b)
    if arrow_a is not None and arrow_b is not None:
        return bool(arrow_a.equals(arrow_b))
    return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))


def ranking(scored) -> UtteranceRanking:
    """The :class:`UtteranceRanking` of a :class:`~fairaudit.speakers.ScoredSet`, built on
    first use and kept on the set (its lifetime) while its tables are the same objects."""
    found = getattr(scored, "_utterance_ranking", None)
    if found is None or found.utterances is not scored.utterances or found.speakers is not scored.speakers:
        found = UtteranceRanking(scored.utterances, scored.speakers)
        try:
            scored._utterance_ranking = found
        except AttributeError:   # a set without an instance dict: built again next time
            pass
    return found


def take_rows(utterances: pd.DataFrame, groups: list[np.ndarray]) -> list[pd.DataFrame]:
    """``utterances.iloc[g]`` for each array of positions ``g``, through one take of their
    union (see :func:`_take`)."""
    if not groups:
        return []
    union = np.unique(np.concatenate(groups))
    small = _take(utterances, union)
    return [small.iloc[np.searchsorted(union, g)] for g in groups]


def _take(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``frame.iloc[rows]`` (``rows`` ascending) taken chunk by chunk: a take on a chunked
    Arrow column concatenates its chunks first (0.2 s for the transcripts of 1M
    utterances read in 10 batches, however few rows are taken); a row slice inside one
    chunk is a view, and a take from one chunk copies only the rows taken."""
    edges = {0, len(frame)}
    for _, column in frame.items():
        data = getattr(column.array, "_pa_array", None)
        if data is not None and data.num_chunks > 1:
            edges.update(np.cumsum([len(chunk) for chunk in data.chunks]).tolist())
    if len(edges) <= 2 or not len(rows):
        return frame.iloc[rows]
    bounds = np.array(sorted(edges))
    piece = np.searchsorted(bounds, rows, side="right") - 1
    return pd.concat([frame.iloc[bounds[k]:bounds[k + 1]].iloc[rows[piece == k] - bounds[k]]
                      for k in np.unique(piece)])


def _exact_worst(utterances: pd.DataFrame, rows: np.ndarray, n: int) -> np.ndarray:
    """The positions (ascending) among ``rows`` of the ``n`` utterances :func:`worst_utterances`
    keeps (the same sort), so only those are read back from the input."""
    if len(rows) <= n:
        return rows
    sub = _take(utterances[["errors", "wer", "utt_id"]], rows).assign(_pos=rows)
    sub = sub.sort_values(["errors", "wer", "utt_id"], ascending=[False, False, True], kind="stable")
    return np.sort(sub["_pos"].to_numpy()[:n])


def add_drilldown(entries: dict[str, dict], assignments: Iterable[pd.DataFrame], scored, *,
                  normalization: str = "default", redact_text: bool = False,
                  per_cohort: int = WORST_PER_COHORT, max_cohorts: int = MAX_COHORTS_WITH_WORST) -> list[str]:
    """Add ``drilldown`` (members and worst utterances per cohort) to each entry that ran.

    ``assignments``: frames with speaker_id, discoverer, cohort_id (as :func:`discover_all`
    returns them); ``scored``: the :class:`~fairaudit.speakers.ScoredSet`.  Returns the
    speaker ids in ``speaker_table`` order.  Transcripts are kept only when the input had
    text and ``redact_text`` is off.
    """
    utts = scored.utterances
    index = ranking(scored)
    table_ids, table_rows = index.sorted_speakers()
    with_text = scored.mode == "text" and not redact_text
    read_back = with_text and "reference" not in utts.columns and scored.text_source is not None
    picked: list[tuple[dict, list[str], list[np.ndarray]]] = []
    for part in assignments:
        if part.empty:
            continue
        key = part["discoverer"].iloc[0]
        entry = entries.get(key)
        if not entry or entry.get("skipped"):
            continue
        # cohorts as integer codes per speaker row: no string look-up per speaker
        codes, cohort_ids = pd.factorize(part["cohort_id"].astype(str))
        cohort_ids = [str(c) for c in cohort_ids]
        position = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
        row_code = index.per_row(part["speaker_id"], codes)
        cohort_position = np.array([-1] + [position.get(c, -1) for c in cohort_ids], np.int64)
        entry["drilldown"] = {"members": cohort_position[row_code[table_rows]].tolist(), "worst": {},
                              "worst_per_cohort": per_cohort}
        ranked = set([c["id"] for c in sorted(entry.get("cohorts") or [], key=lambda c: c["rank"])][:max_cohorts])
        # the ranked cohorts that have speakers here, renumbered 1..k (the rest: 0)
        chosen = [c for c in cohort_ids if c in ranked]
        renumber = np.array([0] + [chosen.index(c) + 1 if c in ranked else 0 for c in cohort_ids], np.int32)
        rows = index.candidates(renumber[row_code], len(chosen), per_cohort)
        if read_back:
            rows = [_exact_worst(utts, r, per_cohort) for r in rows]
        picked.append((entry, chosen, rows))
    frames = iter(take_rows(utts, [r for _, _, rows in picked for r in rows]))
    subs = [[next(frames) for _ in rows] for _, _, rows in picked]
    texts = None
    if read_back and picked:
        # chunked engines keep no transcripts: read back only the rows picked here
        wanted = [f.index.to_numpy() for frames_of in subs for f in frames_of]
        texts = scored.text_source(np.unique(np.concatenate(wanted)) if wanted else np.zeros(0, np.int64))
    for (entry, chosen, rows), frames_of in zip(picked, subs):
        order = {c["id"]: c["rank"] for c in entry.get("cohorts") or []}
        for cid in sorted(chosen, key=lambda c: order.get(c, 0)):
            sub = frames_of[chosen.index(cid)]
            if texts is not None:
                sub = sub.join(texts)
            entry["drilldown"]["worst"][cid] = worst_utterances(sub, None, per_cohort, normalization,
                                                                not with_text, mask=np.ones(len(sub), bool))
    return table_ids


def add_system_comparison(per_system: dict[str, dict], assignments: Iterable[pd.DataFrame],
                          speakers_by_system: dict[str, pd.DataFrame]) -> None:
    """Each first-system cohort's WER under every system (same speakers), into ``drilldown``.

    ``per_system``: system -> {"discoverers": entries}; the first system's cohorts are the
    ones the report shows.  WER here is a ratio: sum(errors) / sum(ref_words) of the
    cohort's speakers in that system's speaker table.
    """
    names = list(per_system)
    if len(names) < 2:
        return
    first = per_system[names[0]]["discoverers"]
    tables = {n: speakers_by_system[n].set_index(speakers_by_system[n]["speaker_id"].astype(str))
              for n in names}
    for part in assignments:
        if part.empty or ("system" in part.columns and part["system"].iloc[0] != names[0]):
            continue
        key = part["discoverer"].iloc[0]
        entry = first.get(key)
        if not entry or entry.get("skipped") or "drilldown" not in entry:
            continue
        ids = part["speaker_id"].astype(str).to_numpy()
        cohort = part["cohort_id"].astype(str).to_numpy()
        out: dict[str, dict[str, dict]] = {}
        for n in names:
            t = tables[n].reindex(ids)
            g = pd.DataFrame({"cohort": cohort, "errors": t["errors"].to_numpy(), "ref_words": t["ref_words"].to_numpy(),
                              "present": t["errors"].notna().to_numpy()}).groupby("cohort", sort=True)
            sums = g[["errors", "ref_words"]].sum()
            count = g["present"].sum()
            for cid, row in sums.iterrows():
                words = int(row["ref_words"])
                out.setdefault(cid, {})[n] = {"wer": (float(row["errors"]) / words) if words else None,
                                              "errors": int(row["errors"]), "ref_words": words,
                                              "speakers": int(count[cid])}
        entry["drilldown"]["systems"] = out
