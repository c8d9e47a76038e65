"""`fairaudit compare`: baseline vs candidate on the same cohorts."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

from . import common as c
from .app import app


@app.command("compare")
@c.user_errors
@c.with_input
def compare(
    spec: InputSpec,
    candidate: Annotated[Optional[str], typer.Option("--candidate", help="Second utterance table (same utt_ids): the candidate system.")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_compare",
    speakers: c.Speakers = None, normalize: c.Normalize = "default",
    census: c.Census = None, embeddings: c.Embeddings = None, embedding_ids: c.EmbeddingIds = None,
    cohorts: Annotated[Optional[str], typer.Option("--cohorts", help="Reuse the cohorts of a saved assignments.csv instead of discovering them.")] = None,
    by: c.By = None,
    discoverers: Annotated[str, typer.Option("--discoverers", help="Comma-separated discoverers to run on the baseline.")] = "geographic,geodemographic,automatic,metadata",
    min_speakers: c.MinSpeakers = 20, k: c.K = "10",
    resamples: Annotated[int, typer.Option("--resamples", help="Paired bootstrap/permutation resamples per cohort.")] = 10000,
    seed: c.Seed = 0,
    no_html: Annotated[bool, typer.Option("--no-html", help="Do not write compare.html.")] = False,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Score two systems on the same cohorts: per-cohort ΔWER with a paired test, gap and share of each."""
    from fairaudit.compare import compare as run_compare
    from fairaudit.reports.console import comparison_table

    if resamples < 100:
        raise UserInputError(f"--resamples {resamples} is too few", hint="use at least 100 (default 10000)")
    names, params = c.discovery_params(discoverers, min_speakers, k)
    result = run_compare(spec, candidate=candidate, speakers=speakers, census=census, embeddings=embeddings,
                         embedding_ids=embedding_ids, cohorts=cohorts, by=by or [], discoverers=names,
                         normalization=normalize, min_speakers=min_speakers, seed=seed,
                         params=params,
                         resamples=resamples, workers=workers)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "compare.json")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(result.to_json())
    written = ["compare.json"]
    if not no_html:
        from fairaudit.reports.html import write_compare_html

        write_compare_html(result, os.path.join(out, "compare.html"))
        written.append("compare.html")
    if not quiet:
        for table in comparison_table(result):
            c.out_console.print(table)
        c.out_console.print(f"wrote {out}/: {', '.join(written)}")
