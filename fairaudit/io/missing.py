"""Missing speaker attributes: "NA" is not a gender, an empty cell is not an accent.

Attribute columns (of the speaker table, or constant per speaker in the utterance table)
often say "unknown" with a marker: an empty cell, ``NA``, ``N/A``, ``null``, ``None`` or
``nan`` (any case, surrounding spaces ignored).  Read as text, such a marker used to be a
value like any other, so ``gender=NA`` became a cohort and could be ranked bottom or top.

Here it is done once, where attributes are attached to the per-speaker table
(:func:`fairaudit.speakers.attach_attributes`): every marker becomes ``pd.NA``, so every
discoverer (attribute cohorts, the metadata tree, the automatic discoverer's cluster
descriptions) sees the same "unknown", leaves those speakers out of the cohorts it ranks
and counts them as not audited.  ``missing_attribute="cohort"`` keeps the markers as
values (the behaviour before).  Ids (utterance, speaker, hypothesis keys) and transcripts
are never attribute columns, so an id ``NA`` stays an id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from ..errors import UserInputError

#: the markers that mean "unknown" by default (compared stripped and case-insensitively);
#: an empty cell is always unknown
DEFAULT_NA_VALUES: tuple[str, ...] = ("NA", "N/A", "null", "None", "nan")
#: ``unknown``: markers are missing values (speakers not audited on that attribute);
#: ``cohort``: markers are values like any other
MISSING_ATTRIBUTE_MODES = ("unknown", "cohort")
#: the not-audited reason of a speaker whose attribute is unknown
REASON = "attribute missing"


def parse_na_values(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """The markers of ``--na-values``: a comma-separated list ("NA,unknown,-"), which
    replaces the default list; "" leaves only empty cells as missing.  None: the default."""
    if text is None:
        return DEFAULT_NA_VALUES
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(str(v).strip() for v in items if str(v).strip()))


def check_missing_attribute(mode: str) -> str:
    """``mode`` if it is one of :data:`MISSING_ATTRIBUTE_MODES`, else a one-line error."""
    if mode not in MISSING_ATTRIBUTE_MODES:
        raise UserInputError(f"unknown --missing-attribute {mode!r}",
                             hint=f"--missing-attribute takes one of: {', '.join(MISSING_ATTRIBUTE_MODES)}")
    return mode


@dataclass(frozen=True)
class MissingValues:
    """How attribute cells that mean "unknown" are read (see the module docstring)."""

    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    mode: str = "unknown"

    def __post_init__(self) -> None:
        check_missing_attribute(self.mode)
        object.__setattr__(self, "na_values", parse_na_values(self.na_values))

    def to_report(self) -> dict:
        """``{"na_values": [...], "missing_attribute": mode}`` for report.json ``inputs``."""
        return {"na_values": list(self.na_values), "missing_attribute": self.mode}

    def unknown(self, col: pd.Series) -> pd.Series:
        """Boolean mask of the cells of ``col`` that are unknown: missing (NaN/None/NA),
        and for text, empty or one of the markers (only missing ones with mode ``cohort``)."""
        missing = col.isna()
        if self.mode == "cohort" or pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            return missing
        # The text work runs on the distinct values (a handful per attribute column).
        markers = {m.lower() for m in self.na_values} | {""}
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        marked = [isinstance(u, str) and u.strip().lower() in markers for u in uniques]
        hit = pd.Series(marked + [False], dtype=bool).to_numpy()[codes]   # code -1 (NA) -> False
        return missing | pd.Series(hit, index=col.index)

    def mark(self, speakers: pd.DataFrame, columns: Iterable[str]) -> tuple[pd.DataFrame, dict[str, int]]:
        """``speakers`` with unknown cells of ``columns`` set to ``pd.NA`` (a pandas 3
        ``str`` column becomes ``string``, whose missing value is ``pd.NA``; object columns
        stay object), and per column the number of speakers whose value is unknown
        (count; columns without any left out)."""
        counts: dict[str, int] = {}
        for c in columns:
            col = speakers[c]
            unknown = self.unknown(col)
            if self.mode == "unknown" and not pd.api.types.is_numeric_dtype(col) \
                    and not pd.api.types.is_bool_dtype(col) and unknown.any():
                if isinstance(col.dtype, pd.StringDtype) and col.dtype.na_value is not pd.NA:
                    col = col.astype("string")   # pandas 3's "str" holds NaN, not pd.NA
                speakers[c] = col.mask(unknown.to_numpy(), pd.NA)
            if unknown.any():
                counts[str(c)] = int(unknown.sum())
        return speakers, counts
