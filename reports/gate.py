"""The CI gate: checks over a saved audit (or comparison) result, as verdicts, JUnit XML and Markdown.

A view like the others: it reads report.json and recomputes nothing.  Exit codes are the
CLI's business: 0 all checks passed, 1 a check failed, 2 usage or input error.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fairaudit import numbers as num
from fairaudit.errors import UserInputError
from fairaudit.units import rate_name, report_unit

#: keys accepted in [tool.fairaudit.gate] / fairaudit.toml [gate], and their types
CONFIG_KEYS = {"max_gap_pct": float, "max_bottom_wer": "wer", "max_overall_wer": "wer", "discoverers": list,
               "max_gap_increase_pct": float, "baseline": str, "require_significant": bool, "max_delta_wer": "wer",
               "allow_empty": bool, "max_adjusted_ratio": float, "gap": "basis"}

#: which gap --max-gap-pct (and audit --fail-on-gap) checks: ``headline`` (default) the
#: report's headline gap, i.e. the held-out gap when it has an estimate and the as-found gap
#: otherwise; ``heldout`` only the held-out gap (a discoverer without one fails the check);
#: ``found`` the gap as found on the speakers that chose the cohorts (inflated by the search)
GAP_BASES = ("headline", "heldout", "found")


@dataclass
class GateConfig:
    """Thresholds of the gate. WERs are ratios (0.15 = 15 %); gaps are % as in report.json."""

    max_gap_pct: float | None = None
    max_bottom_wer: float | None = None
    max_overall_wer: float | None = None
    discoverers: list[str] | None = None
    baseline: str | None = None
    max_gap_increase_pct: float | None = None
    require_significant: bool = False
    max_delta_wer: float | None = None
    #: zero checks pass instead of failing (a gate that checked nothing must say so)
    allow_empty: bool = False
    #: largest adjusted rate ratio vs the rest (ratio, e.g. 1.25) any cohort may have
    max_adjusted_ratio: float | None = None
    #: which gap max_gap_pct checks (:data:`GAP_BASES`)
    gap: str = "headline"
    source: str = "flags"

    def has_checks(self) -> bool:
        return any(v is not None for v in (self.max_gap_pct, self.max_bottom_wer, self.max_overall_wer,
                                           self.max_gap_increase_pct, self.max_delta_wer, self.max_adjusted_ratio))


@dataclass
class Check:
    """One gate check and its verdict."""

    name: str
    passed: bool
    message: str
    discoverer: str | None = None
    system: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def line(self) -> str:
        return f"{self.verdict} {self.name}: {self.message}"


def parse_wer(value: Any, where: str) -> float:
    """A WER threshold as a ratio: 0.15, or "15%" (percent)."""
    text = str(value).strip()
    try:
        ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UserInputError(f"{where}: {value!r} is not a WER", hint="write a ratio (0.15) or a percent ('15%')") from None
    if text.endswith("%") is False and ratio > 1:
        raise UserInputError(f"{where}: {value!r} looks like a percent", hint="WER thresholds are ratios: 0.15 = 15 %, or write '15%'")
    if ratio < 0:
        raise UserInputError(f"{where}: {value!r} is negative")
    return ratio


def parse_gap_basis(value: Any, where: str) -> str:
    """Which gap the gap threshold checks: one of :data:`GAP_BASES` ("held-out"/"as-found" accepted)."""
    text = str(value).strip().lower().replace("-", "").replace("_", "").replace("asfound", "found")
    if text not in GAP_BASES:
        raise UserInputError(f"{where}: {value!r} is not a gap to check",
                             hint=f"choose one of {', '.join(GAP_BASES)} (headline = held-out when estimated, "
                                  "else as found)")
    return text


def load_config(path: str | None = None, start_dir: str = ".") -> GateConfig:
    """Gate thresholds from ``path``, else ``fairaudit.toml`` ([gate]) or ``pyproject.toml``
    ([tool.fairaudit.gate]) in ``start_dir``; an empty config when there is none."""
    candidates = [path] if path else [os.path.join(start_dir, "fairaudit.toml"), os.path.join(start_dir, "pyproject.toml")]
    for cand in candidates:
        if not cand or not os.path.isfile(cand):
            if path:
                raise UserInputError("config file not found", path=path)
            continue
        try:
            with open(cand, "rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise UserInputError(f"not valid TOML: {exc}", path=cand) from exc
        section = doc.get("tool", {}).get("fairaudit", {}).get("gate") if cand.endswith("pyproject.toml") \
            else doc.get("gate", doc.get("tool", {}).get("fairaudit", {}).get("gate"))
        if section is None:
            if path:
                raise UserInputError("no [gate] or [tool.fairaudit.gate] table", path=cand)
            continue
        return _from_mapping(section, cand)
    return GateConfig(source="none")


def _from_mapping(section: dict, where: str) -> GateConfig:
    cfg = GateConfig(source=where)
    for key, value in section.items():
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            raise UserInputError(f"unknown gate setting {key!r}", path=where, hint=f"known: {', '.join(CONFIG_KEYS)}")
        if kind == "wer":
            value = parse_wer(value, f"{where}: {key}")
        elif kind == "basis":
            value = parse_gap_basis(value, f"{where}: {key}")
        elif kind is float:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise UserInputError(f"{key} = {value!r} is not a number", path=where)
            value = float(value)
        elif kind is list:
            value = [value] if isinstance(value, str) else list(value)
        elif kind is bool and not isinstance(value, bool):
            raise UserInputError(f"{key} = {value!r} is not true/false", path=where)
        setattr(cfg, key, value)
    return cfg


_fmt_wer = num.wer_pct


def _selected(report: dict, names: list[str] | None) -> list[str]:
    """The discoverers to check: the named ones that ran (see :func:`_missing_checks` for
    the others), or every one that ran."""
    ran = [k for k, d in report["discoverers"].items() if not d.get("skipped")]
    return [n for n in names if n in ran] if names else ran


def _missing_checks(report: dict, names: list[str] | None, system=None, tag: str = "") -> list[Check]:
    """A failed check per named discoverer that the report cannot check: absent (not run,
    or a typo) or skipped.  A gate asked to check it must not pass without it."""
    out = []
    present = list(report["discoverers"])
    for n in names or []:
        d = report["discoverers"].get(n)
        if d is None:
            why = f"not in the report (it has: {', '.join(present) or 'none'})"
        elif d.get("skipped"):
            why = f"skipped in this audit: {d['skipped']}"
        else:
            continue
        out.append(Check(f"{tag}{n}", False, f"nothing checked: discoverer {n!r} is {why}", n, system))
    return out


def why_no_checks(report: dict, cfg: GateConfig) -> str:
    """Why a gate over ``report`` produced no check (one phrase, for the verdict line)."""
    if report.get("kind") != "comparison" and not (report.get("overall") or {}).get("utterances"):
        return "the audit scored 0 rows"
    discs = report.get("discoverers") or {}
    if not discs:
        return "the report has no discoverers"
    skipped = {k: d["skipped"] for k, d in discs.items() if d.get("skipped")}
    if len(skipped) == len(discs):
        return "every discoverer was skipped (" + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")"
    return "no discoverer has a bottom cohort to check"


def _systems(report: dict) -> list[tuple[str | None, dict]]:
    """(system name, per-system report) pairs: several when the audit had several systems."""
    systems = report.get("systems")
    if systems:
        return [(name, {**report, **sub}) for name, sub in systems.items()]
    return [(None, report)]


def evaluate(report: dict, cfg: GateConfig, baseline: dict | None = None) -> list[Check]:
    """Run every configured check on an audit report (and a baseline report); returns the checks."""
    if report.get("kind") == "comparison":
        return _evaluate_comparison(report, cfg)
    if not cfg.has_checks():
        raise UserInputError("no gate thresholds given",
                             hint="pass --max-gap-pct/--max-bottom-wer/--max-overall-wer/--max-gap-increase-pct/"
                                  "--max-adjusted-ratio or set them in [tool.fairaudit.gate] of pyproject.toml")
    if cfg.max_adjusted_ratio is not None and not cfg.max_adjusted_ratio > 0:
        raise UserInputError(f"--max-adjusted-ratio {cfg.max_adjusted_ratio:g} is not a rate ratio",
                             hint="give a ratio above 0 (1.25 = 25 % more errors per word than the rest)")
    checks: list[Check] = []
    # The rate the report measures (WER, CER or MER) names every check.
    rate = rate_name(report_unit(report))
    base_systems = dict(_systems(baseline)) if baseline else {}
    for system, rep in _systems(report):
        tag = f"[{system}] " if system else ""
        if cfg.max_overall_wer is not None:
            w = rep["overall"]["wer"]
            checks.append(Check(f"{tag}overall {rate}", w is not None and w <= cfg.max_overall_wer,
                                f"{_fmt_wer(w)} {'≤' if w is not None and w <= cfg.max_overall_wer else '>'} "
                                f"{_fmt_wer(cfg.max_overall_wer)}", system=system))
        checks += _missing_checks(rep, cfg.discoverers, system, tag)
        for key in _selected(rep, cfg.discoverers):
            d = rep["discoverers"][key]
            checks += _discoverer_checks(key, d, cfg, system, tag, rate)
            if cfg.max_gap_increase_pct is not None:
                base = base_systems.get(system) if baseline else None
                checks.append(_increase_check(key, d, base, cfg, system, tag))
    if cfg.max_adjusted_ratio is not None and not any(ch.name.endswith("adjusted rate ratio") for ch in checks):
        checks.append(_adjusted_empty(report, cfg))
    return checks


def _significance_note(d: dict, cfg: GateConfig) -> tuple[bool, str]:
    """Whether a failing gap may be waived as not significant (with --require-significant)."""
    if not cfg.require_significant:
        return False, ""
    p = d.get("p_value")
    if p is None:
        return False, " (no p-value in the report: run the audit with --permutations > 0)"
    if p >= 0.05:
        return True, f" but not significant (permutation p = {num.p_value(p)} >= 0.05): passed under --require-significant"
    return False, f" (permutation p = {num.p_value(p)})"


def _discoverer_checks(key: str, d: dict, cfg: GateConfig, system, tag: str, rate: str = "WER") -> list[Check]:
    out = []
    if d.get("skipped"):
        return out
    cohorts = {c["id"]: c for c in d.get("cohorts", [])}
    bottom = cohorts.get(d.get("bottom"))
    if cfg.max_gap_pct is not None:
        out.append(_gap_check(key, d, cfg, system, tag, rate, bottom))
    if cfg.max_bottom_wer is not None and bottom is not None:
        ok = bottom["wer"] <= cfg.max_bottom_wer
        out.append(Check(f"{tag}{key} bottom-cohort {rate}", ok,
                         f"{_fmt_wer(bottom['wer'])} {'≤' if ok else '>'} {_fmt_wer(cfg.max_bottom_wer)} "
                         f"({bottom['label']})", key, system))
    if cfg.max_adjusted_ratio is not None:
        adjusted = _adjusted_check(key, d, cfg, system, tag)
        if adjusted is not None:
            out.append(adjusted)
    return out


def checked_gap(d: dict, basis: str = "headline") -> dict:
    """The gap a gap threshold checks for one discoverer entry, and why that one.

    Returns ``basis`` ("heldout" or "found": what is checked), ``gap_pct`` (%, None when
    undefined or missing), ``gap_abs`` (ratio), ``ci_pct`` (the held-out interval, %, or
    None), ``why`` (one phrase for the verdict line) and ``missing`` (True when ``basis`` =
    "heldout" was asked for and the entry has no held-out estimate).  ``headline`` follows
    the report's headline (``entry["headline_gap"]``, :func:`fairaudit.stats.report.headline_gap`):
    the held-out gap when it has an estimate, the as-found gap otherwise.
    """
    from fairaudit.stats.report import headline_gap

    found = {"basis": "found", "gap_pct": d.get("wer_gap_pct"), "gap_abs": d.get("wer_gap_abs"), "ci_pct": None,
             "missing": False}
    if basis == "found":
        return {**found, "why": "the as-found gap (--gap found)"}
    # One rule for both: the report's own headline (``headline_gap``; recomputed for
    # reports saved before it) is the held-out gap exactly when that has an estimate.
    head = (d.get("headline_gap") if basis == "headline" else None) or headline_gap(d)
    if head.get("basis") == "heldout":
        why = "the headline gap: held-out" if basis == "headline" else "the held-out gap (--gap heldout)"
        return {"basis": "heldout", "gap_pct": head.get("gap_pct"), "gap_abs": head.get("gap_abs"),
                "ci_pct": head.get("ci_pct"), "missing": False, "why": why}
    if basis == "headline":
        return {**found, "why": f"the headline gap: as found, no held-out estimate ({head.get('reason')})"}
    return {**found, "basis": "heldout", "gap_pct": None, "missing": True, "why": f"no held-out gap: {head.get('reason')}"}


def _gap_check(key: str, d: dict, cfg: GateConfig, system, tag: str, rate: str, bottom: dict | None) -> Check:
    """``max_gap_pct`` against the gap :func:`checked_gap` picks (``cfg.gap``); the verdict
    line names the gap checked and why, with the other one beside it."""
    name = f"{tag}{key} {rate} gap"
    if d.get("bottom") is None:
        return Check(name, False, f"no gap: {d.get('note', 'fewer than two eligible cohorts')}", key, system)
    pick = checked_gap(d, cfg.gap)
    details = {"gap_pct": pick["gap_pct"], "gap_basis": pick["basis"], "found_gap_pct": d.get("wer_gap_pct"),
               "p_value": d.get("p_value")}
    if pick["missing"]:
        return Check(name, False, f"nothing checked: {pick['why']}; run the audit with --honest-gap or gate "
                                  "with --gap found or headline", key, system, details)
    gap = pick["gap_pct"]
    if gap is None:
        what = "held-out" if pick["basis"] == "heldout" else "as-found"
        return Check(name, False, f"{what} relative gap undefined (top cohort {rate} is 0), absolute gap "
                                  f"{_fmt_wer(pick['gap_abs'])}; checked {pick['why']}", key, system, details)
    ok = gap <= cfg.max_gap_pct
    waived, note = (False, "") if ok else _significance_note(d, cfg)
    ci = pick["ci_pct"]
    ci_txt = f" [CI {num.pct(ci[0])}–{num.pct(ci[1])}]" if ci and None not in ci else ""
    if pick["basis"] == "heldout":
        # The other figure beside it: the as-found gap is inflated by the search.
        other = d.get("wer_gap_pct")
        shown = f"{num.pct(gap)} % held-out{ci_txt}"
        beside = f"; as found {num.pct(other)} %" if other is not None else ""
    else:
        shown = f"{num.pct(gap)} % as found"
        held = d.get("heldout") or {}
        beside = f"; held-out {num.heldout_gap(d)} %" if held.get("estimate") else ""
    return Check(name, ok or waived,
                 f"{shown} {'≤' if ok else '>'} {cfg.max_gap_pct:g} % (checked {pick['why']}{beside}; "
                 f"bottom: {bottom['label'] if bottom else '?'}){note}", key, system, details)


def _adjusted_check(key: str, d: dict, cfg: GateConfig, system, tag: str) -> Check | None:
    """The largest adjusted rate ratio vs the rest among the discoverer's cohorts with an
    interval (enough speakers, an honest estimate) against ``max_adjusted_ratio``.

    None when none of its cohorts has an adjusted interval: :func:`_adjusted_empty` then
    decides, over the whole report, whether the gate checked nothing."""
    cohorts = d.get("cohorts", [])
    rated = [c for c in cohorts if (c.get("adjusted") or {}).get("rate_ratio_ci")]
    if not rated:
        return None
    worst = max(rated, key=lambda c: c["adjusted"]["rate_ratio"])
    block = worst["adjusted"]
    ok = block["rate_ratio"] <= cfg.max_adjusted_ratio
    note = ""
    if not ok and cfg.require_significant:
        p = block.get("p_holm")
        if p is not None and p >= 0.05:
            ok, note = True, (f" but not significant (Holm p = {num.p_value(p)} >= 0.05): passed under "
                              "--require-significant")
        else:
            note = f" (Holm p = {num.p_value(p)})"
    covs = ", ".join(block.get("covariates") or [])
    unrated = len(cohorts) - len(rated)
    left = f"; {unrated} of {len(cohorts)} cohorts without an interval not checked" if unrated else ""
    return Check(f"{tag}{key} adjusted rate ratio", ok,
                 f"{num.rate_ratio_block(block)} {'≤' if ok and not note else '>'} {cfg.max_adjusted_ratio:g} "
                 f"(worst: {worst['label']}, adjusted for {covs}{left}){note}", key, system,
                 {"rate_ratio": block["rate_ratio"], "p_holm": block.get("p_holm")})


def _why_no_adjusted(report: dict) -> str:
    """Why a report has no adjusted rate ratio to check (one phrase)."""
    entries = [d for _, rep in _systems(report) for d in rep["discoverers"].values() if not d.get("skipped")]
    blocks = [c["adjusted"] for d in entries for c in d.get("cohorts", []) if "adjusted" in c]
    if not blocks:
        notes = [rep["rate_ratios"]["note"] for _, rep in _systems(report) if (rep.get("rate_ratios") or {}).get("note")]
        return ("the report has no adjusted rate ratios (" + (notes[0] if notes else "run the audit with --adjust COLS")
                + ")")
    notes = [b["note"] for b in blocks if b.get("note")]
    return (f"none of the {len(blocks)} cohorts with an adjusted rate ratio has an interval"
            + (f" (e.g. {notes[0]})" if notes else ""))


def _adjusted_empty(report: dict, cfg: GateConfig) -> Check:
    """The verdict when --max-adjusted-ratio found nothing to check: a gate that checked
    nothing has not passed, unless --allow-empty."""
    why = _why_no_adjusted(report)
    if cfg.allow_empty:
        return Check("adjusted rate ratio", True, f"nothing checked: {why}; allowed by --allow-empty")
    return Check("adjusted rate ratio", False, f"nothing checked: {why}; pass --allow-empty to accept that")


def _increase_check(key: str, d: dict, base: dict | None, cfg: GateConfig, system, tag: str) -> Check:
    """``max_gap_increase_pct``: the candidate's gap minus the baseline's, in percentage
    points, both on the basis ``cfg.gap`` picks (:func:`checked_gap`: by default the
    headline, i.e. held-out when both reports have a held-out estimate).  When only one of
    them has it, both as-found gaps are compared (like with like), and the line says so."""
    name = f"{tag}{key} gap increase vs baseline"
    if base is None:
        raise UserInputError("--max-gap-increase-pct needs --baseline OLD.json")
    bd = base["discoverers"].get(key)
    if not bd or bd.get("skipped") or bd.get("wer_gap_pct") is None:
        return Check(name, True, "no baseline gap for this discoverer: nothing to compare", key, system)
    pick_new, pick_old = checked_gap(d, cfg.gap), checked_gap(bd, cfg.gap)
    if pick_new["missing"] or pick_old["missing"]:
        side = "candidate" if pick_new["missing"] else "baseline"
        return Check(name, False, f"nothing checked: the {side} has no held-out gap; run both audits with "
                                  "--honest-gap or gate with --gap found or headline", key, system)
    if pick_new["basis"] != pick_old["basis"]:
        side = "candidate" if pick_new["basis"] == "found" else "baseline"
        pick_new, pick_old = checked_gap(d, "found"), checked_gap(bd, "found")
        basis = f"as found on both (the {side} has no held-out estimate)"
    else:
        basis = "held-out" if pick_new["basis"] == "heldout" else "as found"
    new, old = pick_new["gap_pct"], pick_old["gap_pct"]
    if new is None:
        return Check(name, False, "candidate gap undefined (top WER 0)", key, system)
    if old is None:
        return Check(name, True, "no baseline gap for this discoverer: nothing to compare", key, system)
    inc = new - old
    ok = inc <= cfg.max_gap_increase_pct
    return Check(name, ok, f"{num.pct(old)} % -> {num.pct(new)} % ({num.signed_pct(inc)} points, {basis}) "
                           f"{'≤' if ok else '>'} +{cfg.max_gap_increase_pct:g} points", key, system,
                 {"baseline_gap_pct": old, "gap_pct": new, "gap_basis": basis})


def _evaluate_comparison(report: dict, cfg: GateConfig) -> list[Check]:
    """Checks on a `fairaudit compare` result: the same cohorts scored for two systems."""
    if not cfg.has_checks():
        raise UserInputError("no gate thresholds given", hint="pass --max-gap-pct, --max-gap-increase-pct or --max-delta-wer")
    checks = _missing_checks(report, cfg.discoverers)
    rate = rate_name(report_unit(report))
    base, cand = report["baseline"], report["candidate"]
    for key in _selected(report, cfg.discoverers):
        d = report["discoverers"][key]
        gb, gc = d["gap"][base].get("wer_gap_pct"), d["gap"][cand].get("wer_gap_pct")
        if cfg.max_gap_pct is not None:
            ok = gc is not None and gc <= cfg.max_gap_pct
            checks.append(Check(f"{key} {rate} gap of {cand}", ok, f"{'undefined' if gc is None else num.pct(gc) + ' %'} "
                                f"{'≤' if ok else '>'} {cfg.max_gap_pct:g} % on the baseline's cohorts", key, cand))
        if cfg.max_gap_increase_pct is not None:
            if gb is None or gc is None:
                checks.append(Check(f"{key} gap increase {base} -> {cand}", False, "a gap is undefined (top WER 0)", key))
            else:
                inc = gc - gb
                ok = inc <= cfg.max_gap_increase_pct
                checks.append(Check(f"{key} gap increase {base} -> {cand}", ok,
                                    f"{num.pct(gb)} % -> {num.pct(gc)} % ({num.signed_pct(inc)} points) {'≤' if ok else '>'} "
                                    f"+{cfg.max_gap_increase_pct:g} points on the same cohorts", key))
        if cfg.max_delta_wer is not None:
            for c in d["cohorts"]:
                delta = c["delta_wer"]
                ok = delta is None or delta <= cfg.max_delta_wer
                if not ok and cfg.require_significant and (c.get("p_value") is not None and c["p_value"] >= 0.05):
                    ok = True
                checks.append(Check(f"{key} cohort {c['id']} {rate} change", ok,
                                    f"{num.delta(delta or 0)} points {'≤' if ok else '>'} "
                                    f"{num.delta(cfg.max_delta_wer)} ({c['label']})", key))
    return checks


def junit_xml(checks: list[Check], suite: str = "fairaudit gate") -> str:
    """JUnit XML: one <testcase> per check, <failure> on the failed ones (for CI test panels)."""
    failures = sum(not c.passed for c in checks)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites name={quoteattr(suite)} tests="{len(checks)}" failures="{failures}">',
             f'  <testsuite name={quoteattr(suite)} tests="{len(checks)}" failures="{failures}" errors="0" skipped="0">']
    for c in checks:
        classname = quoteattr(f"fairaudit.{c.discoverer or 'overall'}")
        lines.append(f"    <testcase classname={classname} name={quoteattr(c.name)}>")
        if c.passed:
            lines.append(f"      <system-out>{escape(c.message)}</system-out>")
        else:
            lines.append(f"      <failure message={quoteattr(c.message)}>{escape(c.line())}</failure>")
        lines.append("    </testcase>")
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    # Markdown tables: pipes end a cell, newlines end the row, and < could open raw HTML in a PR comment.
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;"))


def markdown(checks: list[Check], title: str = "fairaudit gate") -> str:
    """A Markdown summary for CI job summaries and pull-request comments."""
    failed = sum(not c.passed for c in checks)
    head = f"### {title}: {'FAILED' if failed else 'passed'} ({len(checks) - failed}/{len(checks)} checks passed)"
    rows = ["| | check | result |", "|---|---|---|"]
    for c in checks:
        rows.append(f"| {'✅' if c.passed else '❌'} | {_md_cell(c.name)} | {_md_cell(c.message)} |")
    return "\n".join([head, "", *rows, ""])
