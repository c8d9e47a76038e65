"""Geographic discoverer (clustering tree on lat/lon): known-truth tests on synthetic speakers."""
import json

import numpy as np
import pandas as pd
import pytest

from fairaudit.discover import REGISTRY
from fairaudit.discover.base import SideInputs, wer_of
from fairaudit.discover.geographic import GeographicDiscoverer, _best_split, box_text
from fairaudit.errors import UserInputError

# 30 US cities (lat, lon in degrees), at least ~1 degree apart so that +/-0.3 degree jitter
# never mixes two of them.  The first is the planted metro.
CITIES = {
    "Atlanta": (33.749, -84.388), "New York": (40.713, -74.006), "Los Angeles": (34.052, -118.244),
    "Chicago": (41.878, -87.630), "Houston": (29.760, -95.370), "Phoenix": (33.448, -112.074),
    "San Antonio": (29.424, -98.494), "San Diego": (32.716, -117.161), "Dallas": (32.777, -96.797),
    "Seattle": (47.606, -122.332), "Denver": (39.739, -104.990), "Boston": (42.360, -71.059),
    "Detroit": (42.331, -83.046), "Nashville": (36.163, -86.781), "Memphis": (35.150, -90.049),
    "Portland": (45.515, -122.679), "Las Vegas": (36.170, -115.140), "Louisville": (38.253, -85.759),
    "Milwaukee": (43.039, -87.907), "Albuquerque": (35.084, -106.650), "Tucson": (32.222, -110.975),
    "Kansas City": (39.100, -94.579), "Miami": (25.762, -80.192), "Minneapolis": (44.978, -93.265),
    "New Orleans": (29.951, -90.072), "Salt Lake City": (40.761, -111.891), "Charlotte": (35.227, -80.843),
    "St. Louis": (38.627, -90.199), "Omaha": (41.257, -95.935), "Birmingham": (33.519, -86.810),
}


def make_speakers(n=2000, planted_share=0.08, multiplier=2.0, seed=0, metro="Atlanta"):
    """Speakers around 30 cities; those around ``metro`` get error probability x multiplier."""
    rng = np.random.default_rng(seed)
    names = list(CITIES)
    others = [c for c in names if c != metro]
    n_planted = int(round(n * planted_share))
    city = np.array([metro] * n_planted + list(rng.choice(others, n - n_planted)), dtype=object)
    rng.shuffle(city)
    centre = np.array([CITIES[c] for c in city])
    lat = centre[:, 0] + rng.uniform(-0.3, 0.3, n)
    lon = centre[:, 1] + rng.uniform(-0.3, 0.3, n)
    planted = city == metro
    words = rng.integers(60, 201, n)
    p = np.clip(0.10 * np.exp(rng.normal(0, 0.35, n)), 0.01, 0.5) * np.where(planted, multiplier, 1.0)
    errors = rng.binomial(words, np.minimum(p, 0.9))
    ids = np.array([f"spk{i:05d}" for i in range(n)], dtype=object)
    speakers = pd.DataFrame({"speaker_id": ids, "utterances": 10, "ref_words": words, "substitutions": errors,
                             "deletions": 0, "insertions": 0, "errors": errors, "wer": errors / words,
                             "lat": lat, "lon": lon, "city": city})
    return speakers, set(ids[planted])


def bottom_and_gap(speakers, disc, planted):
    """(precision of the bottom cohort, recall of above-overall cohorts, relative gap %, bottom id)."""
    sp = speakers.set_index("speaker_id").loc[disc.assignment.index]
    sp = sp.assign(cohort=disc.assignment.to_numpy())
    wer = {c: wer_of(g["errors"], g["ref_words"]) for c, g in sp.groupby("cohort")}
    overall = wer_of(sp["errors"], sp["ref_words"])
    bottom, top = max(wer, key=wer.get), min(wer, key=wer.get)
    in_bottom = set(sp.index[sp["cohort"] == bottom])
    precision = len(in_bottom & planted) / len(in_bottom)
    above = set(sp.index[sp["cohort"].isin([c for c, v in wer.items() if v > overall])])
    recall = len(above & planted) / len(planted) if planted else float("nan")
    return precision, recall, 100 * (wer[bottom] - wer[top]) / wer[top], bottom


def fit(speakers, **kw):
    return GeographicDiscoverer(**kw).fit(speakers, SideInputs())


def test_registered():
    assert REGISTRY["geographic"] is GeographicDiscoverer


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_metro_is_found(seed):
    speakers, planted = make_speakers(seed=seed)
    disc = fit(speakers)
    precision, recall, gap, bottom = bottom_and_gap(speakers, disc, planted)
    assert precision >= 0.9
    assert recall >= 0.9
    assert "Atlanta" in disc.labels[bottom] or "Georgia" in disc.labels[bottom]
    assert disc.cohort_details[bottom]["place"] is not None
    # every region respects the minimum size, by construction
    assert disc.assignment.value_counts().min() >= 20
    assert len(disc.labels) <= 16


def test_no_planted_disparity_gives_a_small_gap():
    """Without a plant the search still finds a gap (selection bias), but a much smaller one.

    With 2,000 speakers, 16 regions and 20-speaker minimum the null gap is 40-90 % (40
    seeds: max 91 %), against 140-240 % with the metro planted (always > 2x the null gap).
    Larger regions (min_speakers=100) bring the null gap to ~25 % (max 33 %).
    """
    for seed in range(3):
        flat, _ = make_speakers(seed=seed, multiplier=1.0)
        _, _, gap0, _ = bottom_and_gap(flat, fit(flat), set())
        speakers, planted = make_speakers(seed=seed)
        _, _, gap, _ = bottom_and_gap(speakers, fit(speakers), planted)
        assert gap0 < 120
        assert gap > 1.5 * gap0
        _, _, gap0_big, _ = bottom_and_gap(flat, fit(flat, min_speakers=100), set())
        assert gap0_big < 50


def test_details_and_cohort_details_are_consistent():
    speakers, _ = make_speakers(seed=3)
    disc = fit(speakers)
    json.dumps({"details": disc.details, "cohort_details": disc.cohort_details, "params": disc.params})
    assert disc.params == {"min_speakers": 20, "max_regions": 16, "max_depth": 8, "seed": 0,
                           "criterion": "difference"}
    splits = disc.details["splits"]
    assert len(splits) == len(disc.labels) - 1
    assert list(disc.labels) == [f"R{i:02d}" for i in range(1, len(disc.labels) + 1)]
    counts = disc.assignment.value_counts()
    sp = speakers.set_index("speaker_id")
    # Replay the tree from its splits: each one's sides and WER difference, recomputed
    # from the speakers' own counts, must be what the split records.
    nodes = {0: sp.loc[disc.assignment.index]}
    for s in splits:
        node = nodes.pop(s["node"])
        left = node[s["axis"]] <= s["threshold"]
        nodes[s["left_node"]], nodes[s["right_node"]] = node[left], node[~left]
        assert (s["left_speakers"], s["right_speakers"]) == (int(left.sum()), int((~left).sum()))
        assert min(s["left_speakers"], s["right_speakers"]) >= 20
        wl = node.loc[left, "errors"].sum() / node.loc[left, "ref_words"].sum()
        wr = node.loc[~left, "errors"].sum() / node.loc[~left, "ref_words"].sum()
        assert s["wer_difference_pp"] == pytest.approx(100 * abs(wl - wr), rel=1e-9)
    # the leaves of the replayed tree are the regions
    assert sorted(len(v) for v in nodes.values()) == sorted(counts.to_list())
    for cid, cd in disc.cohort_details.items():
        assert set(cd) >= {"cell", "members_box", "center", "place", "depth"}
        members = sp.loc[disc.assignment.index[disc.assignment == cid]]
        lat0, lat1, lon0, lon1 = cd["cell"]
        assert members["lat"].between(lat0, lat1).all() and members["lon"].between(lon0, lon1).all()
        assert cd["members_box"] == [members["lat"].min(), members["lat"].max(),
                                     members["lon"].min(), members["lon"].max()]
        assert cd["center"] == [members["lat"].median(), members["lon"].median()]
        assert 0 <= cd["depth"] <= 8 and counts[cid] == len(members)
    # the root cell is the bounding box of everyone audited
    root = splits[0]
    assert root["node"] == 0 and root["left_speakers"] + root["right_speakers"] == len(speakers)


def test_split_maximises_wer_difference_brute_force():
    """The cumulative-sum search agrees with a naive scan of every threshold."""
    rng = np.random.default_rng(5)
    n = 300
    lat = np.round(rng.uniform(30, 40, n), 1)  # repeated values: cuts only between distinct ones
    lon = np.round(rng.uniform(-100, -80, n), 1)
    words = rng.integers(50, 150, n).astype(float)
    err = rng.binomial(words.astype(int), np.where(lat > 36, 0.2, 0.1)).astype(float)
    s = _best_split(lat, lon, err, words, np.arange(n), 20)
    best = (-1.0, None)
    for axis, c in (("lat", lat), ("lon", lon)):
        vals = np.unique(c)
        for lo, hi in zip(vals[:-1], vals[1:]):
            left = c <= lo
            if left.sum() < 20 or (~left).sum() < 20:
                continue
            d = abs(wer_of(err[left], words[left]) - wer_of(err[~left], words[~left]))
            if d > best[0] + 1e-12:
                best = (d, (axis, (lo + hi) / 2))
    assert s.diff == pytest.approx(best[0], abs=1e-12)
    assert s.axis == best[1][0] and s.threshold == pytest.approx(best[1][1])


def test_unusable_coordinates_are_counted_by_reason():
    speakers, _ = make_speakers(n=400, seed=4)
    speakers.loc[0:4, "lat"] = np.nan          # 5 missing lat
    speakers.loc[5:6, "lon"] = None            # 2 missing lon
    speakers.loc[7:9, "lat"] = 95.0            # 3 out of range
    speakers.loc[10, "lon"] = -181.0           # 1 out of range
    speakers.loc[11:14, ["lat", "lon"]] = 0.0  # 4 at 0,0
    speakers.loc[15, "lat"] = 0.0              # lat 0 alone is a real place: audited
    disc = fit(speakers)
    assert disc.not_audited == {"missing lat/lon": 7, "lat/lon out of range": 4, "lat/lon exactly 0,0": 4}
    assert len(disc.assignment) == 400 - 15
    assert "spk00015" in disc.assignment.index and "spk00000" not in disc.assignment.index


def test_no_usable_speaker_and_tiny_inputs():
    speakers, _ = make_speakers(n=50, seed=6)
    empty = speakers.assign(lat=np.nan)
    disc = fit(empty)
    assert len(disc.assignment) == 0 and disc.labels == {} and disc.not_audited == {"missing lat/lon": 50}
    # fewer than 2 x min_speakers: one region, nothing split
    disc = fit(speakers.head(30))
    assert set(disc.assignment) == {"R01"} and disc.details["splits"] == []
    assert disc.cohort_details["R01"]["cell"] == disc.cohort_details["R01"]["members_box"]


def test_stopping_rules():
    speakers, _ = make_speakers(seed=7)
    assert len(fit(speakers, max_regions=5).labels) == 5
    assert len(fit(speakers, max_regions=1).labels) == 1
    disc = fit(speakers, max_depth=2)
    assert len(disc.labels) <= 4 and max(c["depth"] for c in disc.cohort_details.values()) <= 2
    big = fit(speakers, min_speakers=300)
    assert big.assignment.value_counts().min() >= 300


def test_deterministic_and_independent_of_row_order():
    speakers, _ = make_speakers(seed=8)
    a, b = fit(speakers, seed=3), fit(speakers, seed=3)
    pd.testing.assert_series_equal(a.assignment, b.assignment)
    assert a.labels == b.labels and a.details == b.details and a.cohort_details == b.cohort_details
    shuffled = speakers.sample(frac=1.0, random_state=1)
    c = fit(shuffled, seed=3)
    pd.testing.assert_series_equal(a.assignment.sort_index(), c.assignment.sort_index())
    assert a.details == c.details and a.labels == c.labels


def test_missing_columns_and_bad_parameters():
    speakers, _ = make_speakers(n=100, seed=9)
    geo = GeographicDiscoverer()
    assert geo.missing_inputs(speakers, SideInputs()) is None
    reason = geo.missing_inputs(speakers.drop(columns=["lon"]), SideInputs())
    assert reason and "lat/lon" in reason
    with pytest.raises(UserInputError, match="lat/lon"):
        geo.fit(speakers.drop(columns=["lat"]), SideInputs())
    for kw, flag in (({"min_speakers": 0}, "--min-speakers"), ({"max_regions": 0}, "--geo-max-regions"),
                     ({"max_depth": -1}, "--geo-max-depth"), ({"max_regions": 2.5}, "--geo-max-regions")):
        with pytest.raises(UserInputError, match=flag):
            fit(speakers, **kw)


def test_box_text_hemispheres():
    assert box_text([33.1, 34.2, -85.0, -83.8]) == "33.1–34.2°N, 85.0–83.8°W"
    assert box_text([-34.2, -33.1, 151.0, 151.3]) == "34.2–33.1°S, 151.0–151.3°E"
    assert box_text([-1.0, 2.0, -10.0, 5.0]) == "1.0°S–2.0°N, 10.0°W–5.0°E"


def test_z_criterion_finds_the_metro_and_is_validated():
    speakers, planted = make_speakers(seed=3)
    precision, recall, gap, _ = bottom_and_gap(speakers, fit(speakers, criterion="z"), planted)
    assert precision >= 0.9 and recall >= 0.9
    with pytest.raises(UserInputError, match="--geo-criterion"):
        fit(speakers, criterion="biggest")
