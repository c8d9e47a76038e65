"""Token alignments for display (worst utterances in the HTML report).

The same alignment as the scores (jiwer's rapidfuzz opcodes, or sclite's DP), on the same
normalised tokens, so the marked substitutions, deletions and insertions add up to the
counted ones.
"""
from __future__ import annotations

import numpy as np
from rapidfuzz.distance import Levenshtein

from .align_sclite import sclite_ops
from .lookup import isin
from .units import tokenize


def align(reference: str, hypothesis: str, normalization: str = "default", unit: str = "word",
          alignment: str = "jiwer") -> list[list]:
    """Aligned tokens as ``[op, ref_token, hyp_token]`` with op in equal/sub/del/ins (None for no token)."""
    ref, hyp = tokenize([reference or "", hypothesis or ""], normalization, unit)
    if alignment == "sclite":
        return [[op, None if i is None else ref[i], None if j is None else hyp[j]] for op, i, j in sclite_ops(ref, hyp)]
    ids: dict[str, int] = {}
    r = [ids.setdefault(w, len(ids)) for w in ref]
    h = [ids.setdefault(w, len(ids)) for w in hyp]
    out: list[list] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(r, h):
        if tag == "equal":
            out += [["equal", ref[i], hyp[j]] for i, j in zip(range(i1, i2), range(j1, j2))]
        elif tag == "replace":
            out += [["sub", ref[i], hyp[j]] for i, j in zip(range(i1, i2), range(j1, j2))]
        elif tag == "delete":
            out += [["del", ref[i], None] for i in range(i1, i2)]
        else:
            out += [["ins", None, hyp[j]] for j in range(j1, j2)]
    return out


def worst_utterances(utterances, speaker_ids, n: int = 5, normalization: str = "default",
                     redact_text: bool = False, unit: str = "word", alignment: str = "jiwer", *,
                     mask: np.ndarray | None = None) -> list[dict]:
    """The ``n`` utterances with the most errors among ``speaker_ids`` (ties: higher WER, then id).

    With ``redact_text`` only ids and counts are kept: no transcript leaves the machine.
    ``mask``: which rows of ``utterances`` are those speakers' (computed from
    ``speaker_ids`` when None).
    """
    mask = isin(utterances["speaker_id"], speaker_ids) if mask is None else np.asarray(mask, dtype=bool).copy()
    errors = utterances["errors"].to_numpy()
    if mask.sum() > n > 0 and not np.isnan(errors[mask].astype(float)).any():
        # only rows with at least the n-th largest error count can be among the n worst
        mask &= errors >= np.partition(errors[mask], -n)[-n]
    sub = utterances.iloc[np.flatnonzero(mask)]
    if sub.empty:
        return []
    sub = sub.sort_values(["errors", "wer", "utt_id"], ascending=[False, False, True], kind="stable").head(n)
    out = []
    for row in sub.itertuples(index=False):
        rec = {"utt_id": str(row.utt_id), "speaker_id": str(row.speaker_id), "ref_words": int(row.ref_words),
               "errors": int(row.errors), "wer": float(row.wer)}
        if not redact_text and "reference" in sub.columns:
            rec["alignment"] = align(row.reference, row.hypothesis, normalization, unit, alignment)
        out.append(rec)
    return out
