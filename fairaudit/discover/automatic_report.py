"""The automatic discoverer's report section: the 2-D projection of the embeddings, what
the clusters hold (attribute mix, main region) and the clustering facts.  Loaded with
the discoverers: matplotlib and the report helpers are imported when drawn."""
from __future__ import annotations

import numpy as np

from fairaudit import numbers as num


def section(disc, entry: dict, report: dict | None = None):
    """Title, method, clustering facts, the projection and the cluster-mix table."""
    from fairaudit.reports.sections import Block, ReportSection, Table, plain
    from fairaudit.units import rate_name, report_unit

    rate = rate_name(report_unit(report or {}))
    d = entry.get("details") or {}
    params = entry.get("params") or {}
    facts = [(k.replace("_", " "), plain(v)) for k, v in d.items()
             if k not in ("projection", "explained_variance_ratio") and not (k in params and params[k] == v)]
    evr = d.get("explained_variance_ratio")
    if evr:
        facts.append(("variance shown in the projection", f"{num.pct(100 * sum(v or 0 for v in evr[:2]))} %"))
    sec = ReportSection(title=disc.title, method=disc.description, facts=facts)
    scatter = projection_scatter(entry, rate)
    if scatter is not None:
        sec.figures.append(scatter)
    mix = _attribute_mix(entry)
    if mix is not None:
        rows, classes = [], []
        for m in mix["rows"]:
            region = m["main_region"] or ""
            if region and m["main_region_share"] is not None:
                region += f" ({num.ratio_as_pct(m['main_region_share'])})"
            rows.append([{"text": m["id"], "tag": "bottom" if m["role"] == "bottom" else "", "class": "mono id"},
                         num.count(m["size"]), num.wer(m["wer"]), region, *m["cells"]])
            classes.append(m["role"])
        cols = ["Cluster", "Speakers", f"{rate} %", "Main region", *mix["columns"]]
        sec.blocks.append(Block(
            heading="What the clusters hold",
            note="Share of each cluster's speakers by attribute value (at most four values per attribute). "
                 "The clusters were found without these attributes.",
            table=Table(columns=cols, rows=rows, numeric=[False, True, True] + [False] * (len(cols) - 3),
                        row_classes=classes, css="mix", cohort_ids=[m["id"] for m in mix["rows"]],
                        filename="clusters.csv")))
    for c in entry.get("cohorts", []):
        region = (c.get("details") or {}).get("main_region")
        if region:
            sec.cohort_notes[c["id"]] = f"main region {region}"
        sec.cohort_definitions[c["id"]] = _definition(entry, c)
    return sec


def _definition(entry: dict, c: dict) -> list[str]:
    """A cluster in sentences: how it was found, then what it holds (which did not define it)."""
    d = c.get("details") or {}
    params = entry.get("params") or {}
    k = (entry.get("details") or {}).get("clusters_found") or params.get("k")
    text = f"Speakers whose embedding lies nearest to centroid {c.get('id')} of k-means"
    text += f" with {k} clusters" if k is not None else ""
    text += " on speaker-identification embeddings" + (" (L2-normalised)." if params.get("l2_normalize") else ".")
    lines = [text, "The clusters were found without labels: the attributes below describe, they did not define."]
    mix = d.get("attribute_mix")
    if isinstance(mix, dict) and mix:
        parts = [f"{col}: " + ", ".join(f"{v} {num.ratio_as_pct(s or 0)}" for v, s in vals.items())
                 for col, vals in mix.items() if isinstance(vals, dict)]
        lines.append("What it holds: " + "; ".join(parts) + ".")
    if d.get("main_region"):
        share = d.get("main_region_share")
        lines.append(f"Most often from {d['main_region']}"
                     + (f" ({num.ratio_as_pct(share)} of its speakers)." if isinstance(share, (int, float)) else "."))
    return lines


def projection_scatter(entry: dict, rate: str = "WER"):
    """The 2-D PCA projection of the speaker embeddings, coloured by cluster."""
    from fairaudit.reports import figure_layers
    from fairaudit.reports.html.figures import (BOTTOM_COLOR, DPI, TOP_COLOR, figure, fit_axes, measuring_renderer, png,
                                                short)
    from fairaudit.reports.sections import Figure
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
    fig = figure(9.0, 5.6, layout=None)  # placed by fit_axes: no layout engine measuring every artist twice
    ax = fig.add_subplot()
    for i, cid in enumerate(ids):
        m = cohort == cid
        if not m.any() or cid in (bottom, top):
            continue
        c = by_id.get(cid, {})
        ax.scatter(x[m], yv[m], s=14, color=cmap(i % cmap.N), alpha=0.6, linewidths=0,
                   label=short(f"{cid}  {rate} {num.wer(c.get('wer'))} %", 30))
    for i, cid in enumerate(ids):  # the top cluster keeps its colour, outlined in the top colour
        m = cohort == cid
        if cid != top or not m.any():
            continue
        ax.scatter(x[m], yv[m], s=22, marker="s", color=cmap(i % cmap.N), edgecolors=TOP_COLOR, linewidths=1.0,
                   zorder=4, label=short(f"{cid}  {rate} {num.wer(by_id.get(cid, {}).get('wer'))} % (top)", 34))
    m = cohort == bottom
    if bottom is not None and m.any():
        ax.scatter(x[m], yv[m], s=30, marker="D", color=BOTTOM_COLOR, edgecolors="black", linewidths=0.7, zorder=5,
                   label=short(f"{bottom}  {rate} {num.wer(by_id.get(bottom, {}).get('wer'))} % (bottom)", 34))
    evr = (entry.get("details") or {}).get("explained_variance_ratio") or []
    ax.set_xlabel("PC 1" + (f" ({100 * evr[0]:.1f} % of variance)" if len(evr) > 0 and evr[0] is not None else ""))
    ax.set_ylabel("PC 2" + (f" ({100 * evr[1]:.1f} % of variance)" if len(evr) > 1 and evr[1] is not None else ""))
    ax.grid(color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)
    rend = measuring_renderer(fig)
    beside = 0.0
    if len(ids) <= 24:
        legend = ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        # the legend hangs off the axes' right edge (1 % of its width away): that much room kept
        beside = legend.get_window_extent(rend).width + 0.012 * fig.bbox.width
    fit_axes(fig, ax, rend, right=beside)
    fig.canvas.draw()
    position = {c["id"]: i for i, c in enumerate(entry.get("cohorts", []))}
    index = np.array([position.get(c, -1) for c in cohort])
    known = index >= 0
    layer = {"points": figure_layers.points(fig, ax, x[known], yv[known], index[known])}
    src = png(fig, drawn=True)
    layer.update(figure_layers.png_size(src))
    return Figure(src=src, alt="scatter plot of the speaker embeddings projected on two principal components",
                  caption="Speaker embeddings projected on their first two principal components, coloured by k-means "
                          "cluster; the bottom cluster is drawn as red diamonds, the top cluster as squares outlined in "
                          "green. Clusters that overlap here can still be apart in the full embedding space.",
                  width=int(9.0 * DPI), css="scatter", layer=layer)


def _attribute_mix(entry: dict) -> dict | None:
    """Per cluster (rank order): size, WER, main region and the top values of each attribute."""
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
            cells.append(" · ".join(f"{v} {num.ratio_as_pct(f or 0)}" for v, f in top))
        d = c.get("details") or {}
        out.append({"id": c["id"], "role": "bottom" if c["id"] == entry.get("bottom") else "",
                    "size": d.get("size", c.get("speakers")), "wer": c.get("wer"), "main_region": d.get("main_region"),
                    "main_region_share": d.get("main_region_share"),
                    "centroid_norm": d.get("centroid_norm"), "cells": cells})
    return {"columns": columns, "rows": out}
