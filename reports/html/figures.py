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


def figure(width: float, height: float, layout: str | None = "constrained"):
    """A bare matplotlib Figure (no pyplot: no global backend switch, no registry to leak).

    ``layout=None``: no layout engine; place the axes with :func:`fit_axes` (what the
    report's large figures do: constrained layout measures every artist twice per draw).
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def measuring_renderer(fig):
    """The figure's Agg renderer, attached without drawing: text can be measured and
    transforms read before the one draw the figure gets."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg(fig).get_renderer()


#: space (pixels) kept between the figure's edge and what is drawn nearest to it
EDGE_PX = 4.0


def _tick_labels(axis, rend) -> list:
    """Extents (pixels) of the tick labels the axis draws: those of ticks inside its view."""
    lo, hi = sorted(axis.get_view_interval())
    tol = 1e-6 * (hi - lo)
    labels = axis.get_majorticklabels()
    return [t.get_window_extent(rend) for loc, t in zip(axis.get_majorticklocs(), labels)
            if lo - tol <= loc <= hi + tol and t.get_visible() and t.get_text()]


def fit_axes(fig, ax, rend, *, right: float = 0.0, bottom: float = 0.0) -> None:
    """Place ``ax`` so that its tick labels and axis labels just fit inside the figure,
    keeping ``right``/``bottom`` pixels free beside/below them (a legend, a colour bar).

    What constrained layout does for one axes, from one measurement of the labels
    (sizes in pixels; ticks pointing out, as the report's style has them).  Measured
    twice: an automatic locator may choose other ticks once the axes has its size.
    """
    import matplotlib

    rc = matplotlib.rcParams
    px = fig.dpi / 72.0
    W, H = fig.bbox.width, fig.bbox.height
    prev = None
    for _ in range(2):
        ys, xs = _tick_labels(ax.yaxis, rend), _tick_labels(ax.xaxis, rend)
        ylab = ax.yaxis.label.get_window_extent(rend).width if ax.yaxis.label.get_text() else 0.0
        xlab = ax.xaxis.label.get_window_extent(rend).height if ax.xaxis.label.get_text() else 0.0
        ytick = (rc["ytick.major.size"] + rc["ytick.major.pad"]) * px
        xtick = (rc["xtick.major.size"] + rc["xtick.major.pad"]) * px
        left = EDGE_PX + (ylab + ax.yaxis.labelpad * px if ylab else 0.0) + max((b.width for b in ys), default=0.0) + ytick
        low = EDGE_PX + bottom + (xlab + ax.xaxis.labelpad * px if xlab else 0.0) + max((b.height for b in xs), default=0.0) + xtick
        # the last x tick label and the top y tick label may reach past the axes' corner
        rgt = EDGE_PX + right + max((b.width / 2 for b in xs), default=0.0)
        top = EDGE_PX + max((b.height / 2 for b in ys), default=0.0)
        pos = (left / W, low / H, 1 - rgt / W, 1 - top / H)
        # decorations wider or taller than the figure: the axes keeps a fifth of it (labels clip)
        if pos[2] - pos[0] < 0.2:
            pos = (min(pos[0], 0.6), pos[1], max(min(pos[0], 0.6) + 0.2, pos[2]), pos[3])
        if pos[3] - pos[1] < 0.2:
            pos = (pos[0], min(pos[1], 0.6), pos[2], max(min(pos[1], 0.6) + 0.2, pos[3]))
        if prev is not None and all(abs(a - b) < 0.5 / min(W, H) for a, b in zip(pos, prev)):
            return
        fig.subplots_adjust(left=pos[0], bottom=pos[1], right=pos[2], top=pos[3])
        prev = pos


#: PNG deflate level: 3 encodes the report's figures ~30 % faster than PIL's default 6, at
#: the same size within a few per cent (flat colours and text compress either way)
PNG_LEVEL = 3


def png(fig, drawn: bool = False) -> str:
    """The figure as a PNG data URI (no text metadata: the bytes depend on the report only).

    ``drawn``: the figure was just drawn on its Agg canvas
    (:func:`fairaudit.reports.figure_layers.renderer`, to read its geometry) and has not
    changed since: its pixels are encoded as they are (a draw is most of a figure's cost);
    otherwise it is drawn once here, as ``savefig`` would at the figure's dpi.  An opaque
    figure (the report's have white backgrounds) is stored as RGB: its alpha channel says
    nothing and costs a quarter of the pixels.
    """
    from PIL import Image

    if not drawn:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    pixels = rgba[..., :3] if (rgba[..., 3] == 255).all() else rgba
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="png", compress_level=PNG_LEVEL,
                                                       dpi=(fig.dpi, fig.dpi))
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def mpl_context():
    """Plain-text labels and the report's font sizes.

    Glyphs are drawn unhinted: FreeType's auto-hinter was a tenth of the figures' time
    (text is most of a bar chart), and at 96 dpi the difference is a softer edge.
    """
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
                                  "hatch.linewidth": 0.6, "text.hinting": "no_hinting"})


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
    fig = figure(9.0, 1.5 + 0.27 * n, layout=None)
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
    # The legend below the axes, the axes fitted above it from one measurement of the labels
    # (no layout engine: constrained layout measured every artist twice per draw).
    rend = measuring_renderer(fig)
    legend = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, EDGE_PX / fig.bbox.height),
                        ncols=len(handles), fontsize=8, frameon=False, borderaxespad=0)
    fit_axes(fig, ax, rend, bottom=legend.get_window_extent(rend).height + 6)
    caption = f"Cohorts ranked by {rate} (micro-averaged over their utterances), highest first."
    if omitted:
        caption += f" {omitted:,} cohorts in the middle of the ranking are not drawn; the table lists all."
    # hover/click layer: each cohort's whole row of the chart
    from fairaudit.reports import figure_layers

    fig.canvas.draw()
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts", []))}
    layer = {"rects": figure_layers.region_rects(fig, ax, [(0, yi - 0.5, xmax, yi + 0.5, position[c["id"]])
                                                           for yi, c in enumerate(cohorts)])}
    src = png(fig, drawn=True)
    layer.update(figure_layers.png_size(src))
    return {"src": src, "alt": f"bar chart of {len(entry.get('cohorts', []))} cohorts ranked by {rate}",
            "caption": caption, "width": int(9.0 * DPI), "layer": layer}


