"""Helpers shared by the statistics modules: option checks, quantiles, worker count."""
from __future__ import annotations

import functools
import math
import os
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..discover.params import Interval, check

#: cells (resamples x speakers) materialised at once by the resampling loops
BLOCK_CELLS = 1 << 22

# The CLI flag behind each checked setting, for the one-line error's hint.
_FLAGS = {"number of bootstrap resamples": "--bootstrap", "number of permutations": "--permutations",
          "seed": "--seed", "number of resamples": "--resamples", "number of simulations": "--simulations"}


def check_count(value: Any, name: str, minimum: int) -> int:
    """A whole number >= ``minimum`` (count), or a one-line UserInputError naming its flag."""
    check(value, [Interval(int, minimum, None)], name=name, flag=_FLAGS.get(name, f"the {name} option"))
    return int(value)


def check_level(level: Any) -> float:
    """A confidence level strictly between 0 and 1 (ratio)."""
    check(level, [Interval(float, 0, 1, closed="neither")], name="confidence level", flag="--ci-level")
    return float(level)


def check_seed(seed: Any) -> int:
    """A seed from 0 to 2**32 - 1 (what scikit-learn's random_state takes)."""
    from ..limits import check_seed as in_range

    return in_range(check_count(seed, "seed", 0))


def check_ratio(value: Any, name: str, flag: str | None = None) -> float:
    """A number strictly between 0 and 1 (ratio)."""
    check(value, [Interval(float, 0, 1, closed="neither")], name=name, flag=flag or f"the {name} option")
    return float(value)


def as_counts(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if np.isnan(a).any() or (a < 0).any():
        raise ValueError(f"{name} must be non-negative counts without NaN")
    return a


def quantile(x: np.ndarray, p: float) -> float | None:
    """Quantile p (0-1) of values that may contain +inf (linear interpolation, numpy's
    default); NaN values are left out; None if the quantile is not finite."""
    x = np.sort(np.asarray(x, dtype=float)[~np.isnan(np.asarray(x, dtype=float))])
    if not len(x):
        return None
    pos = p * (len(x) - 1)
    i, j = int(math.floor(pos)), int(math.ceil(pos))
    v0, v1 = x[i], x[j]
    if not (np.isfinite(v0) and np.isfinite(v1)):
        return None
    return float(v0 + (v1 - v0) * (pos - i))


def interval(x: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """Percentile interval of resampled values; an end on or next to +/-inf is None (unbounded)."""
    a = (1.0 - level) / 2.0
    return quantile(x, a), quantile(x, 1.0 - a)


@contextmanager
def one_thread():
    """BLAS and OpenMP thread pools at one thread inside the block (restored after).

    The statistics multiply blocks of at most ``BLOCK_CELLS`` cells, small enough that
    OpenBLAS's threads cost more than they give: on the 2-core benchmark machine a (41 x
    3,000) @ (3,000 x 200) product took 70 ms with two threads and 1.2 ms with one; k-means
    likewise (:func:`fairaudit.discover.kmeans.fit_labels`).  The products' values do not
    depend on the thread count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:     # scikit-learn's dependency; without it the pools keep their size
        yield
        return
    with threadpool_limits(1):
        yield


def single_threaded(fn):
    """Decorator: ``fn`` runs inside :func:`one_thread`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_thread():
            return fn(*args, **kwargs)
    return wrapper


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
