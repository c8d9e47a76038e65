"""The synthetic sample data set: reproducible, small, and carrying its planted disparities."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FILES = ["utterances.csv", "speakers.csv", "census.csv", "embeddings.npy",
         "embedding_ids.txt", "planted.json"]
GROUPS = ("geographic", "geodemographic", "automatic")


def _load_generator():
    spec = importlib.util.spec_from_file_location("sample_data_generate", SAMPLE / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _norm(text: str) -> str:
    """The default normaliser in plain Python: lower-case, punctuation to spaces."""
    text = re.sub(r"[^\w' ]+", " ", text.lower())
    text = re.sub(r"''+|' |'$|^'| '", " ", text)
    return re.sub(r" +", " ", text).strip()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    gen = _load_generator()
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    gen.main(a)
    gen.main(b, seed=gen.DEFAULT_SEED)
    return gen, a, b


def test_generator_is_deterministic(generated):
    _, a, b = generated
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_committed_files_match_generator(generated):
    # Fails if sample_data/ was edited by hand or not regenerated after a generator change
    # (or, in principle, if a numpy release changed its random streams).
    _, a, _ = generated
    for name in FILES:
        assert (SAMPLE / name).read_bytes() == (a / name).read_bytes(), name


def test_other_seed_differs(tmp_path):
    gen = _load_generator()
    gen.main(tmp_path, seed=1)
    assert (tmp_path / "utterances.csv").read_bytes() != (SAMPLE / "utterances.csv").read_bytes()


def test_total_size_under_5mb():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024


def test_zips_are_five_char_strings_with_leading_zeros():
    for name in ("speakers.csv", "census.csv"):
        frame = pd.read_csv(SAMPLE / name, dtype={"zip": str})
        zips = frame["zip"].dropna()
        assert len(zips) == len(frame)
        assert zips.str.fullmatch(r"\d{5}").all(), name
        assert zips.str.startswith("0").any(), name
        assert re.search(r'"0\d{4}"', (SAMPLE / name).read_text()), name  # quoted on disk


def test_file_shapes_and_accounting_rows():
    utts = pd.read_csv(SAMPLE / "utterances.csv", dtype=str, keep_default_na=False)
    spk = pd.read_csv(SAMPLE / "speakers.csv", dtype={"zip": str})
    census = pd.read_csv(SAMPLE / "census.csv", dtype={"zip": str})
    planted = json.loads((SAMPLE / "planted.json").read_text())
    emb = np.load(SAMPLE / "embeddings.npy")
    ids = (SAMPLE / "embedding_ids.txt").read_text().split("\n")[:-1]

    assert list(utts.columns) == ["utt_id", "speaker_id", "reference", "hypothesis"]
    assert list(spk.columns) == ["speaker_id", "lat", "lon", "zip", "gender", "age_band"]
    assert emb.dtype == np.float32 and emb.shape == (len(spk), 64)
    assert ids == spk["speaker_id"].tolist()
    assert 5500 <= len(utts) <= 6500 and utts["reference"].nunique() >= 300

    bad = planted["bad_rows"]
    assert (utts["reference"] == "").sum() == 3 == len(bad["empty_reference"])
    assert ((utts["reference"] == "") & (utts["hypothesis"] != "")).sum() == 1
    assert (utts["speaker_id"] == "").sum() == 2 == len(bad["missing_speaker_id"])
    dup = utts[utts["utt_id"].duplicated(keep=False)]
    assert sorted(dup["utt_id"].unique()) == sorted(
        [bad["duplicate_utt_id_exact_copy"], bad["duplicate_utt_id_different_utterance"]])

    na = planted["not_audited"]
    assert sorted(spk.loc[spk["lat"].isna(), "speaker_id"]) == na["missing_latlon"]
    assert sorted(spk.loc[(spk["lat"] == 0) & (spk["lon"] == 0), "speaker_id"]) == na["zero_latlon"]
    assert sorted(spk.loc[~spk["zip"].isin(census["zip"]), "speaker_id"]) == na["zip_not_in_census"]


def test_planted_groups_match_their_rules():
    spk = pd.read_csv(SAMPLE / "speakers.csv", dtype={"zip": str})
    census = pd.read_csv(SAMPLE / "census.csv", dtype={"zip": str})
    planted = json.loads((SAMPLE / "planted.json").read_text())
    sets = [set(planted[g]["speaker_ids"]) for g in GROUPS]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])

    box = planted["geographic"]["bbox"]
    inside = spk["lat"].between(box["lat_min"], box["lat_max"]) & spk["lon"].between(
        box["lon_min"], box["lon_max"])
    assert set(spk.loc[inside, "speaker_id"]) == sets[0]

    merged = spk.merge(census, on="zip", how="left")
    assert set(merged.loc[merged["pct_black"] > 0.5, "speaker_id"]) == sets[1]
    assert (census["pct_black"] <= 0.5).sum() > 0.8 * len(census)
    shares = census[["pct_white", "pct_black", "pct_hispanic", "pct_asian"]]
    assert ((shares >= 0) & (shares <= 1)).all().all() and (shares.sum(axis=1) <= 1 + 1e-9).all()
    assert census["median_income"].between(25_000, 180_000).all()
    for g in GROUPS:
        assert 0.08 * len(spk) <= len(planted[g]["speaker_ids"]) <= 0.11 * len(spk)


def test_planted_groups_have_higher_wer():
    import jiwer  # a core dependency: a broken install fails here
    utts = pd.read_csv(SAMPLE / "utterances.csv", dtype=str, keep_default_na=False)
    planted = json.loads((SAMPLE / "planted.json").read_text())
    utts = utts[(utts["reference"] != "") & (utts["speaker_id"] != "")]
    utts = utts.drop_duplicates("utt_id")
    group = {s: g for g in GROUPS for s in planted[g]["speaker_ids"]}
    labels = utts["speaker_id"].map(group).fillna("rest")

    def wer(rows):
        out = jiwer.process_words([_norm(r) for r in rows["reference"]],
                                  [_norm(h) for h in rows["hypothesis"]])
        return out.wer

    overall = wer(utts)
    rest = wer(utts[labels == "rest"])
    assert 0.09 <= overall <= 0.12
    for g in GROUPS:
        ratio = wer(utts[labels == g]) / rest
        assert ratio > 1.4, (g, ratio)
        assert abs(ratio - planted[g]["multiplier"]) < 0.5, (g, ratio)
