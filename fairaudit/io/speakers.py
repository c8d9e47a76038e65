"""Read the per-speaker metadata table (coordinates, zip code, known attributes)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .columns import ids_as_text
from .common import detect_format
from .readers import _read_table


def read_speakers(path: str, speaker_col: str = "speaker_id", fmt: str | None = None) -> pd.DataFrame:
    """Speaker table indexed by ``speaker_id`` (str).

    ``lat``/``lon`` become floats (degrees; unparsable values are an error naming the
    row), ``zip`` stays a string (leading zeros kept).  Other columns pass through as
    attributes.
    """
    fmt = detect_format(path, fmt, flag=None)
    if fmt not in ("csv", "tsv", "parquet", "jsonl"):
        raise UserInputError(f"speaker table must be CSV, TSV, JSONL or Parquet, not {fmt}", path=path)
    frame, bad = _read_table(path, fmt, [speaker_col, "zip"], flag=None)
    if bad:
        raise UserInputError(f"{len(bad)} unparsable row(s), first: {bad[0]}", path=path,
                             hint="fix those lines of the speaker table")
    if speaker_col not in frame.columns:
        raise UserInputError(f"column {speaker_col!r} not found (columns: {', '.join(map(str, frame.columns))})",
                             path=path, hint="the speaker table needs a speaker_id column (or pass --speaker-col)")
    frame.index = np.arange(2, len(frame) + 2)  # line numbers, header on line 1
    warnings: list[str] = []
    frame = ids_as_text(frame, [speaker_col], path, warnings)
    ids = frame[speaker_col].astype("string").fillna("").str.strip()
    if (ids == "").any():
        raise UserInputError(f"line {ids.index[(ids == '').to_numpy()][0]}: empty speaker id", path=path,
                             hint="every speaker row needs an id")
    dup = ids.duplicated()
    if dup.any():
        line = ids.index[dup.to_numpy()][0]
        raise UserInputError(f"line {line}: speaker {ids[line]!r} appears twice", path=path,
                             hint="keep one row per speaker")
    frame = frame.drop(columns=[speaker_col])
    frame.index = pd.Index(ids.to_numpy(dtype=object), name="speaker_id")
    for col in ("lat", "lon"):
        if col in frame.columns:
            frame[col] = _coord(frame[col], col, path, ids.index)
    if "zip" in frame.columns:
        frame["zip"] = frame["zip"].astype("string")
    frame.attrs["warnings"] = warnings
    return frame


def _coord(col: pd.Series, name: str, path: str, lines) -> pd.Series:
    raw = col.astype("string").str.strip()
    num = pd.to_numeric(raw.replace("", pd.NA), errors="coerce")
    bad = num.isna() & raw.notna() & (raw != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserInputError(f"line {lines[i]}, column {name!r}: {raw.iloc[i]!r} is not a number", path=path,
                             hint="use decimal degrees, or leave the cell empty when unknown")
    return num.astype(float)
