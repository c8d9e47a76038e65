"""Word alignments for display (worst utterances in the HTML report).

The same rapidfuzz opcodes jiwer uses, on the same normalised words as the scores, so the
marked substitutions, deletions and insertions add up to the counted ones.
"""
from __future__ import annotations

from rapidfuzz.distance import Levenshtein

from .normalize import tokenize


def align(reference: str, hypothesis: str, normalization: str = "default") -> list[list]:
    """Aligned words as ``[op, ref_word, hyp_word]`` with op in equal/sub/del/ins (None for no word)."""
    ref, hyp = (t or [] for t in tokenize([reference or "", hypothesis or ""], normalization).to_pylist())
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
                     redact_text: bool = False) -> list[dict]:
    """The ``n`` utterances with the most errors among ``speaker_ids`` (ties: higher WER, then id).

    With ``redact_text`` only ids and counts are kept: no transcript leaves the machine.
    """
    sub = utterances.loc[utterances["speaker_id"].isin(set(speaker_ids))]
    if sub.empty:
        return []
    sub = sub.sort_values(["errors", "wer", "utt_id"], ascending=[False, False, True], kind="stable").head(n)
    out = []
    for row in sub.itertuples(index=False):
        rec = {"utt_id": str(row.utt_id), "speaker_id": str(row.speaker_id), "ref_words": int(row.ref_words),
               "errors": int(row.errors), "wer": float(row.wer)}
        if not redact_text and "reference" in sub.columns:
            rec["alignment"] = align(row.reference, row.hypothesis, normalization)
        out.append(rec)
    return out
