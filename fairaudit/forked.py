"""Work in a forked child process, its result (or its error) piped back.

Used where a large audit has work that needs only what the process holds now and a core
that would otherwise idle: the command line's report.html and scored tables, the
statistics' shared random draws during discovery (:mod:`fairaudit.stats.parallel`).
"""
from __future__ import annotations


import atexit
import os
import pickle
import signal

#: children not yet collected (pid): killed if this process exits without waiting for them
_LIVE: set[int] = set()


@atexit.register
def _reap() -> None:
    for pid in list(_LIVE):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        _LIVE.discard(pid)


class ForkedJob:
    """``fn(*args)`` in a forked child (its result pickled back through a pipe) when
    ``fork`` is true and the platform forks, else here and now.  ``what`` names the work
    in an error ("writing report.html").

    A plain ``os.fork``, not ``multiprocessing``: a forked child may fork again, which a
    daemonic ``multiprocessing`` process may not.  The child works on this process's memory as it
    was at the fork, so the caller must not change what ``args`` reach while it runs; a
    child left running when this process exits is killed."""

    def __init__(self, fn, args: tuple, what: str, fork: bool):
        self.what, self.pid, self.value, self._pipe = what, None, None, None
        if not (fork and hasattr(os, "fork")):
            self.value = fn(*args)
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:    # the child: never returns
            os.close(r)
            code = 0
            try:
                with os.fdopen(w, "wb") as out:
                    pickle.dump(_outcome(fn, args), out, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(w)
        self.pid, self._pipe = pid, os.fdopen(r, "rb")
        _LIVE.add(pid)

    def finish(self):
        """Wait for the job; returns ``fn``'s value.  A failure in the child is raised
        here, as it would have been in this process."""
        if self.pid is None:
            return self.value
        try:
            kind, value = pickle.load(self._pipe)
        except (EOFError, pickle.UnpicklingError):
            kind, value = "crash", "the worker process ended without a result"
        finally:
            self._pipe.close()
            self._collect()
        if kind == "ok":
            self.value = value
            return value
        if kind == "user":
            from fairaudit.errors import UserInputError

            message, path, hint = value
            raise UserInputError(message, path=path, hint=hint)
        raise RuntimeError(f"{self.what} failed: {value}")

    def kill(self) -> None:
        """Stop the child (the work it was doing is no longer wanted)."""
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self._pipe.close()
            self._collect()

    def _collect(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        _LIVE.discard(self.pid)
        self.pid = None


def _outcome(fn, args: tuple) -> tuple:
    import traceback

    from fairaudit.errors import UserInputError

    try:
        return ("ok", fn(*args))
    except UserInputError as exc:
        # the parts, not the joined text: the parent raises the same one-line error
        return ("user", (exc.message, exc.path, exc.hint))
    except BaseException:   # reported by the parent, which then fails as a serial run would
        return ("error", traceback.format_exc(limit=5))
