"""Planters: how ``fairaudit power`` and ``selftest`` plant a disparity a discoverer can express.

A planter draws the planted cohort of one simulated world: positions into the audited
speakers of the discoverer's own fit (``discovery.assignment``, in that order).  Each
discoverer brings one through :meth:`Discoverer.planter` (geographic: a lat/lon box around
a random speaker; geodemographic: a census rule; automatic: embedding neighbours;
attribute: one value); a discoverer that brings none gets :class:`CohortPlanter`, which
plants on one of the discoverer's own cohorts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: cohort planters: cohorts whose speaker count is within this factor of the target qualify
SIZE_FACTOR = 1.5


@dataclass
class PlantRow:
    """One result row of a power analysis: a target cohort size (or one cohort/value).

    ``key``: names the row in seeds and JSON ("10%", or a label); ``share``: target share
    (ratio of the audited speakers); ``size``: target size (speakers); ``label``: set when
    the row is a given cohort (an attribute value) rather than a target share; ``code``:
    the planter's own index of that cohort.
    """

    key: str
    share: float | None
    size: int
    label: str | None = None
    code: int | None = None


class Planter:
    """Base class: ``n`` audited speakers; :meth:`rows` per target share, :meth:`draw` one plant."""

    #: how cohorts are planted, one line for the report
    kind = ""
    #: True when the rows are given by the data (one per cohort value), not by the shares
    fixed_rows = False

    def __init__(self, n: int):
        self.n = n

    def rows(self, shares: list[float]) -> list[PlantRow]:
        """One row per target share (ratio): size = round(share x n), at least 1."""
        return [PlantRow(f"{100 * s:g}%", s, max(1, int(round(s * self.n)))) for s in shares]

    def draw(self, gen: np.random.Generator, row: PlantRow) -> tuple[np.ndarray, str]:
        """(sorted positions of the planted speakers among the audited ones, one-line description)."""
        raise NotImplementedError


def pool_near(sizes: np.ndarray, target: int, factor: float = SIZE_FACTOR) -> np.ndarray:
    """Indices of the sizes within ``factor`` of ``target`` (log distance), else the closest."""
    if not len(sizes):
        return np.zeros(0, dtype=np.int64)
    dist = np.abs(np.log(np.maximum(sizes, 1e-12) / target))
    pool = np.flatnonzero(dist <= math.log(factor) + 1e-12)
    return pool if len(pool) else np.flatnonzero(dist == dist.min())


class PooledPlanter(Planter):
    """A planter choosing among candidate cohorts of known sizes (``self.sizes``): for a
    target size, one drawn at random among those within a factor 1.5 of it (the closest
    when none is).  Subclasses set ``sizes`` and give :meth:`members` of a candidate."""

    #: the description when there is no candidate at all
    empty = "no cohort to plant on"

    def __init__(self, n: int):
        super().__init__(n)
        self.sizes = np.zeros(0)
        self.pools: dict[str, np.ndarray] = {}

    def members(self, k: int) -> tuple[np.ndarray, str]:   # pragma: no cover - interface
        raise NotImplementedError

    def rows(self, shares):
        rows = super().rows(shares)
        for r in rows:
            self.pools[r.key] = pool_near(self.sizes, r.size)
        return rows

    def draw(self, gen, row):
        pool = self.pools.get(row.key)
        if pool is None:
            pool = self.pools[row.key] = pool_near(self.sizes, row.size)
        if not len(pool):
            return np.zeros(0, dtype=np.int64), self.empty
        return self.members(int(pool[gen.integers(len(pool))]))


class CohortPlanter(PooledPlanter):
    """The generic planter: plants on one of the discoverer's own cohorts (from its fit on
    the real data), drawn at random among the cohorts whose size is within a factor 1.5 of
    the target (the closest when none is)."""

    kind = "one of the discoverer's own cohorts, near the target size"
    empty = "the discoverer found no cohort"

    def __init__(self, discovery):
        assignment = discovery.assignment
        super().__init__(len(assignment))
        self.codes, names = _factorize(assignment.to_numpy())
        self.names = [str(n) for n in names]
        self.labels = {str(k): str(v) for k, v in (discovery.labels or {}).items()}
        self.sizes = np.bincount(self.codes, minlength=len(self.names)).astype(float)

    def members(self, k):
        idx = np.flatnonzero(self.codes == k)
        name = self.names[k]
        return idx, f"the {len(idx)} speakers of its cohort {name} ({self.labels.get(name, name)})"


class ValuePlanter(Planter):
    """Plants on every speaker of one cohort given by the data (one row per cohort, largest
    first, at most ``max_rows``): attribute values."""

    kind = "one value of the attribute"
    fixed_rows = True

    def __init__(self, discovery, max_rows: int = 12):
        assignment = discovery.assignment
        super().__init__(len(assignment))
        self.codes, names = _factorize(assignment.to_numpy())
        self.names = [str(n) for n in names]
        self.labels = {str(k): str(v) for k, v in (discovery.labels or {}).items()}
        self.max_rows = max_rows

    def rows(self, shares):
        sizes = np.bincount(self.codes, minlength=len(self.names))
        order = np.lexsort((np.arange(len(sizes)), -sizes))[:self.max_rows]
        out = []
        for k in order:
            label = self.labels.get(self.names[k], self.names[k])
            out.append(PlantRow(label, float(sizes[k]) / self.n, int(sizes[k]), label=label, code=int(k)))
        return out

    def draw(self, gen, row):
        return np.flatnonzero(self.codes == row.code), f"the {row.size} speakers with {row.label}"


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    codes, names = pd.factorize(values, sort=True)
    return codes, np.asarray(names)
