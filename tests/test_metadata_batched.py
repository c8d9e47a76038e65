"""The metadata tree grown for many count sets at once (the permutation null's lockstep
growth and its permuted cell tables) equals one tree grown per count set, exactly."""
import math

import numpy as np
import pytest

from fairaudit import simulate
from fairaudit.discover.metadata import (_CE, _CW, MetadataDiscoverer, _group_sums, _grow_batched,
                                         _permuted_cell_tables)


def _prepared(seed, ties):
    w = simulate.attribute_world(n_speakers=500, planted=True, seed=seed, planted_on="age_band=65+,gender=male")
    sp = w.speakers.copy()
    rng = np.random.default_rng(seed)
    sp["age"] = np.round(rng.uniform(18, 80, len(sp)))
    sp.loc[sp.index[::13], "accent"] = "NA"
    if ties:   # few distinct counts: exact ties between cuts, columns and nodes
        sp["errors"] = rng.integers(0, 3, len(sp))
        sp["ref_words"] = 10
    return sp


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("params", [{}, {"criterion": "z", "max_leaves": 9, "min_score": 0.0},
                                    {"criterion": "difference", "max_depth": 2}, {"max_leaves": 3, "max_depth": 1}])
def test_lockstep_trees_equal_one_tree_each(ties, params):
    sp = _prepared(4, ties)
    disc = MetadataDiscoverer(min_speakers=12, **params)
    found = disc.fit(sp, None)
    prep = disc._held_prepare(sp, found)
    assert prep.cells is not None
    rng = np.random.default_rng(1)
    n = len(sp)
    takes = np.stack([np.arange(n)] + [rng.permutation(n) for _ in range(40)])
    e, w = sp["errors"].to_numpy(dtype=float), sp["ref_words"].to_numpy(dtype=float)
    tables = np.stack([t.copy() for t in _permuted_cell_tables(prep, e, w, takes)])
    total = math.prod(c.n_bins + 1 for c in prep.columns)
    grown = _grow_batched(prep, tables)
    sizes = set()
    for take, table, leaves in zip(takes, tables, grown):
        err, words = e[take][prep.rows], w[take][prep.rows]
        np.testing.assert_array_equal(table, _group_sums(prep.cells, total, err, words))
        _, order, _ = disc._grow(prep, err, words, members=False)
        assert len(leaves) == len(order)
        for got, node in zip(leaves, order):
            np.testing.assert_array_equal(got, node.cells)
        sizes.add(len(order))
    assert max(sizes) > 1


def test_lockstep_statistics_on_the_real_fit():
    """The unpermuted row gives the audit's own statistic."""
    sp = _prepared(6, False)
    disc = MetadataDiscoverer(min_speakers=12)
    found = disc.fit(sp, None)
    got = disc.permuted_statistics(sp, None, found, np.arange(len(sp))[None, :])
    assert got["statistics"][0] == found.statistic
