"""Exact per-cell sums of permuted counts, two counts per ``np.bincount``.

Under the permutation null only the speakers' counts move; which cell (zip, joint
attribute cell) a row belongs to does not.  A permutation's cell sums are then one gather
of the counts and one ``np.bincount`` per count.  Whole non-negative counts whose totals
are small enough travel in pairs packed into one float64, ``a + f * b`` with ``f`` a
power of two above every sum of ``a``: every partial sum is a whole number below 2**53,
so it is exact in any order, and ``floor(s / f)``, ``s - f * floor(s / f)`` give back
the two sums exactly (the same numbers as two separate bincounts).
"""
from __future__ import annotations

import numpy as np


def packing(a: np.ndarray, b: np.ndarray) -> float | None:
    """The factor f that makes ``a + f * b`` carry both counts exactly through any sum of
    them, or None when they are not whole non-negative numbers or their totals are too large."""
    if not len(a) or len(a) != len(b):
        return None
    if not ((a >= 0).all() and (b >= 0).all() and (np.mod(a, 1) == 0).all() and (np.mod(b, 1) == 0).all()):
        return None
    factor = 2.0 ** max(1, int(a.sum()).bit_length())      # > every sum of a
    return factor if float(b.sum()) * factor + float(a.sum()) < 2.0 ** 53 else None


class PairSums:
    """Per-cell sums of two counts ``a``, ``b`` (per table row) gathered by row indices:
    :meth:`sums` (rows) == (bincount(cells, a[rows]), bincount(cells, b[rows])), exactly."""

    def __init__(self, cells: np.ndarray, n_cells: int, a: np.ndarray, b: np.ndarray):
        self.cells, self.n_cells, self.a, self.b = cells, int(n_cells), a, b
        # the packing is decided on the totals of every row: no gathered subset exceeds them
        self.factor = packing(a, b)
        self.packed = None if self.factor is None else a + self.factor * b

    def sums(self, rows: np.ndarray, out_a: np.ndarray, out_b: np.ndarray) -> None:
        """Write the cell sums of ``a[rows]`` and ``b[rows]`` (``rows[i]``: whose counts
        cell ``cells[i]`` gets) into ``out_a``/``out_b`` (length n_cells)."""
        if self.packed is None:
            out_a[:] = np.bincount(self.cells, weights=self.a[rows], minlength=self.n_cells)
            out_b[:] = np.bincount(self.cells, weights=self.b[rows], minlength=self.n_cells)
            return
        s = np.bincount(self.cells, weights=self.packed[rows], minlength=self.n_cells)
        np.floor(s / self.factor, out=out_b)
        out_a[:] = s - out_b * self.factor
