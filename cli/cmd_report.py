"""`fairaudit report`: re-render the HTML report from a saved report.json (no recomputation)."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from fairaudit.cli import common as c
from fairaudit.cli.app import app
from fairaudit.errors import UserInputError

from .guards import checked


@app.command("report")
@c.user_errors
@checked(out="file", encoding=False)
def report(
    report_json: Annotated[str, typer.Argument(metavar="REPORT_JSON", help="report.json written by `fairaudit audit` (or its folder).",
                                               show_default=False)],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="HTML file to write (default: report.html beside REPORT_JSON).")] = None,
    quiet: c.Quiet = False,
):
    """Write the self-contained HTML report of a saved audit."""
    from fairaudit.reports.html import write_html
    from fairaudit.result import AuditResult

    result = AuditResult.load(report_json)
    if out is None:
        folder = report_json if os.path.isdir(report_json) else os.path.dirname(report_json)
        out = os.path.join(folder, "report.html")
    if os.path.isdir(out):
        raise UserInputError("is a folder", path=out, hint="pass a file name such as report.html to -o")
    try:
        write_html(result, out)
    except OSError as exc:
        raise UserInputError(f"cannot write the report ({exc.strerror or exc})", path=out) from exc
    if not quiet:
        c.out_console.print(f"wrote {out}")
