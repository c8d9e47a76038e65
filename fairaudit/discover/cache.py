"""One-entry caches of the count-free part of a fit.

The permutation null, ``fairaudit power`` and ``selftest`` fit a discoverer again and
again on one speaker table whose error counts change while its attributes (zip codes,
coordinates, attribute columns) do not.  A discoverer keeps what it derived from those
columns (a census join, candidate rules, coded columns) keyed by a digest of their values,
so a re-fit on the same speakers skips that work and a fit on other speakers (held-out
folds, another audit) recomputes it.  The speaker table is keyed by its content, never by
identity (a table changed in place gets a new key); a side input (census table), loaded
once per audit and tens of thousands of rows long, by identity.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import numpy as np
import pandas as pd


def frame_key(frame: pd.DataFrame, columns: list[str], *extra: Any) -> str:
    """SHA-1 of the values of ``columns`` of ``frame`` (in row order) and of ``extra`` (repr).

    An Arrow-backed column (pandas' string columns) is digested through its Arrow layout
    (type, and per chunk its offset, length and buffers: what fixes its values) instead of
    a hash of every value (ten times faster on 100,000 speaker ids); two equal columns
    laid out differently get different keys, which only costs a rebuild."""
    digest = hashlib.sha1(repr((list(columns), len(frame), extra)).encode())
    if len(frame) and columns:
        hashed = []
        for c in columns:
            arrow = _arrow_chunks(frame[c])
            if arrow is None:
                hashed.append(c)
                continue
            digest.update(repr((c, str(arrow.type))).encode())
            for chunk in arrow.chunks:
                digest.update(repr((chunk.offset, len(chunk))).encode())
                for buf in chunk.buffers():
                    digest.update(b"-" if buf is None else memoryview(buf))
        if hashed:
            digest.update(np.ascontiguousarray(pd.util.hash_pandas_object(frame[hashed], index=False)
                                               .to_numpy()).tobytes())
    return digest.hexdigest()


def _arrow_chunks(col: pd.Series):
    """The column's Arrow chunked array when it is Arrow-backed (pandas' Arrow arrays hold
    one), else None."""
    import pyarrow as pa

    out = getattr(col.array, "_pa_array", None)
    return out if isinstance(out, pa.ChunkedArray) else None


def cached(owner: Any, name: str, key: str, build: Callable[[], Any], same: tuple = ()) -> Any:
    """``build()``, or the value kept in ``owner.__dict__[name]`` when it was built for
    ``key`` and the very objects ``same`` (compared by identity)."""
    held = owner.__dict__.get(name)
    if held is not None and held[0] == key and len(held[1]) == len(same) and all(
            a is b for a, b in zip(held[1], same)):
        return held[2]
    value = build()
    owner.__dict__[name] = (key, tuple(same), value)
    return value
