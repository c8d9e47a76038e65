"""Work in a forked child process, its result (or its error) piped back.

Used where a large audit has work that needs only what the process holds now and a core
that would otherwise idle: the command line's report.html and scored tables, the
statistics' shared random draws during discovery (:mod:`fairaudit.stats.parallel`).
"""
from __future__ import annotations


class ForkedJob:
    """``fn(*args)`` in a forked child (its result piped back) when ``fork`` is true and the
    platform forks, else here and now.  ``what`` names the work in an error ("writing
    report.html").

    The child works on the parent's memory as it was at the fork, so the caller must not
    change what ``args`` reach while the job runs."""

    def __init__(self, fn, args: tuple, what: str, fork: bool):
        import multiprocessing as mp

        self.what, self.proc, self.conn, self.value = what, None, None, None
        if fork and "fork" in mp.get_all_start_methods():
            ctx = mp.get_context("fork")
            self.conn, child = ctx.Pipe(duplex=False)
            self.proc = ctx.Process(target=_child, args=(fn, args, child), daemon=True)
            self.proc.start()
            child.close()
        else:
            self.value = fn(*args)

    def finish(self):
        """Wait for the job; returns ``fn``'s value.  A failure in the child is raised
        here, as it would have been in this process."""
        if self.proc is None:
            return self.value
        try:
            kind, value = self.conn.recv()
        except EOFError:
            kind, value = "crash", f"the worker process ended with exit code {self.proc.exitcode}"
        self.proc.join()
        self.proc = None
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
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None


def _child(fn, args: tuple, conn) -> None:
    import traceback

    from fairaudit.errors import UserInputError

    try:
        conn.send(("ok", fn(*args)))
    except UserInputError as exc:
        # the parts, not the joined text: the parent raises the same one-line error
        conn.send(("user", (exc.message, exc.path, exc.hint)))
    except BaseException:   # reported by the parent, which then fails as a serial run would
        conn.send(("error", traceback.format_exc(limit=5)))
    finally:
        conn.close()
