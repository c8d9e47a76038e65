"""One run, one output folder.

* :func:`check_out_dir` / :func:`check_out_file` refuse, before any work, an ``--out``
  that cannot be written: a folder that is a file, a path through a file, a parent
  without write permission, a name the system cannot hold.
* :class:`OutputFolder` gives a run a staging folder next to ``--out``; the run writes
  there, and only when it succeeds are its files moved into ``--out`` (a fresh folder is
  renamed into place in one step; into an existing one each file is replaced in one
  step).  A failed run leaves ``--out`` as it was.
* The same object holds a lock on ``--out`` (``fcntl.flock`` on a lock file next to it)
  for the whole run: a second run into the same folder is refused at once, instead of
  mixing its report.json with the other run's report.html.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile

from .errors import UserInputError

try:  # POSIX; elsewhere the lock is an exclusively created file (see _Lock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_NAME_MAX = 255


def _first_existing(path: str) -> str:
    """The nearest existing ancestor of ``path`` (``path`` itself if it exists)."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _check_path(path: str, flag: str) -> str:
    if not path or not str(path).strip():
        raise UserInputError(f"{flag} is empty", hint=f"name a {flag} path")
    if "\0" in str(path):
        raise UserInputError(f"{flag} {path!r} holds a NUL character, which no file name can hold")
    full = os.path.abspath(path)
    long = [part for part in full.split(os.sep) if len(part.encode("utf-8", "surrogateescape")) > _NAME_MAX]
    if long:
        raise UserInputError(f"a path component is longer than {_NAME_MAX} bytes", path=path,
                             hint=f"choose a shorter {flag} name")
    anchor = _first_existing(full)
    if anchor != full and not os.path.isdir(anchor):
        raise UserInputError(f"cannot create it: {anchor} is a file, not a folder", path=path,
                             hint=f"choose another {flag}")
    return full


def check_out_dir(path: str, flag: str = "--out") -> str:
    """The absolute output folder ``path`` after checking it can be written (before any work)."""
    full = _check_path(path, flag)
    if os.path.exists(full) and not os.path.isdir(full):
        raise UserInputError("exists and is a file, not a folder", path=path,
                             hint=f"{flag} names the output folder: remove the file or choose another name")
    _probe(_first_existing(full), path, flag)
    return full


def _probe(folder: str, path: str, flag: str) -> None:
    """Create and remove a file in ``folder``: the only test of "can I write here" that
    also holds for root, read-only mounts and pseudo file systems."""
    try:
        fd, name = tempfile.mkstemp(prefix=".fairaudit-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UserInputError(f"cannot write into {folder} ({exc.strerror or exc})", path=path,
                             hint=f"choose a {flag} you can write") from None


def check_out_file(path: str, flag: str = "--out") -> str:
    """The absolute output file ``path`` after checking it can be written (before any work)."""
    full = _check_path(path, flag)
    if os.path.isdir(full):
        raise UserInputError("is a folder, not a file", path=path, hint=f"{flag} names the output file")
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise UserInputError("exists and cannot be overwritten (permission denied)", path=path)
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        raise UserInputError(f"its folder {folder} does not exist", path=path,
                             hint="create the folder first, or choose another path")
    _probe(folder, path, flag)
    return full


class _Lock:
    """An exclusive, non-blocking lock on a lock file (released on :meth:`release`, or
    by the system when the process dies)."""

    def __init__(self, path: str, target: str) -> None:
        self.path = path
        self.fd: int | None = None
        if fcntl is None:  # pragma: no cover - Windows
            try:
                self.fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR)
            except FileExistsError:
                raise self._busy(target) from None
        else:
            while True:
                fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise self._busy(target) from None
                    raise
                # The holder before us may have removed the file between our open and our
                # lock: then we hold a lock on a file nobody else sees; start again.
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    self.fd = fd
                    break
                os.close(fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def _busy(self, target: str) -> UserInputError:
        try:
            with open(self.path, encoding="ascii", errors="replace") as fh:
                pid = fh.read().strip()
        except OSError:
            pid = ""
        who = f" (process {pid})" if pid else ""
        return UserInputError(f"another fairaudit run{who} is writing to this folder", path=target,
                              hint="wait for it to finish, or choose another --out")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked, so no one locks the old file after us
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


class OutputFolder:
    """The output folder of one run: checked, locked, written through a staging folder.

    Use as a context manager::

        with OutputFolder("audit_out") as staging:
            write files into staging ...
        # on success the files are in audit_out/; on an exception audit_out/ is untouched

    ``final`` is the folder the user named (absolute); ``staging`` the folder to write.
    """

    def __init__(self, path: str, flag: str = "--out") -> None:
        self.final = check_out_dir(path, flag)
        self.shown = path  # as the user wrote it, for messages
        parent = os.path.dirname(self.final)
        name = os.path.basename(self.final)
        # Staging and lock live beside the folder (so a fresh folder appears in one rename)
        # unless only the folder itself is writable.
        if os.path.isdir(self.final) and not os.access(parent, os.W_OK | os.X_OK):
            self._base, prefix = self.final, ".fairaudit"
        else:
            self._base, prefix = parent, f".{name}.fairaudit"
        self._lock_path = os.path.join(self._base, prefix + ".lock")
        self._prefix = prefix + ".tmp-"
        self.staging: str | None = None
        self._lock: _Lock | None = None

    def __enter__(self) -> str:
        try:
            os.makedirs(self._base, exist_ok=True)
            self._lock = _Lock(self._lock_path, self.shown)
        except OSError as exc:
            raise UserInputError(f"cannot write next to it ({exc.strerror or exc})", path=self.shown,
                                 hint="choose an --out folder you can write") from None
        # Holding the lock, any staging folder of this --out belongs to a run that died
        # (killed, out of memory): clear it away.
        for entry in os.listdir(self._base):
            if entry.startswith(self._prefix):
                shutil.rmtree(os.path.join(self._base, entry), ignore_errors=True)
        try:
            self.staging = tempfile.mkdtemp(prefix=self._prefix, dir=self._base)
            # mkdtemp makes the folder private (0700); the output folder it becomes gets
            # the permissions os.makedirs would have given it.
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self.staging, 0o777 & ~mask)
        except BaseException as exc:
            self._lock.release()
            if isinstance(exc, OSError):
                raise UserInputError(f"cannot write next to it ({exc.strerror or exc})", path=self.shown,
                                     hint="choose an --out folder you can write") from None
            raise
        _STAGED[self.staging] = self
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            _STAGED.pop(self.staging, None)
            if self.staging and os.path.isdir(self.staging):
                shutil.rmtree(self.staging, ignore_errors=True)
            self._lock.release()

    def _commit(self) -> None:
        if not os.path.exists(self.final):
            os.rename(self.staging, self.final)
            return
        for entry in sorted(os.listdir(self.staging)):
            src, dst = os.path.join(self.staging, entry), os.path.join(self.final, entry)
            if os.path.isdir(src) and os.path.isdir(dst):
                shutil.rmtree(dst)
            os.replace(src, dst)


#: staging folder -> its OutputFolder, for :func:`shown` and :func:`final`
_STAGED: dict[str, OutputFolder] = {}


def shown(path: str) -> str:
    """The output folder as the user named it, for a staging folder (else ``path``)."""
    folder = _STAGED.get(path)
    return folder.shown if folder else path


def final(path: str) -> str:
    """The folder a staging folder will become (else ``path``): where earlier outputs are."""
    folder = _STAGED.get(path)
    return folder.final if folder else path
