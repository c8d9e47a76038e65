"""Streaming and Dask engines give the same scored set and report as the in-memory engine."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairaudit.audit import audit, score_input
from fairaudit.engines.accumulate import SeenIds
from fairaudit.errors import UserInputError
from fairaudit.io.readers import InputSpec

AUDIT = dict(by=["gender"], n_boot=30, n_perm=5, min_speakers=5, seed=1)


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array("the a cat dog sat on mat hello world, Fine. big".split())
    refs = [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(n)]
    hyps = [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(n)]
    utt = [f"u{i}" for i in range(n)]
    spk = [f"s{rng.integers(0, 30):02d}" for _ in range(n)]
    # Duplicates planted across chunks/partitions (first kept), one whose first copy has
    # no speaker (so it is dropped twice for different reasons), blank ids, a punctuation-only
    # reference (empty after normalisation).
    for i, j in ((10, 3), (95, 12), (170, 90), (235, 200), (121, 5)):
        utt[i] = utt[j]
    utt[20], utt[77] = "", "  "
    spk[5], spk[150] = "", " "
    refs[60], refs[61] = "", ", ."
    df = pd.DataFrame({"utt_id": utt, "speaker_id": spk, "reference": refs, "hypothesis": hyps})
    df["gender"] = ["f" if s and int(s[1:] or 0) % 2 else "m" for s in (x.strip() for x in spk)]
    df["lat"] = [40.0 + (int(s.strip()[1:]) if s.strip() else 0) * 0.3 for s in spk]
    df["lon"] = [-100.0 + (int(s.strip()[1:]) if s.strip() else 0) * 0.5 for s in spk]
    return df


def _same_scored(a, b) -> None:
    pd.testing.assert_frame_equal(a.speakers, b.speakers)
    pd.testing.assert_frame_equal(a.utterances.drop(columns=["reference", "hypothesis"]), b.utterances)
    assert a.accounting.to_dict() == b.accounting.to_dict()


def _report(result) -> dict:
    rep = json.loads(result.to_json())
    rep["inputs"]["files"] = None  # paths and hashes of different files
    # The fingerprint hashes those files too (one Parquet vs a folder of parts); its
    # options must still be the same.
    rep["inputs"]["fingerprint"] = rep["inputs"]["fingerprint"]["options"]
    return rep


def test_seen_ids_lsm():
    seen = SeenIds()
    rng = np.random.default_rng(0)
    added = set()
    for _ in range(40):
        h = np.unique(rng.integers(0, 5000, 60).astype(np.uint64))
        new = h[~seen.contains(h)]
        assert set(new.tolist()) == set(h.tolist()) - added
        seen.add(new)
        added |= set(new.tolist())
    assert len(seen) == len(added) and len(seen.runs) <= 12


@pytest.mark.parametrize("fmt", ["parquet", "csv", "tsv", "jsonl"])
def test_streaming_identical(tmp_path, fmt):
    df = _frame()
    path = tmp_path / f"u.{fmt}"
    if fmt == "parquet":
        df.to_parquet(path, row_group_size=50, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_csv(path, index=False, sep="," if fmt == "csv" else "\t")
        with open(path, "a") as fh:  # an unparsable row
            fh.write("only,two\n" if fmt == "csv" else "only\ttwo\n")
    spec = InputSpec(path=str(path))
    a = score_input(spec, engine="default")
    b = score_input(spec, engine="streaming", chunk_rows=7)
    _same_scored(a, b)
    assert b.accounting.dropped.keys() >= {"duplicate_utt_id", "missing_utt_id", "missing_speaker_id",
                                           "empty_reference"}
    if fmt == "csv":
        assert b.accounting.dropped["unparsable_row"] == 1
    ra = audit(spec, engine="default", **AUDIT)
    rb = audit(spec, engine="streaming", chunk_rows=7, **AUDIT)
    assert ra.to_json() == rb.to_json()
    if fmt == "parquet":
        rep = json.loads(rb.to_json())
        worst = [w for e in rep["discoverers"].values() for w in (e.get("worst_utterances") or [])]
        assert worst and all("alignment" in w for w in worst)


def test_streaming_user_errors(tmp_path):
    path = tmp_path / "u.parquet"
    _frame().to_parquet(path, index=False)
    with pytest.raises(UserInputError, match="chunk-rows"):
        score_input(InputSpec(path=str(path)), engine="streaming", chunk_rows=0)
    with pytest.raises(UserInputError, match="unknown engine"):
        score_input(InputSpec(path=str(path)), engine="warp")
    with pytest.raises(UserInputError, match="hyp-col"):
        score_input(InputSpec(path=str(path), hyp_col="nope"), engine="streaming")
    with pytest.raises(UserInputError, match="default engine"):
        score_input(InputSpec(path=str(path), errors_col="e", ref_words_col="w"), engine="streaming")


@pytest.fixture(scope="module")
def dask_client_address():
    pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install 'fairaudit[dask]')")
    distributed = pytest.importorskip("distributed", reason="distributed is not installed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_identical(tmp_path, dask_client_address):
    df = _frame()
    whole = tmp_path / "all.parquet"
    df.to_parquet(whole, index=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k, start in enumerate(range(0, len(df), 80)):
        df.iloc[start:start + 80].to_parquet(parts / f"part{k}.parquet", row_group_size=25, index=False)
    a = score_input(InputSpec(path=str(whole)), engine="default")
    b = score_input(InputSpec(path=str(parts)), engine="dask", scheduler=dask_client_address)
    _same_scored(a, b)
    ra = audit(str(whole), engine="default", **AUDIT)
    rb = audit(str(parts), engine="dask", scheduler=dask_client_address, **AUDIT)
    assert _report(ra) == _report(rb)


def test_dask_missing_is_a_user_error(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "u.parquet"
    _frame().to_parquet(path, index=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(UserInputError, match=r"pip install 'fairaudit\[dask\]'"):
        score_input(InputSpec(path=str(path)), engine="dask")


def test_dask_unreachable_scheduler(tmp_path):
    pytest.importorskip("distributed", reason="distributed is not installed")
    path = tmp_path / "u.parquet"
    _frame().to_parquet(path, index=False)
    with pytest.raises(UserInputError, match="cannot reach the Dask scheduler"):
        score_input(InputSpec(path=str(path)), engine="dask", scheduler="tcp://127.0.0.1:1")


@pytest.mark.parametrize("unit,alignment", [("char", "jiwer"), ("mixed", "sclite")])
def test_streaming_identical_in_other_units(tmp_path, unit, alignment):
    df = _frame()
    # Some Chinese, so mixed and char differ from words.
    df.loc[::3, "reference"] = df.loc[::3, "reference"].astype(str) + " 我喜欢学习"
    df.loc[::3, "hypothesis"] = df.loc[::3, "hypothesis"].astype(str) + " 我喜换学"
    path = tmp_path / "u.parquet"
    df.to_parquet(path, row_group_size=50, index=False)
    spec = InputSpec(path=str(path))
    a = score_input(spec, engine="default", unit=unit, alignment=alignment)
    b = score_input(spec, engine="streaming", chunk_rows=7, unit=unit, alignment=alignment)
    _same_scored(a, b)
    assert (b.unit, b.alignment) == (unit, alignment)
    words = score_input(spec, engine="default")
    assert a.overall["ref_words"] > words.overall["ref_words"]
    ra = audit(spec, engine="default", unit=unit, alignment=alignment, **AUDIT)
    rb = audit(spec, engine="streaming", chunk_rows=7, unit=unit, alignment=alignment, **AUDIT)
    assert ra.to_json() == rb.to_json()


def test_duplicate_mask_fast_path_equals_pandas():
    """check_rows' duplicate mask: the all-distinct fast path and the fallback give
    pandas' duplicated(keep="first") on Arrow and object ids alike."""
    import numpy as np
    import pandas as pd

    from fairaudit.speakers import _clean_ids, _duplicated

    gen = np.random.default_rng(3)
    for n, pool in ((1000, 10**6), (1000, 300), (5, 2)):
        raw = pd.Series([f"u{v}" for v in gen.integers(0, pool, n)], dtype="str")
        for ids in (_clean_ids(raw), raw.astype(object)):
            np.testing.assert_array_equal(_duplicated(ids), ids.duplicated(keep="first").to_numpy())
