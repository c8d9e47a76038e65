"""`fairaudit power` and `fairaudit selftest`: what can this test set tell?"""
from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer
from rich.table import Table

from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

from . import common as c
from .app import app

Alpha = Annotated[float, typer.Option("--alpha", help="Significance level of the permutation test.")]


def _percent_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserInputError(f"{flag} {text!r} is not a comma-separated list of numbers",
                             hint=f"e.g. {flag} 1,5,10,25 (%)") from None
    if not values or any(not 0 < v < 100 for v in values):
        raise UserInputError(f"{flag} {text!r}: every value must be a percentage between 0 and 100",
                             hint=f"e.g. {flag} 1,5,10,25")
    return values


def _load(spec, speakers, normalize, census, embeddings, embedding_ids, by, discoverers,
          min_speakers, k, geo_max_regions, geo_max_depth, max_depth, seed, workers, quiet):
    """(per-speaker table, side inputs, discoverers), scored exactly as `fairaudit audit` scores."""
    from fairaudit.audit import audit as run_audit
    from fairaudit.audit import build_discoverers

    names, params = c.discovery_params(discoverers, min_speakers, k, geo_max_regions, geo_max_depth, max_depth)
    with c.progress_bar("scoring", None, not quiet) as progress:
        result = run_audit(spec, speakers=speakers, census=census, embeddings=embeddings, embedding_ids=embedding_ids,
                           by=by or [], discoverers=names, normalization=normalize, min_speakers=min_speakers,
                           seed=seed, params=params, workers=workers, progress=progress, n_boot=0, n_perm=0,
                           honest=False, worst_n=0)
    discs = build_discoverers(names, by or [], min_speakers=min_speakers, seed=seed, params=params)
    return result.speakers, result.side, discs


def power_table(res: dict) -> Table:
    """Discoverer x cohort share -> smallest detectable gap (%)."""
    s = res["settings"]
    table = Table(title=f"Smallest WER gap found {100 * s['power']:.0f} % of the time (alpha {s['alpha']:g}, "
                        f"{s['simulations']} simulations)")
    for col, just in (("Discoverer", "left"), ("Cohort", "left"), ("Share %", "right"), ("Speakers", "right"),
                      ("Detectable gap %", "right"), ("Power at 100 %", "right")):
        table.add_column(col, justify=just)
    for key, d in res["discoverers"].items():
        if d.get("skipped"):
            table.add_row(key, f"skipped: {d['skipped']}", "", "", "", "")
            continue
        for row in d["shares"]:
            g = row["min_detectable_gap_pct"]
            at100 = next((p["power"] for p in row["power_curve"] if p["gap_pct"] == 100.0), None)
            table.add_row(key, row["label"] or f"{row['target_share_pct']:g} % cohort",
                          f"{row['planted_share_pct']:.1f}", f"{row['planted_speakers']:,}",
                          f"> {s['gaps_pct'][-1]:g}" if g is None else f"{g:.0f}",
                          "" if at100 is None else f"{100 * at100:.0f} %")
    return table


@app.command("power")
@c.user_errors
@c.with_input
def power(
    spec: InputSpec,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory (power.json; adds a 'power' section to its report.json if present).")] = "fairaudit_out",
    speakers: c.Speakers = None, normalize: c.Normalize = "default",
    census: c.Census = None, embeddings: c.Embeddings = None, embedding_ids: c.EmbeddingIds = None, by: c.By = None,
    discoverers: c.Discoverers = "geographic,geodemographic,automatic,metadata", min_speakers: c.MinSpeakers = 20,
    k: c.K = "10", geo_max_regions: c.GeoMaxRegions = 16, geo_max_depth: c.GeoMaxDepth = 8, max_depth: c.MaxDepth = 2,
    seed: c.Seed = 0,
    simulations: Annotated[int, typer.Option("--simulations", help="Simulated planted worlds per discoverer and share.")] = 200,
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations of the null (once per discoverer).")] = 200,
    shares: Annotated[str, typer.Option("--shares", help="Planted bottom-cohort sizes, % of audited speakers, comma-separated.")] = "1,5,10,25",
    gaps: Annotated[str, typer.Option("--gaps", help="Planted relative WER gaps (%), comma-separated.")] = "10,20,35,50,75,100,150,200,300",
    alpha: Alpha = 0.05,
    target_power: Annotated[float, typer.Option("--power", help="Power the detectable gap must reach (0-1).")] = 0.8,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Smallest WER gap each discoverer would find with this test set (simulation with planted gaps)."""
    from fairaudit.power import estimate_power

    share_list = [v / 100.0 for v in _percent_list(shares, "--shares")]
    try:
        gap_list = [float(t) for t in gaps.split(",") if t.strip()]
    except ValueError:
        raise UserInputError(f"--gaps {gaps!r} is not a comma-separated list of numbers",
                             hint="e.g. --gaps 10,50,100 (%)") from None
    if simulations < 1 or permutations < 1:
        raise UserInputError("--simulations and --permutations must be at least 1")
    table, side, discs = _load(spec, speakers, normalize, census, embeddings,
                               embedding_ids, by, discoverers, min_speakers, k, geo_max_regions, geo_max_depth,
                               max_depth, seed, workers, quiet)
    with c.progress_bar("simulating", None, not quiet) as progress:
        res = estimate_power(table, side, discs, cohort_shares=share_list, n_sim=simulations, n_perm=permutations,
                             alpha=alpha, power=target_power, seed=seed, workers=workers, gaps=gap_list,
                             progress=progress)
    os.makedirs(out, exist_ok=True)
    text = json.dumps(res, indent=2, ensure_ascii=False, allow_nan=False)
    with open(os.path.join(out, "power.json"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    written = ["power.json"]
    report_path = os.path.join(out, "report.json")
    if os.path.isfile(report_path):
        with open(report_path, encoding="utf-8") as fh:
            report = json.load(fh)
        report["power"] = res
        with open(report_path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
        written.append("report.json (power section)")
        html_path = os.path.join(out, "report.html")
        if os.path.isfile(html_path):
            # The HTML is a view of report.json: bring it up to date with the new section.
            from fairaudit.reports.html import write_html
            from fairaudit.result import AuditResult

            write_html(AuditResult.load(report_path), html_path)
            written.append("report.html")
    if not quiet:
        c.out_console.print(power_table(res))
        for d in res["discoverers"].values():
            for row in d.get("shares", []):
                c.out_console.print(row["reading"], markup=False)
        c.out_console.print(f"wrote {out}/: {', '.join(written)}")


@app.command("selftest")
@c.user_errors
@c.with_input
def selftest(
    spec: InputSpec,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Also write selftest.json to this directory.")] = None,
    speakers: c.Speakers = None, normalize: c.Normalize = "default",
    census: c.Census = None, embeddings: c.Embeddings = None, embedding_ids: c.EmbeddingIds = None, by: c.By = None,
    discoverers: c.Discoverers = "geographic,geodemographic,automatic,metadata", min_speakers: c.MinSpeakers = 20,
    k: c.K = "10", geo_max_regions: c.GeoMaxRegions = 16, geo_max_depth: c.GeoMaxDepth = 8, max_depth: c.MaxDepth = 2,
    seed: c.Seed = 0,
    effect: Annotated[float, typer.Option("--effect", help="Planted error increase (%): 100 = twice the errors.")] = 100.0,
    share: Annotated[float, typer.Option("--share", help="Planted cohort size (% of audited speakers).")] = 10.0,
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations of the audit's test on the planted data.")] = 100,
    alpha: Alpha = 0.05,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Plant one disparity per discoverer in this data and report whether the audit recovers it (exit 0 either way)."""
    from fairaudit.power import selftest as run_selftest

    if effect < 0:
        raise UserInputError(f"--effect {effect:g} must be >= 0 (%)", hint="e.g. --effect 100 (twice the errors)")
    if not 0 < share < 100:
        raise UserInputError(f"--share {share:g} must be a percentage between 0 and 100", hint="e.g. --share 10")
    table, side, discs = _load(spec, speakers, normalize, census, embeddings,
                               embedding_ids, by, discoverers, min_speakers, k, geo_max_regions, geo_max_depth,
                               max_depth, seed, workers, quiet)
    res = run_selftest(table, side, discs, effect=effect / 100.0, share=share / 100.0, seed=seed,
                       n_perm=permutations, alpha=alpha, workers=workers)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "selftest.json"), "w", encoding="utf-8") as fh:
            fh.write(json.dumps(res, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    if quiet:
        return
    t = Table(title=f"Self-test: +{effect:g} % errors planted in a {share:g} % cohort per discoverer")
    for col, just in (("Discoverer", "left"), ("Planted", "left"), ("Speakers", "right"), ("Bottom cohort", "left"),
                      ("Precision", "right"), ("Recall", "right"), ("Gap %", "right"), ("p", "right"),
                      ("Recovered", "left")):
        t.add_column(col, justify=just)
    for key, r in res["discoverers"].items():
        if r.get("skipped"):
            t.add_row(key, f"skipped: {r['skipped']}", "", "", "", "", "", "", "")
            continue
        t.add_row(key, r["plant"], f"{r['planted_speakers']:,}", r.get("bottom_label") or r.get("note") or "",
                  f"{r['precision']:.2f}", f"{r['recall']:.2f}",
                  "" if r["gap_pct"] is None else f"{r['gap_pct']:.0f}",
                  "" if r["p_value"] is None else f"{r['p_value']:.3f}", "yes" if r["recovered"] else "NO")
    c.out_console.print(t)
    if out:
        c.out_console.print(f"wrote {out}/selftest.json")
