"""Real public data (per-utterance WERs of five commercial recognisers) from ../shared/realdata.

The folder sits beside the repository when shared (never copied into it); the test skips
with a reason when it is absent.  Its layout is not fixed here, so the test finds a table
with per-utterance WER columns and a reference word count (or reference text) and checks
fairaudit's precomputed-count path against an independent pandas computation.
"""
import re

import numpy as np
import pandas as pd
import pytest

import fairaudit
from fairaudit.io.readers import InputSpec

from conftest import realdata_dir

SPEAKER_NAMES = ("speaker_id", "speaker", "spk", "basefile", "speaker_name")
TEXT_NAMES = ("reference", "ref", "content", "clean_content", "transcript", "text")
ATTRIBUTE_NAMES = ("black", "race", "ethnicity", "gender", "sex", "age", "dialect", "location", "corpus")


def _tables():
    d = realdata_dir()
    files = sorted(p for p in d.rglob("*") if p.is_file() and re.search(r"\.(csv|tsv|parquet)(\.gz)?$", p.name))
    if not files:
        pytest.skip(f"no CSV/TSV/Parquet table under {d}")
    return files


def _load(path):
    if ".parquet" in path.name:
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if ".tsv" in path.name else ",", low_memory=False)


def test_realdata_wer_columns_audit(tmp_path):
    used = 0
    for path in _tables():
        df = _load(path)
        lower = {c.lower(): c for c in df.columns}
        wer_cols = [c for c in df.columns if "wer" in c.lower() and pd.api.types.is_numeric_dtype(df[c])]
        spk = next((lower[n] for n in SPEAKER_NAMES if n in lower), None)
        words = next((c for c in df.columns if "word" in c.lower() and pd.api.types.is_numeric_dtype(df[c])), None)
        text = next((lower[n] for n in TEXT_NAMES if n in lower), None)
        if not wer_cols or spk is None or (words is None and text is None):
            continue
        frame = pd.DataFrame({"utt_id": np.arange(len(df)).astype(str), "speaker_id": df[spk].astype(str)})
        frame["ref_words"] = (df[words] if words else df[text].fillna("").astype(str).str.split().str.len()).fillna(0)
        for c in wer_cols:
            frame[c] = df[c]
        frame = frame.dropna(subset=wer_cols)
        attr = next((lower[n] for n in ATTRIBUTE_NAMES if n in lower), None)
        by = []
        if attr is not None and df[attr].nunique() <= 20:
            frame["attr"] = df.loc[frame.index, attr].astype(str)
            by = ["attr"]
        p = tmp_path / f"real{used}.parquet"
        frame.to_parquet(p)
        spec = InputSpec(path=str(p), wer_col=wer_cols[0], more_value_cols=tuple(wer_cols[1:]), ref_words_col="ref_words")
        result = fairaudit.audit(spec, by=by, discoverers=[], n_boot=200, n_perm=50, min_speakers=5)
        acc = result.report["accounting"]
        assert acc["rows_read"] == acc["rows_scored"] + acc["rows_dropped"] == len(frame)
        kept = frame[frame["ref_words"] > 0]
        for c in wer_cols:
            errors = np.round(kept[c] * kept["ref_words"]).sum()
            assert result.for_system(c).overall["wer"] == pytest.approx(errors / kept["ref_words"].sum())
        used += 1
    if not used:
        pytest.skip("no real-data table with WER columns, a speaker column and word counts or reference text")
