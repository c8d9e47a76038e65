"""Write tables as CSV or Parquet."""
from __future__ import annotations

import os

import pandas as pd


def write_table(frame: pd.DataFrame, path_stem: str, fmt: str = "csv") -> str:
    """Write ``frame`` to ``path_stem`` + ``.csv``/``.parquet``; returns the path written."""
    os.makedirs(os.path.dirname(path_stem) or ".", exist_ok=True)
    if fmt == "parquet":
        path = path_stem + ".parquet"
        frame.to_parquet(path, index=False)
    else:
        path = path_stem + ".csv"
        frame.to_csv(path, index=False, lineterminator="\n")
    return path
