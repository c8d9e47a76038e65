"""`fairaudit power` and `fairaudit selftest`: what can this test set tell?"""
from __future__ import annotations

import json
import os
from typing import Annotated, Optional

import typer
from rich.table import Table

from fairaudit import numbers as num
from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

from fairaudit.outputs import final, shown

from . import common as c
from .guards import checked
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


def _is_saved_audit(path: str | None) -> bool:
    return bool(path) and (os.path.isfile(os.path.join(path, "report.json")) if os.path.isdir(path)
                           else path.endswith(".json") and os.path.isfile(path))


def _source(spec: InputSpec, discovery: c.DiscoveryOptions, speakers, scoring: dict, workers, quiet):
    """(AuditResult, discoverers) to analyse: a saved audit (INPUT is its folder or
    report.json: nothing is audited again), or an in-memory audit of INPUT (discovery only,
    scored exactly as `fairaudit audit` scores, with ``scoring``: normalization, unit,
    alignment)."""
    from fairaudit.audit import audit as run_audit
    from fairaudit.result import AuditResult

    if _is_saved_audit(spec.path):
        changed = [f"--{n.replace('_', '-')}" for n in discovery.params] + list(discovery.instances)
        if changed:
            raise UserInputError(f"{spec.path} is a saved audit: its discoverers run with the audit's parameters "
                                 f"(flags given for: {', '.join(changed)})",
                                 hint="run `fairaudit audit` again with those flags, or drop them")
        result = AuditResult.load(spec.path)
        result.side = result.side_inputs(discovery.side)
        discs = result.discoverer_objects()
        if discovery.names is not None:
            discs = [d for d in discs if d.name in discovery.names or d.key in discovery.names]
        return result, discs
    with c.progress_bar("scoring", None, not quiet) as progress:
        result = run_audit(spec, speakers=speakers, **scoring, **discovery.audit_kwargs(),
                           workers=workers, progress=progress, n_boot=0, n_perm=0, honest=False, worst_n=0)
    return result, result.discoverer_objects()


def _check_target(out: str, spec: InputSpec, discovery: c.DiscoveryOptions, speakers, scoring: dict,
                  result=None) -> None:
    """Refuse (exit 2) to add to an OUT/report.json computed from other inputs or options
    (:mod:`fairaudit.fingerprint`): from the flags before any work, from the audit after."""
    from fairaudit import fingerprint as fp
    from fairaudit.audit import audit_fingerprint, input_files
    from fairaudit.discover.sides import side_flags

    report_path = os.path.join(final(out), "report.json")
    if not os.path.isfile(report_path):
        return
    if result is not None:
        mine = (result.report.get("inputs") or {}).get("fingerprint")
        if mine is not None and os.path.abspath(result.path or "") != os.path.abspath(final(out)):
            fp.check_same(report_path, mine)
        return
    if _is_saved_audit(spec.path):
        return   # checked against the saved audit's own fingerprint once it is loaded
    kwargs = discovery.audit_kwargs()
    side = {f.name: discovery.side.get(f.name) for f in side_flags() if f.path}
    files = input_files(spec, [("speakers", speakers), *side.items()])
    fp.check_same(report_path, audit_fingerprint(spec, files, discovery.build(), min_speakers=kwargs["min_speakers"],
                                                 **scoring))


def _attach(out: str, name: str, section: dict, written: list[str]) -> None:
    """Add a section to the report.json in ``out`` (through AuditResult, its only writer)
    and refresh report.html when it exists."""
    from fairaudit.result import AuditResult

    where = final(out)   # the folder the user named; ``out`` may be its staging folder
    if not os.path.isfile(os.path.join(where, "report.json")):
        return
    saved = AuditResult.load(where)
    saved.add_section(name, section)
    saved.save(out, tables=False)
    written.append(f"report.json ({name} section)")
    if os.path.isfile(os.path.join(where, "report.html")):
        # The HTML is a view of report.json: bring it up to date with the new section.
        from fairaudit.reports.html import write_html

        write_html(saved, os.path.join(out, "report.html"))
        written.append("report.html")


def power_table(res: dict) -> Table:
    """Discoverer x cohort share -> smallest detectable gap (%)."""
    s = res["settings"]
    table = Table(title=f"Smallest WER gap found {num.ratio_as_pct(s['power'])} of the time (alpha {s['alpha']:g}, "
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
                          num.pct(row["planted_share_pct"]), num.count(row["planted_speakers"]),
                          f"> {s['gaps_pct'][-1]:g}" if g is None else num.whole_pct(g),
                          "" if at100 is None else num.ratio_as_pct(at100))
    return table


@app.command("power")
@c.user_errors
@checked()
@c.with_input
@c.with_discovery
def power(
    spec: InputSpec,
    discovery: c.DiscoveryOptions,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Output directory (power.json; adds a 'power' section to its report.json if present). Default: the saved audit's folder, else fairaudit_out.")] = None,
    speakers: c.Speakers = None, normalize: c.Normalize = "default", unit: c.Unit = "word", align: c.Align = "jiwer",
    simulations: Annotated[int, typer.Option("--simulations", help="Simulated planted worlds per discoverer and share.")] = 200,
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations of the null (once per discoverer).")] = 200,
    shares: Annotated[str, typer.Option("--shares", help="Planted bottom-cohort sizes, % of audited speakers, comma-separated.")] = "1,5,10,25",
    gaps: Annotated[str, typer.Option("--gaps", help="Planted relative WER gaps (%), comma-separated.")] = "10,20,35,50,75,100,150,200,300",
    alpha: Alpha = 0.05,
    target_power: Annotated[float, typer.Option("--power", help="Power the detectable gap must reach (0-1).")] = 0.8,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Smallest WER gap each discoverer would find with this test set (simulation with planted gaps).

    INPUT is a saved audit (its folder or report.json, with speaker_scores.csv beside it) or
    a decoded test set (audited in memory first)."""
    share_list = [v / 100.0 for v in _percent_list(shares, "--shares")]
    try:
        gap_list = [float(t) for t in gaps.split(",") if t.strip()]
    except ValueError:
        raise UserInputError(f"--gaps {gaps!r} is not a comma-separated list of numbers",
                             hint="e.g. --gaps 10,50,100 (%)") from None
    if simulations < 1 or permutations < 1:
        raise UserInputError("--simulations and --permutations must be at least 1")
    scoring = {"normalization": normalize, "unit": unit, "alignment": align}
    if out is None and _is_saved_audit(spec.path):
        # `fairaudit power DIR`: the section joins that audit, through the same staged,
        # locked folder as any --out.
        from fairaudit.outputs import OutputFolder

        folder = spec.path if os.path.isdir(spec.path) else os.path.dirname(os.path.abspath(spec.path))
        with OutputFolder(folder) as staging:
            _power(spec, discovery, staging, speakers, scoring, share_list, gap_list, simulations, permutations,
                   alpha, target_power, workers, quiet)
        return
    _power(spec, discovery, out or "fairaudit_out", speakers, scoring, share_list, gap_list, simulations,
           permutations, alpha, target_power, workers, quiet)


def _power(spec, discovery, out, speakers, scoring, share_list, gap_list, simulations, permutations, alpha,
           target_power, workers, quiet) -> None:
    from fairaudit.power import estimate_power

    # The power section joins OUT/report.json only if that report is of these inputs:
    # checked before any work (an in-memory audit is checked again after it ran).
    _check_target(out, spec, discovery, speakers, scoring)
    result, discs = _source(spec, discovery, speakers, scoring, workers, quiet)
    _check_target(out, spec, discovery, speakers, scoring, result)
    with c.progress_bar("simulating", None, not quiet) as progress:
        res = estimate_power(result, discoverers=discs, cohort_shares=share_list, n_sim=simulations,
                             n_perm=permutations, alpha=alpha, power=target_power, seed=discovery.seed,
                             workers=workers, gaps=gap_list, progress=progress)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "power.json"), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(res, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    written = ["power.json"]
    _attach(out, "power", res, written)
    if not quiet:
        c.out_console.print(power_table(res))
        for d in res["discoverers"].values():
            for row in d.get("shares", []):
                c.out_console.print(row["reading"], markup=False)
        c.out_console.print(f"wrote {shown(out)}/: {', '.join(written)}")


@app.command("selftest")
@c.user_errors
@checked()
@c.with_input
@c.with_discovery
def selftest(
    spec: InputSpec,
    discovery: c.DiscoveryOptions,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Also write selftest.json to this directory.")] = None,
    speakers: c.Speakers = None, normalize: c.Normalize = "default", unit: c.Unit = "word", align: c.Align = "jiwer",
    effect: Annotated[float, typer.Option("--effect", help="Planted error increase (%): 100 = twice the errors.")] = 100.0,
    share: Annotated[float, typer.Option("--share", help="Planted cohort size (% of audited speakers).")] = 10.0,
    permutations: Annotated[int, typer.Option("--permutations", help="Permutations of the audit's test on the planted data.")] = 100,
    alpha: Alpha = 0.05,
    workers: c.Workers = None, quiet: c.Quiet = False,
):
    """Plant one disparity per discoverer in this data and report whether the audit recovers it: exit 0 when
    every tested discoverer recovered its plant, 1 when one did not or none could be tested.

    INPUT is a saved audit (its folder or report.json) or a decoded test set."""
    from fairaudit.power import selftest as run_selftest

    if effect < 0:
        raise UserInputError(f"--effect {effect:g} must be >= 0 (%)", hint="e.g. --effect 100 (twice the errors)")
    if not 0 < share < 100:
        raise UserInputError(f"--share {share:g} must be a percentage between 0 and 100", hint="e.g. --share 10")
    result, discs = _source(spec, discovery, speakers, {"normalization": normalize, "unit": unit, "alignment": align},
                            workers, quiet)
    res = run_selftest(result, discoverers=discs, effect=effect / 100.0, share=share / 100.0, seed=discovery.seed,
                       n_perm=permutations, alpha=alpha, workers=workers)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "selftest.json"), "w", encoding="utf-8") as fh:
            fh.write(json.dumps(res, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    code, verdict = selftest_verdict(res)
    if quiet:
        c.out_console.print(verdict, markup=False)
        raise typer.Exit(code)
    c.out_console.print(selftest_table(res, effect, share))
    if out:
        c.out_console.print(f"wrote {shown(out)}/selftest.json")
    c.out_console.print(verdict, markup=False)
    raise typer.Exit(code)


def selftest_table(res: dict, effect: float, share: float) -> Table:
    """Discoverer -> planted cohort, bottom cohort found, precision, recall, gap, p, recovered."""
    t = Table(title=f"Self-test: +{effect:g} % errors planted in a {share:g} % cohort per discoverer")
    for col, just in (("Discoverer", "left"), ("Planted", "left"), ("Speakers", "right"), ("Bottom cohort", "left"),
                      ("Precision", "right"), ("Recall", "right"), ("Gap %", "right"), ("p", "right"),
                      ("Recovered", "left")):
        t.add_column(col, justify=just)
    for key, r in res["discoverers"].items():
        if r.get("skipped"):
            t.add_row(key, f"skipped: {r['skipped']}", "", "", "", "", "", "", "")
            continue
        t.add_row(key, r["plant"], num.count(r["planted_speakers"]), r.get("bottom_label") or r.get("note") or "",
                  f"{r['precision']:.2f}", f"{r['recall']:.2f}", "" if r["gap_pct"] is None else num.whole_pct(r["gap_pct"]),
                  num.p_value(r["p_value"]), "yes" if r["recovered"] else "NO")
    return t


def selftest_verdict(res: dict) -> tuple[int, str]:
    """(exit code, verdict line) of a self-test: a plant not recovered, or no discoverer
    tested at all, is a failure (exit 1), never a pass."""
    runs = res["discoverers"]
    tested = {k: r for k, r in runs.items() if not r.get("skipped")}
    if not tested:
        why = "; ".join(f"{k}: {r['skipped']}" for k, r in runs.items()) or "no discoverer was given"
        return 1, f"selftest: FAILED: no discoverer could be tested ({why})"
    missed = [k for k, r in tested.items() if not r["recovered"]]
    if missed:
        return 1, (f"selftest: FAILED: the planted disparity was not recovered by {', '.join(missed)} "
                   f"({len(tested) - len(missed)} of {len(tested)} recovered)")
    return 0, f"selftest: passed: {len(tested)} of {len(tested)} planted disparities recovered"
