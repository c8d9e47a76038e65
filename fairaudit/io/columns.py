"""Column checks shared by the table readers: repeated names, ids stored as floats,
numbers in transcript columns.

* A header naming a column twice made ``frame[name]`` a frame, not a column, and failed
  deep inside scoring: it is an error naming both positions.
* Ids stored as floating-point numbers (Parquet or JSONL ``7.0``, often a pandas column
  that once held a missing value) would become the text ``"7.0"`` and never join a
  speaker table holding ``7``: whole-number floats become integer text, with a warning.
* A transcript that is a JSON number (``"reference": 123``) is read as the text ``"123"``.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import UserInputError


def check_unique_names(names: Iterable, path: str | None) -> None:
    """Raise when a column name appears more than once (positions counted from 1)."""
    names = [str(n) for n in names]
    for name, n in Counter(names).items():
        if n > 1:
            at = [i for i, x in enumerate(names, start=1) if x == name]
            raise UserInputError(f"column {name!r} appears {n} times in the header (columns "
                                 f"{', '.join(map(str, at))})", path=path,
                                 hint="give each column its own name")


def _number_text(value) -> str:
    """A number as the text a person wrote: 7.0 -> "7", 0.5 -> "0.5", 123 -> "123"."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _has_floats(col: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(col.dtype):
        return True
    return col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in (
        "floating", "mixed-integer-float", "mixed")


def ids_as_text(frame: pd.DataFrame, cols: Iterable[str], path: str | None, warnings: list[str]) -> pd.DataFrame:
    """Whole-number float ids in ``cols`` become integer text ("7.0" -> "7"), with a warning.

    Missing values stay missing; other columns and non-float ids are left alone.
    """
    for col in cols:
        if col not in frame.columns or not _has_floats(frame[col]):
            continue
        values = frame[col]
        floats = values.map(lambda v: isinstance(v, (float, np.floating)) and math.isfinite(v))
        whole = floats & values.map(lambda v: isinstance(v, (float, np.floating)) and math.isfinite(v)
                                    and float(v).is_integer())
        if not whole.any():
            continue
        example = float(values[whole].iloc[0])
        frame[col] = values.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v))
                                else _number_text(v)).astype("string")
        warnings.append(f"{path or 'input'}: column {col!r} stores ids as floating-point numbers; "
                        f"{int(whole.sum())} whole-number id(s) read as integer text (e.g. {example!r} -> "
                        f"{_number_text(example)!r}) so they match the same ids elsewhere")
    return frame


def numbers_as_text(frame: pd.DataFrame, cols: Iterable[str]) -> pd.DataFrame:
    """Transcript columns holding numbers (a JSON ``123``) become text; missing stays missing."""
    for col in cols:
        if col not in frame.columns:
            continue
        values = frame[col]
        if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
            continue
        if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            continue
        frame[col] = values.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v))
                                else (v if isinstance(v, str) else _number_text(v))).astype(object)
    return frame


def float_id_warnings(schema, cols: Iterable[str], path: str | None) -> list[str]:
    """The :func:`ids_as_text` warning for chunked readers, from the Arrow schema: each
    chunk is converted on its own, the warning is given once."""
    import pyarrow as pa

    out = []
    for col in cols:
        if col in schema.names and pa.types.is_floating(schema.field(col).type):
            out.append(f"{path or 'input'}: column {col!r} stores ids as floating-point numbers; whole-number "
                       f"ids are read as integer text (e.g. 7.0 -> '7') so they match the same ids elsewhere")
    return out
