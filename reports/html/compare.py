"""The comparison page (``fairaudit compare``): the same cohorts, two systems."""
from __future__ import annotations

import json
import os

import numpy as np

from fairaudit.result import AuditResult

from fairaudit.units import rate_name, report_unit

from .context import fmt_ci, fmt_count, fmt_gap, fmt_level, fmt_p, fmt_pp, fmt_wer, unit_context
from .figures import figure, mpl_context, png, short
from .render import environment


def _dumbbell(entry: dict, base: str, cand: str, rate: str = "WER") -> dict | None:
    """Per cohort, the two systems' WER joined by a line (same cohorts, two recognisers)."""
    cohorts = entry.get("cohorts") or []
    if not cohorts:
        return None
    with mpl_context():
        fig = figure(8.0, 1.2 + 0.3 * len(cohorts))
        ax = fig.add_subplot()
        y = np.arange(len(cohorts))[::-1]
        wb = [100 * (c["wer"].get(base) or 0) for c in cohorts]
        wc = [100 * (c["wer"].get(cand) or 0) for c in cohorts]
        for yi, a, b in zip(y, wb, wc):
            ax.plot([a, b], [yi, yi], color="#9aa3ad", linewidth=1.2, zorder=1)
        ax.scatter(wb, y, marker="o", color="#1f5fa8", label=f"{short(base, 30)} (baseline)", zorder=2)
        ax.scatter(wc, y, marker="D", color="#c0392b", label=f"{short(cand, 30)} (candidate)", zorder=3)
        ax.set_yticks(y, [short(c["label"]) for c in cohorts])
        ax.set_xlabel(f"{rate} (%)")
        ax.legend(loc="lower right", fontsize=8)
        return {"src": png(fig), "alt": f"{rate} of {len(cohorts)} cohorts for both systems"}


def render_compare_html(result: AuditResult) -> str:
    """A `fairaudit compare` result as one self-contained HTML page (str)."""
    report = json.loads(result.to_json(indent=None))
    base, cand = report["baseline"], report["candidate"]
    rate = rate_name(report_unit(report))
    sections = []
    for i, (key, entry) in enumerate(report["discoverers"].items()):
        s = {"key": key, "anchor": f"d{i}", "skipped": entry.get("skipped")}
        if not s["skipped"]:
            gaps = [fmt_gap(entry["gap"][name]) for name in (base, cand)]
            gaps = [g if g in ("undefined", "n/a") else f"{g} %" for g in gaps]
            s.update(cohorts=entry["cohorts"], gap_base=gaps[0], gap_cand=gaps[1],
                     figure=_dumbbell(entry, base, cand, rate))
        sections.append(s)
    ctx = {"tool": report["tool"], "base": base, "cand": cand, "overall": report["overall"],
           "options": report["inputs"]["options"], "normalization": report["inputs"]["normalization"],
           "sections": sections, "fmt_wer": fmt_wer, "fmt_pp": fmt_pp, "fmt_ci": fmt_ci, "fmt_p": fmt_p,
           "fmt_count": fmt_count, "fmt_level": fmt_level, **unit_context(report)}
    return environment().get_template("compare.html.j2").render(**ctx)


def write_compare_html(result: AuditResult, path: str) -> str:
    """Write :func:`render_compare_html` to ``path`` (UTF-8); returns the path."""
    html = render_compare_html(result)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return path
