"""The statistics of several discoverers side by side, one discoverer per process.

Each discoverer's statistics (bootstrap, permutation null, held-out gap) draw from their
own named random streams and depend on nothing another discoverer computes, so they can
run in any order and in any process: the report is the same as a serial run's.

Opt-in (``--workers N``, N >= 2): on the shared 2-core benchmark machine two workers were
no faster than one process (21.4 s against 23.1 s for the geodemographic and metadata
statistics at 100,000 speakers; 62 s against 42 s for all five discoverers, each worker
2-3x slower than alone: the cores were already busy), and the forked workers' pages
count again in the summed RSS.  On an idle machine with free cores the statistics of the
slowest discoverer then run beside the others'.

The workers are forked from the audit process (no data is pickled on the way in; the
user's script is not imported again, as spawned workers would need).  The discoverers'
fits stay in the audit process: a fork after OpenMP work (scikit-learn's k-means) must not
run OpenMP again in the child, and the statistics of the built-in discoverers do not.
Each worker is limited to one BLAS/OpenMP thread (threadpoolctl), so two workers do not
oversubscribe the cores.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd

from ._common import cpu_count
from .report import add_statistics

#: statistics run in worker processes only when the speaker table has at least this many
#: rows (below, a serial run takes well under a second per discoverer)
PARALLEL_MIN_SPEAKERS = 5000

_STATE: dict[str, Any] = {}


def processes(n_tasks: int, n_speakers: int, workers: int | None) -> int:
    """Worker processes for ``n_tasks`` discoverers' statistics: min(tasks, ``workers``,
    cores) when ``workers`` >= 2 is asked for; 1 (serial) by default (``workers`` None),
    for small tables and for a single task."""
    if (workers is None or n_tasks < 2 or n_speakers < PARALLEL_MIN_SPEAKERS
            or "fork" not in mp.get_all_start_methods()):
        return 1
    return max(1, min(n_tasks, int(workers), cpu_count()))


def run_statistics(tasks: list[tuple[dict, Any, pd.Series]], speakers: pd.DataFrame,
                   utterances: pd.DataFrame | None, side, options: dict, n_processes: int
                   ) -> list[tuple[dict, dict[str, float]]]:
    """:func:`add_statistics` for each (entry, discoverer, assignment) of ``tasks``.

    ``options``: keyword arguments of :func:`add_statistics` (n_boot, n_perm, seed, ...;
    not ``timings``).  Returns, in task order, (entry with its statistics, stage timings
    in seconds); with ``n_processes`` > 1 the tasks run in that many forked workers (the
    permutation nulls inside them serially).
    """
    if n_processes <= 1:
        out = []
        for entry, disc, assignment in tasks:
            timings: dict[str, float] = {}
            _one(entry, disc, assignment, speakers, utterances, side, options, timings)
            out.append((entry, timings))
        return out
    state = {"tasks": tasks, "speakers": speakers, "utterances": utterances, "side": side,
             "options": {**options, "workers": 1}}
    with ProcessPoolExecutor(max_workers=n_processes, mp_context=mp.get_context("fork"),
                             initializer=_init, initargs=(state,)) as pool:
        # Submitted in discoverer order; a free worker takes the next one.
        return list(pool.map(_run, range(len(tasks))))


def _one(entry, disc, assignment, speakers, utterances, side, options, timings) -> None:
    own = entry.get("statistic") or {}
    add_statistics(entry, disc, speakers, utterances, side, assignment, statistic=own.get("value"),
                   statistic_name=own.get("name"), timings=timings, **options)


def _init(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)
    try:
        from threadpoolctl import threadpool_limits

        _STATE["limits"] = threadpool_limits(1)
    except ImportError:    # scikit-learn's dependency; without it the pools keep their size
        pass


def _run(i: int) -> tuple[dict, dict[str, float]]:
    entry, disc, assignment = _STATE["tasks"][i]
    timings: dict[str, float] = {}
    _one(entry, disc, assignment, _STATE["speakers"], _STATE["utterances"], _STATE["side"], _STATE["options"],
         timings)
    return entry, timings
