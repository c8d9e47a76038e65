"""Membership tests on id columns by hash lookup.

pandas' ``isin`` on pyarrow-backed strings (pandas 3's default ``str``) builds one Python
object per *test* value before comparing, so testing 1,000,000 utterance speaker ids
against the 100,000 ids of a speaker table costs 0.6 s per call; the same test through a
hash index (:meth:`pandas.Index.get_indexer`) costs 0.25 s, the same result.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def isin(values: Any, test: Any) -> np.ndarray:
    """Boolean mask (numpy, one per value): is each of ``values`` one of ``test``?

    ``values``/``test``: array-likes (Series, Index, arrays, lists; ``test`` may be a set).
    Equal to ``pd.Series(values).isin(test)`` (a missing value matches a missing value).
    """
    index = pd.Index(list(test) if isinstance(test, (set, frozenset)) else test)
    if not index.is_unique:
        index = index.unique()
    return index.get_indexer(pd.Index(values)) >= 0


def positions(values: Any, table: Any) -> np.ndarray:
    """Position of each of ``values`` in ``table`` (int64 numpy array, -1 when absent).

    Equal to ``pd.Index(table).get_indexer(values)`` for a ``table`` without duplicates
    (and ``values`` without missing ids, when they equal ``table``).
    On pyarrow-backed strings both sides stay in Arrow (``pyarrow.compute.index_in``):
    1,000,000 utterance speaker ids against 100,000 speakers in 0.05 s, where the
    Index look-up takes 0.3 s.
    """
    arrow_values, arrow_table = _arrow(values), _arrow(table)
    if arrow_values is not None and arrow_table is not None:
        import pyarrow.compute as pc

        if len(arrow_values) == len(arrow_table) and arrow_values.equals(arrow_table):
            # the usual case: ids in the table's own order (a compare of buffers, no hashing)
            return np.arange(len(arrow_values), dtype=np.int64)

        value_set = arrow_table.combine_chunks()
        if value_set.type != arrow_values.type:
            value_set = value_set.cast(arrow_values.type)
        found = pc.index_in(arrow_values, value_set=value_set)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return pd.Index(table).get_indexer(pd.Index(values)).astype(np.int64, copy=False)


def _arrow(values: Any):
    """The pyarrow string ChunkedArray behind a Series/Index/array of pyarrow-backed strings, else None."""
    array = getattr(values, "array", values)
    data = getattr(array, "_pa_array", None)
    if data is None:
        return None
    import pyarrow as pa

    return data if pa.types.is_string(data.type) or pa.types.is_large_string(data.type) else None
