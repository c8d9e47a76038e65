"""Read a Parquet input in a background thread while the process imports the rest.

A command-line audit spends its first seconds importing (scikit-learn and scipy.stats
alone take about a second) and then reading the utterance table (about a second at 1M
rows), one after the other on one core.  Reading a Parquet file is C++ work that releases
the GIL, so :func:`start` begins ``pyarrow.parquet.read_table`` in a thread, the caller
imports meanwhile (:func:`warm_imports`), and the reader's :func:`take` picks up the table
instead of reading the file again.  The thread then hashes the file (SHA-256 for the
report's fingerprint, :func:`digest`), also without the GIL.

Safety: the thread only reads (its imports are done before it starts, so two threads never
import at once), the table is used only if the file is unchanged (path, size and
modification time), a failed read is simply read again by the caller (which then reports
the error as always), and every ``fork`` first waits for the thread's read (a fork while
it holds Arrow's locks could leave the child stuck).
"""
from __future__ import annotations

import hashlib
import os
import threading

_LOCK = threading.Lock()
_JOBS: dict[str, tuple[tuple, "_Read"]] = {}    # real path -> (file key, reader)
_DIGESTS: dict[tuple, str] = {}                  # file key -> SHA-256 (hex) of those bytes
_RUNNING: set["_Read"] = set()                   # threads still reading or hashing
_READ_TABLE = None                               # pyarrow.parquet.read_table, imported by start()

#: modules imported by :func:`warm_imports`: what discovery and the statistics import
#: later, serially, and could instead import while the input is read
WARM_MODULES = ("scipy.stats", "scipy.spatial", "sklearn.neighbors", "sklearn.cluster")


class _Read(threading.Thread):
    def __init__(self, path: str, key: tuple):
        super().__init__(name="fairaudit-prefetch", daemon=True)
        self.path, self.key, self.table = path, key, None
        self.read = threading.Event()

    def run(self) -> None:
        try:
            self.table = _READ_TABLE(self.path)
        except Exception:   # read again (and reported) by the caller
            self.table = None
        finally:
            self.read.set()
        try:
            self._hash()
        finally:
            self.finished()

    def _hash(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return
        if _key(self.path) == self.key:    # the same bytes from start to end
            with _LOCK:
                _DIGESTS[self.key] = h.hexdigest()

    def finished(self) -> None:
        with _LOCK:
            _RUNNING.discard(self)


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
    global _READ_TABLE
    import pyarrow.dataset  # noqa: F401  (read_table's lazy import)
    import pyarrow.parquet as pq

    _READ_TABLE = pq.read_table

    with _LOCK:
        if key[0] in _JOBS and _JOBS[key[0]][0] == key:
            return True
        job = _Read(path, key)
        _JOBS[key[0]] = (key, job)
        _RUNNING.add(job)
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
    job.read.wait()
    return job.table if started == key else None   # a changed file is read again


def digest(path: str) -> str | None:
    """SHA-256 (hex) of ``path`` as the reader thread hashed it, when the file is unchanged
    since (waits for a hash in progress); None otherwise."""
    key = _key(path)
    if key is None:
        return None
    wait()
    with _LOCK:
        return _DIGESTS.get(key)


def wait(hashes: bool = True) -> None:
    """Wait for every read in flight, and with ``hashes`` for the hashing after it too.
    Before a fork only the reads matter (the reader may hold Arrow's allocator locks; the
    hashing holds none), so a fork does not wait for a hash."""
    with _LOCK:
        jobs = list(_RUNNING)
    for job in jobs:
        job.read.wait()
        if hashes and job.is_alive():
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
    os.register_at_fork(before=lambda: wait(hashes=False))
