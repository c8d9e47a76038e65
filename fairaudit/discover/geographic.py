"""Geographic regions (Trinh et al., Interspeech 2022): a clustering tree on latitude/longitude.

A node of the tree is a latitude/longitude rectangle and the speakers in it.  A node is
split in two along latitude or longitude at the threshold that maximises the absolute WER
difference between the two sides, with at least ``min_speakers`` speakers on each side;
thresholds lie only between distinct coordinate values (speakers at the same coordinate
are never separated).  The tree grows best-first: the leaf whose best split has the
largest WER difference is split next, until there are ``max_regions`` leaves, every leaf
is at ``max_depth``, or no leaf can be split.  The leaves are the cohorts (regions).

The split search of a node sorts its speakers once per axis and scans cumulative sums of
``errors`` and ``ref_words``: O(n log n) per node, never thresholds x speakers.  Only
``errors`` and ``ref_words`` enter the search, so the statistics layer can re-run ``fit``
on permuted counts.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserInputError
from ..io.places import nearest_places, place_label
from .base import Discoverer, Discovery, SideInputs, register
from .params import Interval, Options
from .planting import Planter

#: split criteria: the paper's absolute WER difference, or that difference divided by its
#: binomial standard error (favours well-populated sides; fewer mixed thin regions).
CRITERIA = ("difference", "z")

# Not-audited reasons (keys of Discovery.not_audited).
MISSING = "missing lat/lon"
OUT_OF_RANGE = "lat/lon out of range"
ZERO_ZERO = "lat/lon exactly 0,0"


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


def _best_split(lat: np.ndarray, lon: np.ndarray, err: np.ndarray, words: np.ndarray,
                members: np.ndarray, min_speakers: int, criterion: str = "difference") -> _Split | None:
    """Best split of one node, or None if no split leaves ``min_speakers`` on each side.

    Vectorised: per axis one stable sort and two cumulative sums, then every admissible
    cut (left side = the first k speakers in coordinate order) is scored at once.
    """
    n = len(members)
    if n < 2 * min_speakers:
        return None
    e, w = err[members], words[members]
    total_e, total_w = float(e.sum()), float(w.sum())
    k = np.arange(min_speakers, n - min_speakers + 1)  # left-side speaker counts allowed
    best: _Split | None = None
    for axis, coord in (("lat", lat), ("lon", lon)):
        c = coord[members]
        order = np.argsort(c, kind="stable")
        cs = c[order]
        # errors/ref_words are integer counts: float64 sums below 2**53 are exact, so the
        # result does not depend on row order (ties of equal coordinates are summed whole).
        ce = np.cumsum(e[order])[k - 1]
        cw = np.cumsum(w[order])[k - 1]
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


def _place_names(centers: list[tuple[float, float]]) -> list[str | None]:
    """Nearest city and state of each (lat, lon) (offline, :mod:`fairaudit.io.places`)."""
    return [place_label(hit) for hit in nearest_places(centers)]


#: most speaker points drawn on the report's map (a seeded sample above)
MAX_POINTS = 5000


def _usable(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """(mask of usable coordinates, not-audited reason -> count)."""
    missing = np.isnan(lat) | np.isnan(lon)
    out_of_range = ~missing & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
    zero = ~missing & ~out_of_range & (lat == 0) & (lon == 0)
    not_audited = {r: int(m.sum()) for r, m in ((MISSING, missing), (OUT_OF_RANGE, out_of_range),
                                                (ZERO_ZERO, zero)) if m.any()}
    return ~(missing | out_of_range | zero), not_audited


def _coords(speakers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (pd.to_numeric(speakers["lat"], errors="coerce").to_numpy(dtype=float),
            pd.to_numeric(speakers["lon"], errors="coerce").to_numpy(dtype=float))


class BoxPlanter(Planter):
    """The k audited speakers nearest to a random audited speaker in a lat/lon box
    (Chebyshev distance in degrees: a square box grown until it holds k speakers)."""

    kind = "lat/lon box around a random speaker"

    def __init__(self, lat: np.ndarray, lon: np.ndarray, ids: np.ndarray):
        super().__init__(len(lat))
        self.lat, self.lon, self.ids = lat, lon, ids

    def draw(self, gen, row):
        c = int(gen.integers(self.n))
        d = np.maximum(np.abs(self.lat - self.lat[c]), np.abs(self.lon - self.lon[c]))
        idx = np.sort(np.argsort(d, kind="stable")[:row.size])
        box = [float(self.lat[idx].min()), float(self.lat[idx].max()), float(self.lon[idx].min()),
               float(self.lon[idx].max())]
        return idx, f"{len(idx)} speakers in the box {box_text(box)} around speaker {self.ids[c]}"


@register
class GeographicDiscoverer(Discoverer):
    """Regions from a best-first clustering tree on latitude/longitude (Trinh et al. 2022).

    Parameters
    ----------
    min_speakers : int, default 20
        Minimum speakers (count) on each side of every split, hence in every region.  Below
        about 20 speakers a region's WER is dominated by the noise of a few speakers (each
        speaker's WER varies by several percentage points around the population's), and the
        search would then report regions that are merely unlucky, not disadvantaged.
    max_regions : int, default 16
        Stop when the tree has this many leaves (regions, count).
    max_depth : int, default 8
        A leaf at this depth (root = 0) is not split further.
    criterion : {"difference", "z"}, default "difference"
        "difference" splits where |WER_left - WER_right| is largest (Trinh et al.).  "z"
        divides that difference by its binomial standard error, sqrt(p(1-p)(1/W_left +
        1/W_right)) with W the reference words and p the node's WER, so a difference
        between two well-populated sides beats the same difference between a minimum-size
        side and the rest; on clustered data it makes fewer thin regions that mix two
        distant cities (see sample_data/README.md).
    seed : int, default 0
        The tree is deterministic: the seed changes nothing.  Exact ties are broken by
        fixed rules (latitude before longitude, the smaller threshold, the earlier node).

    Speakers without usable coordinates are not audited and are counted by reason: missing
    lat/lon, out of range (|lat| > 90 or |lon| > 180 degrees), or exactly 0,0 (a common
    placeholder for "unknown").
    """

    name = "geographic"
    title = "Geographic regions"
    description = ("A clustering tree splits the map along latitude or longitude where the WER difference "
                   "between the two sides is largest, and recurses; its leaves are the regions (Trinh et al. 2022).")
    default = True
    order = 10
    non_attribute_columns = ("lat", "lon", "coords_approx")
    flag_aliases = {"max_regions": ("--geo-max-regions",), "max_depth": ("--geo-max-depth",),
                    "criterion": ("--geo-criterion",)}
    _parameter_constraints = {"max_regions": [Interval(int, 1, None)], "max_depth": [Interval(int, 0, None)],
                              "criterion": [Options(str, CRITERIA)]}

    def __init__(self, max_regions: int = 16, max_depth: int = 8, criterion: str = "difference", **common):
        super().__init__(**common)
        self.max_regions = max_regions
        self.max_depth = max_depth
        self.criterion = criterion

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        if "lat" not in speakers.columns or "lon" not in speakers.columns:
            return "no lat/lon columns in the speaker table (pass --speakers FILE with lat, lon)"
        return None

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Grow the tree and return one cohort per leaf region (see the class docstring)."""
        min_speakers, max_regions, max_depth, seed = (int(self.min_speakers), int(self.max_regions),
                                                      int(self.max_depth), int(self.seed))
        reason = self.missing_inputs(speakers, side)
        if reason:
            raise UserInputError(f"geographic discoverer: {reason}")
        params = {"min_speakers": min_speakers, "max_regions": max_regions, "max_depth": max_depth,
                  "seed": seed, "criterion": self.criterion}

        lat_all, lon_all = _coords(speakers)
        keep, not_audited = _usable(lat_all, lon_all)
        ids = speakers["speaker_id"].to_numpy(dtype=object)[keep]
        lat, lon = lat_all[keep], lon_all[keep]
        err = speakers["errors"].to_numpy(dtype=float)[keep]
        words = speakers["ref_words"].to_numpy(dtype=float)[keep]

        if len(ids) == 0:
            return Discovery(assignment=pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object),
                             labels={}, not_audited=not_audited, params=params,
                             details={"splits": [], "stop_reason": "no speaker with usable lat/lon"})

        root = _Node(0, np.arange(len(ids)), [float(lat.min()), float(lat.max()), float(lon.min()),
                                              float(lon.max())], 0)
        nodes = {0: root}
        heap: list[tuple[float, int]] = []

        def consider(node: _Node) -> None:
            if node.depth < max_depth:
                node.split = _best_split(lat, lon, err, words, node.members, min_speakers, self.criterion)
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
        cohort = np.empty(len(ids), dtype=object)
        centers = []
        for i, node in enumerate(order):
            cid = f"R{i + 1:02d}"
            node.extra["cid"] = cid
            cohort[node.members] = cid
            centers.append((float(np.median(lat[node.members])), float(np.median(lon[node.members]))))
        places = _place_names(centers)

        labels, cohort_details = {}, {}
        for node, center, place in zip(order, centers, places):
            m = node.members
            box = [float(lat[m].min()), float(lat[m].max()), float(lon[m].min()), float(lon[m].max())]
            cid = node.extra["cid"]
            labels[cid] = (f"near {place} ({box_text(box)})" if place else f"region {box_text(box)}")
            cohort_details[cid] = {"cell": node.cell, "members_box": box, "center": list(center),
                                   "place": place, "depth": node.depth, "node": node.id}

        assignment = pd.Series(cohort, index=pd.Index(ids, name="speaker_id"), dtype=object)
        # The tree itself: a speaker anywhere on the map falls into exactly one leaf.
        definition = {"kind": "lat/lon tree", "splits": [{k: sp[k] for k in ("node", "axis", "threshold", "left_node",
                                                                              "right_node")} for sp in splits],
                      "leaves": {str(node.id): node.extra["cid"] for node in order},
                      "cells": {node.extra["cid"]: node.cell for node in order}}
        return Discovery(assignment=assignment, labels=labels, not_audited=not_audited, params=params,
                         details={"splits": splits, "stop_reason": stop}, cohort_details=cohort_details,
                         definition=definition)

    # ------------------------------------------------------------ hooks

    def annotate(self, discovery: Discovery, speakers: pd.DataFrame, side: SideInputs) -> None:
        """The map's speaker points (a seeded sample) and how many coordinates are zip centroids."""
        assignment = discovery.assignment
        sp = speakers.set_index("speaker_id").loc[assignment.index]
        audited = len(sp)
        if len(sp) > MAX_POINTS:
            pick = np.sort(np.random.default_rng(int(self.seed)).choice(len(sp), MAX_POINTS, replace=False))
            sp, assignment = sp.iloc[pick], assignment.iloc[pick]
        discovery.details["speaker_points"] = {
            "sampled": len(sp) < audited, "lat": sp["lat"].round(4).tolist(), "lon": sp["lon"].round(4).tolist(),
            "wer": sp["wer"].round(5).tolist(), "cohort": assignment.astype(str).tolist()}
        if "coords_approx" in speakers.columns:
            approx = speakers.set_index("speaker_id").loc[discovery.assignment.index, "coords_approx"]
            discovery.entry_fields["approximate_coordinates"] = int(approx.fillna(False).astype(bool).sum())

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """Region of each speaker with usable coordinates: walk the saved tree from the root."""
        if "lat" not in speakers.columns or "lon" not in speakers.columns:
            return pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        lat, lon = _coords(speakers)
        keep, _ = _usable(lat, lon)
        ids = speakers["speaker_id"].to_numpy(dtype=object)[keep]
        lat, lon = lat[keep], lon[keep]
        node = np.zeros(len(ids), dtype=np.int64)
        for sp in definition.get("splits", []):   # splits are in creation order: parents first
            here = node == int(sp["node"])
            coord = lat if sp["axis"] == "lat" else lon
            node[here] = np.where(coord[here] <= float(sp["threshold"]), int(sp["left_node"]), int(sp["right_node"]))
        leaves = {int(k): v for k, v in definition.get("leaves", {}).items()}
        cohort = np.array([leaves.get(int(n)) for n in node], dtype=object)
        return pd.Series(cohort, index=pd.Index(ids, name="speaker_id"), dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        ids = discovery.assignment.index.astype(str).to_numpy(dtype=object)
        pos = pd.Index(speakers["speaker_id"].astype(str).to_numpy()).get_indexer(ids)
        lat, lon = _coords(speakers)
        return BoxPlanter(lat[pos], lon[pos], ids)

    def report_section(self, entry: dict, report: dict):
        """The map of the regions, the approximate-coordinates note and each region's cell."""
        from fairaudit.reports.sections import ReportSection

        from fairaudit.units import rate_name, report_unit

        from .geographic_map import region_map

        sec = ReportSection(title=self.title, method=self.description)
        if entry.get("approximate_coordinates"):
            sec.facts.append(("approximate coordinates",
                              f"{entry['approximate_coordinates']:,} speaker(s) had a zip code but no lat/lon and are "
                              "placed at their zip's centroid (zipcodes package): positions approximate"))
        fig = region_map(entry, rate_name(report_unit(report)))
        if fig is not None:
            sec.figures.append(fig)
        for c in entry.get("cohorts", []):
            cell = (c.get("details") or {}).get("cell")
            if cell:
                la0, la1, lo0, lo1 = cell[:4]
                sec.cohort_notes[c["id"]] = f"cell {la0:.2f}…{la1:.2f}° lat, {lo0:.2f}…{lo1:.2f}° lon"
        return sec
