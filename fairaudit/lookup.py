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
