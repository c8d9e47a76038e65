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
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(e > 0, gammaincinv(np.maximum(e, 1e-300), alpha / 2), 0.0) / w
        high = gammaincinv(e + 1, 1 - alpha / 2) / w
    bad = w <= 0
    low[bad] = np.nan
    high[bad] = np.nan
    return low, high


def speaker_table(speakers: pd.DataFrame, level: float = 0.95) -> dict[str, Any]:
    """The ``speaker_table`` block of report.json (columns as lists, speakers sorted by id)."""
    sp = speakers.sort_values("speaker_id", kind="stable")
    low, high = poisson_wer_interval(sp["errors"], sp["ref_words"], level)
    return {
        "speaker_id": sp["speaker_id"].astype(str).tolist(),
        "utterances": sp["utterances"].astype(int).tolist(),
        "ref_words": sp["ref_words"].astype(int).tolist(),
        "errors": sp["errors"].astype(int).tolist(),
        "wer_ci_low": [None if np.isnan(v) else v for v in np.round(low, CI_DECIMALS).tolist()],
        "wer_ci_high": [None if np.isnan(v) else v for v in np.round(high, CI_DECIMALS).tolist()],
        "ci_level": level,
        "ci_method": POISSON_METHOD,
    }


def members(table_ids: list[str], entry: dict, assignment: pd.Series) -> list[int]:
    """Index of each speaker's cohort in ``entry["cohorts"]`` (-1: not audited by it)."""
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts") or [])}
    codes = assignment.astype(str).map(position)
    out = pd.Series(codes.to_numpy(), index=assignment.index.astype(str)).reindex(table_ids)
    return out.fillna(-1).astype(int).tolist()


class _WorstIndex:
    """The utterances ranked once (most errors, then highest WER, then utt_id: the order of
    :func:`worst_utterances`), so each discoverer's worst ``n`` per cohort is a few array
    operations, not a sort of every utterance."""

    def __init__(self, utterances: pd.DataFrame):
        self.utterances = utterances
        uid_rank = pd.factorize(utterances["utt_id"].astype(str), sort=True)[0]
        self.order = np.lexsort((uid_rank, -utterances["wer"].to_numpy(dtype=float),
                                 -utterances["errors"].to_numpy(dtype=float)))
        self.speaker_code, self.speakers = pd.factorize(utterances["speaker_id"].astype(str))

    def candidates(self, assignment: pd.Series, n: int) -> pd.DataFrame:
        """The ``n`` worst utterances of every cohort of ``assignment`` (cohort id per speaker_id)."""
        codes, cohorts = pd.factorize(assignment.astype(str))
        per_speaker = pd.Series(codes, index=assignment.index.astype(str)).reindex(self.speakers)
        per_speaker = per_speaker.fillna(-1).to_numpy(dtype=np.int64)
        cohort = per_speaker[self.speaker_code][self.order]  # cohort of each utterance, worst first
        inside = np.flatnonzero(cohort >= 0)
        regroup = inside[np.argsort(cohort[inside], kind="stable")]  # by cohort, worst first within
        grouped = cohort[regroup]
        starts = np.searchsorted(grouped, np.arange(len(cohorts)), side="left")
        ends = np.searchsorted(grouped, np.arange(len(cohorts)), side="right")
        take = np.concatenate([regroup[s:min(e, s + n)] for s, e in zip(starts, ends)]) if len(cohorts) else \
            np.zeros(0, np.int64)
        return self.utterances.iloc[np.sort(self.order[take])]


def add_drilldown(entries: dict[str, dict], assignments: Iterable[pd.DataFrame], scored, *,
                  normalization: str = "default", redact_text: bool = False,
                  per_cohort: int = WORST_PER_COHORT, max_cohorts: int = MAX_COHORTS_WITH_WORST) -> list[str]:
    """Add ``drilldown`` (members and worst utterances per cohort) to each entry that ran.

    ``assignments``: frames with speaker_id, discoverer, cohort_id (as :func:`discover_all`
    returns them); ``scored``: the :class:`~fairaudit.speakers.ScoredSet`.  Returns the
    speaker ids in ``speaker_table`` order.  Transcripts are kept only when the input had
    text and ``redact_text`` is off.
    """
    table_ids = sorted(scored.speakers["speaker_id"].astype(str))
    utts = scored.utterances
    with_text = scored.mode == "text" and not redact_text
    picked: list[tuple[dict, pd.Series, pd.DataFrame]] = []
    index = None
    for part in assignments:
        if part.empty:
            continue
        key = part["discoverer"].iloc[0]
        entry = entries.get(key)
        if not entry or entry.get("skipped"):
            continue
        assignment = pd.Series(part["cohort_id"].astype(str).to_numpy(), index=part["speaker_id"].astype(str))
        entry["drilldown"] = {"members": members(table_ids, entry, assignment), "worst": {},
                              "worst_per_cohort": per_cohort}
        ranked = [c["id"] for c in sorted(entry.get("cohorts") or [], key=lambda c: c["rank"])][:max_cohorts]
        chosen = assignment[assignment.isin(set(ranked))]
        if index is None:
            index = _WorstIndex(utts)
        picked.append((entry, chosen, index.candidates(chosen, per_cohort) if len(chosen) else utts.iloc[:0]))
    if with_text and "reference" not in utts.columns and scored.text_source is not None and picked:
        # chunked engines keep no transcripts: read back only the rows picked here
        rows = np.unique(np.concatenate([p.index.to_numpy() for _, _, p in picked]))
        texts = scored.text_source(rows)
        picked = [(e, a, p.join(texts)) for e, a, p in picked]
    for entry, assignment, cand in picked:
        # the candidates are few: pass each cohort only the speakers that have one
        # (membership tests against every member are the slow part at 100k speakers)
        cohort_of = cand["speaker_id"].astype(str).map(assignment)
        order = {c["id"]: c["rank"] for c in entry.get("cohorts") or []}
        for cid in sorted(set(assignment.unique()), key=lambda c: order.get(c, 0)):
            sub = cand.loc[(cohort_of == cid).to_numpy()]
            entry["drilldown"]["worst"][cid] = worst_utterances(sub, sub["speaker_id"].unique(), per_cohort,
                                                                normalization, not with_text)
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
