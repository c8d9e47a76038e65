"""The statistics of the discoverers side by side, in forked worker processes.

Each discoverer's three statistics (bootstrap intervals, permutation null, held-out gap)
draw from named random streams (the permutations and the kept speaker resamples are
shared by the discoverers: :mod:`fairaudit.stats.permutation`, :mod:`fairaudit.intervals`)
and depend on nothing another statistic computes, so they can run in any order and in
any process: the report is the same as a serial run's (tested).  A task is one
(discoverer, statistic) pair.  The permutation nulls are submitted first: the workers
start on them while this process draws the kept resamples into memory shared with them
(:func:`fairaudit.intervals.share_resamples`); then the held-out gaps and the bootstraps,
which read those resamples.

On by default for large tables (``PARALLEL_MIN_SPEAKERS`` speakers and more): up to
``DEFAULT_MAX_WORKERS`` workers, no more than the cores; ``--workers 1`` keeps everything
in one process.  While the workers compute, the audit process does the work that needs
no statistic (worst utterances, drill-downs, the overall interval, every cohort's rate
ratio): see :meth:`PendingStatistics.finish` and :func:`fairaudit.audit.audit_scored`.
(Measured at 1M utterances / 100k speakers on 2 cores: ``benchmarks/bench_full_audit.py``.)

The workers are forked from the audit process (no data is pickled on the way in; the
user's script is not imported again, as spawned workers would need).  The discoverers'
fits stay in the audit process: a fork after OpenMP work (scikit-learn's k-means) must not
run OpenMP again in the child, and the statistics of the built-in discoverers do not.
Each worker is limited to one BLAS/OpenMP thread (threadpoolctl), so workers do not
oversubscribe the cores.  Forked pages are shared: the benchmark reports the tree's
summed RSS and its PSS (shared pages counted once).
"""
from __future__ import annotations

import multiprocessing as mp
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import pandas as pd

from ._common import cpu_count
from .report import CI_FIELDS, PART_FIELDS, PARTS, add_statistics, headline_gap, merge_part, part_result

#: statistics run in worker processes only when the speaker table has at least this many
#: rows (below, a serial run takes well under a second per discoverer)
PARALLEL_MIN_SPEAKERS = 5000
#: workers by default (``workers`` None): each holds its own permutation and resample
#: blocks (a few hundred MB at 100k speakers), so many cores do not mean many copies
DEFAULT_MAX_WORKERS = 4

_STATE: dict[str, Any] = {}
#: work for this process while it waits for the workers' last results (see :func:`while_waiting`)
_WHILE_WAITING: list[Callable[[], None]] = []


@contextmanager
def while_waiting(fn: Callable[[], None]):
    """Within the block, ``fn()`` runs in this process once per side-by-side statistics run,
    just before it waits for the workers (its own work done, the cores still busy with
    theirs): e.g. the command line warms up the HTML writer's imports there, which the
    page's forked process then inherits.  An error in ``fn`` is ignored (it is only a
    warm-up; the real work would meet it again and report it)."""
    _WHILE_WAITING.append(fn)
    try:
        yield
    finally:
        _WHILE_WAITING.remove(fn)


def start_shared_draws(speakers: pd.DataFrame, options: dict, n_processes: int):
    """Draw the random numbers the side-by-side statistics share (the kept speaker
    resamples with the table's sums, :func:`fairaudit.intervals.share_resamples`, and the
    permutations, :func:`fairaudit.stats.permutation.share_permutations`) in a forked
    process, into memory shared with this one and the workers it forks later: started
    before discovery, which leaves a core idle, so the statistics find them drawn.
    Returns a :class:`fairaudit.forked.ForkedJob` (``finish()`` gives its seconds), or
    None for a serial run.  Whatever it did not draw (it failed, or was slower) is drawn
    where it is needed, the same numbers."""
    if n_processes <= 1:
        return None
    from ..forked import ForkedJob
    from .permutation import share_permutations

    fills = [_share_resamples(speakers, options),
             share_permutations(int(options.get("seed") or 0), int(options.get("n_perm") or 0), len(speakers))]
    return ForkedJob(_draw, (fills,), "drawing the shared resamples and permutations", fork=True)


def _share_resamples(speakers: pd.DataFrame, options: dict):
    """``fill()`` of the audit's kept speaker resamples in shared memory, with the table's sums."""
    from ..intervals import share_resamples

    return share_resamples(int(options.get("seed") or 0), int(options.get("n_boot") or 0), len(speakers),
                           errors=speakers["errors"].to_numpy(dtype=float),
                           words=speakers["ref_words"].to_numpy(dtype=float))


def _draw(fills) -> float:
    t0 = time.perf_counter()
    for fill in fills:
        fill()
    return time.perf_counter() - t0


def processes(n_tasks: int, n_speakers: int, workers: int | None) -> int:
    """Worker processes for ``n_tasks`` statistics: min(tasks, ``workers`` or
    :data:`DEFAULT_MAX_WORKERS` when None, cores); 1 (serial: everything in this process)
    for ``workers`` = 1, small tables, a single task, or without the fork start method."""
    if (n_tasks < 2 or n_speakers < PARALLEL_MIN_SPEAKERS or (workers is not None and int(workers) <= 1)
            or "fork" not in mp.get_all_start_methods()):
        return 1
    return max(1, min(n_tasks, DEFAULT_MAX_WORKERS if workers is None else int(workers), cpu_count()))


#: submission order: the permutation nulls first (they need no resamples, which this
#: process draws meanwhile), then the slower held-out gaps, then the bootstraps
_ORDER = {"permutation": 0, "heldout": 1, "bootstrap": 2}


class PendingStatistics:
    """The statistics of (entry, discoverer, assignment) ``tasks``, started in ``n_processes``
    forked workers (or, with 1, computed in this process by :meth:`finish`).

    ``options``: keyword arguments of :func:`add_statistics` (n_boot, n_perm, seed, ...;
    not ``timings``/``parts``).  Start it, do other work, then :meth:`finish`.
    """

    def __init__(self, tasks: list[tuple[dict, Any, pd.Series]], speakers: pd.DataFrame,
                 utterances: pd.DataFrame | None, side, options: dict, n_processes: int):
        self.tasks, self.speakers, self.utterances, self.side = tasks, speakers, utterances, side
        self.options = options
        self.pool = None
        self.resample_seconds = 0.0   # drawing the shared resamples here, while the workers start
        self.futures: list[tuple[int, str, Any]] = []
        for entry, _, _ in tasks:
            _placeholders(entry)
        if n_processes > 1:
            # The kept speaker resamples live in shared memory: the workers fork now and
            # start on the permutation nulls (which need none) while this process draws
            # them, unless start_shared_draws drew them during discovery; the held-out gaps
            # and bootstraps are queued once they are drawn.
            # (with the table's counts: their sums, which the overall interval and every
            # bootstrap of a discoverer auditing all speakers read, are made once, here)
            fill = _share_resamples(speakers, options)
            state = {"tasks": tasks, "speakers": speakers, "utterances": utterances, "side": side,
                     "options": {**options, "workers": 1}}
            self.pool = ProcessPoolExecutor(max_workers=n_processes, mp_context=mp.get_context("fork"),
                                            initializer=_init, initargs=(state,))
            jobs = sorted(((i, part) for i in range(len(tasks)) for part in PARTS),
                          key=lambda t: (_ORDER[t[1]], t[0]))
            first = [j for j in jobs if j[1] == "permutation"]
            self.futures = [(i, part, self.pool.submit(_run, i, part)) for i, part in first]
            t0 = time.perf_counter()
            try:
                fill()
            except BaseException:
                self.cancel()   # (e.g. out of memory) the workers go with the audit
                raise
            self.resample_seconds = time.perf_counter() - t0
            self.futures += [(i, part, self.pool.submit(_run, i, part)) for i, part in jobs if part != "permutation"]

    def cancel(self) -> None:
        """Drop the queued statistics and let the workers go (the audit failed meanwhile)."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
            self.futures = []

    def finish(self) -> list[tuple[dict, dict[str, float]]]:
        """In task order: (entry with its statistics, stage timings in seconds)."""
        if self.pool is None:
            out = []
            for entry, disc, assignment in self.tasks:
                timings: dict[str, float] = {}
                _one(entry, disc, assignment, self.speakers, self.utterances, self.side, self.options, timings)
                out.append((entry, timings))
            return out
        for fn in list(_WHILE_WAITING):
            try:
                fn()
            except Exception:   # a warm-up only: whatever failed fails again where it counts
                pass
        try:
            times: list[dict[str, float]] = [{} for _ in self.tasks]
            results = {}
            for i, part, future in self.futures:
                results[i, part], part_times = future.result()
                times[i].update(part_times)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        for (i, part) in sorted(results, key=lambda t: (t[0], PARTS.index(t[1]))):
            merge_part(self.tasks[i][0], results[i, part])
        for entry, _, _ in self.tasks:
            if not entry.get("skipped"):
                entry["headline_gap"] = headline_gap(entry)
        return [(entry, t) for (entry, _, _), t in zip(self.tasks, times)]


def _placeholders(entry: dict) -> None:
    """The statistics' fields, in the order a serial run writes them, so that the report's
    key order does not depend on which process finished first or on what the audit
    process added meanwhile."""
    if entry.get("skipped"):
        return
    for part in PARTS:
        for k in PART_FIELDS[part]:
            entry.setdefault(k, None)
    entry.setdefault("headline_gap", None)
    for cohort in entry.get("cohorts", []):
        for k in CI_FIELDS:
            cohort.setdefault(k, None)


def _one(entry, disc, assignment, speakers, utterances, side, options, timings, parts=PARTS) -> None:
    own = entry.get("statistic") or {}
    add_statistics(entry, disc, speakers, utterances, side, assignment, statistic=own.get("value"),
                   statistic_name=own.get("name"), timings=timings, parts=parts, **options)


def _init(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)
    try:
        from threadpoolctl import threadpool_limits

        _STATE["limits"] = threadpool_limits(1)
    except ImportError:    # scikit-learn's dependency; without it the pools keep their size
        pass


def _run(i: int, part: str) -> tuple[dict, dict[str, float]]:
    entry, disc, assignment = _STATE["tasks"][i]
    timings: dict[str, float] = {}
    if entry.get("skipped"):
        return {"fields": {}}, timings
    _one(entry, disc, assignment, _STATE["speakers"], _STATE["utterances"], _STATE["side"], _STATE["options"],
         timings, parts=(part,))
    return part_result(entry, part), timings
