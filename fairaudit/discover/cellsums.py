"""Exact per-cell sums of permuted counts, two counts per ``np.bincount``.

Under the permutation null only the speakers' counts move; which cell (zip, joint
attribute cell) a position belongs to does not.  A permutation's cell sums are then a
``np.bincount`` of every row's counts by the cell its counts land in (:class:`Landing`:
one scatter of the cells through the permutation; the counts themselves are never
gathered).  Whole non-negative counts whose totals are small enough travel in pairs
packed into one float64, ``a + f * b`` with ``f`` a power of two above every sum of
``a`` (:func:`packing`): every partial sum is a whole number below 2**53, so it is exact
in any order, and ``floor(s / f)``, ``s - f * floor(s / f)`` give back the two sums
exactly -- the same numbers as two separate bincounts of the gathered counts.
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


class Landing:
    """Where each table row's counts land under a permutation: ``label(take)[s]`` is the
    cell of the position whose counts come from row s (``n_cells`` for rows whose counts
    go nowhere), for ``take`` a permutation of the rows (position i of the table gets the
    counts of row ``take[i]``), the positions ``positions`` having cells ``cells``."""

    def __init__(self, cells: np.ndarray, n_cells: int, positions: np.ndarray, n_rows: int):
        self.cells = np.asarray(cells, dtype=np.intp)
        self.n_cells = int(n_cells)
        self.positions = np.asarray(positions)
        self.every = bool(len(self.positions) == n_rows and np.array_equal(self.positions, np.arange(n_rows)))
        self.buffer = np.full(int(n_rows), self.n_cells, dtype=np.intp)

    def label(self, take: np.ndarray) -> np.ndarray:
        """The landing cell of every row (a reused buffer, valid until the next call)."""
        if self.every:
            self.buffer[take] = self.cells
        else:
            self.buffer.fill(self.n_cells)
            self.buffer[take[self.positions]] = self.cells
        return self.buffer

    def sums(self, label: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per cell, the sum of the counts ``x`` (per row) that land in it."""
        return np.bincount(label, weights=x, minlength=self.n_cells + 1)[:self.n_cells]


class PairSums:
    """Per-cell sums of two counts ``a``, ``b`` (per table row) landing by a :class:`Landing`
    label: :meth:`sums` equals ``landing.sums(label, a), landing.sums(label, b)`` exactly."""

    def __init__(self, landing: Landing, a: np.ndarray, b: np.ndarray):
        self.landing, self.a, self.b = landing, a, b
        # decided on the totals of every row: no subset of them sums higher
        self.factor = packing(a, b)
        self.packed = None if self.factor is None else a + self.factor * b

    def sums(self, label: np.ndarray, out_a: np.ndarray, out_b: np.ndarray) -> None:
        """Write the cell sums of ``a`` and ``b`` into ``out_a``/``out_b`` (length n_cells)."""
        if self.packed is None:
            out_a[:] = self.landing.sums(label, self.a)
            out_b[:] = self.landing.sums(label, self.b)
            return
        s = self.landing.sums(label, self.packed)
        np.floor(s / self.factor, out=out_b)
        out_a[:] = s - out_b * self.factor
