"""`fairaudit compare`: baseline vs candidate on the same cohorts."""
from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

from . import common as c
from .app import _parse_k, app


@app.command("compare")
@c.user_errors
@c.with_input
def compare(
    spec: InputSpec,
    candidate: Annotated[Optional[str], typer.Option("--candidate", help="Second utterance table (same utt_ids): the candidate system.")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "fairaudit_compare",
    speakers: c.Speakers = None, normalize: c.Normalize = "default",
    census: Annotated[Optional[str], typer.Option("--census", help="Census table for the geodemographic discoverer.")] = None,
    embeddings: Annotated[Optional[str], typer.Option("--embeddings", help="Speaker embeddings for the automatic discoverer.")] = None,
    embedding_ids: Annotated[Optional[str], typer.Option("--embedding-ids", help="Speaker ids of the .npy rows.")] = None,
    cohorts: Annotated[Optional[str], typer.Option("--cohorts", help="Reuse the cohorts of a saved assignments.csv instead of discovering them.")] = None,
    by: Annotated[Optional[list[str]], typer.Option("--by", help="Attribute cohorts, repeatable.")] = None,
    discoverers: Annotated[str, typer.Option("--discoverers", help="Comma-separated discoverers to run on the baseline.")] = "geographic,geodemographic,automatic",
    min_speakers: Annotated[int, typer.Option("--min-speakers", help="Smallest cohort (speakers) that can be bottom/top.")] = 20,
    k: Annotated[str, typer.Option("--k", help="k-means clusters, or 'auto'.")] = "10",
    resamples: Annotated[int, typer.Option("--resamples", help="Paired bootstrap/permutation resamples per cohort.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    no_html: Annotated[bool, typer.Option("--no-html", help="Do not write compare.html.")] = False,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Score two systems on the same cohorts: per-cohort ΔWER with a paired test, gap and share of each."""
    from fairaudit.compare import compare as run_compare
    from fairaudit.reports.console import comparison_table

    if resamples < 100:
        raise UserInputError(f"--resamples {resamples} is too few", hint="use at least 100 (default 10000)")
    names = [n.strip() for n in discoverers.split(",") if n.strip()]
    result = run_compare(spec, candidate=candidate, speakers=speakers, census=census, embeddings=embeddings,
                         embedding_ids=embedding_ids, cohorts=cohorts, by=by or [], discoverers=names,
                         normalization=normalize, min_speakers=min_speakers, seed=seed,
                         params={"automatic": {"k": _parse_k(k)}} if "automatic" in names else None,
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
