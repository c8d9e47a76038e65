"""Read a Parquet input in a background thread while the process imports the rest.

A command-line audit spends its first seconds importing (scikit-learn and scipy.stats
alone take about a second) and then reading the utterance table (about a second at 1M
rows), one after the other on one core.  Reading a Parquet file is C++ work that releases
the GIL, so :func:`start` begins ``pyarrow.parquet.read_table`` in a thread, the caller
imports meanwhile (:func:`warm_imports`), and the reader's :func:`take` picks up the table
instead of reading the file again.

Safety: the thread only reads (its imports are done before it starts, so two threads never
import at once), the table is used only if the file is unchanged (path, size and
modification time), a failed read is simply read again by the caller (which then reports
the error as always), and every ``fork`` first waits for the thread (a fork while it holds
Arrow's locks could leave the child stuck).
"""
from __future__ import annotations

import os
import threading

_LOCK = threading.Lock()
_JOBS: dict[str, tuple[tuple, "_Read"]] = {}    # real path -> (file key, reader)

#: modules imported by :func:`warm_imports`: what discovery and the statistics import
#: later, serially, and could instead import while the input is read
WARM_MODULES = ("scipy.stats", "sklearn.neighbors", "sklearn.cluster")


class _Read(threading.Thread):
    def __init__(self, path: str):
        super().__init__(name="fairaudit-prefetch", daemon=True)
        self.path, self.table = path, None

    def run(self) -> None:
        import pyarrow.parquet as pq

        try:
            self.table = pq.read_table(self.path)
        except Exception:   # read again (and reported) by the caller
            self.table = None


def _key(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def start(path: str) -> bool:
    """Begin reading the Parquet file ``path`` in a background thread; False (nothing
    started) when it is not a readable file."""
    key = _key(path)
    if key is None or not os.path.isfile(path):
        return False
    # Imported here, in the caller's thread: the reader thread must not import anything.
    import pyarrow.dataset  # noqa: F401  (read_table's lazy import)
    import pyarrow.parquet  # noqa: F401

    with _LOCK:
        if key[0] in _JOBS and _JOBS[key[0]][0] == key:
            return True
        job = _Read(path)
        _JOBS[key[0]] = (key, job)
    job.start()
    return True


def take(path: str):
    """The table :func:`start` read from ``path`` (a ``pyarrow.Table``), or None when
    nothing was started for this file as it is now, or the read failed.  Waits for the
    read; the table is handed out once."""
    key = _key(path)
    with _LOCK:
        started, job = _JOBS.pop(key[0] if key else os.path.realpath(path), (None, None))
    if job is None:
        return None
    job.join()
    return job.table if started == key else None   # a changed file is read again


def wait() -> None:
    """Wait for every read in flight (before a fork)."""
    with _LOCK:
        jobs = [job for _, job in _JOBS.values()]
    for job in jobs:
        if job.is_alive():
            job.join()


def warm_imports(modules=WARM_MODULES) -> None:
    """Import ``modules`` now (in this thread), e.g. while :func:`start` reads; a module
    that fails to import is left for its user to report."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - reported where the module is really used
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=wait)
