"""Independent random streams, one per statistic and discoverer.

Every random draw of an audit comes from a stream named by what it is for:
``stream(seed, "bootstrap", "geographic")``, ``stream(seed, "permutation", "automatic")``,
``stream(seed, "power", "geographic", "10%")``...  The names become the ``spawn_key`` of a
:class:`numpy.random.SeedSequence`, so

* two statistics never draw from the same sequence (the bootstrap of a discoverer and its
  permutation null are independent, whatever their sizes);
* adding a discoverer (``--by gender``) or more permutations leaves every other stream,
  hence every other number of the report, unchanged;
* a stream is fixed by ``--seed`` and its names alone: results do not depend on the order
  in which discoverers run or on the number of worker processes.

Children of a stream (``stream(...).spawn(n)``: one per permutation, per cohort, per
simulation) are independent of each other and of every other stream.
"""
from __future__ import annotations

import zlib

import numpy as np

# Every named stream starts with this word of its spawn key, so no named stream equals a
# child of a bare ``SeedSequence(seed).spawn(n)`` (whose keys start at 0, 1, 2, ...).
_PREFIX = zlib.crc32(b"fairaudit")


def spawn_key(*names: str | int) -> tuple[int, ...]:
    """The spawn key of a named stream: a fixed prefix, then each name (str -> CRC-32)."""
    return (_PREFIX, *(n if isinstance(n, int) and not isinstance(n, bool) else zlib.crc32(str(n).encode("utf-8"))
                       for n in names))


def stream(seed: int, *names: str | int) -> np.random.SeedSequence:
    """The seed sequence of one statistic, e.g. ``stream(seed, "bootstrap", disc.key)``."""
    return np.random.SeedSequence(int(seed), spawn_key=spawn_key(*names))


def generator(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator on :func:`stream` (seed, *names)."""
    return np.random.default_rng(stream(seed, *names))
