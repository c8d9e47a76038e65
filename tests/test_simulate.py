"""The simulation harness: worlds are seeded, look like real test sets and plant what they say."""
import numpy as np
import pandas as pd
import pytest

from fairaudit import simulate
from fairaudit.discover.base import wer_of

KINDS = ["geographic", "geodemographic", "automatic", "attribute"]


@pytest.mark.parametrize("kind", KINDS)
def test_world_is_deterministic_per_seed(kind):
    a, b, c = simulate.world(kind, seed=3), simulate.world(kind, seed=3), simulate.world(kind, seed=4)
    pd.testing.assert_frame_equal(a.speakers, b.speakers)
    assert list(a.planted) == list(b.planted)
    assert not a.speakers["errors"].equals(c.speakers["errors"])


@pytest.mark.parametrize("kind", KINDS)
def test_plant_is_about_ten_percent_and_fifty_percent_worse(kind):
    w = simulate.world(kind, n_speakers=3000, seed=1)
    sp = w.speakers.set_index("speaker_id")
    share = len(w.planted) / len(sp)
    assert 0.06 <= share <= 0.14, share
    inside = sp.index.isin(w.planted)
    ratio = wer_of(sp.errors[inside], sp.ref_words[inside]) / wer_of(sp.errors[~inside], sp.ref_words[~inside])
    assert 1.35 <= ratio <= 1.65, ratio
    assert w.truth["true_gap_pct"] == pytest.approx(50.0)


@pytest.mark.parametrize("kind", KINDS)
def test_null_world_plants_nothing_and_keeps_the_candidates(kind):
    null = simulate.world(kind, n_speakers=3000, seed=1, planted=False)
    assert len(null.planted) == 0 and null.truth["true_gap_pct"] == 0
    sp = null.speakers.set_index("speaker_id")
    inside = sp.index.isin(null.candidates)
    assert inside.sum() > 100
    ratio = wer_of(sp.errors[inside], sp.ref_words[inside]) / wer_of(sp.errors[~inside], sp.ref_words[~inside])
    assert 0.9 <= ratio <= 1.1, ratio


def test_speakers_are_heterogeneous_and_match_their_utterances():
    w = simulate.geographic_world(n_speakers=1000, seed=2, planted=False, utterances=True)
    sp, ut = w.speakers, w.utterances
    sums = ut.groupby("speaker_id")[["ref_words", "errors", "substitutions", "deletions", "insertions"]].sum()
    sums = sums.reindex(sp["speaker_id"])
    for col in sums.columns:
        assert (sums[col].to_numpy() == sp[col].to_numpy()).all(), col
    assert (sp["substitutions"] + sp["deletions"] + sp["insertions"] == sp["errors"]).all()
    assert (ut.groupby("speaker_id").size().reindex(sp["speaker_id"]).to_numpy() == sp["utterances"]).all()
    assert ut["ref_words"].between(3, 20).all()
    # Beta(0.1, concentration 20) rates: per-speaker WER spread far beyond binomial noise alone.
    p = wer_of(sp.errors, sp.ref_words)
    binomial_sd = np.sqrt(p * (1 - p) / sp["ref_words"]).mean()
    assert sp["wer"].std() > 1.8 * binomial_sd
    assert 8.5 <= sp["utterances"].mean() <= 9.5


def test_geographic_plant_is_the_disc_around_the_city():
    w = simulate.geographic_world(seed=0)
    sp = w.speakers.set_index("speaker_id")
    d = simulate.great_circle_deg(*w.truth["centre"], sp["lat"], sp["lon"])
    assert set(sp.index[d <= 0.5]) == set(w.planted)
    assert set(sp.loc[w.planted, "city"]) == {"New York"}


def test_geodemographic_plant_is_the_majority_black_zips():
    w = simulate.geodemographic_world(seed=0)
    census = w.side.census
    assert census.attrs["share_columns"]["pct_black"] == "fraction"
    shares = census[["pct_black", "pct_white", "pct_hispanic", "pct_asian"]].sum(axis=1)
    assert np.allclose(shares, 1.0, atol=1e-3)
    black = census.loc[w.speakers["zip"].to_numpy(), "pct_black"].to_numpy()
    assert set(w.speakers["speaker_id"][black > 0.5]) == set(w.planted)


def test_embedding_world_blob_and_side_inputs():
    w = simulate.embedding_world(seed=0)
    assert w.side.embeddings.shape == (500, 32)
    assert list(w.side.embedding_ids) == list(w.speakers["speaker_id"])
    assert set(w.speakers["speaker_id"][w.speakers["blob"] == 0]) == set(w.planted)


def test_attribute_world_intersection_plant():
    w = simulate.attribute_world(n_speakers=2000, seed=0, planted_on="age_band=65+,gender=male")
    sp = w.speakers
    expected = sp["speaker_id"][(sp["age_band"] == "65+") & (sp["gender"] == "male")]
    assert set(expected) == set(w.planted)
    with pytest.raises(ValueError):
        simulate.attribute_world(planted_on="accent=martian")


def test_precision_recall():
    assert simulate.precision_recall(["a", "b"], ["b", "c", "d"]) == (0.5, 1 / 3)
    assert simulate.precision_recall([], ["a"]) == (0.0, 0.0)
    assert np.isnan(simulate.precision_recall(["a"], [])[1])
