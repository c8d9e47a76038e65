"""Geometry for the report's interactive figure layers, and map labels that never overlap.

The figures stay PNGs drawn by matplotlib (small, printable, no SVG text to escape).  For
hover and click, the page lays a transparent SVG over each PNG; this module gives that
layer the figure's shapes in the PNG's own pixel coordinates (origin top left), read off
matplotlib's transforms after the layout is final.
"""
from __future__ import annotations

import base64
from typing import Iterable

import numpy as np

#: candidate label offsets (points) around the anchor, tried in this order
_OFFSETS = [(0, 0), (0, 9), (0, -9), (14, 0), (-14, 0), (12, 9), (-12, 9), (12, -9), (-12, -9),
            (0, 18), (0, -18), (26, 0), (-26, 0), (22, 16), (-22, 16), (22, -16), (-22, -16)]


def png_size(data_uri: str) -> dict[str, int]:
    """``{"w", "h"}``: width and height (pixels) of a base64 PNG data URI, from its IHDR chunk."""
    raw = base64.b64decode(data_uri.split(",", 1)[1][:64])
    return {"w": int.from_bytes(raw[16:20], "big"), "h": int.from_bytes(raw[20:24], "big")}


def renderer(fig):
    """Attach an Agg canvas (no pyplot), run the layout and return the renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _to_image(fig, xy: np.ndarray) -> np.ndarray:
    """Display coordinates (pixels from bottom left) -> PNG pixels (from top left)."""
    out = np.asarray(xy, dtype=float).copy()
    out[:, 1] = fig.bbox.height - out[:, 1]
    return out


def region_rects(fig, ax, boxes: Iterable[tuple[float, float, float, float, int]]) -> list[list[float]]:
    """Axis-aligned data boxes (x0, y0, x1, y1, index) as [x, y, width, height, index] in PNG
    pixels, clipped to the axes; boxes wholly outside are left out."""
    ab = ax.get_window_extent()
    out = []
    for x0, y0, x1, y1, idx in boxes:
        corners = ax.transData.transform([(x0, y0), (x1, y1)])
        lo = np.maximum(np.minimum(corners[0], corners[1]), [ab.x0, ab.y0])
        hi = np.minimum(np.maximum(corners[0], corners[1]), [ab.x1, ab.y1])
        if (hi <= lo).any():
            continue
        top_left = _to_image(fig, [[lo[0], hi[1]]])[0]
        out.append([round(float(top_left[0]), 1), round(float(top_left[1]), 1),
                    round(float(hi[0] - lo[0]), 1), round(float(hi[1] - lo[1]), 1), int(idx)])
    return out


def points(fig, ax, x: np.ndarray, y: np.ndarray, index: np.ndarray) -> list[list[float]]:
    """Data points as [x, y, index] in PNG pixels (points outside the axes are left out)."""
    if not len(x):
        return []
    disp = ax.transData.transform(np.column_stack([x, y]))
    ab = ax.get_window_extent()
    inside = (disp[:, 0] >= ab.x0) & (disp[:, 0] <= ab.x1) & (disp[:, 1] >= ab.y0) & (disp[:, 1] <= ab.y1)
    img = _to_image(fig, disp)
    return [[round(float(px), 1), round(float(py), 1), int(i)]
            for px, py, i, ok in zip(img[:, 0], img[:, 1], index, inside) if ok]


def place_labels(ax, rend, items: list[dict], obstacles: Iterable = ()) -> list[str]:
    """Put each label where it overlaps no other label, no obstacle and stays inside the axes.

    ``items``: dicts with x, y (data), text, bold (bool) and optionally box (x0, y0, x1, y1:
    the region the label names), in priority order (first placed first).  A label is tried
    at its anchor, then around it (with a thin leader line), then anywhere inside its box.
    Returns the texts of the labels that found no free place (they are not drawn: never
    one hidden under another).
    """
    from matplotlib import patheffects
    from matplotlib.transforms import Bbox

    halo = [patheffects.withStroke(linewidth=2.2, foreground="white")]
    frame = ax.get_window_extent(rend)
    taken = [b.padded(1) for b in obstacles]
    px_per_pt = ax.figure.dpi / 72.0
    left_out = []
    for item in items:
        style = {"ha": "center", "va": "center", "fontsize": 7.5, "weight": "bold" if item.get("bold") else "normal"}
        # a label's size does not depend on where it goes: measure once, then try places arithmetically
        probe = ax.text(item["x"], item["y"], item["text"], **style)
        size = probe.get_window_extent(rend)
        probe.remove()
        w, h = size.width + 3, size.height + 3
        tries = [((item["x"], item["y"]), off) for off in _OFFSETS]
        if item.get("box"):
            x0, y0, x1, y1 = item["box"]
            tries += [((x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy), (0, 0)) for fy in (0.5, 0.3, 0.7, 0.15, 0.85)
                      for fx in (0.5, 0.3, 0.7, 0.15, 0.85)]
        chosen = None
        for anchor, (dx, dy) in tries:
            ax0, ay0 = ax.transData.transform(anchor)
            cx, cy = ax0 + dx * px_per_pt, ay0 + dy * px_per_pt
            box = Bbox.from_bounds(cx - w / 2, cy - h / 2, w, h)
            inside = box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
            # a leader line (label moved off its anchor) must not cross another label either
            lead = (Bbox.from_extents(min(ax0, cx), min(ay0, cy), max(ax0, cx), max(ay0, cy)).padded(1)
                    if (dx, dy) != (0, 0) else None)
            if inside and not any(box.overlaps(t) or (lead is not None and lead.overlaps(t)) for t in taken):
                chosen = (anchor, (dx, dy))
                taken += [box] if lead is None else [box, lead]
                break
        if chosen is None:
            left_out.append(item["text"])
            continue
        anchor, off = chosen
        moved = off != (0, 0)
        ann = ax.annotate(item["text"], (item["x"], item["y"]) if moved else anchor, xytext=off,
                          textcoords="offset points", path_effects=halo, zorder=7, annotation_clip=False,
                          arrowprops={"arrowstyle": "-", "color": "#333333", "linewidth": 0.6,
                                      "shrinkA": 0, "shrinkB": 0} if moved else None, **style)
        ann.set_in_layout(False)  # labels must not move the axes the geometry was read from
    return left_out
