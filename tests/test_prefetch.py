"""fairaudit.io.prefetch: the Parquet input read beside the imports is the file's table,
used only for the file as it is, and never for a changed or unreadable one."""
import os
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairaudit.io import prefetch
from fairaudit.io.readers import InputSpec, read_utterances


def _table(path, n=50):
    frame = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "speaker_id": [f"s{i % 7}" for i in range(n)],
                          "reference": ["a b c"] * n, "hypothesis": ["a x c"] * n})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return pq.read_table(path)


def test_take_hands_out_the_files_table_once(tmp_path):
    path = str(tmp_path / "u.parquet")
    expected = _table(path)
    assert prefetch.start(path)
    got = prefetch.take(path)
    assert got is not None and got.equals(expected)
    assert prefetch.take(path) is None          # once: a second reader reads the file itself


def test_a_changed_file_is_read_again(tmp_path):
    path = str(tmp_path / "u.parquet")
    _table(path)
    assert prefetch.start(path)
    prefetch.wait()
    time.sleep(0.01)
    newer = _table(path, n=60)                  # rewritten after the prefetch: size and mtime differ
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert prefetch.take(path) is None
    assert read_utterances(InputSpec(path=path)).frame.shape[0] == newer.num_rows


def test_missing_and_unreadable_files(tmp_path):
    assert not prefetch.start(str(tmp_path / "absent.parquet"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert prefetch.start(str(bad))
    assert prefetch.take(str(bad)) is None      # the caller reads it and reports the error
    from fairaudit.errors import UserInputError

    with pytest.raises(UserInputError, match="not a readable Parquet file"):
        read_utterances(InputSpec(path=str(bad)))


def test_read_utterances_uses_the_prefetched_table(tmp_path, monkeypatch):
    path = str(tmp_path / "u.parquet")
    _table(path)
    plain = read_utterances(InputSpec(path=path)).frame
    assert prefetch.start(path)
    prefetch.wait()
    calls = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    again = read_utterances(InputSpec(path=path)).frame
    assert calls == []                          # not read a second time
    pd.testing.assert_frame_equal(again, plain)


def test_cli_audit_of_parquet_equals_csv(tmp_path):
    """The CLI prefetches a Parquet input: the report is the CSV input's."""
    import json

    from typer.testing import CliRunner

    from fairaudit.cli.app import app

    from conftest import SAMPLE

    frame = pd.read_csv(SAMPLE / "utterances.csv", dtype=str, keep_default_na=False)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "utterances.parquet")
    reports = []
    for name in ("utterances.parquet", str(SAMPLE / "utterances.csv")):
        out = tmp_path / f"o{len(reports)}"
        r = CliRunner().invoke(app, ["audit", str(tmp_path / name) if name.endswith("parquet") else name,
                                     "--speakers", str(SAMPLE / "speakers.csv"), "--discoverers", "geographic",
                                     "--bootstrap", "20", "--permutations", "10", "--no-html", "--quiet",
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        rep = json.loads((out / "report.json").read_text())
        rep.pop("timings")
        reports.append(rep["discoverers"])
    assert reports[0] == reports[1]
    assert prefetch._JOBS == {}                 # taken: nothing left in flight or held


def test_the_digest_is_the_files_and_only_while_unchanged(tmp_path):
    from fairaudit.fingerprint import sha256_file

    path = str(tmp_path / "u.parquet")
    _table(path)
    prefetch.start(path)
    prefetch.take(path)
    import hashlib

    truth = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert prefetch.digest(path) == truth == sha256_file(path)
    time.sleep(0.01)
    _table(path, n=70)
    assert prefetch.digest(path) is None        # rewritten: hashed again by the caller
    assert sha256_file(path) == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert prefetch._RUNNING == set()

