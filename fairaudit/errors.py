"""Errors a user can cause.

Every mistake a user can make (missing file, missing column, bad value, unknown format)
is raised as :class:`UserInputError` with a one-line message naming the file, the row or
column and the fix.  The CLI turns it into exit code 2 without a traceback; anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserInputError(Exception):
    """A mistake in what the user gave us, with a one-line, actionable message."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.hint = hint
        text = message
        if path:
            text = f"{path}: {text}"
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)
