"""Bounds on the numbers a run is given: seeds, worker counts and resample counts.

Checked once, before any work (the CLI checks every command's flags on entry; the library
checks again where the numbers are used), each as a one-line :class:`UserInputError`.

Ceilings (documented in the README and ``docs/methods.md``):

* ``--seed``: 0 to 2**32 - 1, the range scikit-learn accepts as ``random_state``.
* ``--workers``: at least 1 (leave it out for all cores).
* ``--bootstrap``, ``--permutations``: at most :data:`MAX_BOOTSTRAP` /
  :data:`MAX_PERMUTATIONS` (100,000): the resample tables grow linearly (1e8
  permutations took 9 GB before any was run), and a percentile or a p-value does not
  improve visibly beyond tens of thousands of resamples.
* ``--simulations`` (power): at most :data:`MAX_SIMULATIONS`; ``--resamples`` (compare):
  at most :data:`MAX_RESAMPLES` (one float per resample per cohort).

Floors: fewer than :data:`MIN_MEANINGFUL_RESAMPLES` (100) bootstrap resamples give no
meaningful percentile interval (``--bootstrap 1`` "interval" is one resample, which need
not even contain the estimate): the audit then reports no interval, with a warning.
Fewer than 100 permutations still give a valid but coarse p-value (never below
1 / (N + 1)), with a warning.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UserInputError

#: largest seed: scikit-learn's ``random_state`` (numpy's legacy RandomState) is 32-bit
MAX_SEED = 2**32 - 1
MAX_BOOTSTRAP = 100_000
MAX_PERMUTATIONS = 100_000
MAX_SIMULATIONS = 100_000
MAX_RESAMPLES = 1_000_000
#: fewer resamples than this give no meaningful percentile interval
MIN_MEANINGFUL_RESAMPLES = 100

#: option name -> (flag, ceiling) of the resample counts the CLI checks on entry
RESAMPLE_OPTIONS = {"bootstrap": ("--bootstrap", MAX_BOOTSTRAP), "permutations": ("--permutations", MAX_PERMUTATIONS),
                    "simulations": ("--simulations", MAX_SIMULATIONS), "resamples": ("--resamples", MAX_RESAMPLES)}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_seed(seed: Any, flag: str = "--seed") -> int:
    """A seed in 0 .. 2**32 - 1."""
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"{flag} {seed!r} is out of range", hint=f"use a whole number from 0 to {MAX_SEED}")
    return int(seed)


def check_workers(workers: Any, flag: str = "--workers") -> int | None:
    """None (all cores) or a whole number >= 1."""
    if workers is None:
        return None
    if not _is_int(workers) or workers < 1:
        raise UserInputError(f"{flag} {workers!r} must be at least 1", hint=f"leave {flag} out to use all cores")
    return int(workers)


def check_count(value: Any, flag: str, ceiling: int, minimum: int = 0) -> int:
    """A resample count within [minimum, ceiling]."""
    if not _is_int(value) or value < minimum:
        raise UserInputError(f"{flag} {value!r} must be a whole number >= {minimum}")
    if value > ceiling:
        raise UserInputError(f"{flag} {value:,} is above the ceiling of {ceiling:,}",
                             hint=f"use at most {ceiling:,} (1,000-10,000 is plenty for a 95 % interval or a p-value)")
    return int(value)


def usable_bootstrap(n_boot: int, warnings: list[str]) -> int:
    """The bootstrap resamples to run: ``n_boot``, or 0 (no intervals, with a warning
    appended to ``warnings``) when it is below :data:`MIN_MEANINGFUL_RESAMPLES`."""
    if 0 < n_boot < MIN_MEANINGFUL_RESAMPLES:
        warnings.append(f"--bootstrap {n_boot}: fewer than {MIN_MEANINGFUL_RESAMPLES} resamples give no meaningful "
                        f"confidence interval, so none is reported (use --bootstrap 1000)")
        return 0
    return n_boot


def permutation_warnings(n_perm: int, alpha: float = 0.05) -> list[str]:
    """A warning when ``n_perm`` permutations make the p-value too coarse to read."""
    if 0 < n_perm < MIN_MEANINGFUL_RESAMPLES:
        floor = 1.0 / (n_perm + 1)
        return [f"--permutations {n_perm}: p-values cannot go below {floor:.3f}"
                + (f", so none can be below {alpha:g}" if floor >= alpha else "")
                + " (use --permutations 200 or more)"]
    return []
