"""The one cohort-ranking module: cohort table, bottom/top, gap and share.

Every place that needs "which cohort is the bottom one and how large is the gap" calls
this module: the report (:func:`cohort_table`), the permutation null and the held-out gap
(:func:`headline_gap`, hundreds of times per audit), the power simulations
(:func:`bottom_mask`) and the comparison of two systems.  The rules (METHODS.md):

* cohorts of one discoverer are ranked by micro WER = sum(errors) / sum(reference words),
  highest first; a cohort without reference words (WER undefined) ranks last; ties go to
  the smaller cohort id;
* only cohorts with at least ``min_speakers`` speakers are *eligible*: the **bottom** cohort
  is the highest-WER eligible cohort, the **top** cohort the lowest-WER one; with fewer
  than two eligible cohorts there is no bottom, no top and no gap;
* WER gap (%) = 100 (WER_bottom - WER_top) / WER_top, undefined (None) when WER_top = 0,
  with the absolute gap WER_bottom - WER_top (ratio) beside it;
* bottom share (%) = 100 x bottom-cohort speakers / speakers audited by the discoverer.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: columns of a cohort table, in report order
COHORT_FIELDS = ["id", "rank", "label", "speakers", "utterances", "ref_words", "substitutions", "deletions",
                 "insertions", "errors", "wer", "share_pct", "utterance_share_pct", "too_few_speakers"]
_COUNTS = ["utterances", "ref_words", "substitutions", "deletions", "insertions", "errors"]


def rank_cohorts(codes: np.ndarray, n_cohorts: int, errors: np.ndarray, words: np.ndarray,
                 min_speakers: int) -> tuple[np.ndarray, np.ndarray]:
    """(WER per cohort code (ratio), eligible cohort codes ranked bottom first).

    ``codes``: cohort index 0..n_cohorts-1 per speaker, from a sorted factorize of the
    cohort ids (so ties by code are ties by id); ``errors``/``words``: per-speaker counts.
    WER descending, NaN (no reference words) last, ties by code; only cohorts of at least
    ``min_speakers`` speakers are eligible.
    """
    codes = np.asarray(codes)
    size = np.bincount(codes, minlength=n_cohorts)
    e = np.bincount(codes, weights=errors, minlength=n_cohorts)
    w = np.bincount(codes, weights=words, minlength=n_cohorts)
    return rank_sums(e, w, size, min_speakers)


def rank_sums(errors: np.ndarray, words: np.ndarray, sizes: np.ndarray, min_speakers: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_cohorts` from the cohorts' sums: ``errors``, ``words`` and ``sizes``
    (speakers) per cohort code, counts; (WER per code (ratio), eligible codes ranked bottom first)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        wer = errors / words
    nan = np.isnan(wer)
    order = np.lexsort((np.arange(len(wer)), -np.where(nan, 0.0, wer), nan))
    return wer, order[sizes[order] >= min_speakers]


def gap(wer_bottom: float, wer_top: float) -> tuple[float | None, float]:
    """(relative gap % or None when WER_top = 0, absolute gap as a ratio)."""
    gap_abs = float(wer_bottom - wer_top)
    return (100.0 * gap_abs / wer_top if wer_top > 0 else None), gap_abs


def relative_gap(bottom: Any, top: Any) -> np.ndarray:
    """Vectorised relative gap 100 x (bottom - top) / top (%): +inf when top is 0 < bottom,
    NaN when both are 0 or either is NaN (bootstrap resamples use it)."""
    bottom, top = np.asarray(bottom, float), np.asarray(top, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (bottom - top) / top
    out = np.where(top > 0, out, np.where(bottom > top, np.inf, np.nan))
    return np.where(np.isnan(bottom) | np.isnan(top), np.nan, out)


def headline_gap(errors: np.ndarray, words: np.ndarray, cohort: Any, min_speakers: int
                 ) -> tuple[float | None, float | None]:
    """(wer_gap_pct, wer_gap_abs) of cohort ids ``cohort`` by the rules of this module.

    ``errors``/``words``: counts of the audited speakers; ``cohort``: their cohort ids.
    (None, None) with fewer than two eligible cohorts; (None, abs) when WER_top = 0.
    """
    codes, ids = pd.factorize(np.asarray(cohort), sort=True)
    wer, ranked = rank_cohorts(codes, len(ids), errors, words, min_speakers)
    if len(ranked) < 2:
        return None, None
    return gap(float(wer[ranked[0]]), float(wer[ranked[-1]]))


def bottom_mask(errors: np.ndarray, words: np.ndarray, codes: np.ndarray, min_speakers: int
                ) -> tuple[np.ndarray | None, float]:
    """(mask of the bottom cohort's members, relative gap %) for sorted-factorize ``codes``.

    Gap +inf when WER_top = 0; (None, 0.0) with fewer than two eligible cohorts (the audit
    reports no gap).  The power simulations call it once per simulated discovery.
    """
    n_c = int(codes.max()) + 1 if len(codes) else 0
    wer, ranked = rank_cohorts(codes, n_c, errors, words, min_speakers)
    if len(ranked) < 2:
        return None, 0.0
    pct, _ = gap(float(wer[ranked[0]]), float(wer[ranked[-1]]))
    return codes == ranked[0], (math.inf if pct is None else pct)


def cohort_table(speakers: pd.DataFrame, assignment: pd.Series, labels: dict[str, str],
                 min_speakers: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cohort table and the gap-and-share summary of one discoverer.

    ``speakers``: per-speaker table (counts, ``speaker_id``); ``assignment``: cohort id
    per speaker_id.  Returns (cohorts, summary): one row per cohort with its counts,
    ``wer`` (ratio), ``share_pct`` (speakers) and ``utterance_share_pct`` (% of the
    speakers/utterances this discoverer audited), ``rank`` (1 = highest WER) and
    ``too_few_speakers``; the summary holds bottom, top, ``wer_gap_pct`` (%),
    ``wer_gap_abs`` (ratio), ``bottom_share_pct`` (%), and WER mean/max/variance across
    the eligible cohorts.
    """
    sp = speakers.set_index("speaker_id")
    joined = sp.loc[assignment.index, [c for c in _COUNTS if c in sp.columns]].copy()
    joined["cohort"] = assignment.to_numpy()
    g = joined.groupby("cohort", sort=True)
    table = g.sum(min_count=1)
    table.insert(0, "speakers", g.size())
    table["wer"] = table["errors"] / table["ref_words"]
    total_spk = int(table["speakers"].sum())
    total_utt = int(table["utterances"].sum())
    table["share_pct"] = 100.0 * table["speakers"] / total_spk if total_spk else np.nan
    table["utterance_share_pct"] = 100.0 * table["utterances"] / total_utt if total_utt else np.nan
    table["too_few_speakers"] = table["speakers"] < min_speakers
    table["label"] = [labels.get(i, str(i)) for i in table.index]
    table = table.reset_index(names="id")
    # The one ranking rule: the table is sorted by id (groupby), so codes are sorted ids.
    codes = np.arange(len(table))
    wer = table["wer"].to_numpy(dtype=float)
    order = np.lexsort((codes, -np.where(np.isnan(wer), 0.0, wer), np.isnan(wer)))
    table = table.iloc[order].reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table = table[[c for c in COHORT_FIELDS if c in table.columns]]
    ranked = table.loc[~table["too_few_speakers"].to_numpy(dtype=bool)]
    summary: dict[str, Any] = {"audited_speakers": total_spk, "audited_utterances": total_utt,
                               "cohort_count": int(len(table)), "eligible_cohorts": int(len(ranked))}
    if len(ranked) >= 2:
        bottom, top = ranked.iloc[0], ranked.iloc[-1]
        pct, gap_abs = gap(float(bottom["wer"]), float(top["wer"]))
        summary.update({
            "bottom": bottom["id"], "top": top["id"], "wer_gap_abs": gap_abs, "wer_gap_pct": pct,
            "bottom_share_pct": float(bottom["share_pct"]),
            "bottom_utterance_share_pct": float(bottom["utterance_share_pct"]),
        })
    else:
        summary.update({"bottom": None, "top": None, "wer_gap_abs": None, "wer_gap_pct": None,
                        "bottom_share_pct": None, "bottom_utterance_share_pct": None,
                        "note": f"fewer than two cohorts with at least {min_speakers} speakers"})
    w = ranked["wer"].to_numpy(dtype=float)
    summary.update({"wer_mean": float(w.mean()) if len(w) else None, "wer_max": float(w.max()) if len(w) else None,
                    "wer_variance": float(w.var()) if len(w) else None})
    return table, summary


def members(assignment: pd.Series, cohort_id: Any) -> pd.Index:
    """Speaker ids of one cohort of an assignment (cohort id per speaker_id)."""
    return assignment.index[assignment.to_numpy() == cohort_id]
