"""Read the census table that the geodemographic discoverer joins to speakers by zip code.

The table has one row per zip code and numeric demographic columns, e.g.::

    zip,pct_white,pct_black,pct_hispanic,pct_asian,median_income
    02139,0.52,0.11,0.08,0.25,89400

:func:`read_census` returns a frame indexed by the 5-digit zip code (str, index name
``zip``) with numeric (float) columns only.

Zip codes
    Normalised by :func:`normalize_zip`: leading zeros are kept ("02139"), ZIP+4 is cut to
    its 5-digit zip ("02139-1234", "021391234" -> "02139"), numbers that lost their
    leading zeros in a spreadsheet are zero-padded (2139 -> "02139"; 2139.0 too), so are
    ZIP+4 numbers that lost one or two (21391234 -> "02139").  "00000" (a common
    placeholder) and anything else are invalid.  An invalid or repeated zip in the census
    table is an error naming its line.

Columns
    Numeric columns are kept.  A text column whose non-empty cells are mostly (>= 50 %)
    numbers is read as numbers: thousands separators ("52,000") and a trailing "%" are
    accepted, empty cells and NA/N/A/null/-/(X) are missing; any other cell is an error
    naming its line and column.  Other text columns (state names, ...) and
    identifier-like numeric columns (names ending in ``id``, ``code``, ``fips``,
    ``geoid``, ``name``) are dropped, with a note in ``frame.attrs["notes"]``.

Share columns (detected per column, recorded in ``frame.attrs["share_columns"]``)
    A column is a share (of the zip's population) if its name starts with ``pct_``,
    ``share_``, ``frac_`` or ``prop_`` or ends with ``_pct`` or ``_share``
    (case-insensitive), or if all its values lie within [0, 1] (so a 0/1 indicator
    column is a share too).  Its scale is then:

    * ``"fraction"`` when all values are within [0, 1] (kept as they are);
    * ``"percent"`` when the largest value is above 1 and at most 100, or when any cell
      was written with a "%" sign: the values are divided by 100, so every share column
      of the returned frame is a fraction;
    * a share column with a value below 0 or above 100 is an error naming the line.

    Caveat: a percent column whose values are all <= 1 (e.g. 0.3 % everywhere) cannot be
    told from a fraction and is read as a fraction; write such a column as fractions or
    with "%" signs.
"""
from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .common import TABLE_FORMATS, detect_format
from .readers import _read_table

SHARE_PREFIXES = ("pct_", "share_", "frac_", "prop_")
SHARE_SUFFIXES = ("_pct", "_share")
# Cells that mean "no value" in census exports (ACS uses "-" and "(X)").
_MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "(x)"}
_IDENTIFIER = re.compile(r"(^|_)(id|geoid|fips|code|name)$", re.IGNORECASE)
# 3-5 digits (up to two leading zeros lost), optionally followed by the 4-digit ZIP+4
# suffix, with or without a "-" or space between.
_ZIP = r"^(\d{3,5})(?:[-\s]?\d{4})?$"
_ZIP_HINT = "use 5-digit zip codes (ZIP+4 and numbers that lost their leading zeros are accepted)"


def normalize_zip(values: Iterable) -> pd.Series:
    """Normalise zip codes to 5-digit strings; invalid or missing -> NA.

    Accepts strings ("02139", " 02139 ", "02139-1234", "021391234") and numbers whose
    leading zeros were dropped (2139, 2139.0, 21391234).  Vectorised; returns a
    ``string`` Series (the input's index is kept when it is a Series).
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values if hasattr(values, "dtype") else list(values))
    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Series(pd.NA, index=s.index, dtype="string")
    if pd.api.types.is_float_dtype(s.dtype):
        # Floats come from numeric columns with gaps; only whole numbers can be zips.
        f = s.to_numpy(dtype=float, na_value=np.nan)
        whole = np.isfinite(f) & (f >= 0) & (f == np.round(f)) & (f < 1e10)
        s = pd.Series(np.where(whole, f, 0).astype(np.int64), index=s.index).astype("string").where(whole, pd.NA)
    else:
        s = s.astype("string")
    s = s.str.strip().str.replace(r"\.0+$", "", regex=True)
    out = s.str.extract(_ZIP, expand=False).astype("string").str.zfill(5)
    return out.mask(out == "00000").astype("string")


def is_share_name(name: str) -> bool:
    """Whether a column name marks a share (see the module docstring)."""
    low = str(name).lower()
    return low.startswith(SHARE_PREFIXES) or low.endswith(SHARE_SUFFIXES)


def read_census(path: str, fmt: str | None = None) -> pd.DataFrame:
    """Census table indexed by 5-digit zip (str, index name ``zip``), float columns only.

    ``fmt``: csv/tsv/jsonl/parquet, default from the file name (``.gz`` ok).  Share
    columns come back as fractions (0-1); ``attrs["share_columns"]`` maps each to the
    scale it was given in (``"fraction"`` or ``"percent"``), ``attrs["notes"]`` lists the
    columns dropped and why.  Raises UserInputError naming the line and column on a
    missing zip column, an invalid or repeated zip, junk in a numeric column or a share
    outside 0-100.
    """
    fmt = detect_format(path, fmt, flag=None)
    if fmt not in TABLE_FORMATS:
        raise UserInputError(f"census table must be CSV, TSV, JSONL or Parquet, not {fmt}", path=path,
                             hint="name the census file .csv, .tsv, .jsonl or .parquet")
    frame, bad = _read_table(path, fmt, ["zip"], flag=None)
    if bad:
        raise UserInputError(f"{len(bad)} unparsable row(s), first: {bad[0]}", path=path,
                             hint="fix those lines of the census table")
    # Header on line 1 for CSV/TSV; JSONL has no header; Parquet has rows, not lines.
    if fmt in ("csv", "tsv"):
        where = lambda i: f"line {i + 2}"  # noqa: E731
    elif fmt == "jsonl":
        where = lambda i: f"line {i + 1}"  # noqa: E731
    else:
        where = lambda i: f"row {i + 1}"  # noqa: E731
    return _prepare(frame, path, where)


def prepare_census(frame: pd.DataFrame, path: str | None = None) -> pd.DataFrame:
    """Apply :func:`read_census`'s checks and conversions to an in-memory table.

    ``frame`` has a ``zip`` column or index.  Returns a new frame (the input is untouched).
    """
    frame = frame.copy()
    if "zip" not in frame.columns and frame.index.name is not None and str(frame.index.name).lower() == "zip":
        frame = frame.reset_index()
    return _prepare(frame.reset_index(drop=True), path, lambda i: f"row {i + 1}")


def _prepare(frame: pd.DataFrame, path: str | None, where: Callable[[int], str]) -> pd.DataFrame:
    zip_col = _zip_column(frame, path)
    raw_zip = frame[zip_col]
    zips = normalize_zip(raw_zip.reset_index(drop=True))
    invalid = zips.isna().to_numpy()
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        raise UserInputError(f"{where(i)}: zip {_show(raw_zip.iloc[i])} is not a US zip code", path=path,
                             hint=_ZIP_HINT)
    dup = zips.duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((zips == zips.iloc[i]).to_numpy())[0])
        raise UserInputError(f"{where(i)}: zip {zips.iloc[i]!r} appears twice (first on {where(first)})",
                             path=path, hint="keep one row per zip code")

    notes: list[str] = []
    columns: dict[str, np.ndarray] = {}
    percent_sign: set[str] = set()
    for col in frame.columns:
        if col == zip_col:
            continue
        values, had_pct, note = _numeric_column(frame[col].reset_index(drop=True), str(col), path, where)
        if note:
            notes.append(note)
            continue
        if _IDENTIFIER.search(str(col)):
            notes.append(f"column {col!r} dropped: looks like an identifier, not a demographic attribute")
            continue
        if np.isnan(values).all():
            notes.append(f"column {col!r} dropped: no values")
            continue
        columns[str(col)] = values
        if had_pct:
            percent_sign.add(str(col))
    if not columns:
        found = ", ".join(map(str, frame.columns))
        raise UserInputError(f"no numeric demographic columns besides zip (columns: {found})", path=path,
                             hint="the census table needs columns such as pct_black or median_income")

    scales: dict[str, str] = {}
    for col, values in columns.items():
        scale = _share_scale(col, values, col in percent_sign, path, where)
        if scale is None:
            continue
        scales[col] = scale
        if scale == "percent":
            columns[col] = values / 100.0

    out = pd.DataFrame(columns, index=pd.Index(zips.to_numpy(dtype=object), name="zip", dtype=object))
    out.attrs["share_columns"] = scales
    out.attrs["notes"] = notes
    if path:
        out.attrs["path"] = path
    return out


def _zip_column(frame: pd.DataFrame, path: str | None) -> str:
    if "zip" in frame.columns:
        return "zip"
    for col in frame.columns:
        if str(col).strip().lower() == "zip":
            return col
    found = ", ".join(map(str, frame.columns)) or "none"
    raise UserInputError(f"no zip column in the census table (columns: {found})", path=path,
                         hint="rename the zip-code column to 'zip'")


def _show(value) -> str:
    return "(empty)" if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA \
        else repr(str(value))


def _numeric_column(col: pd.Series, name: str, path: str | None, where) -> tuple[np.ndarray, bool, str | None]:
    """(float values, whether any cell had a '%' sign, note if the column is dropped)."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return np.empty(0), False, f"column {name!r} dropped: true/false values, not numbers"
    if pd.api.types.is_numeric_dtype(col.dtype):
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan), False, None
    text = col.astype("string").str.strip()
    missing = text.isna() | text.str.lower().isin(_MISSING_TOKENS).fillna(True)
    had_pct = text.str.endswith("%").fillna(False)
    cleaned = text.str.replace(r"%$", "", regex=True)
    # Thousands separators only where they are separators (52,000), never a decimal comma.
    thousands = cleaned.str.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?").fillna(False)
    cleaned = cleaned.where(~thousands, cleaned.str.replace(",", "", regex=False))
    num = pd.to_numeric(cleaned.where(~missing, None), errors="coerce")
    present = ~missing.to_numpy()
    parsed = num.notna().to_numpy() & present
    if present.sum() == 0:
        return np.empty(0), False, f"column {name!r} dropped: no values"
    if parsed.sum() < 0.5 * present.sum():
        return np.empty(0), False, f"column {name!r} dropped: not numeric"
    junk = present & ~parsed
    if junk.any():
        i = int(np.flatnonzero(junk)[0])
        raise UserInputError(f"{where(i)}, column {name!r}: {str(col.iloc[i])!r} is not a number", path=path,
                             hint="fix the cell or leave it empty when unknown")
    return num.to_numpy(dtype=float, na_value=np.nan), bool((had_pct.to_numpy() & present).any()), None


def _share_scale(col: str, values: np.ndarray, percent_sign: bool, path: str | None, where) -> str | None:
    """'fraction', 'percent' or None (not a share); raises on an out-of-range share."""
    finite = values[~np.isnan(values)]
    lo, hi = float(finite.min()), float(finite.max())
    named = is_share_name(col)
    if not named and not percent_sign and not (lo >= 0 and hi <= 1):
        return None
    bad = (values < 0) | (values > 100)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserInputError(f"{where(i)}, column {col!r}: share {values[i]:g} is outside 0-100", path=path,
                             hint="give shares as fractions (0-1) or percents (0-100)")
    return "percent" if percent_sign or hi > 1 else "fraction"
