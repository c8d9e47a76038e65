"""Rendering: the Jinja2 environment (autoescaping) and the report page."""
from __future__ import annotations

import functools
import os

import jinja2

from fairaudit.result import AuditResult, _clean

from .cache import cache_dir
from .context import build_context


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (keyed by their source's checksum: an edited
    template is compiled again); compiling them was 0.08 s of every cold report."""
    folder = cache_dir("jinja")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    # jinja2 raises when it cannot write a compiled template: a read-only home compiles each time
    return jinja2.FileSystemBytecodeCache(folder) if os.access(folder, os.W_OK) else None


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fairaudit.reports", "templates"), bytecode_cache=_bytecode_cache(),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
        undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env


def render_html(result: AuditResult) -> str:
    """The report as one self-contained HTML page (str).

    Reads only ``result.report``; the output depends on nothing else, so rendering a
    report.json loaded from disk gives the same bytes as rendering the in-memory result.
    """
    # In-memory results may hold numpy scalars, tuples or NaN: cleaned as report.json is
    # written (the cleaned document equals report.json read back, without the 6 MB JSON
    # text a 100k-speaker report would make and parse again).
    report = _clean(result.report)
    return environment().get_template("report.html.j2").render(**build_context(report))


def write_html(result: AuditResult, path: str) -> str:
    """Write :func:`render_html` to ``path`` (UTF-8); returns the path."""
    html = render_html(result)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return path
