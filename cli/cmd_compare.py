"""`fairaudit compare`: baseline vs candidate on the same cohorts."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

from fairaudit.outputs import shown

from . import common as c
from .guards import checked
from .app import app


@app.command("compare")
@c.user_errors
@checked()
@c.with_input
@c.with_discovery
def compare(
    spec: InputSpec,
    discovery: c.DiscoveryOptions,
    candidate: Annotated[Optional[str], typer.Option("--candidate", help="Second utterance table (same utt_ids): the candidate system.")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_compare",
    speakers: c.Speakers = None, normalize: c.Normalize = "default", unit: c.Unit = "word", align: c.Align = "jiwer",
    allow_normalizer_change: c.AllowNormalizerChange = False,
    cohorts: Annotated[Optional[str], typer.Option("--cohorts", help="Reuse the cohorts of a saved audit (its folder, report.json or assignments.csv) instead of discovering them.")] = None,
    resamples: Annotated[int, typer.Option("--resamples", help="Paired bootstrap/permutation resamples per cohort.")] = 10000,
    no_html: Annotated[bool, typer.Option("--no-html", help="Do not write compare.html.")] = False,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Score two systems on the same cohorts (the baseline's audit): per-cohort ΔWER with a paired test, gap and share of each."""
    from fairaudit.compare import compare as run_compare
    from fairaudit.reports.console import comparison_table

    if resamples < 100:
        raise UserInputError(f"--resamples {resamples} is too few", hint="use at least 100 (default 10000)")
    result = run_compare(spec, candidate=candidate, speakers=speakers, cohorts=cohorts, normalization=normalize,
                         **discovery.audit_kwargs(), resamples=resamples, workers=workers, unit=unit, alignment=align,
                         allow_normalizer_change=allow_normalizer_change)
    result.save(out)
    written = ["compare.json"]
    if not no_html:
        from fairaudit.reports.html import write_compare_html

        write_compare_html(result, os.path.join(out, "compare.html"))
        written.append("compare.html")
    if not quiet:
        for table in comparison_table(result):
            c.out_console.print(table)
        c.out_console.print(f"wrote {shown(out)}/: {', '.join(written)}")
