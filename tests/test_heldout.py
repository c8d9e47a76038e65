"""Held-out gap by speaker split (fairaudit.heldout) on simulated worlds with a known truth."""
import numpy as np
import pandas as pd
import pytest

from fairaudit import simulate
from fairaudit.discover.attribute import AttributeDiscoverer
from fairaudit.discover.base import Discoverer, Discovery
from fairaudit.discover.geographic import GeographicDiscoverer
from fairaudit.errors import UserInputError
from fairaudit.heldout import heldout_gap, speaker_folds
from fairaudit.cohorts import cohort_table


def test_folds_are_balanced_seeded_and_row_order_free():
    ids = np.array([f"s{i:03d}" for i in range(101)])
    f = speaker_folds(ids, folds=2, repeats=3, seed=1)
    assert f.shape == (3, 101) and set(np.unique(f)) == {0, 1}
    assert all(abs((row == 0).sum() - (row == 1).sum()) <= 1 for row in f)
    assert not np.array_equal(f[0], f[1])
    order = np.random.default_rng(0).permutation(101)
    assert np.array_equal(speaker_folds(ids[order], 2, 3, 1), f[:, order])
    strata = np.where(np.arange(101) < 30, "a", "b")
    g = speaker_folds(ids, folds=3, repeats=2, seed=1, strata=strata)
    for row in g:
        counts = np.bincount(row[:30], minlength=3)
        assert counts.max() - counts.min() <= 1


def _gaps(planted, seeds):
    held, found = [], []
    for seed in seeds:
        w = simulate.geographic_world(seed=seed, planted=planted)
        disc = GeographicDiscoverer(seed=seed)
        h = heldout_gap(disc, w.speakers, w.side, folds=2, repeats=3, seed=seed, n_boot=200)
        assert h["estimate"] and h["ci_pct"][0] <= h["gap_pct"] <= h["ci_pct"][1]
        held.append(h["gap_pct"])
        fit = disc.fit(w.speakers, w.side)
        found.append(cohort_table(w.speakers, fit.assignment, fit.labels, 20)[1]["wer_gap_pct"])
    return np.array(held), np.array(found)


def test_heldout_gap_is_centred_on_zero_without_disparity():
    held, found = _gaps(False, range(8))
    assert found.mean() > 15            # the search always finds a gap on the data it saw ...
    assert abs(held.mean()) < 10        # ... which vanishes on speakers it did not see


def test_heldout_gap_near_the_truth_when_planted():
    held, found = _gaps(True, range(10, 18))
    assert 20 <= held.mean() <= 75, held


@pytest.mark.parametrize("planted, lo, hi", [(True, 30, 70), (False, -15, 15)])
def test_fixed_cohorts_are_fitted_once_and_measured_held_out(planted, lo, hi):
    w = simulate.attribute_world(n_speakers=1500, seed=3, planted=planted)
    h = heldout_gap(AttributeDiscoverer(columns=["accent"]), w.speakers, w.side, folds=2, repeats=4, seed=0,
                    n_boot=300)
    assert h["assignment"] == "fixed" and lo <= h["gap_pct"] <= hi, h["gap_pct"]
    assert h["ci_pct"][0] < h["gap_pct"] < h["ci_pct"][1]


class _Halves(Discoverer):
    """A search that cannot place new speakers (no assign): the lower or upper half by id."""

    name = "halves"

    def missing_inputs(self, speakers, side):
        return None

    def fit(self, speakers, side):
        ids = speakers["speaker_id"].astype(str)
        cut = ids.sort_values().iloc[len(ids) // 2]
        return Discovery(pd.Series(np.where(ids < cut, "A", "B"), index=pd.Index(ids, name="speaker_id")),
                         {"A": "lower ids", "B": "upper ids"}, definition={"cut": cut})


def _by_cut(found, sp, side):
    ids = sp["speaker_id"].astype(str)
    return pd.Series(np.where(ids < found.definition["cut"], "A", "B"), index=ids)


def test_a_discoverer_that_cannot_assign_has_no_honest_estimate():
    w = simulate.geographic_world(seed=0, planted=False)
    h = heldout_gap(_Halves(), w.speakers, w.side)
    assert h["estimate"] is False and h["gap_pct"] is None and "cannot apply" in h["reason"]
    # ... unless the caller says how to place held-out speakers: halves by id carry no
    # disparity, so the held-out gap of the worse half is near 0 and its interval covers 0
    h = heldout_gap(_Halves(), w.speakers, w.side, repeats=4, n_boot=300, assigner=_by_cut)
    assert h["estimate"] is True and h["splits"] == 8
    assert h["ci_pct"][0] < 0 < h["ci_pct"][1] and abs(h["gap_pct"]) < 15
    # placing every held-out speaker in a cohort the training fit does not have labels nobody
    h = heldout_gap(_Halves(), w.speakers, w.side, repeats=2, n_boot=0,
                    assigner=lambda found, sp, side: pd.Series("C", index=sp["speaker_id"].astype(str)))
    assert h["estimate"] is False and "both the bottom and the top" in h["reason"]


def test_deterministic_and_validated():
    w = simulate.geographic_world(seed=4)
    a = heldout_gap(GeographicDiscoverer(), w.speakers, w.side, repeats=2, n_boot=100, seed=3)
    b = heldout_gap(GeographicDiscoverer(), w.speakers.sample(frac=1.0, random_state=2), w.side, repeats=2,
                    n_boot=100, seed=3)
    assert a["gap_pct"] == pytest.approx(b["gap_pct"]) and a["per_repeat_gap_pct"] == pytest.approx(
        b["per_repeat_gap_pct"])
    with pytest.raises(UserInputError):
        heldout_gap(GeographicDiscoverer(), w.speakers, w.side, folds=1)


def _count_builds(monkeypatch):
    from fairaudit.discover import geographic

    builds = []
    real = geographic.build_windows
    monkeypatch.setattr(geographic, "build_windows", lambda *a, **k: builds.append(len(a[0])) or real(*a, **k))
    return builds


def test_geographic_folds_derive_their_windows_from_the_audit_fit(monkeypatch):
    """After the audit's fit the training folds derive their windows from its build (no
    neighbour search per fold); without cells the held-out figures are those of a new build
    per fold, exactly."""
    w = simulate.geographic_world(seed=4)
    builds = _count_builds(monkeypatch)
    audit = GeographicDiscoverer()
    audit.fit(w.speakers, w.side)
    derived = heldout_gap(audit, w.speakers, w.side, n_boot=200)
    assert builds == [len(w.speakers)]
    fresh = heldout_gap(GeographicDiscoverer(), w.speakers, w.side, n_boot=200)
    assert len(builds) == 1 + 10                     # 2 folds x 5 repetitions, each built anew
    assert derived == fresh and derived["gap_pct"] > 0


@pytest.mark.parametrize("planted", [True, False])
def test_geographic_heldout_with_cells_stays_sensible(planted, monkeypatch):
    """With cells (by design not what a new build per fold gives: the audit's cells and
    centres) the held-out gap still finds a planted +50 % metro and nothing in a null world."""
    w = simulate.geographic_world(n_speakers=3000, seed=0, planted=planted)
    builds = _count_builds(monkeypatch)
    audit = GeographicDiscoverer(max_locations=256, max_centres=100)
    audit.fit(w.speakers, w.side)
    out = heldout_gap(audit, w.speakers, w.side, n_boot=200)
    assert len(builds) == 1 and out["estimate"] and out["splits_without_estimate"] == 0
    lo, hi = out["ci_pct"]
    if planted:
        assert 15 < out["gap_pct"] < 85 and lo > 0
    else:
        assert abs(out["gap_pct"]) < 10 and lo < 0 < hi

def _slow_heldout(disc, speakers, side, folds, repeats, seed, fixed):
    """The held-out gap by its definition, with pandas: per repetition and fold, bottom and
    top ranked on the training speakers (cohort_table), the held-out speakers labelled."""
    sp = speakers.reset_index(drop=True)
    fold_of = speaker_folds(sp["speaker_id"], folds, repeats, seed, key=disc.key)
    full = disc.fit(sp, side).assignment if fixed else None
    per_repeat = []
    for r in range(repeats):
        placed = {"b": [], "t": []}
        for f in range(folds):
            train, test = sp.loc[fold_of[r] != f], sp.loc[fold_of[r] == f]
            if fixed:
                train_assign = full.reindex(train["speaker_id"]).dropna()
                test_assign = full.reindex(test["speaker_id"]).dropna()
            else:
                found = disc.fit(train, side)
                train_assign, test_assign = found.assignment, disc.assign(found.definition, test, side)
            summ = cohort_table(train, train_assign, {}, disc.min_speakers)[1]
            placed["b"] += list(test_assign.index[test_assign.to_numpy() == summ["bottom"]])
            placed["t"] += list(test_assign.index[test_assign.to_numpy() == summ["top"]])
        wer = {k: sp.set_index("speaker_id").loc[v, "errors"].sum() / sp.set_index("speaker_id").loc[v, "ref_words"].sum()
               for k, v in placed.items()}
        per_repeat.append(100 * (wer["b"] - wer["t"]) / wer["t"])
    return per_repeat


@pytest.mark.parametrize("fixed", [True, False])
def test_heldout_point_estimates_equal_the_definition(fixed):
    """The integer-position bookkeeping (codes looked up once, no per-fold reindex) gives the
    gaps of the definition exactly; only the interval's draws are the fast path's own."""
    if fixed:
        w = simulate.attribute_world(n_speakers=900, seed=2, planted=True)
        disc = AttributeDiscoverer(columns=["accent"])
    else:
        w = simulate.geographic_world(seed=6, planted=True)
        disc = GeographicDiscoverer(seed=6)
    sp = w.speakers.sample(frac=1.0, random_state=1)           # row order is not id order
    h = heldout_gap(disc, sp, w.side, folds=2, repeats=3, seed=4, n_boot=200)
    want = _slow_heldout(disc, sp, w.side, 2, 3, 4, fixed)
    assert h["per_repeat_gap_pct"] == pytest.approx(want, rel=1e-12)
    # three folds (training speakers are not one other fold's table)
    three = heldout_gap(disc, sp, w.side, folds=3, repeats=2, seed=4, n_boot=0)
    assert three["per_repeat_gap_pct"] == pytest.approx(_slow_heldout(disc, sp, w.side, 3, 2, 4, fixed), rel=1e-12)
    assert h["gap_pct"] == pytest.approx(np.mean(want), rel=1e-12)
    assert h["ci_pct"][0] < h["gap_pct"] < h["ci_pct"][1]
    # deterministic for a seed, intervals included
    again = heldout_gap(disc, sp, w.side, folds=2, repeats=3, seed=4, n_boot=200)
    assert again["ci_pct"] == h["ci_pct"]


def test_two_cohort_sums_from_totals_equal_the_full_product():
    """With every held-out speaker labelled bottom or top in every repetition (two
    cohorts), the bootstrap's product takes one label's sums as totals minus the rarer
    label's (summed over its carriers only): the same numbers as the full (labelled x 4 R)
    product; otherwise the full product."""
    from fairaudit.heldout import BOTTOM, OTHER, TOP, _repeat_sums

    rng = np.random.default_rng(0)
    n, repeats = 50, 3
    e, w = rng.integers(0, 30, n).astype(float), rng.integers(1, 200, n).astype(float)
    counts = rng.integers(0, 4, (6, n)).astype(float)
    # two cohorts (either label the rarer: a hot spot is bottom or top, the rest the other;
    # the rarer label's sums come from its carriers only), then three labels
    for labels in (rng.choice([BOTTOM, TOP], (repeats, n)), rng.choice([BOTTOM, TOP], (repeats, n), p=[0.1, 0.9]),
                   rng.choice([BOTTOM, TOP], (repeats, n), p=[0.9, 0.1]), rng.choice([OTHER, BOTTOM, TOP], (repeats, n))):
        labels = labels.astype(np.int8)
        labelled = np.flatnonzero((labels != OTHER).any(axis=0))
        x = np.column_stack([v[labelled] * (labels[r, labelled] == lab)
                             for r in range(repeats) for lab in (BOTTOM, TOP) for v in (e, w)])
        got = _repeat_sums(labels, labelled, x, repeats)(counts[:, labelled])
        np.testing.assert_array_equal(got, counts[:, labelled] @ x)


def test_fold_order_sorts_ids_as_python_strings():
    """speaker_folds puts speakers in the order Python sorts their ids (as the former Index
    round trip did), for ids of any length and characters, so the folds do not depend on
    row order."""
    from fairaudit.heldout import speaker_folds

    base = ["b", "a", "a\x00b", "ab", "é", "Z", "a b", "10", "9", "日本", "\U0001F600", "", "aa"]
    ids = np.array(base + [f"{v}{i}" for i, v in enumerate(base * 6)], dtype=object)   # unique ids
    keys = np.asarray(ids).astype(str)
    python_order = sorted(range(len(ids)), key=lambda i: str(keys[i]))
    np.testing.assert_array_equal(np.argsort(keys, kind="stable"), python_order)
    folds = speaker_folds(ids, folds=3, repeats=2, seed=5)
    shuffled = np.random.default_rng(1).permutation(len(ids))
    np.testing.assert_array_equal(speaker_folds(ids[shuffled], folds=3, repeats=2, seed=5), folds[:, shuffled])
