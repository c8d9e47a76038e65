"""The Artie Bias Corpus as it comes (../shared/realdata/artie): one reference table and
one prediction table per recogniser, joined with --hyp-table (issue 17).

The reference table keys clips by ``….mp3``; most prediction tables say ``….wav``
(matched by file stem), ``deepspeech_v0-5-1`` says ``….mp3`` (matched exactly).  Some
predictions are empty (all deletions, never a drop); ``gender``/``accent`` hold ``NA`` for
speakers who gave none (unknown, never a cohort).  Every figure is checked against the
files read independently here (csv module, jiwer), never against hard-coded results.
"""
from __future__ import annotations

import csv
import json
import os
import re
from collections import defaultdict

import jiwer
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.cli.app import app
from fairaudit.normalize import normalize
from fairaudit.result import validate

from conftest import realdata_dir

WAV_SYSTEMS = ("amazon_en-US", "google_en-US", "deepspeech_v0-7-3")
MP3_SYSTEM = "deepspeech_v0-5-1"
SYSTEMS = (*WAV_SYSTEMS, MP3_SYSTEM)


def _tsv(path) -> list[dict]:
    # Tab-separated, no quoting (the corpus has sentences that begin with a quote mark).
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def _stem(key: str) -> str:
    return os.path.splitext(os.path.basename(key))[0]


def _speaker_counts(artie, system: str) -> dict[str, list[int]]:
    """(errors, reference words) per client_id of one system, by jiwer on each clip."""
    hyps = {_stem(p["path"]): p["prediction"] for p in artie["preds"][system]}
    per = defaultdict(lambda: [0, 0])
    for r in artie["refs"]:
        o = jiwer.process_words(normalize([r["sentence"]]).to_pylist(), normalize([hyps[_stem(r["path"])]]).to_pylist())
        per[r["client_id"]][0] += o.substitutions + o.deletions + o.insertions
        per[r["client_id"]][1] += o.hits + o.substitutions + o.deletions
    return per


@pytest.fixture(scope="module")
def artie(tmp_path_factory):
    d = realdata_dir() / "artie"
    out = tmp_path_factory.mktemp("artie") / "o"
    args = ["audit", str(d / "artie-bias-corpus.tsv"),
            *[a for s in SYSTEMS for a in ("--hyp-table", f"{s}={d / 'predictions' / (s + '.tsv')}")],
            "--speaker-col", "client_id", "--ref-col", "sentence", "--by", "gender", "--by", "age", "--by", "accent",
            "--bootstrap", "0", "--permutations", "0", "--no-honest-gap", "--no-html", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    validate(rep)
    refs = _tsv(d / "artie-bias-corpus.tsv")
    preds = {s: _tsv(d / "predictions" / f"{s}.tsv") for s in SYSTEMS}
    return {"report": rep, "output": " ".join(r.output.split()), "refs": refs, "preds": preds, "out": out}


def test_keys_are_matched_by_stem_or_exactly_and_every_clip_pairs(artie):
    m = artie["report"]["inputs"]["matching"]
    n = len(artie["refs"])
    assert n == 1712
    for s in WAV_SYSTEMS:
        assert artie["preds"][s][0]["path"].endswith(".wav")
        assert (m[s]["match"], m[s]["matched"], m[s]["no_hypothesis"], m[s]["no_reference"]) == ("stem", n, 0, 0)
        assert f"hypotheses {s}: 1,712 of 1,712 reference rows matched by file stem" in artie["output"]
    assert m[MP3_SYSTEM]["match"] == "exact" and m[MP3_SYSTEM]["matched"] == n
    assert f"hypotheses {MP3_SYSTEM}: 1,712 of 1,712 reference rows matched exactly" in artie["output"]


def test_rows_read_equal_scored_plus_dropped_for_every_system(artie):
    systems = artie["report"]["systems"]
    assert list(systems) == list(SYSTEMS)
    for s, sys_report in systems.items():
        acc = sys_report["accounting"]
        assert acc["rows_read"] == acc["rows_scored"] + acc["rows_dropped"]
        assert acc["rows_dropped"] == sum(d["rows"] for d in acc["dropped"].values())
        # every reference row and every prediction row is read; none pairs with nothing
        assert acc["rows_read"] == len(artie["refs"]) == len(artie["preds"][s])
        assert f"rows read [{s}] {acc['rows_read']:,} = scored {acc['rows_scored']:,}" in artie["output"]


def test_an_empty_prediction_is_all_deletions(artie):
    empty = [p["path"] for p in artie["preds"]["google_en-US"] if not p["prediction"].strip()]
    assert empty, "google_en-US has empty predictions in the corpus"
    ref = next(r for r in artie["refs"] if _stem(r["path"]) == _stem(empty[0]))
    words = len(re.findall(r"[a-z0-9']+", ref["sentence"].lower()))  # the sentence has no digits or symbols
    rep = artie["report"]["systems"]["google_en-US"]
    assert rep["accounting"]["rows_scored"] == len(artie["refs"])   # scored, not dropped
    # Score the one clip alone through the CLI: its counts by hand.
    tmp = artie["out"].parent
    (tmp / "one_ref.tsv").write_text("client_id\tpath\tsentence\n" + f"{ref['client_id']}\t{ref['path']}\t"
                                     f"{ref['sentence']}\n", encoding="utf-8")
    (tmp / "one_hyp.tsv").write_text(f"path\tprediction\n{empty[0]}\t\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["score", str(tmp / "one_ref.tsv"), "--hyp-table", f"g={tmp / 'one_hyp.tsv'}",
                                 "--speaker-col", "client_id", "--ref-col", "sentence", "--out", str(tmp / "one"),
                                 "-q"])
    assert r.exit_code == 0, r.output
    one = pd.read_csv(tmp / "one" / "utterance_scores.csv").iloc[0]
    assert (one.ref_words, one.deletions, one.substitutions, one.insertions, one.wer) == (words, words, 0, 0, 1.0)


def test_na_attributes_are_unknown_never_a_cohort(artie):
    rep = artie["report"]
    by_speaker = {r["client_id"]: r for r in artie["refs"]}
    for col in ("gender", "accent", "age"):
        unknown = sum(1 for r in by_speaker.values() if r[col] in ("NA", ""))
        assert rep["accounting"]["attribute_missing"][col] == unknown
        d = rep["discoverers"][f"attribute:{col}"]
        assert d["not_audited"] == {f"attribute missing: {col}": unknown}
        labels = {c["label"] for c in d["cohorts"]}
        assert f"{col}=NA" not in labels and len(labels) == len({r[col] for r in by_speaker.values()} - {"NA", ""})
        assert d["audited_speakers"] == len(by_speaker) - unknown
    assert sum(r["accent"] == "NA" for r in artie["refs"]) == 562   # clips, as the corpus README says
    # No discoverer of any system ranks a cohort made of the marker.
    for s in rep["systems"].values():
        for d in s["discoverers"].values():
            for c in d.get("cohorts", []):
                assert not re.search(r"\bNA\b", c["label"]), c["label"]
    assert rep["inputs"]["missing_attribute"] == "unknown" and "NA" in rep["inputs"]["na_values"]


def test_per_system_wer_equals_jiwer_on_the_same_normalised_strings(artie):
    refs = {_stem(r["path"]): r["sentence"] for r in artie["refs"]}
    for s in SYSTEMS:
        hyps = {_stem(p["path"]): p["prediction"] for p in artie["preds"][s]}
        keys = sorted(refs)
        ref_n = normalize([refs[k] for k in keys]).to_pylist()
        hyp_n = normalize([hyps.get(k, "") for k in keys]).to_pylist()
        pairs = [(a, b) for a, b in zip(ref_n, hyp_n) if a.split()]   # an empty reference cannot be scored
        out = jiwer.process_words([a for a, _ in pairs], [b for _, b in pairs])
        errors = out.substitutions + out.deletions + out.insertions
        words = out.hits + out.substitutions + out.deletions
        overall = artie["report"]["systems"][s]["overall"]
        assert (overall["errors"], overall["ref_words"]) == (errors, words), s
        assert overall["wer"] == pytest.approx(errors / words) == pytest.approx(out.wer)
        acc = artie["report"]["systems"][s]["accounting"]
        assert acc["rows_scored"] == len(pairs)
    # Per speaker too (the first system's speaker table): sums over the speaker's clips.
    speakers = pd.read_csv(artie["out"] / "speaker_scores.csv").set_index("speaker_id")
    per = _speaker_counts(artie, SYSTEMS[0])
    assert len(per) == len(speakers) == 969
    for spk, (e, w) in per.items():
        assert (speakers.loc[spk, "errors"], speakers.loc[spk, "ref_words"]) == (e, w), spk



def test_metadata_tree_cohorts_partition_the_speakers_and_match_their_definitions(artie):
    """The metadata discoverer runs by default on the Artie attributes: on every system its
    cohorts partition the 969 speakers, each cohort's WER is its speakers' pooled errors /
    words (recomputed with jiwer) and every speaker of a leaf meets the leaf's conditions."""
    rep = artie["report"]
    speakers = {r["client_id"]: r for r in artie["refs"]}
    assign = pd.read_csv(artie["out"] / "assignments.csv", dtype=str, keep_default_na=False)
    for system in SYSTEMS:
        d = rep["systems"][system]["discoverers"]["metadata"]
        assert d.get("skipped") is None, d.get("skipped")
        assert set(d["params"]["columns"]) == {"age", "gender", "accent"}
        rows = assign[(assign["system"] == system) & (assign["discoverer"] == "metadata")]
        assert len(rows) == len(speakers) and set(rows["speaker_id"]) == set(speakers)
        per = _speaker_counts(artie, system)
        for c in d["cohorts"]:
            members = rows.loc[rows["cohort_id"] == c["id"], "speaker_id"]
            assert len(members) == c["speakers"] > 0
            assert c["wer"] == pytest.approx(sum(per[s][0] for s in members) / sum(per[s][1] for s in members))
            for col, values in re.findall(r"\b(age|gender|accent) in \{([^}]*)\}", c["label"]):
                allowed = {v.strip() for v in values.split(",")} | {"NA", ""}   # unknowns follow a side
                assert all(speakers[s][col] in allowed for s in members), (system, c["label"], col)


def test_several_systems_side_by_side_give_the_serial_report(tmp_path, monkeypatch):
    """Three real systems, statistics in forked workers (threshold lowered to this corpus's
    969 speakers) and the HTML page in a forked process: report.json (timings aside),
    report.html and the tables equal a run in one process."""
    from fairaudit.stats import parallel

    d = realdata_dir() / "artie"
    base = ["audit", str(d / "artie-bias-corpus.tsv"),
            *[a for s in WAV_SYSTEMS for a in ("--hyp-table", f"{s}={d / 'predictions' / (s + '.tsv')}")],
            "--speaker-col", "client_id", "--ref-col", "sentence", "--by", "gender", "--by", "accent",
            "--bootstrap", "200", "--permutations", "40", "--heldout-splits", "2", "--quiet"]
    r = CliRunner().invoke(app, [*base, "--workers", "1", "--out", str(tmp_path / "serial")])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(parallel, "PARALLEL_MIN_SPEAKERS", 0)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 2)
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "side")])
    assert r.exit_code == 0, r.output
    reports = {}
    for name in ("serial", "side"):
        rep = json.loads((tmp_path / name / "report.json").read_text())
        reports[name] = (rep.pop("timings"), json.dumps(rep))
    assert "statistics" in reports["side"][0] and "statistics" not in reports["serial"][0]
    assert reports["side"][1] == reports["serial"][1]
    for f in ("report.html", "cohorts.csv", "assignments.csv", "speaker_scores.csv", "utterance_scores.parquet"):
        assert (tmp_path / "side" / f).read_bytes() == (tmp_path / "serial" / f).read_bytes(), f
