"""The folder where the report keeps what it computes the same way every run (state
outlines, compiled templates), as matplotlib keeps its font list: a cold report (the
forked process an audit renders report.html in) then skips that work."""
from __future__ import annotations

import os


def cache_dir(*parts: str) -> str:
    """``$FAIRAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/fairaudit``, else
    ``~/.cache/fairaudit``; ``parts`` name a folder inside it.  Compiled templates are
    code the report runs: the folder must be one only its user can write."""
    root = os.environ.get("FAIRAUDIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fairaudit")
    return os.path.join(root, *parts)
