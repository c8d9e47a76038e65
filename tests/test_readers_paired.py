"""Kaldi text + utt2spk, sclite trn and NeMo manifests read into the same scores."""
import json

import pandas as pd
from typer.testing import CliRunner

from fairaudit.cli.app import app
from fairaudit.io.readers import InputSpec, read_utterances, trn_speaker
from fairaudit.speakers import score

runner = CliRunner()


def test_kaldi(write, tmp_path):
    ref = write("ref/text", "u1 hello world\nu2 turn on the light\nu3 only in ref\n")
    hyp = write("hyp/text", "u1 hello word\nu2 turn on light\nu9 orphan\n")
    u2s = write("utt2spk", "u1 alice\nu2 bob\nu3 bob\n")
    r = runner.invoke(app, ["score", "--ref", ref, "--hyp", hyp, "--utt2spk", u2s, "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    spk = pd.read_csv(tmp_path / "o" / "speaker_scores.csv").set_index("speaker_id")
    assert spk.loc["alice", "substitutions"] == 1
    # u3 has no hypothesis: dropped as no_hypothesis; u9 has no reference: dropped (and warned).
    assert spk.loc["bob", "deletions"] == 1 and spk.loc["bob", "utterances"] == 1
    acc = json.loads((tmp_path / "o" / "accounting.json").read_text())
    assert acc["rows_read"] == 4 and acc["rows_scored"] == 2
    assert acc["dropped"]["no_reference"]["rows"] == 1 and acc["dropped"]["no_hypothesis"]["rows"] == 1
    assert acc["dropped"]["no_hypothesis"]["examples"] == ["row 3 (utt_id='u3')"]
    assert "have no reference" in acc["warnings"][0] and "u9" in acc["warnings"][0]
    # --missing-hyp empty: u3 is scored as empty output (all deletions), with a warning.
    r = runner.invoke(app, ["score", "--ref", ref, "--hyp", hyp, "--utt2spk", u2s, "--out", str(tmp_path / "e"), "-q",
                            "--missing-hyp", "empty"])
    assert r.exit_code == 0, r.output
    spk = pd.read_csv(tmp_path / "e" / "speaker_scores.csv").set_index("speaker_id")
    assert spk.loc["bob", "deletions"] == 4 and spk.loc["bob", "utterances"] == 2
    acc = json.loads((tmp_path / "e" / "accounting.json").read_text())
    assert acc["rows_read"] == 4 and acc["rows_scored"] == 3 and "no_hypothesis" not in acc["dropped"]
    assert any("no hypothesis and are scored as empty output" in w for w in acc["warnings"])


def test_trn_speaker_from_prefix(write):
    ref = write("ref.trn", "hello world (spkA-001)\nturn it up (spkB_002)\nbroken line without id\n")
    hyp = write("hyp.trn", "hello (spkA-001)\nturn it up (spkB_002)\n")
    raw = read_utterances(InputSpec(path=ref, hyp_path=hyp))
    s = score(raw)
    assert s.accounting.dropped == {"unparsable_row": 1}
    assert dict(zip(s.speakers.speaker_id, s.speakers.deletions)) == {"spkA": 1, "spkB": 0}
    assert trn_speaker("abc_d-e") == "abc"


def test_nemo_manifest(write):
    lines = [{"audio_filepath": f"/a/{i}.wav", "text": "play some jazz", "pred_text": "play jazz", "speaker": f"s{i % 2}"}
             for i in range(4)]
    path = write("m.json", "\n".join(json.dumps(l) for l in lines))
    raw = read_utterances(InputSpec(path=path, format="nemo"))
    s = score(raw)
    assert s.overall["errors"] == 4 and s.overall["speakers"] == 2
