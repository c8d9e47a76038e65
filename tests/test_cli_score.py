"""`fairaudit score`: outputs, accounting, formats and one-line user errors (exit code 2)."""
import gzip
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.cli.app import app

runner = CliRunner()

TABLE = ("utt_id,speaker_id,reference,hypothesis,gender\n"
         "u1,s1,Hello world,hello word,f\n"
         "u2,s1,\"Set a timer, please.\",set the timer please,f\n"
         "u3,,x,y,m\n"
         "u1,s2,a,b,m\n"
         "u4,s2,...,uh,m\n"
         "u5,s2,good day,good day,m\n")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_score_writes_tables_and_accounting(write, tmp_path):
    path = write("t.csv", TABLE)
    out = tmp_path / "out"
    r = run("score", path, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    utt = pd.read_csv(out / "utterance_scores.csv")
    spk = pd.read_csv(out / "speaker_scores.csv")
    acc = json.loads((out / "accounting.json").read_text())
    assert list(utt.columns) == ["utt_id", "speaker_id", "ref_words", "hits", "substitutions", "deletions",
                                 "insertions", "errors", "wer"]
    assert acc["rows_read"] == 6 == acc["rows_scored"] + acc["rows_dropped"]
    assert {k: v["rows"] for k, v in acc["dropped"].items()} == {
        "duplicate_utt_id": 1, "missing_speaker_id": 1, "empty_reference": 1}
    assert acc["empty_reference_insertions"] == 1
    s1 = spk.set_index("speaker_id").loc["s1"]
    # micro WER: (1 + 1) / (2 + 4), not the mean of 0.5 and 0.25
    assert s1["errors"] == 2 and s1["ref_words"] == 6 and s1["wer"] == pytest.approx(2 / 6)
    assert spk.set_index("speaker_id").loc["s2", "gender"] == "m"


def test_summary_printed(write, tmp_path):
    r = run("score", write("t.csv", TABLE), "--out", tmp_path / "o")
    assert r.exit_code == 0
    assert "rows read 6 = scored 3 + dropped 3" in r.output
    assert "empty_reference" in r.output


@pytest.mark.parametrize("ext,writer", [
    (".tsv", lambda df, p: df.to_csv(p, sep="\t", index=False)),
    (".jsonl", lambda df, p: df.to_json(p, orient="records", lines=True)),
    (".parquet", lambda df, p: df.to_parquet(p)),
    (".csv.gz", lambda df, p: df.to_csv(p, index=False, compression="gzip")),
])
def test_formats_give_same_scores(tmp_path, ext, writer):
    df = pd.DataFrame({"utt_id": ["a", "b", "c"], "speaker_id": ["s1", "s1", "s2"],
                       "reference": ["one two three", "four five", "six"], "hypothesis": ["one too three", "four", "six six"]})
    p = tmp_path / f"in{ext}"
    writer(df, p)
    r = run("score", p, "--out", tmp_path / "o", "--quiet", "--format", "parquet")
    assert r.exit_code == 0, r.output
    spk = pd.read_parquet(tmp_path / "o" / "speaker_scores.parquet").set_index("speaker_id")
    assert spk.loc["s1", "errors"] == 2 and spk.loc["s1", "ref_words"] == 5
    assert spk.loc["s2", "insertions"] == 1


def test_column_mapping(write, tmp_path):
    path = write("m.csv", "id,spk,ref,hyp\n1,a,x y,x\n")
    r = run("score", path, "--utt-col", "id", "--speaker-col", "spk", "--ref-col", "ref", "--hyp-col", "hyp",
            "--out", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    assert pd.read_csv(tmp_path / "o" / "speaker_scores.csv")["deletions"].tolist() == [1]


def test_precomputed_counts(write, tmp_path):
    path = write("c.csv", "utt_id,speaker_id,err,n\nu1,s1,2,10\nu2,s1,0,5\nu3,s2,1,0\n")
    r = run("score", path, "--errors-col", "err", "--ref-words-col", "n", "--out", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    spk = pd.read_csv(tmp_path / "o" / "speaker_scores.csv").set_index("speaker_id")
    assert spk.loc["s1", "wer"] == pytest.approx(2 / 15)
    acc = json.loads((tmp_path / "o" / "accounting.json").read_text())
    assert acc["dropped"]["empty_reference"]["rows"] == 1 and acc["mode"] == "counts"


def test_wer_column_rounding_warns(write, tmp_path):
    path = write("w.csv", "utt_id,speaker_id,wer,n\nu1,s1,0.5,4\nu2,s1,0.33,3\n")
    r = run("score", path, "--wer-col", "wer", "--ref-words-col", "n", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    acc = json.loads((tmp_path / "o" / "accounting.json").read_text())
    assert "1 row(s)" in acc["warnings"][0]
    spk = pd.read_csv(tmp_path / "o" / "speaker_scores.csv")
    assert spk["errors"].tolist() == [3]  # 2 + round(0.99)


def test_unparsable_rows_are_counted(write, tmp_path):
    path = write("bad.csv", "utt_id,speaker_id,reference,hypothesis\nu1,s1,a b,a b\nu2,s1,a,b,EXTRA,FIELD\nu3,s2,c,c\n")
    r = run("score", path, "--out", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    acc = json.loads((tmp_path / "o" / "accounting.json").read_text())
    assert acc["rows_read"] == 3 and acc["dropped"]["unparsable_row"]["rows"] == 1


def test_bad_jsonl_line_counted(write, tmp_path):
    path = write("b.jsonl", '{"utt_id":"1","speaker_id":"s","reference":"a","hypothesis":"a"}\n{not json\n')
    r = run("score", path, "--out", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    acc = json.loads((tmp_path / "o" / "accounting.json").read_text())
    assert acc["rows_read"] == 2 and acc["dropped"]["unparsable_row"]["rows"] == 1


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    text = r.output.strip()
    assert "Traceback" not in text
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, text
    for n in needles:
        assert n in text, text


def test_error_missing_file(tmp_path):
    one_line_error(run("score", tmp_path / "nope.csv"), "nope.csv", "not found")


def test_error_missing_column(write):
    one_line_error(run("score", write("t.csv", "utt_id,speaker_id,ref,hypothesis\n1,a,b,c\n")),
                   "t.csv", "'reference'", "--ref-col")


def test_error_unknown_format(write):
    one_line_error(run("score", write("t.xyz", "x")), "t.xyz", "--input-format")
    one_line_error(run("score", write("t.csv", "x"), "--input-format", "xml"), "unknown format")


def test_error_bad_count_value(write):
    path = write("c.csv", "utt_id,speaker_id,err,n\nu1,s1,2,10\nu2,s1,lots,5\n")
    one_line_error(run("score", path, "--errors-col", "err", "--ref-words-col", "n"), "c.csv", "row 2", "'err'")


def test_error_counts_need_words(write):
    one_line_error(run("score", write("c.csv", "utt_id,speaker_id,err\nu,s,1\n"), "--errors-col", "err"),
                   "--ref-words-col")


def test_error_bad_output_format(write):
    one_line_error(run("score", write("t.csv", TABLE), "--format", "xlsx"), "csv or parquet")


def test_error_attribute_not_constant(write, tmp_path):
    path = write("t.csv", "utt_id,speaker_id,reference,hypothesis,lat\n1,a,x,x,40\n2,a,y,y,41\n")
    one_line_error(run("score", path, "--out", tmp_path / "o"), "'lat'", "speaker 'a'")


def test_error_bad_speaker_table(write, tmp_path):
    utts = write("t.csv", TABLE)
    spk = write("s.csv", "speaker_id,lat,lon\ns1,40.1,-70\ns2,north,-71\n")
    one_line_error(run("score", utts, "--speakers", spk, "--out", tmp_path / "o"), "s.csv", "line 3", "'lat'")
    dup = write("d.csv", "speaker_id,lat\ns1,1\ns1,2\n")
    one_line_error(run("score", utts, "--speakers", dup, "--out", tmp_path / "o"), "appears twice")


def test_speaker_table_joined_zip_keeps_zeros(write, tmp_path):
    utts = write("t.csv", TABLE)
    spk = write("s.csv", "speaker_id,lat,lon,zip\ns1,42.3,-71.0,02139\ns2,,,10001\n")
    r = run("score", utts, "--speakers", spk, "--out", tmp_path / "o", "-q", "--format", "parquet")
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(tmp_path / "o" / "speaker_scores.parquet").set_index("speaker_id")
    assert s.loc["s1", "zip"] == "02139" and pd.isna(s.loc["s2", "lat"])
