"""Joined reference/hypothesis tables (--hyp-table), the no_hypothesis rule for every
hypothesis file, and missing attribute values (issue 17), through the CLI on small
hand-made files: exit codes, one message line, rows read = scored + dropped per system."""
from __future__ import annotations

import json
import pathlib

import jiwer
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.cli.app import app
from fairaudit.discover.automatic import AutomaticDiscoverer
from fairaudit.discover.base import SideInputs
from fairaudit.io.hyp_tables import file_stem, parse_hyp_tables
from fairaudit.io.missing import MissingValues, parse_na_values
from fairaudit.io.readers import InputSpec, read_utterances
from fairaudit.result import validate
from fairaudit.speakers import score

from conftest import error_line

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(r):
    assert r.exit_code == 0, r.output
    assert r.exception is None, r.output
    return r


def flat(r) -> str:
    return " ".join(r.output.split())


def quick_audit(*args):
    return run("audit", *args, "--bootstrap", "0", "--permutations", "0", "--no-honest-gap", "--no-html", "-q")


def report(out) -> dict:
    rep = json.loads((pathlib.Path(out) / "report.json").read_text())
    validate(rep)
    return rep


def checked_accounting(acc: dict) -> dict:
    assert acc["rows_read"] == acc["rows_scored"] + acc["rows_dropped"]
    assert acc["rows_dropped"] == sum(d["rows"] for d in acc["dropped"].values())
    for d in acc["dropped"].values():
        assert d["reason"] and d["examples"], d
    return acc


def system_accounts(rep: dict) -> dict[str, dict]:
    systems = rep.get("systems") or {rep["system"]: rep}
    return {name: checked_accounting(s["accounting"]) for name, s in systems.items()}


# A reference table in the corpus's shape: audio paths as keys, no utt_id column.
REF = ("client_id,path,sentence,gender\n"
       "c1,clips/a1.mp3,hello world,female\n"
       "c2,clips/a2.mp3,good day to you,male\n"
       "c3,clips/a3.mp3,set a timer,NA\n"
       "c4,clips/a4.mp3,turn it up,male\n")
COLS = ("--speaker-col", "client_id", "--ref-col", "sentence")


@pytest.fixture
def files(write):
    ref = write("ref.csv", REF)
    # .wav keys (stem matching): a2's prediction is empty, a4 is missing, one orphan and
    # one repeated key
    wav = write("wav.tsv", "path\tprediction\n"
                           "a1.wav\thello word\n"
                           "a2.wav\t\n"
                           "a3.wav\tset a timer\n"
                           "zz.wav\tnot in the reference\n"
                           "a1.wav\trepeated\n")
    # the reference's own keys (exact matching), every clip
    mp3 = write("mp3.tsv", "path\tprediction\n"
                           "clips/a1.mp3\thello world\n"
                           "clips/a2.mp3\tgood day to you\n"
                           "clips/a3.mp3\tset the timer\n"
                           "clips/a4.mp3\tturn it up\n")
    return ref, wav, mp3


# ------------------------------------------------------------------ joined tables


def test_each_table_is_a_system_with_its_own_matching_and_accounting(files, tmp_path):
    ref, wav, mp3 = files
    r = ok(run("audit", ref, "--hyp-table", f"wav={wav}", "--hyp-table", f"mp3={mp3}", *COLS, "--by", "gender",
               "--min-speakers", 1, "--bootstrap", 0, "--permutations", 0, "--no-honest-gap", "--no-html",
               "--out", tmp_path / "o"))
    rep = report(tmp_path / "o")
    m = rep["inputs"]["matching"]
    assert (m["wav"]["match"], m["mp3"]["match"]) == ("stem", "exact")
    assert m["wav"]["match_option"] == "auto" and m["wav"]["key_column"] == "path"
    assert m["wav"]["text_column"] == "prediction" and m["wav"]["reference_key_column"] == "path"
    assert (m["wav"]["matched"], m["wav"]["no_hypothesis"], m["wav"]["no_reference"], m["wav"]["duplicate_keys"]) \
        == (3, 1, 1, 1)
    assert (m["mp3"]["matched"], m["mp3"]["no_hypothesis"]) == (4, 0)
    text = flat(r)
    assert "hypotheses wav: 3 of 4 reference rows matched by file stem (--match-keys auto)" in text
    assert "hypotheses mp3: 4 of 4 reference rows matched exactly" in text
    accs = system_accounts(rep)
    # wav: 4 reference rows + 2 hypothesis rows that pair with none = 6 read
    assert accs["wav"]["rows_read"] == 6 and accs["wav"]["rows_scored"] == 3
    assert accs["wav"]["dropped"]["no_hypothesis"]["examples"] == ["row 4 (utt_id='clips/a4.mp3')"]
    assert accs["wav"]["dropped"]["no_reference"]["examples"] == ["wav.tsv row 4: path='zz.wav'"]
    assert accs["wav"]["dropped"]["duplicate_hypothesis_id"]["examples"] == ["wav.tsv row 5: path='a1.wav'"]
    assert any("no reference" in w and "zz.wav" in w for w in accs["wav"]["warnings"])
    assert accs["mp3"]["rows_read"] == accs["mp3"]["rows_scored"] == 4 and not accs["mp3"]["dropped"]
    assert "rows read [wav] 6 = scored 3 + dropped 3" in text and "rows read [mp3] 4 = scored 4 + dropped 0" in text
    # Errors by hand: a1 1 substitution, a2 empty prediction = 4 deletions, a3 0.
    wav_overall = rep["systems"]["wav"]["overall"]
    assert (wav_overall["errors"], wav_overall["ref_words"], wav_overall["utterances"]) == (5, 9, 3)
    mp3_overall = rep["systems"]["mp3"]["overall"]
    assert (mp3_overall["errors"], mp3_overall["ref_words"]) == (1, 12)
    # The first kept of a repeated key: a1 scored against "hello word", not "repeated".
    files_by_role = {f["role"]: f["path"] for f in rep["inputs"]["files"]}
    assert files_by_role["hypotheses:wav"] == wav and files_by_role["hypotheses:mp3"] == mp3


def test_an_empty_prediction_is_all_deletions_not_a_drop(files, tmp_path):
    ref, wav, _ = files
    ok(run("score", ref, "--hyp-table", f"wav={wav}", *COLS, "--out", tmp_path / "o", "-q"))
    utts = pd.read_csv(tmp_path / "o" / "utterance_scores.csv").set_index("utt_id")
    row = utts.loc["clips/a2.mp3"]
    assert (row.ref_words, row.deletions, row.substitutions, row.insertions, row.wer) == (4, 4, 0, 0, 1.0)
    acc = checked_accounting(json.loads((tmp_path / "o" / "accounting.json").read_text()))
    assert acc["matching"]["wav"]["match"] == "stem"


def test_missing_hyp_empty_scores_the_missing_reference_as_deletions(files, tmp_path):
    ref, wav, _ = files
    r = ok(run("score", ref, "--hyp-table", f"wav={wav}", *COLS, "--missing-hyp", "empty", "--out", tmp_path / "o"))
    utts = pd.read_csv(tmp_path / "o" / "utterance_scores.csv").set_index("utt_id")
    assert utts.loc["clips/a4.mp3", "deletions"] == 3
    acc = checked_accounting(json.loads((tmp_path / "o" / "accounting.json").read_text()))
    assert acc["rows_scored"] == 4 and "no_hypothesis" not in acc["dropped"]
    assert "scored as empty output" in flat(r)


def test_match_keys_exact_and_stem_are_obeyed(files, tmp_path):
    ref, wav, mp3 = files
    ok(run("score", ref, "--hyp-table", f"wav={wav}", *COLS, "--match-keys", "exact", "--out", tmp_path / "e", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "e" / "accounting.json").read_text()))
    assert acc["rows_scored"] == 0 and acc["dropped"]["no_hypothesis"]["rows"] == 4
    assert acc["matching"]["wav"]["match"] == "exact" and acc["matching"]["wav"]["match_option"] == "exact"
    ok(run("score", ref, "--hyp-table", f"mp3={mp3}", *COLS, "--match-keys", "stem", "--out", tmp_path / "s", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "s" / "accounting.json").read_text()))
    assert acc["rows_scored"] == 4 and acc["matching"]["mp3"]["match"] == "stem"


def test_auto_prefers_exact_when_it_matches_as_many(write, tmp_path):
    # Exact keys that also share a stem with another hypothesis row: exact wins, and the
    # second row is an orphan, not a repeated stem.
    ref = write("ref.csv", "utt_id,speaker_id,reference\nu1.wav,s1,a b\nu2.wav,s2,c d\n")
    hyp = write("h.csv", "utt_id,hypothesis\nu1.wav,a b\nu2.wav,c x\nu2.flac,c d\n")
    ok(run("score", ref, "--hyp-table", f"h={hyp}", "--out", tmp_path / "o", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "o" / "accounting.json").read_text()))
    assert acc["matching"]["h"]["match"] == "exact" and acc["matching"]["h"]["key_column"] == "utt_id"
    assert acc["dropped"] == {"no_reference": {"rows": 1, "reason": acc["dropped"]["no_reference"]["reason"],
                                               "examples": ["h.csv row 3: utt_id='u2.flac'"]}}
    utts = pd.read_csv(tmp_path / "o" / "utterance_scores.csv").set_index("utt_id")
    assert utts.loc["u2.wav", "substitutions"] == 1


def test_reference_rows_sharing_a_stem_are_an_error_under_stem_matching(write, tmp_path):
    ref = write("ref.csv", "path,speaker_id,reference\nclips/x.mp3,s1,a b\nother/x.mp3,s2,c d\nclips/y.mp3,s3,e\n")
    hyp = write("h.tsv", "path\tprediction\nx.wav\ta b\ny.wav\te\n")
    line = error_line(run("score", ref, "--hyp-table", f"h={hyp}", "--out", tmp_path / "o"))
    assert line.startswith(f"error: {ref}: rows 1 and 2 of the reference table have the same file stem 'x'")
    assert "--match-keys exact" in line
    # Exact matching does not look at stems: the run goes on (no hypothesis matches).
    ok(run("score", ref, "--hyp-table", f"h={hyp}", "--match-keys", "exact", "--out", tmp_path / "e", "-q"))


def test_a_repeated_reference_key_that_is_not_the_utterance_id_is_an_error(write, tmp_path):
    ref = write("ref.csv", "utt_id,path,speaker_id,reference\nu1,x.wav,s1,a b\nu2,x.wav,s2,c d\n")
    hyp = write("h.tsv", "path\tprediction\nx.wav\ta b\n")
    line = error_line(run("score", ref, "--hyp-table", f"h={hyp}", "--out", tmp_path / "o"))
    assert "rows 1 and 2 of the reference table have the same key 'x.wav' in column 'path'" in line
    # When the key is the utterance id, the second row is a duplicate_utt_id as always.
    ref2 = write("ref2.csv", "path,speaker_id,reference\nx.wav,s1,a b\nx.wav,s2,c d\n")
    ok(run("score", ref2, "--hyp-table", f"h={hyp}", "--out", tmp_path / "d", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "d" / "accounting.json").read_text()))
    assert acc["rows_scored"] == 1 and acc["dropped"]["duplicate_utt_id"]["rows"] == 1


def test_key_and_text_columns_can_be_named_and_the_reference_key_falls_back_to_utt_col(write, tmp_path):
    ref = write("ref.jsonl", "\n".join(json.dumps(r) for r in [
        {"id": "k1", "spk": "s1", "text": "one two"}, {"id": "k2", "spk": "s2", "text": "three"}]) + "\n")
    hyp = write("h.parquet", "")
    pd.DataFrame({"file": ["k1", "k2", ""], "out": ["one", None, "x"]}).to_parquet(hyp)
    ok(run("score", ref, "--hyp-table", f"h={hyp}", "--hyp-key-col", "file", "--hyp-text-col", "out",
           "--utt-col", "id", "--speaker-col", "spk", "--ref-col", "text", "--out", tmp_path / "o", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "o" / "accounting.json").read_text()))
    assert acc["matching"]["h"]["reference_key_column"] == "id"
    assert acc["dropped"]["missing_hypothesis_key"]["examples"] == ["h.parquet row 3: empty 'file'"]
    utts = pd.read_csv(tmp_path / "o" / "utterance_scores.csv").set_index("utt_id")
    # a null prediction is an empty hypothesis
    assert utts.loc["k1", "deletions"] == 1 and utts.loc["k2", "deletions"] == 1


def test_ids_that_look_missing_stay_ids(write, tmp_path):
    ref = write("ref.csv", "path,speaker_id,reference,accent\nNA,NA,na is a word,us\nnull,s2,good day,NA\n")
    hyp = write("h.tsv", "path\tprediction\nNA\tna is a word\nnull\tgood night\n")
    ok(run("score", ref, "--hyp-table", f"h={hyp}", "--out", tmp_path / "o", "-q"))
    acc = checked_accounting(json.loads((tmp_path / "o" / "accounting.json").read_text()))
    assert acc["rows_scored"] == 2 and not acc["dropped"]
    utts = pd.read_csv(tmp_path / "o" / "utterance_scores.csv", keep_default_na=False).set_index("utt_id")
    assert utts.loc["NA", "speaker_id"] == "NA" and utts.loc["NA", "ref_words"] == 4 and utts.loc["NA", "errors"] == 0
    assert utts.loc["null", "substitutions"] == 1
    assert acc["attribute_missing"] == {"accent": 1}


def test_file_stem():
    keys = pd.Series(["a/b/c.wav", "c.mp3", "C:\\x\\c.flac", "c", ".hidden", "d.tar.gz", "e."])
    assert file_stem(keys).tolist() == ["c", "c", "c", "c", ".hidden", "d.tar", "e"]


def test_kaldi_and_trn_reference_missing_from_one_hypothesis_file(write, tmp_path):
    ref = write("ref.trn", "a b (s1-u1)\nc d (s2-u2)\ne f (s3-u3)\n")
    h1 = write("h1.trn", "a b (s1-u1)\nc d (s2-u2)\ne x (s3-u3)\n")
    h2 = write("h2.trn", "a b (s1-u1)\nc x (s2-u2)\n")
    ok(quick_audit("--ref", ref, "--hyp", h1, "--hyp", h2, "--out", tmp_path / "o", "--discoverers", ""))
    rep = report(tmp_path / "o")
    accs = system_accounts(rep)
    assert accs[h1]["rows_scored"] == 3 and not accs[h1]["dropped"]
    assert accs[h2]["rows_read"] == 3 and accs[h2]["rows_scored"] == 2
    assert accs[h2]["dropped"]["no_hypothesis"]["examples"] == ["row 3 (utt_id='s3-u3')"]
    assert rep["inputs"]["matching"][h2]["no_hypothesis"] == 1 and rep["inputs"]["matching"][h1]["matched"] == 3
    ok(quick_audit("--ref", ref, "--hyp", h1, "--hyp", h2, "--out", tmp_path / "e", "--discoverers", "",
                   "--missing-hyp", "empty"))
    rep = report(tmp_path / "e")
    assert rep["systems"][h2]["overall"]["errors"] == 3   # 1 substitution + 2 deletions of s3-u3
    assert system_accounts(rep)[h2]["rows_scored"] == 3


def test_compare_refuses_systems_scored_on_different_utterances(files, tmp_path):
    ref, wav, mp3 = files
    args = ("compare", ref, "--hyp-table", f"wav={wav}", "--hyp-table", f"mp3={mp3}", *COLS, "--by", "gender",
            "--min-speakers", 1, "--resamples", 100, "--no-html", "--out", tmp_path / "c")
    line = error_line(run(*args))
    assert "scored on different utterances" in line and "--missing-hyp empty" in line
    ok(run(*args, "--missing-hyp", "empty"))


# ------------------------------------------------------------------ bad inputs: one line, exit 2


@pytest.mark.parametrize("extra, expect", [
    (["--hyp-table", "WAV"], "--hyp-table 'WAV' has no NAME="),
    (["--hyp-table", "=WAV"], "needs both a NAME and a FILE"),
    (["--hyp-table", "a=WAV", "--hyp-table", "a=MP3"], "name 'a' is given twice"),
    (["--hyp-table", "a=NOPE"], "hypothesis table of 'a' not found"),
    (["--hyp-table", "a=WAV", "--hyp-key-col", "clip"], "key column 'clip' not found (columns: path, prediction)"),
    (["--hyp-table", "a=WAV", "--hyp-text-col", "text"], "hypothesis text column 'text' not found"),
    (["--hyp-table", "a=BARE"], "no key column: neither 'path' nor 'utt_id'"),
    (["--hyp-table", "a=KEYONLY"], "no hypothesis text column: neither 'prediction' nor 'hypothesis'"),
    (["--hyp-table", "a=WAV", "--hyp-key-col", "prediction", "--hyp-text-col", "path"],
     "the reference table has neither the key column 'prediction'"),
    (["--hyp-table", "a=WAV", "--hyp-key-col", "path", "--hyp-text-col", "path"], "both the key and the hypothesis"),
    (["--hyp-table", "a=WAV", "--match-keys", "fuzzy"], "unknown --match-keys 'fuzzy'"),
    (["--hyp-table", "a=WAV", "--missing-hyp", "zero"], "unknown --missing-hyp 'zero'"),
    (["--hyp-table", "a=WAV", "--missing-attribute", "drop"], "unknown --missing-attribute 'drop'"),
    (["--hyp-table", "a=WAV", "--hyp-col", "x"], "--hyp-table excludes --hyp-col"),
    (["--hyp-table", "a=WAV", "--wer-col", "x"], "precomputed counts"),
    (["--hyp-table", "a=TRN"], "must be CSV, TSV, JSONL or Parquet, not trn"),
    (["--hyp-key-col", "path"], "no --hyp-table is given"),
    (["--hyp-table", "a=WAV", "--engine", "streaming"], "not a table joined with --hyp-table"),
    (["--hyp-table", "a=LATIN1"], "is not valid utf-8"),
])
def test_bad_hyp_table_inputs(files, write, tmp_path, extra, expect):
    ref, wav, mp3 = files
    paths = {"WAV": wav, "MP3": mp3, "NOPE": str(tmp_path / "nope.tsv"),
             "BARE": write("bare.tsv", "clip\ttext\nx\ty\n"), "KEYONLY": write("keyonly.tsv", "path\tout\nx\ty\n"),
             "TRN": write("h.trn", "a b (s1-u1)\n")}
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("path\tprediction\na1.wav\tcaf\u00e9\n".encode("latin-1"))
    paths["LATIN1"] = str(latin)
    args = []
    for a in extra:
        for k, v in paths.items():
            a = a.replace(f"={k}", f"={v}") if a.endswith(f"={k}") else a
        args.append(a)
    line = error_line(run("audit", ref, *COLS, *args, "--out", tmp_path / "o", "--no-html"))
    assert expect in line, line
    assert not (tmp_path / "o" / "report.json").exists()


def test_hyp_table_needs_a_reference_table(write, tmp_path, files):
    _, wav, _ = files
    ref = write("ref.trn", "a b (s1-u1)\n")
    line = error_line(run("score", ref, "--hyp-table", f"a={wav}", "--out", tmp_path / "o"))
    assert "not a trn file" in line
    line = error_line(run("score", "--ref", ref, "--hyp", ref, "--hyp-table", f"a={wav}", "--out", tmp_path / "o"))
    assert "--hyp-table excludes --ref" in line


def test_library_spec_checks(files):
    ref, wav, _ = files
    assert parse_hyp_tables(["a=x.tsv", " b = y.tsv "]) == {"a": "x.tsv", "b": "y.tsv"}
    raw = read_utterances(InputSpec(path=ref, speaker_col="client_id", ref_col="sentence", hyp_tables={"wav": wav}))
    assert list(raw.systems) == ["wav"] and raw.matching["wav"]["match"] == "stem"
    s = score(raw)
    s.accounting.check()
    assert s.accounting.rows_read == 6 and s.accounting.dropped["no_hypothesis"] == 1


# ------------------------------------------------------------------ missing attribute values


def _attribute_world(write):
    """30 speakers: gender from a speaker table (with missing markers in several spellings),
    accent from the utterance table (constant per speaker, some 'NA')."""
    rng = np.random.default_rng(3)
    markers = ["NA", "n/a", " null ", "None", "NaN", ""]
    spk_rows, utt_rows = [], []
    for i in range(30):
        gender = markers[i % 6] if i < 12 else ("female" if i % 2 else "male")
        accent = "NA" if i % 5 == 0 else ("us" if i % 3 else "uk")
        spk_rows.append(f"s{i},{gender}")
        for j in range(int(rng.integers(1, 4))):
            hyp = "a b c" if rng.random() < 0.7 else "a x c"
            utt_rows.append(f"s{i}-u{j},s{i},a b c,{hyp},{accent}")
    spk = write("spk.csv", "speaker_id,gender\n" + "\n".join(spk_rows) + "\n")
    utt = write("u.csv", "utt_id,speaker_id,reference,hypothesis,accent\n" + "\n".join(utt_rows) + "\n")
    return utt, spk


def test_missing_attribute_markers_are_never_a_cohort(write, tmp_path):
    utt, spk = _attribute_world(write)
    r = ok(run("audit", utt, "--speakers", spk, "--by", "gender", "--by", "accent", "--by", "gender,accent",
               "--min-speakers", 1, "--discoverers", "", "--bootstrap", 0, "--permutations", 0, "--no-honest-gap",
               "--no-html", "--out", tmp_path / "o"))
    rep = report(tmp_path / "o")
    d = rep["discoverers"]
    assert {c["label"] for c in d["attribute:gender"]["cohorts"]} == {"gender=female", "gender=male"}
    assert {c["label"] for c in d["attribute:accent"]["cohorts"]} == {"accent=uk", "accent=us"}
    assert d["attribute:gender"]["not_audited"] == {"attribute missing: gender": 12}
    assert d["attribute:accent"]["not_audited"] == {"attribute missing: accent": 6}
    # speakers 0, 5, 10 lack both: counted once
    assert d["attribute:gender,accent"]["not_audited"] == {"attribute missing: gender or accent": 15}
    assert d["attribute:gender"]["audited_speakers"] == 18
    assert rep["accounting"]["attribute_missing"] == {"accent": 6, "gender": 12}
    assert rep["inputs"]["na_values"] == ["NA", "N/A", "null", "None", "nan"]
    assert rep["inputs"]["missing_attribute"] == "unknown"
    assert "attribute missing (speakers; empty or NA, N/A, null, None, nan): accent 6, gender 12" in flat(r)
    assert "attribute:gender: 12 speaker(s) not audited: attribute missing: gender" in flat(r)
    labels = {c["label"] for c in d["attribute:gender,accent"]["cohorts"]}
    assert not any("NA" in lab or "null" in lab.lower() or "none" in lab.lower() for lab in labels)


def test_missing_attribute_cohort_keeps_the_markers_as_values(write, tmp_path):
    utt, spk = _attribute_world(write)
    ok(quick_audit(utt, "--speakers", spk, "--by", "gender", "--by", "accent", "--min-speakers", 1,
                   "--discoverers", "", "--missing-attribute", "cohort", "--out", tmp_path / "o"))
    rep = report(tmp_path / "o")
    labels = {c["label"] for c in rep["discoverers"]["attribute:accent"]["cohorts"]}
    assert labels == {"accent=NA", "accent=uk", "accent=us"}
    gender = rep["discoverers"]["attribute:gender"]
    assert "gender=NA" in {c["label"] for c in gender["cohorts"]}
    # an empty cell was never a value: still not audited
    assert gender["not_audited"] == {"attribute missing: gender": 2}
    assert rep["inputs"]["missing_attribute"] == "cohort"


def test_na_values_replace_the_default_markers(write, tmp_path):
    utt, spk = _attribute_world(write)
    ok(quick_audit(utt, "--speakers", spk, "--by", "gender", "--min-speakers", 1, "--discoverers", "",
                   "--na-values", "NA, unknown", "--out", tmp_path / "o"))
    rep = report(tmp_path / "o")
    labels = {c["label"] for c in rep["discoverers"]["attribute:gender"]["cohorts"]}
    # NA (any case) and empty cells are unknown; the other default markers are values now
    assert labels == {"gender=n/a", "gender=null", "gender=None", "gender=NaN", "gender=female", "gender=male"}
    assert rep["discoverers"]["attribute:gender"]["not_audited"] == {"attribute missing: gender": 4}
    assert rep["inputs"]["na_values"] == ["NA", "unknown"]
    assert parse_na_values("") == () and parse_na_values(None) == ("NA", "N/A", "null", "None", "nan")


def test_every_discoverer_sees_pd_na(write):
    utt, spk = _attribute_world(write)
    from fairaudit.io.speakers import read_speakers

    s = score(read_utterances(InputSpec(path=utt)), speaker_table=read_speakers(spk))
    sp = s.speakers.set_index("speaker_id")
    assert sp.loc["s0", "gender"] is pd.NA and sp.loc["s1", "gender"] is pd.NA and sp.loc["s5", "gender"] is pd.NA
    assert sp.loc["s0", "accent"] is pd.NA and sp.loc["s1", "accent"] == "us"
    assert sp.loc["s13", "gender"] == "female"
    # The automatic discoverer's cluster descriptions: unknown, never the value "NA".
    ids = sp.index.to_numpy(dtype=object)
    emb = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    found = AutomaticDiscoverer(k=2, min_speakers=1).fit(s.speakers, SideInputs(embeddings=emb, embedding_ids=ids))
    mixes = [d["attribute_mix"] for d in found.cohort_details.values()]
    values = {v for mix in mixes for col in ("gender", "accent") for v in mix.get(col, {})}
    assert "(missing)" in values and not values & {"NA", "n/a", "null", "None", "NaN"}


def test_missing_values_mask_unit():
    mv = MissingValues(("NA",), "unknown")
    col = pd.Series(["NA", "na ", "x", None, "", "N/A"], dtype=object)
    assert mv.unknown(col).tolist() == [True, True, False, True, True, False]
    assert MissingValues(mode="cohort").unknown(col).tolist() == [False, False, False, True, False, False]
    with pytest.raises(Exception, match="--missing-attribute"):
        MissingValues(mode="drop")


@pytest.mark.parametrize("mode", ["unknown", "cohort"])
def test_streaming_engine_reads_missing_attributes_the_same_way(write, tmp_path, mode):
    utt, spk = _attribute_world(write)
    labels = {}
    for engine in ("default", "streaming"):
        ok(quick_audit(utt, "--speakers", spk, "--by", "gender,accent", "--min-speakers", 1, "--discoverers", "",
                       "--missing-attribute", mode, "--engine", engine, "--out", tmp_path / engine))
        rep = report(tmp_path / engine)
        d = rep["discoverers"]["attribute:gender,accent"]
        labels[engine] = ({c["label"] for c in d["cohorts"]}, d["not_audited"], rep["accounting"].get("attribute_missing"))
    assert labels["default"] == labels["streaming"]
    assert any("NA" in lab for lab in labels["default"][0]) == (mode == "cohort")


def test_html_shows_matching_and_unknown_attributes_escaped(files, tmp_path):
    ref, wav, mp3 = files
    ok(run("audit", ref, "--hyp-table", f"<b>wav</b>={wav}", "--hyp-table", f"mp3={mp3}", *COLS, "--by", "gender",
           "--min-speakers", 1, "--bootstrap", 0, "--permutations", 0, "--no-honest-gap", "--out", tmp_path / "o",
           "-q"))
    html = (tmp_path / "o" / "report.html").read_text()
    table = html[html.index('id="matching"'):html.index("</table>", html.index('id="matching"'))]
    assert "&lt;b&gt;wav&lt;/b&gt;" in table and "<b>wav</b>" not in html
    assert "by file stem (auto)" in table and "3 of 4" in table and "6 = 3 + 3" in table
    assert "exactly (auto)" in table and "4 = 4 + 0" in table
    line = html[html.index('id="attribute-missing"'):]
    assert "<bdi>gender</bdi> 1 speaker(s)" in line[:line.index("</p>")]
