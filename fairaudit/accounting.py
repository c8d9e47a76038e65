"""Every input row accounted for: rows read = rows scored + rows dropped (by reason)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .lookup import isin

# Reasons a row can be dropped, with the sentence shown to users.
DROP_REASONS = {
    "unparsable_row": "row could not be parsed (wrong number of fields, bad JSON or bad line)",
    "missing_utt_id": "utterance id is empty",
    "missing_speaker_id": "speaker id is empty (and no utt2spk entry)",
    "duplicate_utt_id": "utterance id already seen earlier in the input (first kept)",
    "empty_reference": "reference has no words after normalisation: cannot enter a WER denominator",
    "no_reference": "hypothesis whose utterance id has no reference",
    "unparsable_hypothesis": "hypothesis line could not be parsed (a trn line without '(utt-id)' at its end)",
    "duplicate_hypothesis_id": "hypothesis id already seen earlier in the same hypothesis file (first kept)",
    "no_hypothesis": "reference utterance without a hypothesis in this system's file (--missing-hyp empty scores it "
                     "as empty output)",
    "missing_hypothesis_key": "hypothesis row whose key cell is empty",
}


@dataclass
class Accounting:
    """What happened to each input row (counts of rows)."""

    rows_read: int = 0
    rows_scored: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Insertions in rows with an empty reference: reported, since they are real errors
    # that no WER denominator can hold.
    empty_reference_insertions: int = 0
    #: the speaker table against the scored speakers (see :meth:`count_speaker_table`);
    #: empty when there was no speaker table
    speaker_table: dict = field(default_factory=dict)
    #: attribute column -> speakers whose value is unknown (count; see
    #: :mod:`fairaudit.io.missing`): not audited by the discoverers that use the column
    attribute_missing: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int, examples: list[str] | None = None) -> None:
        """Record ``count`` rows dropped for ``reason`` (a key of DROP_REASONS)."""
        if count <= 0:
            return
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason}")
        self.dropped[reason] = self.dropped.get(reason, 0) + int(count)
        if examples:
            have = self.examples.setdefault(reason, [])
            have.extend(examples[: max(0, 5 - len(have))])

    def count_speaker_table(self, table_ids, scored_ids) -> None:
        """Count the speaker table's rows against the speakers with scored utterances:
        ``rows``, ``matched``, ``without_utterances`` (rows whose speaker has no scored
        utterance: absent from the input, or every row dropped) with ``examples``, and
        ``speakers_without_row`` (scored speakers the table does not list).  Counts of
        speakers."""
        table_ids = pd.Index(table_ids).astype(str)
        scored = pd.Index(scored_ids).astype(str)
        matched = isin(table_ids, scored)
        absent = table_ids[~matched]
        self.speaker_table = {"rows": int(len(table_ids)), "matched": int(matched.sum()),
                              "without_utterances": int(len(absent)), "examples": [str(x) for x in absent[:5]],
                              "speakers_without_row": int((~isin(scored, table_ids)).sum())}
        if len(absent):
            self.warnings.append(f"{len(absent)} of {len(table_ids)} speaker(s) in the speaker table have no scored "
                                 f"utterance (e.g. {', '.join(map(repr, self.speaker_table['examples'][:3]))})")

    @property
    def rows_dropped(self) -> int:
        """Total rows dropped (count)."""
        return sum(self.dropped.values())

    def check(self) -> None:
        """Raise if rows read != rows scored + rows dropped (a bug, never a user error)."""
        if self.rows_read != self.rows_scored + self.rows_dropped:
            raise AssertionError(
                f"row accounting broken: read {self.rows_read} != scored {self.rows_scored}"
                f" + dropped {self.rows_dropped} ({self.dropped})"
            )

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_dropped": self.rows_dropped,
            "dropped": {k: {"rows": v, "reason": DROP_REASONS[k], "examples": self.examples.get(k, [])}
                        for k, v in sorted(self.dropped.items())},
            "empty_reference_insertions": self.empty_reference_insertions,
            "warnings": list(self.warnings),
            **({"speaker_table": dict(self.speaker_table)} if self.speaker_table else {}),
            **({"attribute_missing": dict(self.attribute_missing)} if self.attribute_missing else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Accounting":
        acc = cls(rows_read=d["rows_read"], rows_scored=d["rows_scored"],
                  empty_reference_insertions=d.get("empty_reference_insertions", 0),
                  warnings=list(d.get("warnings", [])), speaker_table=dict(d.get("speaker_table", {})),
                  attribute_missing=dict(d.get("attribute_missing", {})))
        for k, v in d.get("dropped", {}).items():
            acc.dropped[k] = v["rows"]
            acc.examples[k] = list(v.get("examples", []))
        return acc
