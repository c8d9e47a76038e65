"""`fairaudit export` / `fairaudit assign` (issue 20): from discovered cohorts to training data.

The sample data are audited with a tenth of the speakers held out; the export's manifests
are checked against the audit's own assignments.csv and the input table read here
independently (csv module), the weights against the documented formula recomputed from
speaker_scores.csv, and `assign` against assignments.csv (audited speakers) and each
discoverer's saved definition applied by hand (held-out speakers).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import wave

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fairaudit.audit import audit
from fairaudit.cli.app import app

from conftest import SAMPLE, error_line

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample data audited (every discoverer, metadata included; no resampling) on 90 % of the
    speakers; the other 10 % are held out for `assign`."""
    tmp = tmp_path_factory.mktemp("sample")
    rows = read_rows(SAMPLE / "utterances.csv")
    speakers = sorted({r["speaker_id"] for r in rows})
    held = set(np.random.default_rng(7).choice(speakers, size=len(speakers) // 10, replace=False))
    kept = [r for r in rows if r["speaker_id"] not in held]
    path = tmp / "utterances.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    out = tmp / "audit"
    result = audit(str(path), speakers=str(SAMPLE / "speakers.csv"), census=str(SAMPLE / "census.csv"),
                   embeddings=str(SAMPLE / "embeddings.npy"), embedding_ids=str(SAMPLE / "embedding_ids.txt"),
                   by=["gender"], n_boot=0, n_perm=0, honest=False, worst_n=0)
    result.save(str(out))
    assignments = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    return {"dir": out, "input": kept, "held": held, "report": result.report, "assignments": assignments,
            "tmp": tmp}


@pytest.fixture(scope="module")
def exported(sample):
    out = sample["tmp"] / "export"
    r = run("export", sample["dir"] / "report.json", "--format", "csv,jsonl,kaldi", "--format", "hf",
            "--seed", "3", "--out", out)
    assert r.exit_code == 0, r.output
    return out, json.loads((out / "export.json").read_text())


def members(assignments: pd.DataFrame, key: str, cid: str) -> set[str]:
    a = assignments
    return set(a.loc[(a["discoverer"] == key) & (a["cohort_id"] == cid), "speaker_id"])


def test_export_writes_each_bottom_cohort_with_its_members_utterances_and_transcripts(sample, exported):
    out, summary = exported
    report, a = sample["report"], sample["assignments"]
    chosen = {s["name"]: s for s in summary["selection"]}
    expected = {f"{k}:{e['bottom']}" for k, e in report["discoverers"].items() if e.get("bottom")}
    assert set(chosen) == expected and {k.split(":")[0] for k in expected} >= {"geographic", "geodemographic", "automatic", "metadata"}
    # the rows the audit scores: first of a duplicate id kept, empty references dropped
    refs: dict[str, dict] = {}
    for r in sample["input"]:
        if r["reference"].strip() and r["speaker_id"].strip():
            refs.setdefault(r["utt_id"], r)
    for name, s in chosen.items():
        folder = out / "csv" / name.replace(":", "-")
        got = read_rows(folder / "train.csv") + read_rows(folder / "dev.csv")
        spk = members(a, s["key"], s["id"])
        assert {r["speaker_id"] for r in got} == spk
        # every scored utterance of those speakers, once, with its reference transcript
        want = {u for u, r in refs.items() if r["speaker_id"] in spk}
        assert sorted(r["utt_id"] for r in got) == sorted(want)
        assert all(r["text"] == refs[r["utt_id"]]["reference"] and r["cohort"] == name for r in got)
        assert len(got) == s["utterances"]
    allrows = read_rows(out / "csv" / "all" / "train.csv") + read_rows(out / "csv" / "all" / "dev.csv")
    union = set().union(*(members(a, s["key"], s["id"]) for s in chosen.values()))
    assert {r["speaker_id"] for r in allrows} == union


def test_split_is_by_speaker_seeded_and_stratified(sample, exported):
    out, summary = exported
    for folder in (out / "csv").iterdir():
        train = {r["speaker_id"] for r in read_rows(folder / "train.csv")}
        dev = {r["speaker_id"] for r in read_rows(folder / "dev.csv")}
        assert train and dev and not train & dev, folder.name
    # dev is about a tenth of each cohort's speakers (at least one)
    for s in summary["selection"]:
        folder = out / "csv" / s["name"].replace(":", "-")
        dev = {r["speaker_id"] for r in read_rows(folder / "dev.csv")}
        assert abs(len(dev) - 0.1 * s["speakers"]) <= max(1.0, 0.1 * s["speakers"])
    again = sample["tmp"] / "export-again"
    other = sample["tmp"] / "export-seed4"
    assert run("export", sample["dir"], "--seed", "3", "--out", again, "-q").exit_code == 0
    assert run("export", sample["dir"], "--seed", "4", "--out", other, "-q").exit_code == 0
    name = "geographic-" + sample["report"]["discoverers"]["geographic"]["bottom"]
    same = (out / "csv" / name / "dev.csv").read_bytes()
    assert (again / "csv" / name / "dev.csv").read_bytes() == same
    assert (other / "csv" / name / "dev.csv").read_bytes() != same


def test_weights_follow_the_documented_formula(sample, exported):
    out, summary = exported
    cap = summary["weights"]["cap"]
    scores = pd.read_csv(sample["dir"] / "speaker_scores.csv", dtype={"speaker_id": str})
    a = sample["assignments"]
    raw = pd.Series(1.0, index=scores["speaker_id"])
    for key in summary["weights"]["discoverers"]:
        sub = a.loc[a["discoverer"] == key].merge(scores[["speaker_id", "errors", "ref_words"]], on="speaker_id")
        w_d = sub["errors"].sum() / sub["ref_words"].sum()
        floor = sample["report"]["discoverers"][key]["init_params"]["min_speakers"]
        for cid, grp in sub.groupby("cohort_id"):
            excess = grp["errors"].sum() / grp["ref_words"].sum() / w_d - 1
            r_c = 1 + min(cap - 1, max(0.0, excess)) if len(grp) >= floor else 1.0
            ids = grp["speaker_id"].to_numpy()
            raw.loc[ids] = np.maximum(raw.loc[ids].to_numpy(), r_c)
    weights = pd.read_csv(out / "weights.csv", dtype={"utt_id": str, "speaker_id": str})
    assert len(weights) == sample["report"]["accounting"]["rows_scored"]
    expected = raw.reindex(weights["speaker_id"]).to_numpy()
    np.testing.assert_allclose(weights["weight"].to_numpy(), expected / expected.mean())
    assert weights["weight"].mean() == pytest.approx(1.0)
    assert weights["raw_weight"].max() > 1.2   # the bottom cohorts are up-weighted
    # the manifests carry the same weight per utterance
    w = weights.set_index("utt_id")["weight"]
    rows = read_rows(next((out / "csv").iterdir()) / "train.csv")
    np.testing.assert_allclose([float(r["weight"]) for r in rows], w.loc[[r["utt_id"] for r in rows]].to_numpy())
    # cap 1: no reweighting at all
    flat = sample["tmp"] / "flat"
    assert run("export", sample["dir"], "--weight-cap", "1", "--out", flat, "-q").exit_code == 0
    assert set(pd.read_csv(flat / "weights.csv")["weight"]) == {1.0}


def test_speaker_cohort_features_equal_assignments(sample, exported):
    out, _ = exported
    feats = pd.read_csv(out / "speaker_cohorts.csv", dtype=str, keep_default_na=False).set_index("speaker_id")
    a = sample["assignments"]
    for key, grp in a.groupby("discoverer"):
        assert (feats.loc[grp["speaker_id"], key].to_numpy() == grp["cohort_id"].to_numpy()).all()
        assert (feats.drop(grp["speaker_id"])[key] == "").all()


def test_kaldi_dir_is_consistent_and_text_only_without_audio(exported):
    out, summary = exported
    assert summary["formats"]["kaldi"]["wav_scp"] is False
    assert any("text-only" in w for w in summary["source"]["warnings"])
    d = next((out / "kaldi").iterdir()) / "train"
    assert not (d / "wav.scp").exists()
    text = [ln.split(" ", 1)[0] for ln in (d / "text").read_text().splitlines()]
    utt2spk = dict(ln.split() for ln in (d / "utt2spk").read_text().splitlines())
    assert text == sorted(text, key=lambda s: s.encode()) == list(utt2spk)
    spk2utt = {ln.split()[0]: ln.split()[1:] for ln in (d / "spk2utt").read_text().splitlines()}
    assert {u: s for s, us in spk2utt.items() for u in us} == utt2spk
    # Kaldi's rule: sorted by speaker is sorted by utterance too
    assert [u for s in sorted(spk2utt) for u in spk2utt[s]] == text


def test_hf_folder_loads_with_datasets(exported, tmp_path):
    import datasets   # in the test extra: the format is checked by the library that loads it
    out, summary = exported
    target = next(t for t in summary["formats"]["hf"]["targets"] if t["cohort"] != "all chosen cohorts")
    ds = datasets.load_dataset(str(out / target["folder"]), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation"}
    assert (ds["train"].num_rows, ds["validation"].num_rows) == (target["rows"]["train"], target["rows"]["dev"])
    assert set(ds["train"].column_names) >= {"utt_id", "speaker_id", "cohort", "weight", "text"}


def test_assign_puts_audited_speakers_into_their_cohorts_and_held_out_ones_by_definition(sample):
    out = sample["tmp"] / "assign"
    r = run("assign", SAMPLE / "speakers.csv", "--from", sample["dir"] / "report.json", "--out", out)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    summary = json.loads((out / "assign.json").read_text())
    a = sample["assignments"]
    n = len(pd.read_csv(SAMPLE / "speakers.csv"))
    for key, d in summary["discoverers"].items():
        # every speaker placed or left out with a reason
        assert d["placed"] + sum(d["unplaced"].values()) == n
        got = table.loc[(table["discoverer"] == key) & (table["cohort_id"] != "")].set_index("speaker_id")["cohort_id"]
        audit = a.loc[a["discoverer"] == key].set_index("speaker_id")["cohort_id"]
        # the audited speakers: exactly assignments.csv
        assert got.reindex(audit.index).to_dict() == audit.to_dict()
        assert not (set(got.index) - set(audit.index)) - sample["held"]
        held = got[got.index.isin(sample["held"])]
        assert len(held) >= 0.8 * len(sample["held"]), key
    rep = sample["report"]["discoverers"]
    spk = pd.read_csv(SAMPLE / "speakers.csv", dtype={"speaker_id": str, "zip": str}).set_index("speaker_id")
    placed = {k: g.set_index("speaker_id")["cohort_id"] for k, g in table.loc[table["cohort_id"] != ""].groupby("discoverer")}
    held = sorted(sample["held"])
    # geographic: in the hot spot exactly when within its radius (haversine, computed here)
    circle = rep["geographic"]["definition"]["circle"]
    hot = rep["geographic"]["bottom"]
    lat0, lon0 = np.radians(circle["centre_lat"]), np.radians(circle["centre_lon"])
    geo_held = placed["geographic"].index.intersection(held)
    assert len(geo_held) > 0
    for s in geo_held:
        lat, lon = np.radians(spk.loc[s, "lat"]), np.radians(spk.loc[s, "lon"])
        h = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat0) * np.cos(lat) * np.sin((lon - lon0) / 2) ** 2
        km = 2 * 6371.0088 * np.arcsin(np.sqrt(h))
        assert (placed["geographic"][s] == hot) == (km <= circle["radius_km"]), (s, km)
    # geodemographic: the census rule of the speaker's zip
    rule = rep["geodemographic"]["definition"]
    census = pd.read_csv(SAMPLE / "census.csv", dtype={"zip": str}).set_index("zip")
    (lit,) = rule["literals"]
    for s in placed["geodemographic"].index.intersection(held):
        inside = census.loc[spk.loc[s, "zip"], lit["column"]] > lit["threshold"]
        assert placed["geodemographic"][s] == (rule["in_rule"] if inside else rule["rest"])
    # automatic: the nearest saved centroid of the L2-normalised embedding
    d = rep["automatic"]["definition"]
    emb = np.load(SAMPLE / "embeddings.npy")
    ids = (SAMPLE / "embedding_ids.txt").read_text().split()
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cent = np.asarray(d["centroids"])
    for s in held:
        v = emb[ids.index(s)]
        assert placed["automatic"][s] == d["cohort_ids"][int(np.argmin(((cent - v) ** 2).sum(axis=1)))]
    # attribute: the speaker's value
    labels = {c["id"]: c["label"] for c in rep["attribute:gender"]["cohorts"]}
    for s in held:
        assert labels[placed["attribute:gender"][s]] == f"gender={spk.loc[s, 'gender']}"


def test_assign_counts_speakers_it_cannot_place(sample, tmp_path):
    path = tmp_path / "new.csv"
    pd.DataFrame({"speaker_id": ["n1", "n2", "n3"], "lat": [None, 95.0, 33.7], "lon": [None, -84.4, -84.4],
                  "gender": ["female", "NA", "robot"]}).to_csv(path, index=False)
    out = tmp_path / "a"
    r = run("assign", path, "--from", sample["dir"], "--out", out, "-q")
    assert r.exit_code == 0, r.output
    s = json.loads((out / "assign.json").read_text())["discoverers"]
    assert s["geographic"]["placed"] == 1 and sum(s["geographic"]["unplaced"].values()) == 2
    assert s["geodemographic"]["unplaced"] == {"no zip column in the speaker table": 3}
    assert s["attribute:gender"]["placed"] == 1
    assert set(s["attribute:gender"]["unplaced"]) == {"missing gender", "gender value not among the audit's cohorts"}


def test_worse_than_rest_comes_from_the_audit_section_or_is_refused(sample, tmp_path):
    # The audit tests every cohort against the rest: --cohorts worse exports exactly its list.
    worse = sample["report"]["rate_ratios"]["worse_than_rest"]
    assert worse, "the sample data's planted cohorts are worse than the rest"
    out = tmp_path / "w"
    r = run("export", sample["dir"], "--cohorts", "worse", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    sel = json.loads((out / "export.json").read_text())["selection"]
    assert [(s["key"], s["id"]) for s in sel] == [(w["discoverer"], w["cohort"]) for w in worse]
    assert "Holm" in sel[0]["why"]
    # A report without the section (an audit run with --no-cohort-tests, or an older one) is refused.
    folder = tmp_path / "audit"
    shutil.copytree(sample["dir"], folder)
    rep = json.loads((folder / "report.json").read_text())
    del rep["rate_ratios"]
    (folder / "report.json").write_text(json.dumps(rep))
    line = error_line(run("export", folder, "--cohorts", "worse", "--out", tmp_path / "x"))
    assert "rate_ratios.worse_than_rest" in line and "--cohorts bottom" in line
    rep["rate_ratios"] = {"worse_than_rest": [{"discoverer": "geographic", "cohort": "R99"}]}
    (folder / "report.json").write_text(json.dumps(rep))
    assert "R99" in error_line(run("export", folder, "--cohorts", "worse", "--out", tmp_path / "y"))


@pytest.mark.parametrize("args, says", [
    (("--cohort", "geographic:R99"), "no cohort 'R99'"),
    (("--cohort", "nosuch:R01"), "--cohort 'nosuch:R01'"),
    (("--cohorts", "worst"), "--cohorts 'worst'"),
    (("--format", "wav"), "--format 'wav'"),
    (("--format", "nemo"), "--format nemo"),
    (("--dev-fraction", "1.5"), "--dev-fraction"),
    (("--weight-cap", "0.5"), "--weight-cap"),
    (("--discoverer", "nosuch"), "--discoverer 'nosuch'"),
])
def test_export_mistakes_are_one_line(sample, tmp_path, args, says):
    assert says in error_line(run("export", sample["dir"], *args, "--out", tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_named_cohort_and_old_report_folder_with_utterances_flag(sample, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(sample["dir"], folder)
    os.remove(folder / "utterance_scores.parquet")
    cid = sample["report"]["discoverers"]["attribute:gender"]["top"]
    line = error_line(run("export", folder, "--cohort", f"attribute:gender:{cid}", "--out", tmp_path / "x"))
    assert "utterance_scores.parquet" in line and "--utterances" in line
    src = sample["tmp"] / "utterances.csv"
    r = run("export", folder, "--cohort", f"attribute:gender:{cid}", "--utterances", src, "--out", tmp_path / "o",
            "-q")
    assert r.exit_code == 0, r.output
    r2 = run("export", sample["dir"], "--cohort", f"attribute:gender:{cid}", "--out", tmp_path / "n", "-q")
    assert r2.exit_code == 0, r2.output
    name = f"attribute-gender-{cid}"
    for part in ("train.csv", "dev.csv"):
        assert (tmp_path / "o" / "csv" / name / part).read_bytes() == (tmp_path / "n" / "csv" / name / part).read_bytes()


def _wav(path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


def test_audio_paths_give_nemo_manifests_and_wav_scp(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    gen = np.random.default_rng(0)
    for s in range(24):
        for u in range(3):
            utt = f"s{s:02d}u{u}"
            _wav(audio / f"{utt}.wav", 0.25 * (u + 1))
            hyp = "the cat sat" if (s < 8 and u == 0) or gen.random() < 0.2 else "the cat sat on the mat"
            rows.append({"utt_id": utt, "speaker_id": f"s{s:02d}", "reference": "the cat sat on the mat",
                         "hypothesis": hyp, "audio_filepath": f"audio/{utt}.wav", "grp": "a" if s < 8 else "b"})
    path = tmp_path / "utts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = audit(str(path), by=["grp"], discoverers=[], min_speakers=5, n_boot=0, n_perm=0, honest=False,
                   worst_n=0)
    result.save(str(tmp_path / "audit"))
    out = tmp_path / "e"
    r = run("export", tmp_path / "audit", "--format", "nemo,kaldi", "--audio-root", tmp_path, "--out", out, "-q")
    assert r.exit_code == 0, r.output
    folder = out / "nemo" / "attribute-grp-A01"
    recs = [json.loads(ln) for p in folder.glob("*_manifest.json") for ln in p.read_text().splitlines()]
    assert len(recs) == 24 and {r["speaker_id"] for r in recs} == {f"s{s:02d}" for s in range(8)}
    for rec in recs:
        assert os.path.isfile(rec["audio_filepath"]) and rec["text"] == "the cat sat on the mat"
        assert rec["duration"] == pytest.approx(0.25 * (int(rec["utt_id"][-1]) + 1))
    scp = dict(ln.split(" ", 1) for ln in (out / "kaldi" / "attribute-grp-A01" / "train" / "wav.scp").read_text()
               .splitlines())
    assert all(v.endswith(".wav") and os.path.isfile(v) for v in scp.values())
    dur = (out / "kaldi" / "attribute-grp-A01" / "train" / "utt2dur").read_text().splitlines()
    assert len(dur) == len(scp)


# ---------------------------------------------------------------- the Artie Bias Corpus (real data)

@pytest.fixture(scope="module")
def artie(tmp_path_factory):
    """One real recogniser's audit of the Artie corpus (attribute cohorts: gender, age,
    accent) with 15 % of the speakers held out; the reference table is filtered line by
    line, so the audit reads the corpus's own formatting."""
    from conftest import realdata_dir

    d = realdata_dir() / "artie"
    tmp = tmp_path_factory.mktemp("artie")
    lines = (d / "artie-bias-corpus.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split("\t")
    rows = [dict(zip(header, ln.rstrip("\n").split("\t"))) for ln in lines[1:]]
    speakers = sorted({r["client_id"] for r in rows})
    held = set(np.random.default_rng(11).choice(speakers, size=int(0.15 * len(speakers)), replace=False))
    ref = tmp / "artie.tsv"
    ref.write_text(lines[0] + "".join(ln for ln, r in zip(lines[1:], rows) if r["client_id"] not in held),
                   encoding="utf-8")
    out = tmp / "audit"
    r = run("audit", ref, "--hyp-table", f"google_en-US={d / 'predictions' / 'google_en-US.tsv'}",
            "--speaker-col", "client_id", "--ref-col", "sentence", "--by", "gender", "--by", "age", "--by", "accent",
            "--bootstrap", "0", "--permutations", "0", "--no-honest-gap", "--no-html", "-q", "--out", out)
    assert r.exit_code == 0, r.output
    first: dict[str, dict] = {}
    for row in rows:
        first.setdefault(row["client_id"], row)
    table = tmp / "speakers.csv"
    pd.DataFrame([{"speaker_id": s, "gender": v["gender"], "age": v["age"], "accent": v["accent"]}
                  for s, v in first.items()]).to_csv(table, index=False)
    return {"dir": out, "rows": rows, "held": held, "speakers": table, "tmp": tmp,
            "report": json.loads((out / "report.json").read_text()),
            "assignments": pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)}


def test_artie_export_of_the_bottom_cohorts(artie):
    out = artie["tmp"] / "export"
    r = run("export", artie["dir"], "--format", "csv,kaldi,hf", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "export.json").read_text())
    rep, a = artie["report"], artie["assignments"]
    assert [s["name"] for s in summary["selection"]] == [
        f"{k}:{e['bottom']}" for k, e in rep["discoverers"].items() if not e.get("skipped") and e.get("bottom")]
    clips = {r["path"]: r for r in artie["rows"] if r["client_id"] not in artie["held"]}
    for s in summary["selection"]:
        folder = out / "csv" / s["name"].replace(":", "-")
        got = read_rows(folder / "train.csv") + read_rows(folder / "dev.csv")
        spk = members(a, s["key"], s["id"])
        assert {g["speaker_id"] for g in got} == spk
        assert sorted(g["utt_id"] for g in got) == sorted(p for p, c in clips.items() if c["client_id"] in spk)
        # transcripts as the corpus has them, audio paths from its path column
        assert all(g["text"] == clips[g["utt_id"]]["sentence"] and g["audio"] == g["utt_id"] for g in got)
        train = {g["speaker_id"] for g in read_rows(folder / "train.csv")}
        assert not train & {g["speaker_id"] for g in read_rows(folder / "dev.csv")}
        kaldi = out / "kaldi" / s["name"].replace(":", "-") / "train"
        scp = (kaldi / "wav.scp").read_text().splitlines()
        assert len(scp) == len(read_rows(folder / "train.csv"))
        # MP3 clips reach Kaldi through sox; the speaker-prefixed ids keep Kaldi's sort rule
        assert all(ln.endswith(" -t wav - |") and " sox common_voice_en_" in ln for ln in scp)
    assert summary["formats"]["kaldi"]["ids_prefixed_with_speaker"] is True


def test_artie_assign_held_out_speakers(artie):
    out = artie["tmp"] / "assign"
    r = run("assign", artie["speakers"], "--from", artie["dir"] / "report.json", "--out", out, "-q")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    summary = json.loads((out / "assign.json").read_text())
    a = artie["assignments"]
    first = pd.read_csv(artie["speakers"], dtype=str, keep_default_na=False).set_index("speaker_id")
    for key, entry in artie["report"]["discoverers"].items():
        d = summary["discoverers"][key]
        assert d["placed"] + sum(d["unplaced"].values()) == len(first)
        if entry.get("skipped"):
            assert d["placed"] == 0
            continue
        got = table.loc[(table["discoverer"] == key) & (table["cohort_id"] != "")].set_index("speaker_id")["cohort_id"]
        audit = a.loc[a["discoverer"] == key].set_index("speaker_id")["cohort_id"]
        assert got.reindex(audit.index).to_dict() == audit.to_dict()
        if not key.startswith("attribute:"):
            # the metadata tree: held-out speakers go down its saved splits
            assert got.index.isin(artie["held"]).sum() > 50
            continue
        col = key.split(":")[1]
        labels = {c["id"]: c["label"] for c in entry["cohorts"]}
        held = got[got.index.isin(artie["held"])]
        assert len(held) > 50
        assert all(labels[c] == f"{col}={first.loc[s, col]}" for s, c in held.items())
        # speakers who gave no value ("NA", empty) are not placed, as the audit left them out
        unknown = first.index[first[col].str.strip().str.upper().isin(["", "NA"])]
        assert not set(got.index) & set(unknown)
        assert d["unplaced"].get(f"missing {col}", 0) == len(unknown)
