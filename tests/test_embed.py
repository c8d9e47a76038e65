"""Speaker embeddings from audio (fairaudit.embed) on voices synthesised with espeak-ng."""
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from fairaudit import embed
from fairaudit.errors import UserInputError

VOICES = ["en-us", "en-gb+f3", "en+m7"]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "She sells sea shells by the sea shore every single summer morning.",
    "We will meet at the station at half past seven tomorrow evening.",
]


def _need_tools():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no voices to synthesise")
    try:
        embed.require_embed_extra()
    except UserInputError as exc:  # only "the optional [embed] extra is not installed"; anything else fails
        pytest.skip(f"audio embedding extra missing: {exc}")


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """3 voices x 4 sentences as 16 kHz WAV files, plus a manifest with two bad rows."""
    _need_tools()
    import soundfile as sf
    from scipy.signal import resample_poly

    root = tmp_path_factory.mktemp("voices")
    rows = []
    for v, voice in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            raw = root / f"raw_{v}_{s}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
            wav, sr = sf.read(raw, dtype="float32")
            wav16 = resample_poly(wav, 320, 441) if sr == 22050 else wav
            name = f"spk{v}_utt{s}.wav"
            sf.write(root / name, wav16.astype(np.float32), 16000)
            rows.append({"utt_id": f"spk{v}_utt{s}", "speaker_id": f"spk{v}", "audio_path": name})
    (root / "broken.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(root / "silence.wav", np.zeros(16000 * 2, dtype=np.float32), 16000)
    rows += [{"utt_id": "gone", "speaker_id": "spk0", "audio_path": "does_not_exist.wav"},
             {"utt_id": "broken", "speaker_id": "spk1", "audio_path": "broken.wav"},
             {"utt_id": "quiet", "speaker_id": "spk2", "audio_path": "silence.wav"}]
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return root, manifest


@pytest.fixture(scope="module")
def result(voices):
    _, manifest = voices
    return embed.embed_manifest(str(manifest), workers=1)


def test_same_voice_closer_than_other_voices(result):
    utt = result.utterances
    assert len(utt) == len(VOICES) * len(SENTENCES)
    m = result.utterance_matrix()
    sim = m @ m.T
    spk = utt["speaker_id"].to_numpy()
    same = spk[:, None] == spk[None, :]
    off_diag = ~np.eye(len(spk), dtype=bool)
    within, between = sim[same & off_diag].mean(), sim[~same].mean()
    assert within > between, (within, between)
    # and per voice: each utterance is on average nearest its own voice
    for i in range(len(spk)):
        own = sim[i, same[i] & off_diag[i]].mean()
        assert own > sim[i, ~same[i]].mean()


def test_speaker_vectors_unit_norm_and_counts(result):
    sp = result.speakers
    assert sp["speaker_id"].tolist() == ["spk0", "spk1", "spk2"]
    assert sp["n_utterances"].tolist() == [4, 4, 4]
    norms = np.linalg.norm(result.speaker_matrix(), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_unreadable_audio_counted_with_reason(result):
    un = result.unreadable.set_index("utt_id")
    assert un.loc["gone", "reason"] == embed.MISSING_FILE
    assert un.loc["broken", "reason"] == embed.NOT_DECODABLE
    assert un.loc["quiet", "reason"] == embed.TOO_SHORT
    assert result.info["unreadable"]["by_reason"] == {embed.MISSING_FILE: 1, embed.NOT_DECODABLE: 1,
                                                      embed.TOO_SHORT: 1}
    assert result.info["utterances"] == 15 and result.info["embedded"] == 12


def test_parquet_sidecar_and_audit_reads_it(result, voices, tmp_path):
    import fairaudit
    from fairaudit.io.embeddings import read_embeddings

    out = tmp_path / "embeddings.parquet"
    side = embed.write_embeddings(result, str(out), manifest="manifest.csv")
    matrix, ids, info = read_embeddings(str(out))
    assert matrix.shape == (3, embed.EMBEDDING_DIM) and list(ids) == ["spk0", "spk1", "spk2"]
    import pyarrow as pa
    import pyarrow.parquet as pq
    typ = pq.read_schema(out).field("embedding").type
    assert pa.types.is_list(typ) and typ.value_type == pa.float32()
    report = json.loads(open(side).read())
    assert report["unreadable"]["count"] == 3
    assert report["unreadable"]["examples"][embed.MISSING_FILE][0]["utt_id"] == "gone"

    # an utterance table to audit: WER differs by voice
    rows = []
    for s in range(3):
        for u in range(4):
            rows.append({"utt_id": f"spk{s}_utt{u}", "speaker_id": f"spk{s}",
                         "reference": "a b c d e f g h i j", "hypothesis": "a b c d e f g h i j"[: 19 - 4 * s]})
    table = tmp_path / "utts.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    res = fairaudit.audit(str(table), embeddings=str(out), discoverers=["automatic"],
                          params={"automatic": {"k": 2}}, min_speakers=1)
    entry = res.discoverers["automatic"]
    assert entry["skipped"] is None, entry["skipped"]          # the embeddings were used, not skipped
    assert entry["audited_speakers"] == 3 and entry["cohort_count"] == 2
    assert sorted(c["speakers"] for c in entry["cohorts"]) == [1, 2]
    assert set(res.assignment("automatic").index) == {"spk0", "spk1", "spk2"}


def test_kaldi_and_nemo_manifests(voices, tmp_path):
    root, _ = voices
    scp = tmp_path / "wav.scp"
    scp.write_text(f"a1 {root / 'spk0_utt0.wav'}\na2 sox {root / 'spk0_utt1.wav'} -t wav - |\n"
                   f"a3 {root / 'spk1_utt0.wav'}\n")
    u2s = tmp_path / "utt2spk"
    u2s.write_text("a1 s0\na2 s0\n")
    frame = embed.read_manifest(str(scp), utt2spk=str(u2s))
    assert frame.set_index("utt_id")["reason"].to_dict() == {"a1": None, "a2": embed.PIPE, "a3": embed.NO_SPEAKER}
    nemo = tmp_path / "manifest.json"
    nemo.write_text(json.dumps({"audio_filepath": str(root / "spk2_utt0.wav"), "duration": 3.0, "speaker": 7,
                                "text": "x"}) + "\n")
    frame = embed.read_manifest(str(nemo))
    assert frame.loc[0, "speaker_id"] == "7" and frame.loc[0, "reason"] is None
    res = embed.embed_manifest(frame, workers=1)
    assert res.info["embedded"] == 1


def test_missing_extra_is_one_line_error(monkeypatch):
    import importlib.util

    from fairaudit.errors import UserInputError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "resemblyzer" else real(name, *a))
    with pytest.raises(UserInputError, match=r"pip install 'fairaudit\[embed\]'"):
        embed.require_embed_extra()


def test_cli_embed_then_audit(voices, tmp_path):
    from typer.testing import CliRunner

    from fairaudit.cli.app import app

    _, manifest = voices
    out = tmp_path / "emb.parquet"
    r = CliRunner().invoke(app, ["embed", str(manifest), "--out", str(out), "-q", "--workers", "1"])
    assert r.exit_code == 0, r.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["unreadable"]["count"] == 3
    rows = [{"utt_id": f"spk{s}_utt{u}", "speaker_id": f"spk{s}", "reference": "a b c", "hypothesis": "a b"}
            for s in range(3) for u in range(4)]
    table = tmp_path / "u.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    a = CliRunner().invoke(app, ["audit", str(table), "--embeddings", str(out), "--k", "2", "--min-speakers", "1",
                                 "--discoverers", "automatic", "--no-html", "-q", "--permutations", "10",
                                 "--out", str(tmp_path / "a")])
    assert a.exit_code == 0, a.output
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["discoverers"]["automatic"]["audited_speakers"] == 3


def test_cli_embed_missing_manifest_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from fairaudit.cli.app import app

    r = CliRunner().invoke(app, ["embed", str(tmp_path / "none.csv"), "--out", str(tmp_path / "e.parquet")])
    assert r.exit_code == 2 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
