"""The utterance-split gap: cohorts and bottom/top chosen on half of each speaker's
utterances, their WERs measured on the other half.

Superseded in the report by the speaker split of :mod:`fairaudit.heldout` (issue 15): a
speaker's own error level sits in both halves of an utterance split, so this estimate
keeps most of the search's selection bias (+87 % on average on data with no disparity).
Kept as a library function for comparison."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..cohorts import cohort_table, gap, members
from ..errors import UserInputError
from . import rng as _rng
from ._common import check_seed

HONEST_METHOD = ("each speaker's utterances split at random into halves; cohorts discovered and bottom/top "
                 "chosen on half A, their WER measured on half B")


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


def split_utterances(utterances: pd.DataFrame, seed: int = 0, key: str = "") -> np.ndarray:
    """Boolean mask: True = utterance in half A (discovery), False = half B (held out).

    Each speaker's utterances are shuffled (stream ``(seed, "heldout", key)``) and the first
    ceil(m / 2) of its m utterances go to A: a speaker with one utterance is in A only.
    Utterances are first put in (speaker_id, utt_id) order, so the split does not depend on
    row order.
    """
    gen = _rng.generator(check_seed(seed), "heldout", key)
    spk = pd.factorize(utterances["speaker_id"].astype(str), sort=True)[0]
    if "utt_id" in utterances.columns:
        utt = pd.factorize(utterances["utt_id"].astype(str), sort=True)[0]
        canon = np.lexsort((utt, spk))
    else:
        canon = np.argsort(spk, kind="stable")
    order_key = np.empty(len(spk))
    order_key[canon] = gen.random(len(spk))
    order = np.lexsort((order_key, spk))
    spk_sorted = spk[order]
    counts = np.bincount(spk_sorted, minlength=spk.max() + 1 if len(spk) else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank = np.arange(len(spk)) - starts[spk_sorted]
    in_a = np.empty(len(spk), dtype=bool)
    in_a[order] = rank < (counts[spk_sorted] + 1) // 2
    return in_a


def _cohort_wer(table: pd.DataFrame, ids: pd.Index) -> tuple[float | None, int]:
    sub = table.loc[table["speaker_id"].isin(ids)]
    w = float(sub["ref_words"].sum())
    return (float(sub["errors"].sum()) / w if w > 0 else None), int(len(sub))


def honest_gap(discoverer, utterances: pd.DataFrame, speakers: pd.DataFrame, side, seed: int = 0, *,
               key: str | None = None, assignment: pd.Series | None = None) -> dict:
    """The discovered gap measured on utterances the discovery did not see.

    Each speaker's utterances are split at random into halves A and B
    (:func:`split_utterances`; speakers with one utterance are in A only).  Two per-speaker
    tables are built with the attribute columns of ``speakers`` and utterances, ref_words,
    errors (and S/D/I when present) recomputed from ``utterances`` (columns speaker_id,
    ref_words, errors; utt_id used for ordering).  The discoverer is fitted on A and the
    bottom/top cohorts are chosen on A as the audit does; the WERs of those same cohorts'
    speakers are then measured on B.  A discoverer with ``fixed_cohorts`` is not re-fitted
    when ``assignment`` (the audit's) covers exactly the speakers of A: its cohorts do not
    depend on the counts.

    The held-out gap removes the selection on utterance-level noise; a speaker's own WER
    level is shared by both halves, so the part of the selection bias due to speaker-level
    noise remains (the held-out gap lies between the truth and the discovery gap).

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
    seed = check_seed(seed)
    utts = utterances.loc[utterances["speaker_id"].isin(speakers["speaker_id"])]
    in_a = split_utterances(utts, seed, discoverer.key if key is None else key)
    table_a = _half_table(speakers, utts.loc[in_a])
    table_b = _half_table(speakers, utts.loc[~in_a])
    if (assignment is not None and getattr(discoverer, "fixed_cohorts", False)
            and set(assignment.index) == set(table_a["speaker_id"]) == set(speakers["speaker_id"])):
        found_assignment, labels = assignment, {}
    else:
        found = discoverer.fit(table_a, side)
        found_assignment, labels = found.assignment, found.labels
    _, summ = cohort_table(table_a, found_assignment, labels, discoverer.min_speakers)
    out: dict[str, Any] = {k: None for k in (
        "discovery_gap_pct", "discovery_gap_abs", "discovery_bottom_wer", "discovery_top_wer", "heldout_gap_pct",
        "heldout_gap_abs", "heldout_bottom_wer", "heldout_top_wer", "heldout_bottom_speakers",
        "heldout_top_speakers", "bottom", "top")}
    out.update({"seed": seed, "method": HONEST_METHOD})
    if summ["bottom"] is None:
        out["note"] = summ.get("note", "fewer than two eligible cohorts on the discovery half")
        return out
    bottom, top = summ["bottom"], summ["top"]
    b_members, t_members = members(found_assignment, bottom), members(found_assignment, top)
    wb_a, _ = _cohort_wer(table_a, b_members)
    wt_a, _ = _cohort_wer(table_a, t_members)
    wb, nb = _cohort_wer(table_b, b_members)
    wt, nt = _cohort_wer(table_b, t_members)
    out.update({"bottom": bottom, "top": top, "discovery_gap_pct": summ["wer_gap_pct"],
                "discovery_gap_abs": summ["wer_gap_abs"], "discovery_bottom_wer": wb_a, "discovery_top_wer": wt_a,
                "heldout_bottom_wer": wb, "heldout_top_wer": wt, "heldout_bottom_speakers": nb,
                "heldout_top_speakers": nt})
    if wb is not None and wt is not None:
        out["heldout_gap_pct"], out["heldout_gap_abs"] = gap(wb, wt)
    return out
