"""Geographic cohorts: the spatial scan's hot spot, on Trinh et al.'s region map.

Speakers carry latitude/longitude.  Two cohorts are reported and tested:

* ``H01``, the hot spot: the circle of speakers whose errors are most in excess of the
  rest (the spatial scan of :mod:`.scan`: circles of ``min_speakers`` to ``max_share`` x
  speakers around every speaker, a heterogeneity-weighted z per circle, the best circle
  re-centred on its members);
* ``REST``: everybody else.

The significance test uses the scan's own statistic (``Discovery.statistic``: a soft
maximum of the circles' z, the log of their average Bayes factor), calibrated by the
permutation null; the gap is hot spot vs rest, and its honest estimate is the held-out
gap (the circle found on some speakers, measured on the others).

Trinh et al.'s clustering tree (:mod:`.region_tree`) is kept as the *partition shown*:
its regions are drawn on the map and listed in the region table (``details["regions"]``),
for orientation.  They are not the tested cohorts: a tree this flexible chases the
noisiest strip of the map (issue 15, on 500 heterogeneous speakers with a +50 % metro,
200 worlds: power 0.27, bottom-region precision / recall 0.59 / 0.31, reported gap +172 %,
against 0.84, 0.83 / 0.73 and +62 % for the scan; ``benchmarks/bench_discovery.py``).
"""
from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pandas as pd

from ..errors import UserInputError
from ..io.places import nearest_places, place_label
from .base import Discoverer, Discovery, SideInputs, register
from .params import Interval, Options
from .planting import Planter
from .region_tree import CRITERIA, _best_split, box_text, grow_tree  # noqa: F401  (re-exported)
from .scan import (AGGREGATES, MAX_CENTRES, MAX_LOCATIONS, STATISTICS, build_windows, hotspot, in_window,
                   permuted_pass, subset_windows)

# Not-audited reasons (keys of Discovery.not_audited).
MISSING = "missing lat/lon"
OUT_OF_RANGE = "lat/lon out of range"
ZERO_ZERO = "lat/lon exactly 0,0"
#: cohort ids
HOTSPOT, REST = "H01", "REST"


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


def _same_inputs(a: tuple, b: tuple) -> bool:
    """Whether two fits' (params, not_audited, ids, lat, lon, errors, words) are equal."""
    return (a[0] == b[0] and a[1] == b[1] and len(a[2]) == len(b[2])
            and all(np.array_equal(x, y) for x, y in zip(a[2:], b[2:])))


def _coords(speakers: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (pd.to_numeric(speakers["lat"], errors="coerce").to_numpy(dtype=float),
            pd.to_numeric(speakers["lon"], errors="coerce").to_numpy(dtype=float))


def _str_ids(speakers: pd.DataFrame) -> np.ndarray:
    """Speaker ids as strings (object array), one conversion of the column."""
    return speakers["speaker_id"].astype(str).to_numpy(dtype=object)


def _raw_ids(speakers: pd.DataFrame, sid: np.ndarray) -> np.ndarray:
    """Speaker ids as they are (object array); ``sid`` (:func:`_str_ids`) itself when the
    column holds strings already (the same values: no second conversion)."""
    col = speakers["speaker_id"]
    return sid if isinstance(col.dtype, pd.StringDtype) else col.to_numpy(dtype=object)


#: the dtype pandas gives an Index made from an object array of strings
_STR_INDEX = pd.Index(np.array(["x"], dtype=object)).dtype


def _id_index(speakers: pd.DataFrame, take: np.ndarray, ids: np.ndarray | None = None) -> pd.Index:
    """``pd.Index(ids, name="speaker_id")`` for ``ids`` = the speaker-id column's values at
    ``take`` (positions or a mask; as objects, made here when not given): taken from the
    column's own string array when it has the dtype that Index would infer (the same
    Index without 50,000 Python strings made and parsed back: 7 ms a held-out fold)."""
    col = speakers["speaker_id"]
    if col.dtype == _STR_INDEX and _STR_INDEX != object:
        index = pd.Index(col.array[take], name="speaker_id")
        if len(index) and index.dtype == _STR_INDEX:
            return index
    return pd.Index(col.to_numpy(dtype=object)[take] if ids is None else ids, name="speaker_id")


def _coords_at(speakers: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_coords` of ``speakers.iloc[rows]``, without copying the whole table's rows."""
    lat, lon = _coords(speakers)
    return lat[rows], lon[rows]


def _subset_positions(base: dict, index: pd.Index, rows: np.ndarray, sub_ids: np.ndarray) -> np.ndarray:
    """Positions in the base build (:meth:`GeographicDiscoverer.windows`) of the speakers
    ``sub_ids`` (string ids of ``rows`` of a table with row labels ``index``), -1 where
    absent: what ``base["ids"].get_indexer(sub_ids)`` gives.

    A held-out fold is ``table.iloc[train_rows]`` of the table the base was built on, so its
    row labels usually name rows of that table: when they do and those rows hold the same
    ids (one comparison), the positions are read off them; otherwise (or when some speaker
    is not in the base) the ids are looked up by hash (50,000 strings: 14 ms a fold)."""
    try:
        cand = base["table_index"].get_indexer(index[rows])
    except Exception:  # noqa: BLE001 - labels that do not compare with the base's (e.g. not unique)
        cand = None
    if cand is not None and len(cand) and (cand >= 0).all():
        pos = base["position_of_row"][cand]
        if (pos >= 0).all() and np.array_equal(base["table_ids"][cand], sub_ids):
            return pos
    return base["ids"].get_indexer(sub_ids)


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


def _hemi(v: float, pos: str, neg: str) -> str:
    return f"{abs(v):.2f}°{pos if v >= 0 else neg}"


def hotspot_label(window: dict, place: str | None) -> str:
    """'hot spot near New York, New York (43 km around 40.71°N, 74.01°W)'."""
    where = (f"{window['radius_km']:.0f} km around {_hemi(window['centre_lat'], 'N', 'S')}, "
             f"{_hemi(window['centre_lon'], 'E', 'W')}")
    return f"hot spot near {place} ({where})" if place else f"hot spot ({where})"


@register
class GeographicDiscoverer(Discoverer):
    """The spatial scan's hot spot vs the rest, with Trinh et al.'s regions for the map.

    Parameters
    ----------
    min_speakers : int, default 20
        Smallest hot spot (and region) in speakers (count).
    max_share : float, default 0.25
        Largest hot spot as a share of the audited speakers (ratio).
    statistic : {"z", "poisson"}, default "z"
        Circle statistic: a score z of the circle's per-speaker error rates with
        heterogeneity weights ("z"), or Kulldorff's Poisson likelihood ratio of errors per
        word ("poisson", which treats every word as independent).
    aggregate : {"softmax", "max"}, default "softmax"
        Test statistic over the circles: the soft maximum (log mean Bayes factor; power
        0.85 against 0.78 for the maximum on the issue-15 world) or Kulldorff's maximum.
    temperature : float, default 4.0
        Temperature of the soft maximum (> 0; smaller is closer to the maximum).
    size_step : float, default 1.05
        Ratio between consecutive circle sizes around one centre (1 = every size).
    refine_iterations : int, default 3
        Times the hot spot is re-centred on its members' centroid, before one last
        re-centring on the error-weighted posterior centroid (0 = neither).
    max_centres : int, default 2000
        Most circle centres (speakers drawn by density above it).
    max_locations : int, default 5000
        Above this many distinct coordinates speakers are grouped into cells first.
    max_regions : int, default 16
        Regions of the tree drawn on the map (count).
    max_depth : int, default 8
        Depth limit of the region tree.
    criterion : {"difference", "z"}, default "difference"
        Split criterion of the region tree (Trinh et al.'s WER difference, or z).
    seed : int, default 0
        Seeds the centre sample above ``max_centres``; otherwise nothing is random.

    Speakers without usable coordinates are not audited and are counted by reason: missing
    lat/lon, out of range (|lat| > 90 or |lon| > 180 degrees), or exactly 0,0 (a common
    placeholder for "unknown").

    The scan's windows depend on coordinates only, so they are built once per set of
    speakers and kept (:meth:`windows`; a clone shares them): re-fits on new counts
    (permutation null, power) reuse them, and a fit on a *subset* of those speakers (a
    held-out training fold, the adjusted models' held-out half) derives its windows from
    them (:func:`.scan.subset_windows`) instead of searching neighbours again.  By design
    that differs from a fresh fit on the subset when speakers are grouped into cells
    (above ``max_locations`` distinct coordinates) or centres are sampled (above
    ``max_centres``): the subset keeps the full set's cells and centres, drawn from
    coordinates that carry no error information, where a fresh fit would draw its own.
    Below both caps the windows, and so the fit, are exactly a fresh fit's.  A re-fit on
    identical inputs returns (a copy of) the previous result.  At 100,000 speakers (1M
    utterances, shared 2-core machine, back-to-back runs) the geographic stages went from
    discover 2.8 s, permutation 5.8 s, held-out 11.1 s to 1.8 s, 2.5 s and 4.2 s (of which
    about 2.4 s is the held-out bootstrap, as for any discoverer) with the same report
    (``fairaudit audit --profile``; benchmarks/README.md).
    """

    name = "geographic"
    title = "Geographic hot spot"
    description = ("A spatial scan (Kulldorff-type) compares circles of speakers around every speaker with the "
                   "rest; the circle whose error rates are most in excess is the hot spot (H01), tested against "
                   "everybody else with the scan's own statistic and a permutation null.  The map also shows "
                   "Trinh et al.'s regions (a clustering tree on latitude/longitude) for orientation.")
    default = True
    order = 10
    non_attribute_columns = ("lat", "lon", "coords_approx")
    flag_aliases = {"max_regions": ("--geo-max-regions",), "max_depth": ("--geo-max-depth",),
                    "criterion": ("--geo-criterion",)}
    _parameter_constraints = {
        "max_share": [Interval(float, 0, 1, closed="right")], "statistic": [Options(str, tuple(STATISTICS))],
        "aggregate": [Options(str, AGGREGATES)], "temperature": [Interval(float, 0, None, closed="neither")],
        "size_step": [Interval(float, 1, None)], "refine_iterations": [Interval(int, 0, None)],
        "max_centres": [Interval(int, 1, None)], "max_locations": [Interval(int, 1, None)],
        "max_regions": [Interval(int, 1, None)], "max_depth": [Interval(int, 0, None)],
        "criterion": [Options(str, CRITERIA)]}

    def __init__(self, max_share: float = 0.25, statistic: str = "z", aggregate: str = "softmax",
                 temperature: float = 4.0, size_step: float = 1.05, refine_iterations: int = 3,
                 max_centres: int = MAX_CENTRES, max_locations: int = MAX_LOCATIONS, max_regions: int = 16,
                 max_depth: int = 8, criterion: str = "difference", **common):
        super().__init__(**common)
        self.max_share = max_share
        self.statistic = statistic
        self.aggregate = aggregate
        self.temperature = temperature
        self.size_step = size_step
        self.refine_iterations = refine_iterations
        self.max_centres = max_centres
        self.max_locations = max_locations
        self.max_regions = max_regions
        self.max_depth = max_depth
        self.criterion = criterion

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        if "lat" not in speakers.columns or "lon" not in speakers.columns:
            return "no lat/lon columns in the speaker table (pass --speakers FILE with lat, lon)"
        return None

    def _audited(self, speakers: pd.DataFrame, coords: tuple[np.ndarray, np.ndarray] | None = None,
                 sid: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
        """Row positions of the speakers with usable coordinates, in speaker-id order (the
        scan does not depend on row order), and the not-audited counts.  ``coords``/``sid``:
        :func:`_coords` and :func:`_str_ids` of ``speakers`` when the caller has them."""
        lat, lon = _coords(speakers) if coords is None else coords
        keep, not_audited = _usable(lat, lon)
        rows = np.flatnonzero(keep)
        sid = _str_ids(speakers) if sid is None else sid
        return rows[np.argsort(sid[rows], kind="stable")], not_audited

    def _window_options(self) -> tuple:
        return (float(self.max_share), float(self.size_step), int(self.max_centres), int(self.max_locations),
                int(self.min_speakers), int(self.seed))

    def windows(self, speakers: pd.DataFrame, rows: np.ndarray, coords: tuple[np.ndarray, np.ndarray] | None = None,
                sid: np.ndarray | None = None):
        """The scan's windows over ``speakers.iloc[rows]``, kept for the next fit on the same
        coordinates: a permutation null or power simulation moves counts, not speakers.

        A table whose audited speakers are a subset of those of the last table the windows
        were built on (same ids, same coordinates: a held-out training fold) gets windows
        derived from that build (:func:`.scan.subset_windows`: its cells, centres and
        neighbour lists, sizes and admissibility from the subset's speakers) instead of a
        new neighbour search; see the class docstring.  ``coords``: (lat, lon) of the
        ``rows`` (degrees) and ``sid`` (:func:`_str_ids` of ``speakers``), when known.
        """
        lat, lon = _coords_at(speakers, rows) if coords is None else coords
        options = self._window_options()
        digest = hashlib.sha1(np.ascontiguousarray(np.column_stack([lat, lon])).tobytes())
        digest.update(repr(options).encode())
        key = digest.hexdigest()
        cached = self.__dict__.get("_windows_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        base = self.__dict__.get("_windows_base")
        if base is not None and base["key"] == key:
            return base["windows"]
        if base is not None and base["options"] == options:
            sub_ids = (_str_ids(speakers) if sid is None else sid)[rows]
            pos = _subset_positions(base, speakers.index, rows, sub_ids)
            if (pos >= 0).all() and np.array_equal(base["lat"][pos], lat) and np.array_equal(base["lon"][pos], lon):
                win = subset_windows(base["windows"], pos)
                self.__dict__["_windows_cache"] = (key, win)
                return win
        win = build_windows(lat, lon, min_speakers=int(self.min_speakers), max_share=float(self.max_share),
                            size_step=float(self.size_step), max_centres=int(self.max_centres),
                            max_locations=int(self.max_locations), seed=int(self.seed))
        table_ids = _str_ids(speakers) if sid is None else sid
        ids = pd.Index(table_ids[rows])
        if ids.is_unique:        # the base of later subsets (a speaker id names one speaker)
            at = np.full(len(speakers), -1, dtype=np.int64)
            at[rows] = np.arange(len(rows))
            self.__dict__["_windows_base"] = {"key": key, "options": options, "ids": ids, "lat": lat, "lon": lon,
                                              "windows": win, "table_ids": table_ids, "table_index": speakers.index,
                                              "position_of_row": at}
        self.__dict__["_windows_cache"] = (key, win)
        return win

    def clone(self, **changes):
        """A new, unfitted discoverer with the same parameters; it shares the windows built
        from coordinates (never from error counts), so a clone fitted on the same speakers
        or a subset of them (the adjusted models' held-out half) needs no new neighbour
        search (see :meth:`windows`)."""
        new = super().clone(**changes)
        base = self.__dict__.get("_windows_base")
        if base is not None:
            new.__dict__["_windows_base"] = base
        return new

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        """Scan for the hot spot; cohorts H01 (hot spot) and REST (see the module docstring)."""
        reason = self.missing_inputs(speakers, side)
        if reason:
            raise UserInputError(f"geographic discoverer: {reason}")
        # the id column and the coordinates converted once for everything below
        lat_all, lon_all = _coords(speakers)
        sid = _str_ids(speakers)
        rows, not_audited = self._audited(speakers, (lat_all, lon_all), sid)
        params = {k: v for k, v in self.get_params().items()}
        ids = _raw_ids(speakers, sid)[rows]
        index = _id_index(speakers, rows, ids)
        if not len(ids):
            return Discovery(assignment=pd.Series([], index=index, dtype=object), labels={}, not_audited=not_audited,
                             params=params, details={"stop_reason": "no speaker with usable lat/lon"})
        lat, lon = lat_all[rows], lon_all[rows]
        e = speakers["errors"].to_numpy(dtype=float)[rows]
        w = speakers["ref_words"].to_numpy(dtype=float)[rows]
        # The same speakers, coordinates and counts as the last fit (the permutation null
        # fits the audit's table again before its batched pass): the same result.
        inputs = (params, not_audited, ids, lat, lon, e, w)
        memo = self.__dict__.get("_fit_memo")
        if memo is not None and _same_inputs(memo[0], inputs):
            return copy.deepcopy(memo[1])
        found = self._scan(speakers, rows, params, not_audited, index, lat, lon, e, w, sid)
        self.__dict__["_fit_memo"] = (inputs, copy.deepcopy(found))
        return found

    def _scan(self, speakers, rows, params, not_audited, index, lat, lon, e, w, sid=None) -> Discovery:
        win = self.windows(speakers, rows, (lat, lon), sid)
        found = hotspot(lat, lon, e, w, win, statistic=self.statistic, aggregate=self.aggregate,
                        temperature=float(self.temperature), iterations=int(self.refine_iterations))
        details = {"windows": win.n_windows, "grouped_into_cells": bool(win.cells),
                   "locations": int(len(win.loc_lat)), "centres": int(len(win.centres))}
        if found is None:
            label = "all audited speakers (no circle has a higher error rate than the rest)"
            return Discovery(assignment=pd.Series("all", index=index, dtype=object), labels={"all": label},
                             not_audited=not_audited, params=params, details={**details, "hotspot": None},
                             definition={"kind": "circle", "circle": None}, statistic=0.0,
                             statistic_name=f"scan {self.statistic}")
        cohort = np.full(len(index), REST, dtype=object)
        cohort[found["members"]] = HOTSPOT
        place = _place_names([(found["centre_lat"], found["centre_lon"])])[0]
        circle = {"centre_lat": found["centre_lat"], "centre_lon": found["centre_lon"],
                  "radius_km": found["radius_km"]}
        # JSON: a rate ratio with nothing outside the circle is infinite, a WER undefined
        window = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                  for k, v in found.items() if k != "members"}
        window["place"] = place
        return Discovery(assignment=pd.Series(cohort, index=index, dtype=object),
                         labels={HOTSPOT: hotspot_label(found, place), REST: "rest of the map"},
                         not_audited=not_audited, params=params, details={**details, "hotspot": window},
                         cohort_details={HOTSPOT: {"circle": circle, "place": place}},
                         definition={"kind": "circle", "circle": circle}, statistic=float(found["statistic"]),
                         statistic_name=found["statistic_name"])

    # ------------------------------------------------------------ hooks

    def annotate(self, discovery: Discovery, speakers: pd.DataFrame, side: SideInputs) -> None:
        """The region partition (Trinh et al.'s tree), the map's speaker points (a seeded sample)
        and how many coordinates are zip centroids: report-only, never on re-fits."""
        assignment = discovery.assignment
        sp = speakers.set_index("speaker_id").loc[assignment.index]
        audited = len(sp)
        if len(sp) > MAX_POINTS:
            pick = np.sort(np.random.default_rng(int(self.seed)).choice(len(sp), MAX_POINTS, replace=False))
            sp, assignment = sp.iloc[pick], assignment.iloc[pick]
        discovery.details["regions"] = self._regions(speakers, discovery)
        region_of = {}
        for r in discovery.details["regions"]:
            region_of.update(dict.fromkeys(r.pop("_members"), r["id"]))
        discovery.details["speaker_points"] = {
            "sampled": len(sp) < audited, "lat": sp["lat"].round(4).tolist(), "lon": sp["lon"].round(4).tolist(),
            "wer": sp["wer"].round(5).tolist(), "cohort": assignment.astype(str).tolist(),
            "region": [region_of.get(i) for i in assignment.index]}
        if "coords_approx" in speakers.columns:
            approx = speakers.set_index("speaker_id").loc[discovery.assignment.index, "coords_approx"]
            discovery.entry_fields["approximate_coordinates"] = int(approx.fillna(False).astype(bool).sum())

    def _regions(self, speakers: pd.DataFrame, discovery: Discovery) -> list[dict]:
        """Trinh et al.'s regions over the audited speakers, with their counts and WER."""
        lat_all, lon_all = _coords(speakers)
        rows, _ = self._audited(speakers, (lat_all, lon_all))
        lat, lon = lat_all[rows], lon_all[rows]
        e = speakers["errors"].to_numpy(dtype=float)[rows]
        w = speakers["ref_words"].to_numpy(dtype=float)[rows]
        tree = grow_tree(lat, lon, e, w, min_speakers=int(self.min_speakers), max_regions=int(self.max_regions),
                         max_depth=int(self.max_depth), criterion=self.criterion)
        discovery.details["region_tree"] = {"splits": tree.splits, "stop_reason": tree.stop_reason,
                                            "definition": tree.definition}
        ids = speakers["speaker_id"].to_numpy(dtype=object)[rows]
        # A hash lookup: np.isin on object ids sorts them (8 s of a 100k-speaker fit).
        hot_ids = pd.Index(discovery.assignment.index[discovery.assignment.to_numpy() == HOTSPOT], dtype=object)
        in_hot = hot_ids.get_indexer(pd.Index(ids, dtype=object)) >= 0
        places = _place_names([tuple(r["center"]) for r in tree.regions])
        out = []
        for k, (r, place) in enumerate(zip(tree.regions, places)):
            m = tree.codes == k
            words = float(w[m].sum())
            out.append({**r, "label": f"near {place} ({box_text(r['members_box'])})" if place
                        else f"region {box_text(r['members_box'])}", "place": place, "speakers": int(m.sum()),
                        "errors": float(e[m].sum()), "ref_words": words,
                        "wer": float(e[m].sum()) / words if words > 0 else None,
                        "too_few_speakers": bool(m.sum() < int(self.min_speakers)),
                        "hotspot_speakers": int((m & in_hot).sum()), "_members": ids[m].tolist()})
        return out

    def permuted_statistics(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery,
                            takes: np.ndarray) -> dict | None:
        """The scan statistic of every permutation and the gap of its best circle vs the rest,
        in one batched pass (:func:`.scan.permuted_pass`: the windows are the fit's, only the
        sums change; the best circle is not re-centred, so a re-fit's gap differs by the
        re-centring).  Declines (None: the caller re-fits) a permutation that moves a
        speaker without usable coordinates into the audited set.

        The permutation null calls this block after block with the same table and the same
        fit: the audited rows and windows of the first block are kept for the next ones
        (held with the table and the fit themselves, so only those very objects match;
        15-20 ms a block at 100,000 speakers)."""
        held = self.__dict__.get("_permuted_rows")
        if held is not None and held[0] is speakers and held[1] is discovery:
            rows, win = held[2], held[3]
        else:
            rows, _ = self._audited(speakers)
            if not len(rows):
                return None
            win = self.windows(speakers, rows)
            self.__dict__["_permuted_rows"] = (speakers, discovery, rows, win)
        takes = np.asarray(takes)
        if len(rows) == len(speakers) and (rows == np.arange(len(rows))).all():
            perm = takes                  # every row audited, in speaker-id order already
        else:
            where = np.full(len(speakers), -1, dtype=np.int64)
            where[rows] = np.arange(len(rows))
            perm = where[takes[:, rows]]
            if (perm < 0).any():
                return None
        e = speakers["errors"].to_numpy(dtype=float)[rows]
        w = speakers["ref_words"].to_numpy(dtype=float)[rows]
        res = permuted_pass(win, e, w, perm, self.statistic, self.aggregate, float(self.temperature), inside=True)
        found = res["row"] >= 0
        e_in, w_in = res["errors_in"], res["words_in"]
        with np.errstate(divide="ignore", invalid="ignore"):
            wer_in = e_in / w_in
            wer_out = (e.sum() - e_in) / (w.sum() - w_in)
            gap_abs = np.where(found, wer_in - wer_out, 0.0)
            pct = np.where(found, np.where(wer_out > 0, 100.0 * gap_abs / wer_out, math.inf), 0.0)
        return {"statistics": res["statistic"], "gaps_pct": pct, "gaps_abs": gap_abs}

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """H01 for speakers inside the saved circle, REST for the others with usable coordinates
        ("all" when the fit found no hot spot)."""
        if "lat" not in speakers.columns or "lon" not in speakers.columns:
            return pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        lat, lon = _coords(speakers)
        keep, _ = _usable(lat, lon)
        index = _id_index(speakers, keep)
        circle = (definition or {}).get("circle")
        if circle is None:
            return pd.Series("all", index=index, dtype=object)
        inside = in_window(circle, lat[keep], lon[keep])
        return pd.Series(np.where(inside, HOTSPOT, REST), index=index, dtype=object)

    def assign_reasons(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """Missing, out-of-range or 0,0 coordinates (the reasons the audit counts)."""
        ids = speakers["speaker_id"].to_numpy(dtype=object)
        if "lat" not in speakers.columns or "lon" not in speakers.columns:
            return pd.Series("no lat/lon columns in the speaker table", index=ids, dtype=object)
        lat, lon = _coords(speakers)
        missing = np.isnan(lat) | np.isnan(lon)
        out_of_range = ~missing & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
        zero = ~missing & ~out_of_range & (lat == 0) & (lon == 0)
        reason = np.select([missing, out_of_range, zero], [MISSING, OUT_OF_RANGE, ZERO_ZERO], default="")
        keep = reason != ""
        return pd.Series(reason[keep].astype(object), index=ids[keep], dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        ids = discovery.assignment.index.astype(str).to_numpy(dtype=object)
        pos = pd.Index(speakers["speaker_id"].astype(str).to_numpy()).get_indexer(ids)
        lat, lon = _coords(speakers)
        return BoxPlanter(lat[pos], lon[pos], ids)

    def report_section(self, entry: dict, report: dict):
        """The hot spot, the map (regions, the hot-spot circle) and the region table."""
        from fairaudit.reports.sections import Block, ReportSection, Table

        from fairaudit import numbers as num
        from fairaudit.units import rate_name, report_unit

        from .geographic_map import cohort_definitions, region_map

        rate = rate_name(report_unit(report))
        sec = ReportSection(title=self.title, method=self.description)
        details = entry.get("details") or {}
        hot = details.get("hotspot")
        if hot:
            sec.facts.append(("hot spot", f"{hot['speakers']:,} speakers within {hot['radius_km']:.0f} km of "
                                          f"{_hemi(hot['centre_lat'], 'N', 'S')}, {_hemi(hot['centre_lon'], 'E', 'W')}"
                                          + (f" ({hot['place']})" if hot.get("place") else "")))
            sec.facts.append(("scan statistic", f"{hot.get('statistic_name', 'scan')}: {hot['statistic']:.3g} "
                                                f"(best circle's own {self.statistic}: {hot.get('window_statistic', 0):.3g})"))
        if entry.get("approximate_coordinates"):
            sec.facts.append(("approximate coordinates",
                              f"{entry['approximate_coordinates']:,} speaker(s) had a zip code but no lat/lon and are "
                              "placed at their zip's centroid (zipcodes package): positions approximate"))
        fig = region_map(entry, rate)
        if fig is not None:
            sec.figures.append(fig)
        regions = details.get("regions") or []
        if regions:
            rows = [[r["id"], r.get("label") or "", num.count(r["speakers"]), num.wer(r.get("wer")),
                     num.count(r.get("hotspot_speakers", 0))] for r in regions]
            sec.blocks.append(Block(
                heading="Regions (Trinh et al.'s clustering tree)",
                note=("The map's partition, for orientation: the tree splits the map where the two sides' "
                      f"{rate} differ most, so its regions are chosen by the same noise they show; they are not "
                      "tested cohorts.  The tested cohorts are the hot spot and the rest."),
                table=Table(columns=["region", "where", "speakers", f"{rate} %", "in hot spot"], rows=rows,
                            numeric=[False, False, True, True, True])))
        sec.cohort_definitions = cohort_definitions(entry)
        return sec
