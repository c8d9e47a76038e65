"""--unit and --align through the library and the CLI: recorded in report.json, named in
every view, and the gate/compare refusing reports of another unit or normaliser."""
import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

import fairaudit
from fairaudit.cli.app import app
from fairaudit.fingerprint import CANARIES, fingerprint_differences, normalizer_fingerprint
from fairaudit.reports.html import render_html
from fairaudit.result import validate

runner = CliRunner()


def chinese_frame(bad_chars: int) -> pd.DataFrame:
    """Mandarin-English utterances: cohort 'b' gets ``bad_chars`` of 6 characters wrong."""
    rows = []
    ref = "我喜欢机器学习 and Python"
    for s in range(40):
        grp = "a" if s < 20 else "b"
        wrong = 1 if grp == "a" else bad_chars
        hyp = "错" * wrong + ref[wrong:]
        rows += [{"utt_id": f"u{s}-{u}", "speaker_id": f"s{s}", "reference": ref, "hypothesis": hyp, "grp": grp}
                 for u in range(2)]
    return pd.DataFrame(rows)


def save(tmp_path, name, frame, **kw):
    result = fairaudit.audit(frame, by=["grp"], discoverers=[], min_speakers=5, n_boot=0, n_perm=0, **kw)
    out = tmp_path / name
    result.save(str(out))
    return result, str(out / "report.json")


def one_line(output: str) -> str:
    lines = [l for l in output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_units_give_different_rates_and_are_recorded(tmp_path):
    frame = chinese_frame(3)
    word, _ = save(tmp_path, "w", frame)
    char, _ = save(tmp_path, "c", frame, unit="char")
    mixed, _ = save(tmp_path, "m", frame, unit="mixed")
    # One "word" of Chinese per sentence: every utterance is wrong at the word level.
    assert word.overall["ref_words"] == 80 * 3
    # 7 Han characters + " and Python" = 18 characters (spaces included, as jiwer counts them).
    assert char.overall["ref_words"] == 80 * 18
    assert mixed.overall["ref_words"] == 80 * 9
    assert mixed.overall["errors"] == 40 * 1 + 40 * 3
    for res, unit, rate in ((word, "word", "WER"), (char, "char", "CER"), (mixed, "mixed", "MER")):
        inputs = res.report["inputs"]
        assert (inputs["unit"], inputs["rate"], inputs["alignment"]) == (unit, rate, "jiwer")
        fp = inputs["normalization"]["fingerprint"]
        assert fp["unit"] == unit and len(fp["canaries"]) == len(CANARIES)
        validate(res.report)
    html = render_html(char)
    assert "Bottom CER %" in html and "overall CER" in html and "Bottom WER %" not in html


def test_cli_names_the_rate_everywhere(tmp_path):
    path = tmp_path / "utts.csv"
    chinese_frame(3).to_csv(path, index=False)
    out = tmp_path / "out"
    r = runner.invoke(app, ["audit", str(path), "--by", "grp", "--discoverers", "", "--min-speakers", "5",
                            "--bootstrap", "0", "--permutations", "0", "--unit", "mixed", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "overall MER" in r.output and "MER gap %" in r.output
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["inputs"]["unit"] == "mixed" and rep["schema_version"] == "1.2"
    assert "MER gap %" in (out / "report.html").read_text(encoding="utf-8")
    r = runner.invoke(app, ["gate", str(out / "report.json"), "--max-gap-pct", "500", "--max-overall-wer", "0.5"])
    assert r.exit_code == 0 and "PASS attribute:grp MER gap" in r.output and "overall MER" in r.output, r.output
    # score: the summary and accounting.json say which rate and alignment.
    r = runner.invoke(app, ["score", str(path), "--unit", "char", "--align", "sclite", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0 and r.output.strip().startswith("CER "), r.output
    acc = json.loads((tmp_path / "s" / "accounting.json").read_text(encoding="utf-8"))
    assert (acc["unit"], acc["rate"], acc["alignment"]) == ("char", "CER", "sclite")
    # The CSV keeps its column names.
    assert "wer" in pd.read_csv(tmp_path / "s" / "speaker_scores.csv").columns


@pytest.mark.parametrize("flag,value,match", [("--unit", "syllable", "unknown unit 'syllable'"),
                                              ("--align", "kaldi", "unknown alignment 'kaldi'")])
def test_bad_unit_or_alignment_is_one_line(tmp_path, flag, value, match):
    path = tmp_path / "utts.csv"
    chinese_frame(1).to_csv(path, index=False)
    r = runner.invoke(app, ["score", str(path), flag, value, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and match in one_line(r.output)


def test_gate_refuses_a_baseline_in_another_unit(tmp_path):
    _, word = save(tmp_path, "w", chinese_frame(2))
    _, char = save(tmp_path, "c", chinese_frame(3), unit="char")
    for extra in ([], ["--allow-normalizer-change"]):
        r = runner.invoke(app, ["gate", char, "--baseline", word, "--max-gap-increase-pct", "10", *extra])
        line = one_line(r.output)
        assert r.exit_code == 2 and "different units: CER (char) vs WER (word" in line, r.output


def test_gate_refuses_a_changed_normaliser_unless_allowed(tmp_path):
    _, base = save(tmp_path, "b", chinese_frame(2))
    _, cand = save(tmp_path, "c", chinese_frame(3), normalization="none")
    r = runner.invoke(app, ["gate", cand, "--baseline", base, "--max-gap-increase-pct", "1000"])
    line = one_line(r.output)
    assert r.exit_code == 2 and "normalisation none vs default" in line and "canary" in line, r.output
    r = runner.invoke(app, ["gate", cand, "--baseline", base, "--max-gap-increase-pct", "1000",
                            "--allow-normalizer-change"])
    assert r.exit_code == 0 and "warning: comparing despite a different normaliser" in r.output, r.output
    # The same settings pass without the flag.
    _, again = save(tmp_path, "a", chinese_frame(3))
    r = runner.invoke(app, ["gate", again, "--baseline", base, "--max-gap-increase-pct", "1000"])
    assert r.exit_code == 0, r.output


def test_gate_names_a_library_bump_and_a_missing_fingerprint(tmp_path):
    _, base = save(tmp_path, "b", chinese_frame(2))
    _, cand = save(tmp_path, "c", chinese_frame(3))
    doc = json.loads(open(base, encoding="utf-8").read())
    doc["inputs"]["normalization"]["fingerprint"]["versions"]["jiwer"] = "2.5.1"
    doc["inputs"]["normalization"]["fingerprint"]["canaries"][0]["normalized"] = "do not stop"
    open(base, "w", encoding="utf-8").write(json.dumps(doc))
    r = runner.invoke(app, ["gate", cand, "--baseline", base, "--max-gap-increase-pct", "1000"])
    line = one_line(r.output)
    assert r.exit_code == 2 and re.search(r"jiwer \S+ vs 2\.5\.1", line) and "1 canary sentence" in line, r.output
    del doc["inputs"]["normalization"]["fingerprint"]
    open(base, "w", encoding="utf-8").write(json.dumps(doc))
    r = runner.invoke(app, ["gate", cand, "--baseline", base, "--max-gap-increase-pct", "1000"])
    assert r.exit_code == 2 and "baseline has no normaliser fingerprint" in one_line(r.output)


def test_compare_refuses_cohorts_saved_under_another_normaliser(tmp_path):
    frame = chinese_frame(3)
    frame["hyp2"] = frame["hypothesis"]
    _, report = save(tmp_path, "saved", frame.drop(columns="hyp2"), normalization="none")
    path = tmp_path / "two.csv"
    frame.to_csv(path, index=False)
    cohorts = str(tmp_path / "saved" / "assignments.csv")
    args = ["compare", str(path), "--hyp-col", "hypothesis", "--hyp-col", "hyp2", "--cohorts", cohorts,
            "--resamples", "100", "--no-html", "--out", str(tmp_path / "cmp")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "normalisation default vs none" in one_line(r.output), r.output
    r = runner.invoke(app, args + ["--allow-normalizer-change"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, args + ["--normalize", "none", "--unit", "char"])
    assert r.exit_code == 2 and "different units" in one_line(r.output)


def test_fingerprint_tracks_what_changes_tokens():
    a = normalizer_fingerprint("default", "word")
    assert fingerprint_differences(a, normalizer_fingerprint("default", "word")) == []
    assert a["digest"] == normalizer_fingerprint("default", "word")["digest"]
    diffs = fingerprint_differences(normalizer_fingerprint("default", "word", "sclite"), a)
    assert diffs == ["alignment sclite vs jiwer"]
    # The whisper normaliser's version only matters in its own mode.
    b = json.loads(json.dumps(a))
    b["versions"]["whisper-normalizer"] = "0.0.1"
    assert fingerprint_differences(a, b) == []


def test_worst_utterances_align_in_the_reports_unit_and_alignment(tmp_path):
    res, _ = save(tmp_path, "c", chinese_frame(3), unit="char", alignment="sclite", worst_n=2)
    worst = res.discoverers["attribute:grp"]["worst_utterances"]
    assert worst
    for w in worst:
        ops = [op for op, _, _ in w["alignment"]]
        assert len(w["alignment"][0][1] or w["alignment"][0][2]) == 1  # characters, not words
        assert sum(op != "equal" for op in ops) == w["errors"]
        assert sum(op != "ins" for op in ops) == w["ref_words"]
