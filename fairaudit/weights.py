"""Sample weights for reweighting or oversampling, from each cohort's excess WER.

For a discoverer d with reference WER ``W_d`` (micro WER of all speakers it audited) and
a cohort c of it with micro WER ``W_c``:

    excess_c = W_c / W_d - 1                              (ratio; 0 for a cohort at W_d)
    r_c      = 1 + min(cap - 1, max(0, excess_c))         (raw cohort weight, 1 .. cap)

A cohort with fewer speakers than the discoverer's minimum gets r_c = 1 (its WER is too
noisy to act on), as do speakers the discoverer did not audit.  An utterance u of speaker
s takes the largest raw weight of its speaker's cohorts over the weighting discoverers
D, and the weights are normalised to mean 1 over the audited utterances:

    r_u = max over d in D of r_{c_d(s)}        w_u = r_u / mean over u' of r_{u'}

So cohorts served better than average keep weight 1 relative to each other (no data is
down-weighted for being easy), an under-served cohort is up-weighted in proportion to
its excess WER, never by more than ``cap`` times the best-served utterances, and
reweighting the whole set keeps its effective size.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .errors import UserInputError

#: the formula in one line, written into export.json beside the weights
FORMULA = ("w_u = r_u / mean(r); r_u = max over the weighting discoverers of r_c for the speaker's cohort c; "
           "r_c = 1 + min(cap - 1, max(0, WER_c / WER_d - 1)), WER_d the micro WER of the discoverer's "
           "audited speakers; r_c = 1 for cohorts below the minimum size and for speakers not audited")
DEFAULT_CAP = 3.0


def check_cap(cap: float) -> float:
    """``cap`` (ratio >= 1) or a one-line UserInputError naming --weight-cap."""
    try:
        value = float(cap)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value < 1.0:
        raise UserInputError(f"--weight-cap {cap} must be a number of at least 1 (1 = no reweighting)",
                             hint=f"e.g. --weight-cap {DEFAULT_CAP:g}")
    return value


def cohort_weights(report: dict, keys: Iterable[str], cap: float = DEFAULT_CAP) -> pd.DataFrame:
    """One row per cohort of each discoverer in ``keys``: ``discoverer``, ``cohort_id``,
    ``label``, ``speakers`` (count), ``wer`` (ratio), ``reference_wer`` (W_d, ratio),
    ``excess`` (W_c / W_d - 1, ratio), ``raw_weight`` (r_c, 1 .. cap)."""
    cap = check_cap(cap)
    rows = []
    for key in keys:
        entry = report["discoverers"][key]
        cohorts = entry.get("cohorts") or []
        errors = sum(int(c.get("errors") or 0) for c in cohorts)
        words = sum(int(c.get("ref_words") or 0) for c in cohorts)
        ref = errors / words if words else None
        for c in cohorts:
            wer = c.get("wer")
            excess = (wer / ref - 1.0) if (ref and wer is not None) else None
            eligible = excess is not None and not c.get("too_few_speakers")
            raw = 1.0 + min(cap - 1.0, max(0.0, excess)) if eligible else 1.0
            rows.append({"discoverer": key, "cohort_id": str(c["id"]), "label": c.get("label", c["id"]),
                         "speakers": int(c.get("speakers") or 0), "wer": wer, "reference_wer": ref,
                         "excess": excess, "raw_weight": raw, "too_few_speakers": bool(c.get("too_few_speakers"))})
    return pd.DataFrame(rows, columns=["discoverer", "cohort_id", "label", "speakers", "wer", "reference_wer",
                                       "excess", "raw_weight", "too_few_speakers"])


def speaker_raw_weights(speaker_ids: pd.Index, assignments: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """r_s per speaker: the largest raw weight of the speaker's cohorts (``assignments``:
    speaker_id, discoverer, cohort_id) among the discoverers of ``table`` (from
    :func:`cohort_weights`); 1 where none applies."""
    out = pd.Series(1.0, index=speaker_ids, dtype=float)
    if table.empty:
        return out
    lookup = table.set_index(["discoverer", "cohort_id"])["raw_weight"]
    a = assignments.loc[assignments["discoverer"].isin(table["discoverer"].unique())]
    if a.empty:
        return out
    keys = pd.MultiIndex.from_arrays([a["discoverer"].astype(str), a["cohort_id"].astype(str)])
    raw = pd.Series(lookup.reindex(keys).fillna(1.0).to_numpy(), index=a["speaker_id"].astype(str).to_numpy())
    best = raw.groupby(level=0).max()
    common = best.index.intersection(out.index)
    out.loc[common] = np.maximum(out.loc[common].to_numpy(), best.loc[common].to_numpy())
    return out


def utterance_weights(utterances: pd.DataFrame, assignments: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per utterance (``utterances``: utt_id, speaker_id): ``raw_weight`` (r_u, 1 .. cap)
    and ``weight`` (w_u, mean 1 over these utterances)."""
    spk = utterances["speaker_id"].astype(str)
    per_speaker = speaker_raw_weights(pd.Index(spk.unique()), assignments, table)
    raw = per_speaker.reindex(spk.to_numpy()).to_numpy(dtype=float)
    mean = float(raw.mean()) if len(raw) else 1.0
    return pd.DataFrame({"utt_id": utterances["utt_id"].astype(str).to_numpy(dtype=object),
                         "speaker_id": spk.to_numpy(dtype=object), "raw_weight": raw, "weight": raw / mean})
