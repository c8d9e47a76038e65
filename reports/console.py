"""The console view: the seed paper's table (bottom cohort, its WER, WER gap %, share %)."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fairaudit import numbers as num
from fairaudit.result import AuditResult
from fairaudit.units import rate_name, report_unit


def summary_table(result: AuditResult, system: str | None = None) -> Table:
    """A rich Table with one row per discoverer (skipped ones say why)."""
    o = result.overall
    rate = rate_name(report_unit(result.report))
    name = f" \\[{escape(system)}]" if system else ""
    table = Table(title=f"fairaudit{name}: overall {rate} {num.wer(o['wer'])} %, {o['speakers']:,} speakers, "
                        f"{o['utterances']:,} utterances", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    table.add_column("Bottom cohort", overflow="fold", min_width=34, max_width=60)
    adjusted = bool((result.report.get("rate_ratios") or {}).get("covariates"))
    # The held-out gap (cohorts found on other speakers) is the headline; the gap as found
    # is inflated by the search, so it has no interval here (its fixed-cohort bootstrap
    # interval stays in report.json with its caveat).
    columns = [f"Bottom {rate} %", f"Top {rate} %", f"Held-out {rate} gap %", "Held-out CI",
               f"{rate} gap % as found", "Null p95 %", "p", "Bottom share %", "Cohorts", "Speakers"]
    if adjusted:   # the bottom cohort vs the rest, at equal covariates (--adjust)
        columns.insert(7, "Adj. rate ratio (95% CI)")
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    notes: list[str] = []
    for key, d in result.discoverers.items():
        if d.get("skipped"):
            table.add_row(Text(key), Text(f"skipped: {d['skipped']}", style="dim"), *[""] * len(columns))
            continue
        by_id = {c["id"]: c for c in d["cohorts"]}
        bottom, top = by_id.get(d["bottom"]), by_id.get(d["top"])
        perm = d.get("permutation") or {}
        p_txt = num.p_value(d.get("p_value"), num.NA)
        own = perm.get("statistic") not in (None, "wer_gap_pct", "wer_gap_abs") and d.get("p_value") is not None
        if own:
            # The p-value tests the discoverer's own statistic, not the gap: the gap's null
            # p95 beside it would suggest a comparison the test did not make.
            p_txt += "†"
            notes.append(f"{key}: p from its own statistic {perm['statistic']} (observed {perm['observed']:.2f}, "
                         f"null p95 {perm.get('null_statistic_p95', float('nan')):.2f}), not from the gap's null")
        cells = [num.wer(bottom["wer"]) if bottom else "n/a", num.wer(top["wer"]) if top else "n/a",
                 num.heldout_gap(d), num.heldout_interval(d), num.gap(d), num.pct(perm.get("null_gap_p95_pct")), p_txt,
                 num.pct(d["bottom_share_pct"]), str(d["cohort_count"]), f"{d['audited_speakers']:,}"]
        if adjusted:
            cells.insert(7, num.rate_ratio_block(d.get("adjusted")) + ("*" if "rate_ratio_heldout" in d else ""))
        table.add_row(Text(key), Text(bottom["label"] if bottom else d.get("note", "n/a")), *cells)
    if notes:
        table.caption = Text("\n".join(f"† {n}" for n in notes))
        table.caption_justify = "left"
    return table


def cohort_test_lines(result: AuditResult) -> list[Text]:
    """The cohorts significantly worse than the rest (Holm over the audit), gaps that the
    adjustment explains away, and where held-out speakers were used."""
    rr = result.report.get("rate_ratios")
    if not rr:
        return []
    if rr.get("note"):
        return [Text(f"every cohort against the rest: nothing tested ({rr['note']})", style="dim")]
    basis = "adjusted" if rr.get("covariates") else "raw"
    covs = ", ".join(c["name"] for c in rr.get("covariates", []))
    tests = rr["family"]["adjusted_tests" if basis == "adjusted" else "raw_tests"]
    worse = rr.get("worse_than_rest") or []
    head = (f"significantly worse than the rest ({basis}{' for ' + covs if covs else ''}; Holm over {tests} "
            f"test(s) of this audit, family-wise error {num.ratio_as_pct(rr['alpha'])}): ")
    lines = [Text(head + ("none" if not worse else ""), style="bold" if worse else None)]
    for w in worse:
        lines.append(Text(f"  {w['discoverer']}: {w['label']}: rate ratio {num.rate_ratio_block(w)}, "
                          f"p_Holm {num.p_value(w['p_holm'])}, q_BH {num.p_value(w.get('q_bh'))}"))
    for key, d in result.discoverers.items():
        for c in d.get("cohorts", []) if not d.get("skipped") else []:
            adj = c.get("adjusted") or {}
            if adj.get("explained_away") and (c["rate_ratio"].get("rate_ratio") or 0) > 1:
                lines.append(Text(f"  explained away: {key}: {c['label']}: raw rate ratio "
                                  f"{num.rate_ratio_block(c['rate_ratio'], with_p=True)} -> adjusted for {covs} "
                                  f"{num.rate_ratio_block(adj)}", style="yellow"))
    if any("rate_ratio_heldout" in d for d in result.discoverers.values() if not d.get("skipped")):
        lines.append(Text("  * discoverers that search for cohorts: rate ratios fitted on held-out speakers (the "
                          "search ran on the other half)", style="dim"))
    return lines


def print_report(result: AuditResult, console: Console | None = None) -> None:
    """Print the summary table, what each discoverer left out, and the row accounting."""
    console = console or Console(highlight=False)
    systems = result.system_names if result.report.get("systems") else []
    if systems:
        for name in systems:
            console.print(summary_table(result.for_system(name), name))
            for line in cohort_test_lines(result.for_system(name)):
                console.print(line)
        console.print(side_by_side_table(result))
    else:
        console.print(summary_table(result))
        for line in cohort_test_lines(result):
            console.print(line)
    for key, d in result.discoverers.items():
        for reason, n in (d.get("not_audited") or {}).items():
            console.print(Text(f"  {key}: {n:,} speaker(s) not audited: {reason}", style="dim"))
    print_inputs(result.report, console)
    for name in systems or [None]:
        acc = (result.report["systems"][name] if name else result.report)["accounting"]
        print_accounting(acc, console, name)
    for w in result.report.get("warnings", []):
        console.print(Text(f"  warning: {w}", style="yellow"))


def print_inputs(report: dict, console: Console) -> None:
    """How the hypotheses met the references, per system (``inputs.matching``), and which
    attribute values were read as unknown (``accounting.attribute_missing``)."""
    inputs = report.get("inputs") or {}
    for name, m in (inputs.get("matching") or {}).items():
        how = "by file stem" if m["match"] == "stem" else "exactly"
        chosen = f" (--match-keys {m['match_option']})" if m.get("match_option") == "auto" else ""
        missing = "dropped" if m.get("missing_hyp", "drop") == "drop" else "scored as empty"
        console.print(Text(f"hypotheses {name}: {m['matched']:,} of {m['references']:,} reference rows matched "
                           f"{how}{chosen}; {m['no_hypothesis']:,} without hypothesis ({missing}), "
                           f"{m['no_reference']:,} without reference, {m['duplicate_keys']:,} repeated keys"),
                      soft_wrap=True)
    unknown = (report.get("accounting") or {}).get("attribute_missing") or {}
    if unknown and inputs.get("missing_attribute", "unknown") == "unknown":
        markers = ", ".join(inputs.get("na_values") or []) or "none"
        counts = ", ".join(f"{col} {n:,}" for col, n in unknown.items())
        console.print(Text(f"attribute missing (speakers; empty or {markers}): {counts}; never a cohort, not audited "
                           f"on that attribute (--missing-attribute cohort keeps the markers as values)", style="dim"),
                      soft_wrap=True)


def print_accounting(acc: dict, console: Console, system: str | None = None) -> None:
    """Rows read = scored + dropped (per reason, with an example) and the row warnings."""
    name = f" [{system}]" if system else ""
    console.print(Text(f"rows read{name} {acc['rows_read']:,} = scored {acc['rows_scored']:,} "
                       f"+ dropped {acc['rows_dropped']:,}"))
    for reason, d in acc["dropped"].items():
        example = f", e.g. {d['examples'][0]}" if d.get("examples") else ""
        console.print(Text(f"  dropped {d['rows']:,}: {reason} ({d['reason']}{example})", style="dim"))
    for w in acc.get("warnings", []):
        console.print(Text(f"  warning: {w}", style="yellow"))


def side_by_side_table(result: AuditResult) -> Table:
    """Systems side by side: per discoverer, each system's WER gap % and bottom-cohort share %."""
    systems = result.system_names
    rate = rate_name(report_unit(result.report))
    table = Table(title=f"systems side by side: {rate} gap % (bottom-cohort share %)", title_justify="left")
    table.add_column("Discoverer", no_wrap=True)
    for name in systems:
        table.add_column(Text(name), justify="right", no_wrap=True)
    overall = [f"{num.wer(result.for_system(n).overall['wer'])} % {rate}" for n in systems]
    table.add_row("overall", *overall)
    for key in result.discoverers:
        cells = []
        for name in systems:
            d = result.for_system(name).discoverers.get(key, {})
            gap = num.gap(d)
            cells.append("skipped" if d.get("skipped") else f"{gap} ({num.pct(d.get('bottom_share_pct'))})")
        table.add_row(Text(key), *cells)
        # the bottom cohort's rate ratio vs the rest, raw and (with --adjust) adjusted
        for field, what in (("rate_ratio", "raw"), ("adjusted", "adjusted")):
            blocks = [result.for_system(n).discoverers.get(key, {}).get(field) for n in systems]
            if any(blocks):
                table.add_row(Text(f"  rate ratio, {what}", style="dim"), *[num.rate_ratio_block(b) for b in blocks])
    return table


def comparison_table(result: AuditResult) -> list[Table]:
    """Tables of a `fairaudit compare` result: overall ΔWER, then per discoverer each cohort."""
    rep = result.report
    base, cand = rep["baseline"], rep["candidate"]
    rate = rate_name(report_unit(rep))
    o = rep["overall"]
    head = Table(title=f"compare: {base} (baseline) vs {cand} (candidate) on the same cohorts", title_justify="left")
    for col in ("", f"{rate} {base} %", f"{rate} {cand} %", f"Δ{rate} points", "95% CI", "p"):
        head.add_column(Text(col), justify="right" if col else "left", no_wrap=True)
    head.add_row("overall", num.wer(o[base]["wer"]), num.wer(o[cand]["wer"]), num.delta(o["delta_wer"]),
                 num.delta_interval(o.get("ci_low"), o.get("ci_high")), num.p_value(o.get("p_value"), num.NA))
    tables = [head]
    for key, d in rep["discoverers"].items():
        if d.get("skipped"):
            t = Table(title=f"{key}: skipped: {d['skipped']}", title_justify="left")
            tables.append(t)
            continue
        gb, gc = d["gap"][base], d["gap"][cand]
        t = Table(title=f"{key}: {rate} gap {num.gap(gb)} % ({base}) -> {num.gap(gc)} % ({cand})",
                  title_justify="left")
        for col in ("Cohort", "Speakers", f"{rate} {base} %", f"{rate} {cand} %", f"Δ{rate} points", "95% CI", "p"):
            t.add_column(Text(col), justify="left" if col == "Cohort" else "right", no_wrap=col != "Cohort",
                         overflow="fold", max_width=60 if col == "Cohort" else None)
        for c in d["cohorts"]:
            label = c["label"] + (" (too few speakers)" if c.get("too_few_speakers") else "")
            t.add_row(Text(label), str(c["speakers"]), num.wer(c["wer"][base]), num.wer(c["wer"][cand]),
                      num.delta(c["delta_wer"]), num.delta_interval(c.get("ci_low"), c.get("ci_high")), num.p_value(c.get("p_value"), num.NA))
        tables.append(t)
        if d.get("criteria"):
            tables.append(criteria_table(key, d["criteria"], base, cand, rate))
    return tables


def criteria_table(key: str, crit: dict, base: str, cand: str, rate: str = "WER") -> Table:
    """Trinh et al.'s criteria of one discoverer's cohorts, before vs after, with the
    paired interval of each change and whether the gap shrank beyond it."""
    shrank = crit.get("gap_shrank")
    verdict = {True: "the gap shrank beyond its interval", False: "the gap did not shrink beyond its interval",
               None: "no gap to judge"}[shrank]
    t = Table(title=f"{key}: {rate} across {crit.get('cohorts', 0)} cohorts (Trinh et al.): {verdict}",
              title_justify="left")
    for col in ("criterion", base, cand, f"change [{num.level(crit.get('level'))} CI]"):
        t.add_column(Text(col), justify="left" if col == "criterion" else "right", no_wrap=True)
    for name, title in num.CRITERIA.items():
        ch = (crit.get("change") or {}).get(name) or {}
        t.add_row(f"{rate} {title}", num.criterion(name, crit["baseline"].get(name)),
                  num.criterion(name, crit["candidate"].get(name)),
                  num.criterion_change(name, ch.get("delta"), ch.get("ci_low"), ch.get("ci_high")))
    return t
