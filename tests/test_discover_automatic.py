"""Automatic discoverer (k-means on speaker embeddings) and the embeddings reader, on data with known truth."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from fairaudit.discover import REGISTRY, SideInputs
from fairaudit.discover import kmeans
from fairaudit.discover.automatic import NO_EMBEDDING, AutomaticDiscoverer
from fairaudit.discover.base import wer_of
from fairaudit.errors import UserInputError
from fairaudit.io.embeddings import read_embeddings

N, DIM, BLOBS, PLANTED_BLOB = 2000, 32, 8, 3
ATLANTA = (33.75, -84.39)


def make_data(seed: int = 1, plant: bool = True, n: int = N):
    """Speakers in 8 Gaussian blobs (32-d); blob PLANTED_BLOB (~10 %) has twice the error rate if ``plant``."""
    rng = np.random.default_rng(seed)
    probs = np.full(BLOBS, 0.9 / (BLOBS - 1))
    probs[PLANTED_BLOB] = 0.10
    blob = rng.choice(BLOBS, size=n, p=probs)
    centers = rng.normal(size=(BLOBS, DIM))
    emb = (centers[blob] + 0.6 * rng.normal(size=(n, DIM))).astype(np.float32)
    ids = np.array([f"spk{i:05d}" for i in range(n)], dtype=object)
    words = rng.integers(60, 201, size=n)
    p = np.clip(0.10 * rng.lognormal(0.0, 0.3, size=n), 0.01, 0.5)
    planted = blob == PLANTED_BLOB
    if plant:
        p = np.where(planted, 2 * p, p)
    speakers = pd.DataFrame({
        "speaker_id": ids, "utterances": rng.integers(5, 20, size=n), "ref_words": words,
        "substitutions": 0, "deletions": 0, "insertions": 0, "errors": rng.binomial(words, p),
    })
    speakers["wer"] = speakers["errors"] / speakers["ref_words"]
    speakers["gender"] = rng.choice(["female", "male"], size=n)
    speakers["age_band"] = rng.choice(["18-29", "30-44", "45-64", "65+"], size=n)
    # The planted blob's speakers live around Atlanta, the others around Chicago.
    speakers["lat"] = np.where(planted, ATLANTA[0], 41.88) + rng.uniform(-0.2, 0.2, size=n)
    speakers["lon"] = np.where(planted, ATLANTA[1], -87.63) + rng.uniform(-0.2, 0.2, size=n)
    speakers["zip"] = "30303"
    side = SideInputs(embeddings=emb, embedding_ids=ids.copy())
    return speakers, side, set(ids[planted])


def cohort_wers(speakers: pd.DataFrame, assignment: pd.Series, min_speakers: int = 20) -> pd.DataFrame:
    sp = speakers.set_index("speaker_id").loc[assignment.index]
    rows = []
    for cid, members in sp.groupby(assignment.to_numpy()):
        rows.append({"cohort": cid, "speakers": len(members),
                     "wer": wer_of(members["errors"].to_numpy(), members["ref_words"].to_numpy()),
                     "ids": set(members.index)})
    table = pd.DataFrame(rows)
    return table[table["speakers"] >= min_speakers].sort_values("wer", ascending=False)


def gap_pct(table: pd.DataFrame) -> float:
    return 100 * (table["wer"].iloc[0] - table["wer"].iloc[-1]) / table["wer"].iloc[-1]


# ---------------------------------------------------------------- known truth


@pytest.mark.parametrize("k", [8, 10])
def test_planted_blob_is_found(k):
    speakers, side, planted = make_data()
    found = AutomaticDiscoverer(k=k).fit(speakers, side)
    assert found.assignment.index.is_unique and len(found.assignment) == N
    table = cohort_wers(speakers, found.assignment)
    bottom = table.iloc[0]["ids"]
    precision = len(bottom & planted) / len(bottom)
    overall = wer_of(speakers["errors"], speakers["ref_words"])
    above = set().union(*table.loc[table["wer"] > overall, "ids"])
    recall = len(above & planted) / len(planted)
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall
    assert gap_pct(table) > 60


def test_no_planted_disparity_gives_small_gap():
    speakers, side, _ = make_data(plant=False)
    gap = gap_pct(cohort_wers(speakers, AutomaticDiscoverer(k=10).fit(speakers, side).assignment))
    planted_speakers, planted_side, _ = make_data(plant=True)
    planted_gap = gap_pct(cohort_wers(planted_speakers,
                                      AutomaticDiscoverer(k=10).fit(planted_speakers, planted_side).assignment))
    assert gap < 25, gap
    assert planted_gap > 3 * gap


def test_auto_k_finds_about_the_blob_count():
    speakers, side, _ = make_data(n=1000)  # 1000 speakers: candidates 2..15 still (1000 // 20 = 50)
    found = AutomaticDiscoverer(k="auto").fit(speakers, side)
    sel = found.details["k_selection"]
    assert sel["criterion"] == "silhouette" and set(sel["scores"]) == {str(k) for k in range(2, 16)}
    assert 7 <= found.details["k"] <= 9
    assert found.params["k_requested"] == "auto" and found.params["k"] == found.details["k"]


# ---------------------------------------------------------------- outputs


def test_details_labels_and_descriptions():
    speakers, side, planted = make_data()
    found = AutomaticDiscoverer(k=8, max_projection_points=500).fit(speakers, side)
    ids = sorted(found.labels)
    assert ids == [f"C0{i}" for i in range(1, 9)]
    sizes = [found.cohort_details[c]["size"] for c in ids]
    assert sizes == sorted(sizes, reverse=True)  # numbered by size
    d = found.details
    assert d["k"] == 8 and d["k_selection"] == "fixed" and d["algorithm"] == "KMeans"
    proj = d["projection"]
    assert len(proj["x"]) == len(proj["y"]) == len(proj["cohort"]) == len(proj["speaker_id"]) == 500
    # The projection is the PCA of the sampled speakers' unit-length embeddings: recomputed
    # here with an SVD (each axis up to its sign) and with its share of the variance.
    pos = pd.Index(side.embedding_ids).get_indexer(proj["speaker_id"])
    x = side.embeddings[pos].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x -= x.mean(axis=0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    for axis, coord in enumerate(("x", "y")):
        corr = np.corrcoef(u[:, axis] * sv[axis], proj[coord])[0, 1]
        assert abs(corr) > 0.9999, (coord, corr)
    assert d["explained_variance_ratio"] == pytest.approx((sv[:2] ** 2 / (sv ** 2).sum()).tolist(), abs=1e-5)
    bottom = max(ids, key=lambda c: len(set(found.assignment.index[found.assignment == c]) & planted))
    cd = found.cohort_details[bottom]
    assert set(cd["attribute_mix"]) == {"gender", "age_band"}  # not ids, counts, lat/lon, zip
    # the mix is the members' own shares, counted here from the speaker table
    members = speakers.set_index("speaker_id").loc[found.assignment.index[found.assignment == bottom]]
    for col in ("gender", "age_band"):
        share = members[col].value_counts(normalize=True)
        assert cd["attribute_mix"][col] == pytest.approx(share.round(4).to_dict(), abs=1e-4), col
    assert 0 < cd["centroid_norm"] <= 1
    assert cd["main_region"] == "Georgia"
    assert found.labels[bottom].startswith(f"cluster {bottom} ({cd['size']} speakers): ")
    assert "mostly Georgia" in found.labels[bottom]
    import json
    json.dumps(found.details), json.dumps(found.cohort_details), json.dumps(found.params)


def test_not_audited_accounting():
    speakers, side, _ = make_data()
    keep = np.ones(N, bool)
    keep[:37] = False  # 37 speakers without an embedding
    extra = np.array([f"ghost{i}" for i in range(11)], dtype=object)  # 11 embeddings without scores
    side = SideInputs(embeddings=np.vstack([side.embeddings[keep], np.ones((11, DIM), np.float32)]),
                      embedding_ids=np.concatenate([side.embedding_ids[keep], extra]))
    found = AutomaticDiscoverer(k=8).fit(speakers, side)
    assert found.not_audited == {NO_EMBEDDING: 37}
    assert found.details["embeddings_without_scores"] == 11
    assert len(found.assignment) == N - 37 and not set(found.assignment.index) & set(speakers["speaker_id"][:37])
    assert AutomaticDiscoverer().missing_inputs(speakers, SideInputs()) == \
        "no speaker embeddings (pass --embeddings FILE [--embedding-ids FILE])"
    assert AutomaticDiscoverer().missing_inputs(speakers, side) is None
    assert "automatic" in REGISTRY


def test_deterministic_and_row_order_free():
    speakers, side, _ = make_data()
    a = AutomaticDiscoverer(k=10, seed=3).fit(speakers, side)
    shuffled = speakers.sample(frac=1.0, random_state=5).reset_index(drop=True)
    b = AutomaticDiscoverer(k=10, seed=3).fit(shuffled, side)
    pd.testing.assert_series_equal(a.assignment.sort_index(), b.assignment.sort_index())
    assert a.labels == b.labels and a.cohort_details == b.cohort_details


def test_statistics_reuse_the_audits_clusters(monkeypatch):
    """No cache: the audit's own clustering is re-measured by the permutation null and the
    held-out gap (fixed cohorts), so k-means runs once per audit, not once per re-fit."""
    from fairaudit import stats
    from fairaudit.audit import run_discoverer

    calls = []
    real = kmeans.make_kmeans

    def counting(k, n, seed):
        calls.append(k)
        return real(k, n, seed)

    monkeypatch.setattr(kmeans, "make_kmeans", counting)
    speakers, side, _ = make_data(n=600)
    rng = np.random.default_rng(0)
    utts = pd.DataFrame({"utt_id": [f"u{i}" for i in range(2 * len(speakers))],
                         "speaker_id": np.repeat(speakers["speaker_id"].to_numpy(), 2)})
    half = speakers["ref_words"].to_numpy() // 2
    utts["ref_words"] = np.column_stack([half, speakers["ref_words"].to_numpy() - half]).ravel()
    e1 = rng.binomial(speakers["errors"].to_numpy(), 0.5)
    utts["errors"] = np.column_stack([e1, speakers["errors"].to_numpy() - e1]).ravel()
    disc = AutomaticDiscoverer(k=6, max_projection_points=0)
    entry, assignment = run_discoverer(disc, speakers, side)
    assert len(calls) == 1
    stats.add_statistics(entry, disc, speakers, utts, side, assignment, n_boot=50, n_perm=30, seed=0, workers=1)
    assert len(calls) == 1, "the permutation null or the held-out gap ran k-means again"
    assert entry["permutation"]["n"] == 30 and entry["heldout"]["estimate"] is True
    # a re-fit on different speakers is a different clustering (and runs k-means)
    AutomaticDiscoverer(k=6, max_projection_points=0).fit(speakers.iloc[:300], side)
    assert len(calls) == 2


# ---------------------------------------------------------------- reader


def test_npy_parquet_and_csv_inputs_agree(tmp_path):
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(5, 4)).astype(np.float32)
    ids = [f"s{i}" for i in range(5)]
    np.save(tmp_path / "e.npy", mat)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    wide = pd.DataFrame(mat, columns=[f"e{j}" for j in range(4)])
    wide.insert(0, "speaker_id", ids)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    wide.to_parquet(tmp_path / "wide.parquet", index=False)
    listed = pd.DataFrame({"speaker_id": ids, "embedding": list(mat.astype(np.float64))})
    listed.to_parquet(tmp_path / "list.parquet", index=False)
    pd.DataFrame({"speaker_id": ids, "embedding": [str(list(map(float, r))) for r in mat]}).to_csv(
        tmp_path / "list.csv", index=False)
    m0, i0, info0 = read_embeddings(str(tmp_path / "e.npy"), str(tmp_path / "ids.txt"))
    assert info0 == {"rows": 5, "source": "npy", "format": "npy", "keyed_by": "speaker", "unknown_utterances": 0,
                     "ignored_columns": [], "dim": 4, "speakers": 5}
    assert m0.dtype == np.float32 and list(i0) == ids
    for name in ("wide.csv", "wide.parquet", "list.parquet", "list.csv"):
        m, i, info = read_embeddings(str(tmp_path / name))
        assert info["source"] == "table" and info["keyed_by"] == "speaker" and info["dim"] == 4, name
        assert list(i) == ids and m.dtype == np.float32
        np.testing.assert_allclose(m, mat, rtol=1e-6, err_msg=name)


def test_per_utterance_vectors_are_averaged_exactly(tmp_path):
    utt = pd.DataFrame({"utt_id": ["u1", "u2", "u3", "u4", "u5"],
                        "e0": [1.0, 3.0, 10.0, 7.0, 100.0], "e1": [2.0, 6.0, -4.0, 1.0, 100.0]})
    utt.to_parquet(tmp_path / "utt.parquet", index=False)
    mapping = pd.Series(["b", "b", "a", "b"], index=["u1", "u2", "u3", "u4"])  # u5 unknown
    m, ids, info = read_embeddings(str(tmp_path / "utt.parquet"), utt_to_speaker=mapping)
    assert list(ids) == ["a", "b"]
    np.testing.assert_array_equal(m, np.array([[10.0, -4.0], [11.0 / 3, 3.0]], dtype=np.float32))
    assert info["keyed_by"] == "utterance" and info["unknown_utterances"] == 1 and info["rows"] == 5
    # without a mapping, the table's own speaker_id column says whose utterance it is
    utt.assign(speaker_id=["b", "b", "a", "b", "c"]).to_csv(tmp_path / "utt.csv", index=False)
    m2, ids2, info2 = read_embeddings(str(tmp_path / "utt.csv"))
    assert list(ids2) == ["a", "b", "c"] and info2["unknown_utterances"] == 0
    np.testing.assert_array_equal(m2[:2], m)


def test_embeddings_file_to_fit(tmp_path):
    speakers, side, planted = make_data()
    np.save(tmp_path / "e.npy", side.embeddings)
    (tmp_path / "ids.txt").write_text("\n".join(side.embedding_ids) + "\n")
    mat, ids, _ = read_embeddings(str(tmp_path / "e.npy"), str(tmp_path / "ids.txt"))
    found = AutomaticDiscoverer(k=8).fit(speakers, SideInputs(embeddings=mat, embedding_ids=ids))
    bottom = cohort_wers(speakers, found.assignment).iloc[0]["ids"]
    assert len(bottom & planted) / len(bottom) >= 0.9


# ---------------------------------------------------------------- user errors


def one_line_error(fn, *words):
    with pytest.raises(UserInputError) as exc:
        fn()
    text = str(exc.value)
    assert "\n" not in text, text
    for w in words:
        assert w in text, (w, text)
    return text


def test_reader_user_errors(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "e.npy"), str(tmp_path / "ids.txt")),
                   "e.npy has 3 rows", "ids.txt has 2 ids")
    one_line_error(lambda: read_embeddings(str(tmp_path / "e.npy")), "--embedding-ids FILE")
    one_line_error(lambda: read_embeddings(str(tmp_path / "e.npy"), str(tmp_path / "nope.txt")),
                   "nope.txt", "--embedding-ids FILE")
    bad = np.zeros((3, 2), np.float32)
    bad[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    (tmp_path / "ids3.txt").write_text("a\nb\nc\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "nan.npy"), str(tmp_path / "ids3.txt")),
                   "row 1", "'b'", "non-finite")
    (tmp_path / "nan.csv").write_text("speaker_id,e0,e1\na,1,2\nb,3,\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "nan.csv")), "nan.csv", "line 3", "non-finite")
    (tmp_path / "dup.csv").write_text("speaker_id,e0,e1\na,1,2\nb,3,4\na,5,6\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "dup.csv")), "line 4", "'a'", "appears again")
    (tmp_path / "text.csv").write_text("speaker_id,e0,e1\na,1,2\nb,x,4\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "text.csv")), "'e0'", "line 3")
    (tmp_path / "noid.csv").write_text("who,e0\na,1\n")
    one_line_error(lambda: read_embeddings(str(tmp_path / "noid.csv")), "speaker_id")


def test_discoverer_user_errors():
    speakers, side, _ = make_data()
    for k in (1, "many", 2.5):
        one_line_error(lambda: AutomaticDiscoverer(k=k).fit(speakers, side), "--k")
    one_line_error(lambda: AutomaticDiscoverer(k=500).fit(speakers, side), "--automatic-k 100 or less")
    one_line_error(lambda: AutomaticDiscoverer(min_speakers=0).fit(speakers, side), "--min-speakers")
    one_line_error(lambda: AutomaticDiscoverer().fit(speakers, SideInputs()), "--embeddings FILE")
    stranger = SideInputs(embeddings=side.embeddings, embedding_ids=np.array([f"x{i}" for i in range(N)]))
    assert "none of the" in AutomaticDiscoverer().missing_inputs(speakers, stranger)
    one_line_error(lambda: AutomaticDiscoverer().fit(speakers, stranger), "none of the", "--embedding-ids")
