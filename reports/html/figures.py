"""Figure helpers for the HTML report: matplotlib Figures (no pyplot), embedded as PNG data URIs.

Used by the report for every discoverer (the cohort bar chart, the power plot) and by
discoverers' own report sections (:meth:`fairaudit.discover.Discoverer.report_section`).
Matplotlib draws labels as plain text (``text.parse_math`` off) so a ``$`` in an untrusted
label cannot break a figure.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from fairaudit import numbers as num

#: resolution of the embedded figures: modest, so the sample report stays well under 3 MB
DPI = 96
#: most cohorts drawn in one bar chart (the table always lists all of them)
MAX_BARS = 60
#: longest cohort label drawn in a figure (characters); the tables show the full label
LABEL_CHARS = 48

BOTTOM_COLOR = "#c0392b"
TOP_COLOR = "#1f7a4d"
COHORT_COLOR = "#6f94b8"
FEW_COLOR = "#d5d5d5"


def short(text: Any, n: int = LABEL_CHARS) -> str:
    """A label for a figure: one line, at most ``n`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def figure(width: float, height: float):
    """A bare matplotlib Figure (no pyplot: no global backend switch, no registry to leak)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png(fig) -> str:
    """The figure as a PNG data URI (no 'Software' metadata: the bytes depend on the report only)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def mpl_context():
    """Plain-text labels and the report's font sizes."""
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
                                  "hatch.linewidth": 0.6})


def bar_chart(entry: dict, overall_wer: float | None, rate: str = "WER") -> dict | None:
    """Cohorts ranked by WER (or the report's rate: CER, MER) as horizontal bars: bottom
    highlighted, small cohorts greyed."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cohorts = [c for c in entry.get("cohorts", []) if c.get("wer") is not None]
    if not cohorts:
        return None
    cohorts.sort(key=lambda c: c["rank"])
    omitted = 0
    if len(cohorts) > MAX_BARS:
        # keep the worst ranks and the best few: the gap is between the two ends
        head, tail = cohorts[: MAX_BARS - 10], cohorts[-10:]
        omitted = len(cohorts) - len(head) - len(tail)
        cohorts = head + tail
    n = len(cohorts)
    wer = np.array([c["wer"] for c in cohorts], dtype=float)
    has_ci = any(c.get("wer_ci_low") is not None and c.get("wer_ci_high") is not None for c in cohorts)
    colors, hatches = [], []
    for c in cohorts:
        if c["id"] == entry.get("bottom"):
            colors.append(BOTTOM_COLOR), hatches.append("///")
        elif c["id"] == entry.get("top"):
            colors.append(TOP_COLOR), hatches.append("")
        elif c.get("too_few_speakers"):
            colors.append(FEW_COLOR), hatches.append("...")
        else:
            colors.append(COHORT_COLOR), hatches.append("")
    labels = [short(f"{c['id']}  {c['label']}" if c["label"] != c["id"] else c["id"]) for c in cohorts]
    fig = figure(9.0, 1.5 + 0.27 * n)
    ax = fig.add_subplot()
    y = np.arange(n)
    bars = ax.barh(y, 100 * wer, color=colors, edgecolor="#333333", linewidth=0.5, height=0.72)
    for bar, hatch in zip(bars, hatches):
        if hatch:
            bar.set_hatch(hatch)
    hi_end = 100 * wer
    if has_ci:
        lo = np.array([c.get("wer_ci_low") if c.get("wer_ci_low") is not None else c["wer"] for c in cohorts], float)
        hi = np.array([c.get("wer_ci_high") if c.get("wer_ci_high") is not None else c["wer"] for c in cohorts], float)
        err = np.vstack([np.clip(wer - lo, 0, None), np.clip(hi - wer, 0, None)]) * 100
        ax.errorbar(100 * wer, y, xerr=err, fmt="none", ecolor="#222222", elinewidth=1, capsize=2.5)
        hi_end = np.maximum(hi_end, 100 * hi)
    xmax = float(max(hi_end.max(), 100 * (overall_wer or 0))) * 1.16 or 1.0
    for yi, (w, end) in enumerate(zip(wer, hi_end)):
        ax.text(end + xmax * 0.008, yi, f"{100 * w:.1f}", va="center", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85})
    ids = {c["id"] for c in cohorts}
    handles = []
    if entry.get("bottom") in ids:
        handles.append(Patch(facecolor=BOTTOM_COLOR, hatch="///", edgecolor="#333333", label="bottom cohort"))
    if entry.get("top") in ids:
        handles.append(Patch(facecolor=TOP_COLOR, edgecolor="#333333", label="top cohort"))
    if COHORT_COLOR in colors:
        handles.append(Patch(facecolor=COHORT_COLOR, edgecolor="#333333", label="other cohort"))
    if FEW_COLOR in colors:
        handles.append(Patch(facecolor=FEW_COLOR, hatch="...", edgecolor="#333333", label="too few speakers"))
    if overall_wer is not None:
        ax.axvline(100 * overall_wer, color="black", linestyle="--", linewidth=1.1)
        handles.append(Line2D([], [], color="black", linestyle="--", label=f"overall {rate} {num.wer(overall_wer)} %"))
    if has_ci:
        handles.append(Line2D([], [], color="#222222", marker="|", linestyle="-",
                              label=f"{num.level(entry.get('ci_level'))} CI (speaker bootstrap)"))
    ax.set_yticks(y, labels)
    ax.set_xlim(0, xmax)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"{rate} (%)")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    caption = f"Cohorts ranked by {rate} (micro-averaged over their utterances), highest first."
    if omitted:
        caption += f" {omitted:,} cohorts in the middle of the ranking are not drawn; the table lists all."
    return {"src": png(fig), "alt": f"bar chart of {len(entry.get('cohorts', []))} cohorts ranked by {rate}",
            "caption": caption, "width": int(9.0 * DPI)}


