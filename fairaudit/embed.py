"""Speaker embeddings from audio, for the automatic discoverer (bring-your-own-nothing input).

Model: Resemblyzer's GE2E speaker encoder (Wan et al. 2018, "Generalized end-to-end loss
for speaker verification"; 3-layer LSTM over 40-band mel frames, 256-d output), whose
weights ship inside the ``resemblyzer`` PyPI package (``pretrained.pt``): nothing is
downloaded at run time.  Install with ``pip install 'fairaudit[embed]'``.

Per utterance (Resemblyzer's own recipe, batched across utterances):

1. decode with ``soundfile`` (WAV, FLAC, OGG, MP3...), average channels to mono, resample
   to 16 kHz;
2. normalise the volume (to -30 dBFS, increase only) and cut silences longer than
   ~0.2 s with the WebRTC voice-activity detector;
3. cut into 1.6 s partial windows (rate 1.3 per second, 75 % coverage of the last one),
   embed all windows of a batch of utterances in one forward pass, average the windows of
   each utterance and L2-normalise: one unit vector per utterance.

Per speaker: the mean of its utterance vectors, L2-normalised (``n_utterances`` counts
them).  Cosine similarity of two speakers is then a dot product.

Unreadable audio is never silently dropped: each utterance that cannot be embedded is
counted with its reason (:data:`REASONS`) and listed in ``EmbedResult.unreadable``.

Manifests (:func:`read_manifest`): a table (CSV/TSV/JSONL/Parquet) with utterance id,
speaker id and audio path columns; a Kaldi ``wav.scp`` (``<utt-id> <path>`` per line) with
``utt2spk``; a NeMo manifest (JSON lines with ``audio_filepath`` and a speaker field).
A relative audio path is looked up next to the manifest first, then in the current
directory.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import UserInputError

SAMPLE_RATE = 16_000
EMBEDDING_DIM = 256
MODEL = "resemblyzer GE2E speaker encoder (256-d, weights bundled in the resemblyzer package)"
INSTALL_HINT = "pip install 'fairaudit[embed]'"

MISSING_FILE = "missing file"
NOT_DECODABLE = "not decodable"
TOO_SHORT = "too short or silent"
PIPE = "command (pipe) not supported"
NO_SPEAKER = "no speaker"
EMPTY_PATH = "no audio path"
#: Reasons an utterance is not embedded (keys of ``info["unreadable"]["by_reason"]``).
REASONS = (MISSING_FILE, NOT_DECODABLE, TOO_SHORT, PIPE, NO_SPEAKER, EMPTY_PATH)

MANIFEST_FORMATS = ("csv", "tsv", "jsonl", "parquet", "kaldi", "nemo")
# Partial windows per forward pass: large enough to amortise the LSTM call, small enough
# to keep memory flat (160 x 40 float32 each = 25 kB).
_FORWARD_CHUNK = 256
#: Below this many utterances the default is one process (see embed_manifest).
POOL_MIN_UTTERANCES = 1000


@dataclass
class EmbedResult:
    """Embeddings of a manifest's speakers and utterances, and what could not be embedded.

    ``speakers``: ``speaker_id`` (str), ``embedding`` (float32 array, unit norm),
    ``n_utterances`` (count).  ``utterances``: ``utt_id``, ``speaker_id``, ``embedding``
    (unit norm).  ``unreadable``: ``utt_id``, ``speaker_id``, ``path``, ``reason``,
    ``detail``.  ``info``: counts (see :func:`embed_manifest`).
    """

    speakers: pd.DataFrame
    utterances: pd.DataFrame
    unreadable: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def speaker_matrix(self) -> np.ndarray:
        return _stack(self.speakers["embedding"])

    def utterance_matrix(self) -> np.ndarray:
        return _stack(self.utterances["embedding"])


def _stack(col: pd.Series) -> np.ndarray:
    if len(col) == 0:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return np.vstack(col.to_numpy()).astype(np.float32)


# ---------------------------------------------------------------- dependencies


def require_embed_extra() -> None:
    """Raise a one-line UserInputError when the optional [embed] dependencies are missing."""
    missing = [m for m in ("resemblyzer", "torch", "soundfile", "librosa", "webrtcvad")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise UserInputError(f"audio embedding needs {', '.join(missing)}, not installed", hint=INSTALL_HINT)


def _import_resemblyzer():
    require_embed_extra()
    try:
        with warnings.catch_warnings():
            # webrtcvad (a resemblyzer dependency) imports the deprecated pkg_resources.
            warnings.simplefilter("ignore")
            import resemblyzer
    except ModuleNotFoundError as exc:
        if exc.name == "pkg_resources":
            raise UserInputError("resemblyzer's webrtcvad needs pkg_resources, which setuptools>=81 removed",
                                 hint="pip install 'setuptools<81' (or reinstall 'fairaudit[embed]')") from exc
        raise UserInputError(f"resemblyzer cannot be imported: {exc}", hint=INSTALL_HINT) from exc
    return resemblyzer


_ENCODER = None


def _encoder():
    """The GE2E encoder of this process, loaded once (local weights file, no network)."""
    global _ENCODER
    if _ENCODER is None:
        resemblyzer = _import_resemblyzer()
        _ENCODER = resemblyzer.VoiceEncoder("cpu", verbose=False)
        _ENCODER.eval()
    return _ENCODER


# ---------------------------------------------------------------- manifests


def read_manifest(path: str, fmt: str | None = None, *, audio_col: str = "audio_path", utt_col: str = "utt_id",
                  speaker_col: str = "speaker_id", utt2spk: str | None = None) -> pd.DataFrame:
    """The utterances of a manifest: ``utt_id``, ``speaker_id``, ``path`` (resolved), ``reason``.

    ``fmt``: one of :data:`MANIFEST_FORMATS`; by default ``wav.scp`` (or a name without
    extension) is Kaldi, ``.json``/``.jsonl`` with an ``audio_filepath`` field is NeMo,
    other extensions are tables.  ``reason`` is set (else None) for rows that cannot be
    embedded whatever the audio: a Kaldi pipe command, no speaker, no path.
    """
    from .io.common import detect_format, require_file

    require_file(path, "manifest")
    fmt = fmt.lower() if fmt else _manifest_format(path)
    if fmt not in MANIFEST_FORMATS:
        raise UserInputError(f"unknown manifest format {fmt!r}",
                             hint=f"--input-format takes one of: {', '.join(MANIFEST_FORMATS)}")
    if fmt == "kaldi":
        frame = _read_wav_scp(path, utt2spk)
    else:
        from .io.readers import _read_jsonl, _read_table

        if fmt == "nemo":
            table, bad = _read_jsonl(path)
            table = table if isinstance(table, pd.DataFrame) else table.to_pandas()
        else:
            detect_format(path, fmt)
            table, bad = _read_table(path, fmt, [utt_col, speaker_col, audio_col])
        if bad:
            raise UserInputError(f"{len(bad)} unparsable row(s), first: {bad[0]}", path=path,
                                 hint="fix those lines of the manifest")
        frame = _from_table(table, path, fmt, audio_col, utt_col, speaker_col, utt2spk)
    if frame.empty:
        raise UserInputError("the manifest lists no utterances", path=path)
    dup = frame["utt_id"].duplicated()
    if dup.any():
        raise UserInputError(f"utterance {frame['utt_id'][dup].iloc[0]!r} appears twice", path=path,
                             hint="one row per utterance")
    base = os.path.dirname(os.path.abspath(path))
    frame["path"] = [_resolve(p, base) if r is None else p for p, r in zip(frame["path"], frame["reason"])]
    return frame.reset_index(drop=True)


def _manifest_format(path: str) -> str:
    from .io.common import detect_format, strip_gz

    name = os.path.basename(strip_gz(path))
    if name == "wav.scp" or name.endswith(".scp") or "." not in name:
        return "kaldi"
    fmt = detect_format(path, None)
    if fmt == "jsonl":
        from .io.common import open_text

        with open_text(path) as fh:
            first = next((ln for ln in fh if ln.strip()), "")
        if '"audio_filepath"' in first:
            return "nemo"
    if fmt not in MANIFEST_FORMATS:
        raise UserInputError(f"a manifest cannot be a {fmt} file", path=path,
                             hint="use a CSV/TSV/JSONL/Parquet table, a Kaldi wav.scp or a NeMo manifest")
    return fmt


def _read_wav_scp(path: str, utt2spk: str | None) -> pd.DataFrame:
    from .io.common import read_lines
    from .io.readers import _read_utt2spk

    if utt2spk is None:
        raise UserInputError("a Kaldi wav.scp does not say who speaks", path=path, hint="pass --utt2spk FILE")
    spk = _read_utt2spk(utt2spk)
    rows = []
    for line in read_lines(path):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        utt, rest = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        reason = None
        if not rest:
            reason = EMPTY_PATH
        elif rest.endswith("|"):
            # An extended filename ("sox a.wav -t wav - |") runs a command: not supported.
            reason = PIPE
        speaker = spk.get(utt, "")
        if reason is None and not speaker:
            reason = NO_SPEAKER
        rows.append((utt, speaker, rest, reason))
    return pd.DataFrame(rows, columns=["utt_id", "speaker_id", "path", "reason"], dtype=object)


def _from_table(table: pd.DataFrame, path: str, fmt: str, audio_col: str, utt_col: str, speaker_col: str,
                utt2spk: str | None) -> pd.DataFrame:
    cols = set(table.columns)
    if audio_col not in cols and audio_col == "audio_path" and "audio_filepath" in cols:
        audio_col = "audio_filepath"  # NeMo's name
    if audio_col not in cols:
        have = ", ".join(map(str, list(table.columns)[:12])) or "none"
        raise UserInputError(f"no audio path column {audio_col!r} (columns: {have})", path=path,
                             hint="name it with --audio-col")
    if speaker_col not in cols and speaker_col == "speaker_id" and "speaker" in cols:
        speaker_col = "speaker"  # NeMo's name
    audio = table[audio_col].astype("string").str.strip().fillna("")
    utt = table[utt_col].astype("string").str.strip() if utt_col in cols else audio
    if utt2spk is not None:
        from .io.readers import _read_utt2spk

        speakers = utt.map(_read_utt2spk(utt2spk))
    elif speaker_col in cols:
        speakers = table[speaker_col].astype("string").str.strip()
    else:
        have = ", ".join(map(str, list(table.columns)[:12]))
        raise UserInputError(f"no speaker column {speaker_col!r} (columns: {have})", path=path,
                             hint="name it with --speaker-col, or pass --utt2spk FILE")
    speakers = pd.Series(speakers, dtype="string").fillna("")
    reason = np.where(audio == "", EMPTY_PATH, np.where(speakers == "", NO_SPEAKER, None))
    if (utt.fillna("") == "").any():
        i = int(np.flatnonzero((utt.fillna("") == "").to_numpy())[0])
        raise UserInputError(f"row {i + 1}: empty utterance id", path=path, hint="every row needs an utt_id")
    return pd.DataFrame({"utt_id": utt.to_numpy(dtype=object), "speaker_id": speakers.to_numpy(dtype=object),
                         "path": audio.to_numpy(dtype=object), "reason": reason.astype(object)})


def _resolve(p: str, base: str) -> str:
    if os.path.isabs(p):
        return p
    near = os.path.join(base, p)
    return near if os.path.exists(near) or not os.path.exists(p) else os.path.abspath(p)


# ---------------------------------------------------------------- audio -> vectors


def _load(path: str, min_seconds: float) -> tuple[np.ndarray | None, str | None, str]:
    """(preprocessed 16 kHz waveform, None, "") or (None, reason, detail)."""
    import soundfile as sf

    if not os.path.isfile(path):
        return None, MISSING_FILE, ""
    try:
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, not a bug
        return None, NOT_DECODABLE, " ".join(str(exc).split())[:160]
    wav = wav.mean(axis=1)
    if not np.isfinite(wav).all():
        return None, NOT_DECODABLE, "non-finite samples"
    if len(wav) < min_seconds * sr or not np.any(wav):
        return None, TOO_SHORT, f"{len(wav) / max(sr, 1):.2f} s" + ("" if np.any(wav) else ", all zero")
    if sr != SAMPLE_RATE:
        import librosa

        wav = librosa.resample(wav, orig_sr=sr, target_sr=SAMPLE_RATE).astype(np.float32)
    from resemblyzer import audio

    wav = audio.normalize_volume(wav, -30, increase_only=True)
    wav = audio.trim_long_silences(wav)
    if len(wav) < min_seconds * SAMPLE_RATE:
        return None, TOO_SHORT, f"{len(wav) / SAMPLE_RATE:.2f} s of speech"
    return wav.astype(np.float32), None, ""


def _embed_batch(items: list[tuple[int, str]], min_seconds: float) -> tuple[list[int], np.ndarray, list[tuple]]:
    """Embed a batch of (row, path): (rows embedded, unit vectors, [(row, reason, detail)])."""
    import torch

    enc = _encoder()
    from resemblyzer import audio

    rows, windows, owners, failed = [], [], [], []
    for row, path in items:
        wav, reason, detail = _load(path, min_seconds)
        if wav is None:
            failed.append((row, reason, detail))
            continue
        wav_slices, mel_slices = enc.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = audio.wav_to_mel_spectrogram(wav)
        windows.extend(mel[s] for s in mel_slices)
        owners.extend([len(rows)] * len(mel_slices))
        rows.append(row)
    if not rows:
        return [], np.zeros((0, EMBEDDING_DIM), dtype=np.float32), failed
    mels = np.stack(windows).astype(np.float32)
    parts = []
    with torch.no_grad():
        for i in range(0, len(mels), _FORWARD_CHUNK):
            parts.append(enc(torch.from_numpy(mels[i:i + _FORWARD_CHUNK])).numpy())
    partial = np.concatenate(parts)
    owners_a = np.asarray(owners)
    sums = np.zeros((len(rows), partial.shape[1]), dtype=np.float64)
    np.add.at(sums, owners_a, partial)
    return rows, _unit(sums), failed


def _unit(matrix: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _worker_init() -> None:
    import torch

    # One thread per process: with a process per core, intra-op threads only contend.
    torch.set_num_threads(1)
    _encoder()


def embed_manifest(manifest: str | pd.DataFrame, *, fmt: str | None = None, audio_col: str = "audio_path",
                   utt_col: str = "utt_id", speaker_col: str = "speaker_id", utt2spk: str | None = None,
                   workers: int | None = None, batch_size: int = 16, min_seconds: float = 0.5,
                   progress: Callable[[int], None] | None = None) -> EmbedResult:
    """Embed every utterance of a manifest; average per speaker.

    ``manifest``: a path (see :func:`read_manifest`) or a frame from it.  ``workers``:
    processes (default: one below :data:`POOL_MIN_UTTERANCES` utterances, else all
    cores; 1 = in this process).  Each process runs PyTorch with
    one thread: measured on 2 cores, two single-threaded processes beat one process with
    two threads, which also collapses when other programs load the cores.
    ``batch_size``: utterances per task (their windows share forward passes).
    ``min_seconds``: less speech than this (after silence trimming) is "too short or
    silent".  ``progress(n)`` is called with the number of utterances just finished.

    ``info``: ``utterances`` (manifest rows), ``embedded``, ``speakers`` (with at least one
    embedded utterance), ``speakers_without_audio`` (speakers whose every utterance is
    unreadable), ``unreadable`` {``count``, ``by_reason``}, ``model``, ``dim``,
    ``sample_rate``, ``workers``.
    """
    frame = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(
        manifest, fmt, audio_col=audio_col, utt_col=utt_col, speaker_col=speaker_col, utt2spk=utt2spk)
    require_embed_extra()
    if batch_size < 1:
        raise UserInputError(f"batch size {batch_size} must be at least 1")
    n = len(frame)
    reasons = frame["reason"].to_numpy(dtype=object).copy()
    details = np.full(n, "", dtype=object)
    todo = [(int(i), str(p)) for i, p in enumerate(frame["path"]) if reasons[i] is None]
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    if workers is None:
        # Measured (2 cores, 96 utterances of ~5 s): 1 process 8.1 s, 2 spawned processes 18.7 s;
        # a worker's start (torch + librosa imports, model load) costs seconds, so the pool
        # only pays on large manifests.
        workers = 1 if len(todo) < POOL_MIN_UTTERANCES else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(batches) or 1))

    vectors = np.zeros((n, EMBEDDING_DIM), dtype=np.float32)
    done = np.zeros(n, dtype=bool)

    def take(result, size):
        rows, vecs, failed = result
        vectors[rows] = vecs
        done[rows] = True
        for row, reason, detail in failed:
            reasons[row], details[row] = reason, detail
        if progress is not None:
            progress(size)

    if workers == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for batch in batches:
                take(_embed_batch(batch, min_seconds), len(batch))
        finally:
            torch.set_num_threads(threads)
    else:
        _import_resemblyzer()  # fail here, in one line, not in every worker
        # spawn: a forked copy of a process that already runs torch threads can deadlock.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
            futures = {pool.submit(_embed_batch, b, min_seconds): len(b) for b in batches}
            for fut in as_completed(futures):
                take(fut.result(), futures[fut])

    utt = pd.DataFrame({"utt_id": frame["utt_id"].to_numpy(dtype=object)[done],
                        "speaker_id": frame["speaker_id"].to_numpy(dtype=object)[done],
                        "embedding": list(vectors[done])})
    speakers = _per_speaker(utt, vectors[done])
    bad = ~done
    unreadable = pd.DataFrame({"utt_id": frame["utt_id"].to_numpy(dtype=object)[bad],
                               "speaker_id": frame["speaker_id"].to_numpy(dtype=object)[bad],
                               "path": frame["path"].to_numpy(dtype=object)[bad],
                               "reason": reasons[bad], "detail": details[bad]})
    all_speakers = set(frame["speaker_id"][frame["speaker_id"] != ""])
    info = {"utterances": n, "embedded": int(done.sum()), "speakers": int(len(speakers)),
            "speakers_without_audio": len(all_speakers - set(speakers["speaker_id"])),
            "unreadable": {"count": int(bad.sum()),
                           "by_reason": {str(k): int(v) for k, v in unreadable["reason"].value_counts().items()}},
            "model": MODEL, "dim": EMBEDDING_DIM, "sample_rate": SAMPLE_RATE, "workers": workers,
            "min_seconds": min_seconds}
    return EmbedResult(speakers, utt, unreadable, info)


def _per_speaker(utt: pd.DataFrame, matrix: np.ndarray) -> pd.DataFrame:
    """Mean utterance vector per speaker, L2-normalised (Resemblyzer's embed_speaker)."""
    if len(utt) == 0:
        return pd.DataFrame({"speaker_id": pd.Series(dtype=object), "embedding": pd.Series(dtype=object),
                             "n_utterances": pd.Series(dtype="int64")})
    codes, ids = pd.factorize(utt["speaker_id"], sort=True)
    sums = np.zeros((len(ids), matrix.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, matrix)
    counts = np.bincount(codes, minlength=len(ids))
    return pd.DataFrame({"speaker_id": np.asarray(ids, dtype=object), "embedding": list(_unit(sums)),
                         "n_utterances": counts.astype(np.int64)})


# ---------------------------------------------------------------- writing


def sidecar_path(out: str) -> str:
    """``embeddings.parquet`` -> ``embeddings.json`` (the unreadable-audio report)."""
    root, _ = os.path.splitext(out)
    return root + ".json"


def write_embeddings(result: EmbedResult, out: str, *, utterances_out: str | None = None,
                     manifest: str | None = None, examples: int = 5) -> str:
    """Write the speaker Parquet (``speaker_id``, ``embedding`` list<float32>, ``n_utterances``)
    and the sidecar JSON (``info`` + unreadable counts by reason, examples, full list);
    optionally the utterance Parquet.  Returns the sidecar path."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(frame: pd.DataFrame, keys: list[str]) -> pa.Table:
        cols = {k: pa.array(frame[k].astype(str).tolist(), pa.string()) for k in keys}
        flat = _stack(frame["embedding"]).reshape(-1)
        cols["embedding"] = pa.ListArray.from_arrays(
            pa.array(np.arange(0, len(flat) + 1, EMBEDDING_DIM, dtype=np.int32)), pa.array(flat, pa.float32()))
        if "n_utterances" in frame:
            cols["n_utterances"] = pa.array(frame["n_utterances"].to_numpy(dtype=np.int32))
        return pa.table(cols)

    try:
        pq.write_table(table(result.speakers, ["speaker_id"]), out)
        if utterances_out:
            pq.write_table(table(result.utterances, ["utt_id", "speaker_id"]), utterances_out)
        side = sidecar_path(out)
        un = result.unreadable
        report = dict(result.info)
        if manifest:
            report["manifest"] = manifest
        report["unreadable"] = dict(report["unreadable"])
        report["unreadable"]["examples"] = {
            str(reason): grp.head(examples)[["utt_id", "path", "detail"]].to_dict("records")
            for reason, grp in un.groupby("reason", sort=True)}
        report["unreadable"]["utterances"] = un[["utt_id", "speaker_id", "path", "reason", "detail"]].to_dict("records")
        with open(side, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, default=str)
    except OSError as exc:
        raise UserInputError(f"cannot write: {exc.strerror}", path=getattr(exc, "filename", None) or out) from exc
    return side
