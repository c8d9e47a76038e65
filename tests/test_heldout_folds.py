"""The discoverers' ``heldout_folds`` hooks: every fold's fit at once must give the
cohorts that ``fit`` on the training rows and ``assign`` of its definition to the other
rows give, and so the held-out gap of the fold-by-fold path, exactly."""
import numpy as np
import pandas as pd
import pytest

from fairaudit import simulate
from fairaudit.discover.cellsums import packing as _packing
from fairaudit.discover.geodemographic import GeodemographicDiscoverer, _permuted_zip_sums
from fairaudit.heldout import heldout_gap, speaker_folds


def _slow_codes(disc, sp, side, mask):
    """(codes per row, cohort ids) of fit(train) + assign(test), by the definition."""
    ids = sp["speaker_id"].to_numpy()
    found = disc.fit(sp.loc[mask], side)
    placed = disc.assign(found.definition, sp.loc[~mask], side)
    uniques = np.array(sorted(set(found.assignment)), dtype=object)
    codes = np.full(len(sp), -1)
    where = pd.Index(ids)
    for assignment in (found.assignment, placed):
        rows = where.get_indexer(assignment.index)
        codes[rows] = pd.Index(uniques).get_indexer(assignment.to_numpy())
    return codes, uniques


def _geo_speakers(planted, seed, messy):
    w = simulate.geodemographic_world(n_speakers=500, planted=planted, seed=seed)
    sp = w.speakers.sample(frac=1.0, random_state=seed).reset_index(drop=True)    # rows not in id order
    if messy:   # speakers without a valid zip or without a census row are never placed
        zips = sp["zip"].astype(object).to_numpy().copy()
        zips[::23] = None
        zips[5::29] = "99999"
        zips[7::31] = "12"
        sp["zip"] = zips
    return w, sp


@pytest.mark.parametrize("planted,messy", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("params", [{}, {"max_depth": 3, "min_gain_pct": 0.0}, {"max_depth": 1}])
def test_geodemographic_folds_equal_fit_and_assign(planted, messy, params):
    w, sp = _geo_speakers(planted, 3, messy)
    disc = GeodemographicDiscoverer(min_speakers=12, **params)
    fold_of = speaker_folds(sp["speaker_id"], 3, 2, seed=1)
    masks = np.stack([fold_of[r] != f for r in range(2) for f in range(3)])
    got = disc.heldout_folds(sp, w.side, masks)
    assert len(got) == len(masks)
    for mask, fold in zip(masks, got):
        codes, uniques = _slow_codes(disc, sp, w.side, mask)
        np.testing.assert_array_equal(fold[0], codes)
        assert list(fold[1]) == list(uniques)
    if messy:
        assert (got[0][0] == -1).sum() > 0


@pytest.mark.parametrize("planted,messy", [(True, False), (False, True)])
def test_geodemographic_heldout_gap_equals_fold_by_fold(planted, messy):
    w, sp = _geo_speakers(planted, 5, messy)
    disc = GeodemographicDiscoverer(min_speakers=15)
    fast = heldout_gap(disc, sp, w.side, n_boot=100, seed=2)
    slow = heldout_gap(disc, sp, w.side, n_boot=100, seed=2, batched=False)
    assert fast == slow and fast["estimate"]


def test_geodemographic_fold_without_a_valid_rule_has_no_estimate():
    """min_speakers above half the speakers: no rule on any fold, like the fold-by-fold path."""
    w, sp = _geo_speakers(True, 1, False)
    disc = GeodemographicDiscoverer(min_speakers=200)
    fast = heldout_gap(disc, sp, w.side, n_boot=0)
    slow = heldout_gap(disc, sp, w.side, n_boot=0, batched=False)
    assert fast == slow and not fast["estimate"] and fast["splits_without_estimate"] == 10


def test_packed_zip_sums_equal_two_bincounts():
    w, sp = _geo_speakers(True, 2, True)
    disc = GeodemographicDiscoverer(min_speakers=10)
    st = disc._structure(sp, w.side)
    e, wd = sp["errors"].to_numpy(dtype=float), sp["ref_words"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    takes = np.stack([np.arange(len(sp)) for _ in range(6)])
    for t in takes[1:]:
        t[st.audited] = st.audited[rng.permutation(len(st.audited))]
    want = [np.stack([np.bincount(st.zip_of, weights=x[t[st.audited]], minlength=len(st.n_z)) for t in takes])
            for x in (e, wd)]
    assert _packing(e, wd) is not None
    for got in (_permuted_zip_sums(st, e, wd, takes), _permuted_zip_sums(st, e + 0.5, wd, takes)):
        np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(_permuted_zip_sums(st, e, wd, takes)[0], want[0])
    # not whole numbers, or totals beyond float64's exact integers: two plain bincounts
    assert _packing(e + 0.5, wd) is None and _packing(e, wd * 2.0 ** 40) is None


def _meta_speakers(planted, seed, many_cells):
    w = simulate.attribute_world(n_speakers=600, planted=planted, seed=seed, planted_on="age_band=65+,gender=male")
    sp = w.speakers.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    sp["age"] = np.round(rng.uniform(18, 80, len(sp)))             # a numeric column
    sp.loc[sp.index[::17], "accent"] = "NA"                         # unknown values are routed
    sp.loc[sp.index[::41], "age"] = np.nan
    if many_cells:   # more joint cells than MAX_CELLS: the tree grows on the speakers
        sp["region"] = np.array([f"r{i:02d}" for i in range(25)], dtype=object)[rng.integers(0, 25, len(sp))]
    return w, sp


@pytest.mark.parametrize("planted,many_cells", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("params", [{}, {"criterion": "lr", "max_leaves": 8, "min_score": 0.0}])
def test_metadata_folds_equal_fit_and_assign(planted, many_cells, params):
    from fairaudit.discover.metadata import MAX_CELLS, MetadataDiscoverer

    w, sp = _meta_speakers(planted, 7, many_cells)
    disc = MetadataDiscoverer(min_speakers=15, **params)
    assert (disc._prepare(sp).cells is None) == many_cells, MAX_CELLS
    fold_of = speaker_folds(sp["speaker_id"], 2, 3, seed=2)
    masks = np.stack([fold_of[r] != f for r in range(3) for f in range(2)])
    got = disc.heldout_folds(sp, w.side, masks)
    for mask, fold in zip(masks, got):
        codes, uniques = _slow_codes(disc, sp, w.side, mask)
        np.testing.assert_array_equal(fold[0], codes)
        assert list(fold[1]) == list(uniques) and len(uniques) > 1


def test_metadata_fold_where_a_text_column_is_numeric_only_there():
    """A column whose training rows are all numbers is numeric in that fold (thresholds),
    categorical in another; held-out values that are no number are unknown there."""
    from fairaudit.discover.metadata import MetadataDiscoverer

    w, sp = _meta_speakers(True, 3, False)
    level = np.where(np.arange(len(sp)) % 3 == 0, "high", "low").astype(object)
    numbers = (np.arange(len(sp)) % 7).astype(str).astype(object)
    mask = np.arange(len(sp)) < 400
    sp["grade"] = np.where(mask, numbers, np.where(np.arange(len(sp)) % 2 == 0, level, numbers))
    disc = MetadataDiscoverer(min_speakers=15, columns=["grade", "age_band", "gender"])
    masks = np.stack([mask, ~mask])
    got = disc.heldout_folds(sp, w.side, masks)
    for m, fold in zip(masks, got):
        codes, uniques = _slow_codes(disc, sp, w.side, m)
        np.testing.assert_array_equal(fold[0], codes)
    assert disc.fit(sp.loc[mask], w.side).details["columns"]["grade"] == "numeric"
    assert disc.fit(sp.loc[~mask], w.side).details["columns"]["grade"] == "categorical"


@pytest.mark.parametrize("planted", [True, False])
def test_metadata_heldout_gap_equals_fold_by_fold(planted):
    from fairaudit.discover.metadata import MetadataDiscoverer

    w, sp = _meta_speakers(planted, 9, False)
    disc = MetadataDiscoverer(min_speakers=15)
    fast = heldout_gap(disc, sp, w.side, n_boot=100, seed=3)
    slow = heldout_gap(disc, sp, w.side, n_boot=100, seed=3, batched=False)
    assert fast == slow and fast["estimate"]
