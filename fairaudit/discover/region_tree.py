"""Trinh et al.'s region partition (Interspeech 2022): a clustering tree on latitude/longitude.

A node of the tree is a latitude/longitude rectangle and the speakers in it.  A node is
split in two along latitude or longitude at the threshold that maximises the absolute WER
difference between the two sides, with at least ``min_speakers`` speakers on each side;
thresholds lie only between distinct coordinate values (speakers at the same coordinate
are never separated).  The tree grows best-first: the leaf whose best split has the
largest WER difference is split next, until there are ``max_regions`` leaves, every leaf
is at ``max_depth``, or no leaf can be split.  The leaves are the regions.

The split search of a node sorts its speakers once per axis and scans cumulative sums of
``errors`` and ``ref_words``: O(n log n) per node, never thresholds x speakers.

The geographic discoverer draws these regions on its map and lists them in its region
table; its bottom cohort comes from the spatial scan (:mod:`.scan`), because a search this
flexible chases noise (issue 15: its null 95th percentile gap is ~184 %, and a real +50 %
metro cluster is found a third of the time).  :func:`grow_tree` is also the baseline the
benchmark compares the scan with.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: split criteria: the paper's absolute WER difference, or that difference divided by its
#: binomial standard error (favours well-populated sides; fewer mixed thin regions).
CRITERIA = ("difference", "z")

@dataclass
class _Split:
    diff: float          # |WER_left - WER_right| (ratio)
    axis: str            # "lat" | "lon"
    threshold: float     # degrees, midway between the two sides' nearest distinct values
    cut: float           # largest coordinate on the left side: left = coord <= cut


@dataclass
class _Node:
    id: int
    members: np.ndarray  # positions into the audited-speaker arrays
    cell: list[float]    # [lat_min, lat_max, lon_min, lon_max] (degrees)
    depth: int
    split: _Split | None = None
    children: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _axis_orders(lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    """Every speaker sorted by latitude and by longitude (stable): a node's order by a
    coordinate is this order restricted to its members."""
    return {"lat": np.argsort(lat, kind="stable"), "lon": np.argsort(lon, kind="stable")}


def _best_split(lat: np.ndarray, lon: np.ndarray, err: np.ndarray, words: np.ndarray,
                members: np.ndarray, min_speakers: int, criterion: str = "difference",
                orders: dict[str, np.ndarray] | None = None) -> _Split | None:
    """Best split of one node, or None if no split leaves ``min_speakers`` on each side.

    Vectorised: per axis one stable sort and two cumulative sums, then every admissible
    cut (left side = the first k speakers in coordinate order) is scored at once.
    ``members`` are in increasing order; with ``orders`` (:func:`_axis_orders`) the sort
    is the presorted order filtered to the members (the same order, O(n) per node).
    """
    n = len(members)
    if n < 2 * min_speakers:
        return None
    e, w = err[members], words[members]
    total_e, total_w = float(e.sum()), float(w.sum())
    k = np.arange(min_speakers, n - min_speakers + 1)  # left-side speaker counts allowed
    best: _Split | None = None
    if orders is not None:
        in_node = np.zeros(len(lat), dtype=bool)
        in_node[members] = True
    for axis, coord in (("lat", lat), ("lon", lon)):
        if orders is not None:
            # members are increasing, so (coordinate, position) order = (coordinate, index) order
            g = orders[axis]
            sel = g[in_node[g]]
            cs, e_sorted, w_sorted = coord[sel], err[sel], words[sel]
        else:
            c = coord[members]
            order = np.argsort(c, kind="stable")
            cs, e_sorted, w_sorted = c[order], e[order], w[order]
        # errors/ref_words are integer counts: float64 sums below 2**53 are exact, so the
        # result does not depend on row order (ties of equal coordinates are summed whole).
        ce = np.cumsum(e_sorted)[k - 1]
        cw = np.cumsum(w_sorted)[k - 1]
        rw = total_w - cw
        ok = (cs[k - 1] < cs[k]) & (cw > 0) & (rw > 0)
        if not ok.any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.abs(ce / cw - (total_e - ce) / rw)
            if criterion == "z":
                # The difference in units of its binomial standard error: a large
                # difference between two big sides beats the same difference between a
                # small, noisy side and the rest.
                p = total_e / total_w if total_w else 0.0
                diff = diff / np.sqrt(max(p * (1.0 - p), 1e-12) * (1.0 / cw + 1.0 / rw))
        diff = np.where(ok, diff, -1.0)
        j = int(np.argmax(diff))  # first maximum: smallest threshold wins a tie
        # Strict ">" keeps latitude on an exact tie: deterministic tie-breaking.
        if diff[j] >= 0 and (best is None or diff[j] > best.diff):
            lo, hi = float(cs[k[j] - 1]), float(cs[k[j]])
            best = _Split(float(diff[j]), axis, (lo + hi) / 2.0, lo)
    return best


def _hemi(lo: float, hi: float, pos: str, neg: str) -> str:
    """'33.1–34.2°N', '85.0–83.8°W', '10.0°W–5.0°E': a range in lo-to-hi order."""
    def one(v: float) -> tuple[str, str]:
        return f"{abs(v):.1f}", (pos if v >= 0 else neg)
    (a, ha), (b, hb) = one(lo), one(hi)
    if ha == hb:
        return f"{a}–{b}°{ha}"
    return f"{a}°{ha}–{b}°{hb}"


def box_text(box: list[float]) -> str:
    """Human text of a [lat_min, lat_max, lon_min, lon_max] box in degrees."""
    return f"{_hemi(box[0], box[1], 'N', 'S')}, {_hemi(box[2], box[3], 'E', 'W')}"


@dataclass
class RegionTree:
    """The grown tree: ``codes`` (region index per speaker, in tree order), ``regions``
    (one dict per leaf: ``id`` R01.., ``cell`` [lat_min, lat_max, lon_min, lon_max] (the
    leaf's rectangle, degrees), ``members_box`` (its speakers' extent), ``center`` [lat,
    lon] (median of its speakers), ``depth``, ``node``), ``splits`` (in creation order)
    and ``stop_reason``."""

    codes: np.ndarray
    regions: list[dict]
    splits: list[dict]
    stop_reason: str

    @property
    def definition(self) -> dict:
        """What :func:`place_in_tree` needs: the splits and the leaf ids."""
        return {"kind": "lat/lon tree",
                "splits": [{k: s[k] for k in ("node", "axis", "threshold", "left_node", "right_node")}
                           for s in self.splits],
                "leaves": {str(r["node"]): r["id"] for r in self.regions},
                "cells": {r["id"]: r["cell"] for r in self.regions}}


def grow_tree(lat: np.ndarray, lon: np.ndarray, err: np.ndarray, words: np.ndarray, *, min_speakers: int = 20,
              max_regions: int = 16, max_depth: int = 8, criterion: str = "difference") -> RegionTree:
    """Grow the best-first tree over speakers with usable coordinates (module docstring).

    ``lat``/``lon`` (degrees), ``err``/``words`` (counts), one value per speaker;
    ``min_speakers`` (count per side of every split), ``max_regions`` (leaves),
    ``max_depth``; ``criterion`` "difference" or "z" (the difference over its binomial
    standard error).  Deterministic: ties go to latitude, the smaller threshold, the
    earlier node.
    """
    if not len(lat):
        return RegionTree(np.zeros(0, dtype=np.int64), [], [], "no speaker with usable lat/lon")
    root = _Node(0, np.arange(len(lat)), [float(lat.min()), float(lat.max()), float(lon.min()),
                                          float(lon.max())], 0)
    nodes = {0: root}
    heap: list[tuple[float, int]] = []
    orders = _axis_orders(lat, lon)

    def consider(node: _Node) -> None:
        if node.depth < max_depth:
            node.split = _best_split(lat, lon, err, words, node.members, min_speakers, criterion, orders)
            if node.split is not None:
                heapq.heappush(heap, (-node.split.diff, node.id))  # ties: earlier node first

    consider(root)
    leaves, splits = 1, []
    while leaves < max_regions and heap:
        _, nid = heapq.heappop(heap)
        node = nodes[nid]
        s = node.split
        coord = lat if s.axis == "lat" else lon
        go_left = coord[node.members] <= s.cut
        a = 0 if s.axis == "lat" else 2
        left_cell, right_cell = list(node.cell), list(node.cell)
        left_cell[a + 1] = right_cell[a] = s.threshold
        kids = []
        for mask, cell in ((go_left, left_cell), (~go_left, right_cell)):
            kid = _Node(len(nodes), node.members[mask], cell, node.depth + 1)
            nodes[kid.id] = kid
            kids.append(kid)
        node.children = (kids[0].id, kids[1].id)
        splits.append({"node": nid, "axis": s.axis, "threshold": s.threshold,
                       "wer_difference_pp": 100.0 * s.diff, "left_speakers": int(go_left.sum()),
                       "right_speakers": int((~go_left).sum()), "left_node": kids[0].id,
                       "right_node": kids[1].id})
        leaves += 1
        for kid in kids:
            consider(kid)
    stop = "max_regions" if leaves >= max_regions else "no leaf can be split (min_speakers/max_depth)"

    # Leaves in tree order (depth-first, lower coordinate side first): R01, R02, ...
    order, stack = [], [0]
    while stack:
        node = nodes[stack.pop()]
        if node.children is None:
            order.append(node)
        else:
            stack.extend(reversed(node.children))
    codes = np.empty(len(lat), dtype=np.int64)
    regions = []
    for i, node in enumerate(order):
        m = node.members
        codes[m] = i
        regions.append({"id": f"R{i + 1:02d}", "cell": node.cell,
                        "members_box": [float(lat[m].min()), float(lat[m].max()), float(lon[m].min()),
                                        float(lon[m].max())],
                        "center": [float(np.median(lat[m])), float(np.median(lon[m]))], "depth": node.depth,
                        "node": node.id})
    return RegionTree(codes, regions, splits, stop)


def place_in_tree(definition: dict, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Region id of each point (degrees): walk the saved tree (:attr:`RegionTree.definition`)."""
    node = np.zeros(len(lat), dtype=np.int64)
    for sp in definition.get("splits", []):   # splits are in creation order: parents first
        here = node == int(sp["node"])
        coord = lat if sp["axis"] == "lat" else lon
        node[here] = np.where(coord[here] <= float(sp["threshold"]), int(sp["left_node"]), int(sp["right_node"]))
    leaves = {int(k): v for k, v in definition.get("leaves", {}).items()}
    return np.array([leaves.get(int(n)) for n in node], dtype=object)
