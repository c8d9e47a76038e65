"""What a training manifest needs beyond ids and counts: transcripts, audio paths, durations.

``fairaudit export`` takes them from the audit's own utterance input, read again: the
file report.json records (``inputs.files``, role ``utterances``), checked against its
SHA-256 (a file that changed since the audit is refused in one line: its rows may no
longer be the utterances that were scored), read with the column mapping and encoding the
audit used (``inputs.fingerprint.options``).  ``--input FILE`` names another copy or
another table (joined by utterance id; a different SHA-256 is then said, not refused).

Where each field comes from:

* transcript: the reference column of the table (``--ref-col`` at audit time; ``text`` of
  a NeMo manifest; the Kaldi ``text`` / trn reference file); none for precomputed counts;
* audio path: ``--audio-col`` or the first of :data:`AUDIO_COLUMNS` the table has (NeMo's
  ``audio_filepath``, Common Voice's ``path``); for Kaldi input the ``wav.scp`` beside the
  ``text`` file, or ``--wav-scp FILE`` for any input (utterance id -> path; a piped
  command is kept for Kaldi output, but is no file path for the other formats);
* duration (seconds): ``--duration-col`` or the first of :data:`DURATION_COLUMNS`; for
  Kaldi input ``utt2dur`` beside ``text``; else measured from the audio file's header
  (WAV with the standard library; other formats when the optional ``soundfile`` package is
  installed) when the file exists.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserInputError
from ..fingerprint import sha256_file
from . import columns, text_files
from .common import detect_format, read_lines, require_file

#: columns taken as the audio path when ``--audio-col`` is not given (first present)
AUDIO_COLUMNS = ("audio_filepath", "audio_path", "audio", "path", "wav", "wav_path", "file", "filename")
#: columns taken as the duration in seconds when ``--duration-col`` is not given
DURATION_COLUMNS = ("duration", "duration_s", "duration_sec", "duration_seconds")


@dataclass
class Content:
    """Per utterance id (index, str): ``text`` (str or missing), ``audio`` (a file path or
    missing), ``wav_entry`` (the wav.scp value: a path or a piped command),
    ``duration`` (seconds, NaN when unknown) and ``speaker_id`` (str or missing: the
    audit's speaker column, or Kaldi's utt2spk).  ``source``: where each came from (for
    export.json); ``warnings``: what the user should know."""

    frame: pd.DataFrame
    source: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def recorded_input(report: dict) -> dict | None:
    """The utterance input report.json records (``{"role", "path", "sha256"}``), or None
    (an audit of a DataFrame)."""
    files = (report.get("inputs") or {}).get("files") or []
    return next((f for f in files if f.get("role") == "utterances"), None)


def _options(report: dict) -> dict:
    return (((report.get("inputs") or {}).get("fingerprint") or {}).get("options") or {})


def _input_format(path: str, report: dict, override: str | None) -> str:
    opts = _options(report).get("input") or {}
    fmt = override or opts.get("format")
    has_hyp_file = any(f.get("role") == "hypotheses" for f in (report.get("inputs") or {}).get("files") or [])
    name = os.path.basename(path)
    if not fmt and has_hyp_file and "." not in name.replace(".gz", ""):
        return "kaldi"   # as the audit read it: an extension-less reference file with --hyp
    return detect_format(path, fmt)


def resolve_input(report: dict, report_dir: str | None, input_path: str | None) -> tuple[str, dict]:
    """(path to read, source record) of the utterance input: ``input_path`` when given,
    else the recorded file (as recorded, or relative to the report's folder), refused in
    one line when absent or changed since the audit."""
    rec = recorded_input(report)
    if input_path:
        require_file(input_path, "--input file")
        sha = sha256_file(input_path)
        same = bool(rec and rec.get("sha256") == sha)
        return input_path, {"path": input_path, "sha256": sha, "given": "--input",
                            "same_as_audit": same, "audit_sha256": rec.get("sha256") if rec else None}
    if rec is None:
        raise UserInputError("the audit records no utterance input file (it was audited from a DataFrame)",
                             hint="pass --input FILE: the utterance table to take transcripts and audio paths from")
    path = rec.get("path") or ""
    candidates = [path] + ([os.path.join(report_dir, path)] if report_dir and not os.path.isabs(path) else [])
    found = next((p for p in candidates if p and os.path.isfile(p)), None)
    if found is None:
        raise UserInputError(f"the audit's utterance input {path!r} is not there any more",
                             hint="pass --input FILE (the same file, moved)")
    sha = sha256_file(found)
    if rec.get("sha256") and sha != rec["sha256"]:
        raise UserInputError("changed since the audit (SHA-256 differs): its rows may not be the utterances "
                             "that were scored", path=found,
                             hint="run the audit again, or pass --input FILE to take transcripts from it as it is")
    return found, {"path": found, "sha256": sha, "given": "recorded by the audit", "same_as_audit": True}


def _clean_ids(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("").str.strip()


def _first_per_id(ids: pd.Series, **cols: Any) -> pd.DataFrame:
    """One row per non-empty id (the first, as the scoring keeps the first duplicate)."""
    frame = pd.DataFrame({"utt_id": ids.to_numpy(dtype=object), **{k: np.asarray(v, dtype=object)
                                                                     for k, v in cols.items()}})
    frame = frame.loc[(frame["utt_id"] != "").to_numpy()]
    frame = frame.drop_duplicates("utt_id", keep="first")
    return frame.set_index("utt_id")


def _pick(frame_cols, given: str | None, candidates: tuple[str, ...], flag: str, path: str,
          skip: tuple[str, ...] = ()) -> str | None:
    if given:
        if given not in frame_cols:
            have = ", ".join(map(str, list(frame_cols)[:12]))
            raise UserInputError(f"column {given!r} not found (columns: {have})", path=path,
                                 hint=f"name the right column with {flag}")
        return given
    return next((c for c in candidates if c in frame_cols and c not in skip), None)


def _durations(values: pd.Series, col: str, path: str) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    raw = values.astype("string").str.strip()
    bad = (num.isna() & raw.notna() & (raw != "")) | (num < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserInputError(f"row {i + 1}, column {col!r}: {values.iloc[i]!r} is not a duration in seconds",
                             path=path, hint="durations are non-negative numbers of seconds; leave unknown ones empty")
    return num.to_numpy(dtype=float, na_value=np.nan)


def _read_table_content(path: str, fmt: str, report: dict, audio_col: str | None,
                        duration_col: str | None, warnings: list[str]) -> tuple[pd.DataFrame, dict]:
    from .readers import _read_table

    opts = _options(report).get("input") or {}
    nemo = fmt == "nemo"
    utt_col = opts.get("utt_col") or "utt_id"
    ref_col = opts.get("ref_col") or "reference"
    speaker_col = opts.get("speaker_col") or "speaker_id"
    if nemo:
        fmt = "jsonl"
    string_cols = [utt_col, ref_col, speaker_col, *AUDIO_COLUMNS, *([audio_col] if audio_col else [])]
    frame, _ = _read_table(path, fmt, string_cols)
    if nemo:   # NeMo field names unless the audit mapped others
        ref_col = ref_col if ref_col != "reference" else "text"
        if utt_col == "utt_id" and "utt_id" not in frame.columns:
            utt_col = "audio_filepath"
    if utt_col not in frame.columns:
        # A reference table joined to hypothesis tables without an utt_id column is keyed
        # by its key column (--hyp-key-col): the audit's utterance ids are that column.
        keys = [m.get("reference_key_column") for m in ((report.get("inputs") or {}).get("matching") or {}).values()
                if isinstance(m, dict)]
        utt_col = next((k for k in keys if k and k in frame.columns), utt_col)
    if utt_col not in frame.columns:
        raise UserInputError(f"column {utt_col!r} (the audit's utterance ids) not found", path=path,
                             hint="pass --input FILE with the table the audit read")
    frame = columns.ids_as_text(frame, [utt_col], path, warnings)
    counts_mode = bool(opts.get("errors_col") or opts.get("wer_col"))
    text_col = ref_col if (ref_col in frame.columns and not counts_mode) else None
    audio = _pick(frame.columns, audio_col, AUDIO_COLUMNS, "--audio-col", path)
    dur = _pick(frame.columns, duration_col, DURATION_COLUMNS, "--duration-col", path)
    cols: dict[str, Any] = {}
    if speaker_col in frame.columns:
        spk = frame[speaker_col].astype("string").str.strip()
        cols["speaker_id"] = spk.where(spk != "", None).to_numpy(dtype=object, na_value=None)
    if text_col:
        cols["text"] = frame[text_col].astype("string").to_numpy(dtype=object, na_value=None)
    if audio:
        a = frame[audio].astype("string").str.strip()
        cols["audio"] = a.where(a != "", None).to_numpy(dtype=object, na_value=None)
    if dur:
        cols["duration"] = _durations(frame[dur], dur, path)
    out = _first_per_id(_clean_ids(frame[utt_col]), **cols)
    return out, {"format": "nemo" if nemo else fmt, "utt_col": utt_col, "text_col": text_col, "audio_col": audio,
                 "duration_col": dur, "speaker_col": speaker_col if speaker_col in frame.columns else None}


def read_wav_scp(path: str) -> pd.Series:
    """Utterance id -> wav.scp entry (a path, or a command ending in ``|``), first kept."""
    out: dict[str, str] = {}
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) < 2:
            raise UserInputError(f"line {i} has no path after the utterance id", path=path,
                                 hint="each wav.scp line is '<utt-id> <path or command |>'")
        out.setdefault(parts[0], parts[1].strip())
    return pd.Series(out, dtype=object)


def read_utt2dur(path: str) -> pd.Series:
    """Utterance id -> duration (seconds) from a Kaldi ``utt2dur`` file."""
    out: dict[str, float] = {}
    for i, line in enumerate(read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            value = float(parts[1])
        except (IndexError, ValueError):
            raise UserInputError(f"line {i} is not '<utt-id> <seconds>'", path=path) from None
        out.setdefault(parts[0], value)
    return pd.Series(out, dtype=float)


def _read_id_text(path: str, fmt: str) -> pd.DataFrame:
    from .readers import _read_kaldi_text, _read_trn

    refs = _read_kaldi_text(path)[0] if fmt == "kaldi" else _read_trn(path)[0]
    ids = pd.Series(list(refs), dtype="string").str.strip()
    return _first_per_id(ids, text=list(refs.values()))


def is_command(entry: str | None) -> bool:
    """Whether a wav.scp entry is a piped command rather than a file path."""
    return isinstance(entry, str) and entry.rstrip().endswith("|")


def read_content(report: dict, report_dir: str | None = None, *, input_path: str | None = None,
                 input_format: str | None = None, audio_col: str | None = None, duration_col: str | None = None,
                 wav_scp: str | None = None, audio_root: str | None = None) -> Content:
    """Transcripts, audio paths and durations of the audit's utterances (see the module
    docstring), indexed by utterance id."""
    path, source = resolve_input(report, report_dir, input_path)
    encoding = _options(report).get("encoding")
    warnings: list[str] = []
    extra_files: list[dict] = []
    with text_files.input_encoding(encoding):
        fmt = _input_format(path, report, input_format)
        if fmt in ("kaldi", "trn"):
            frame = _read_id_text(path, fmt)
            used = {"format": fmt, "text_col": "text"}
            folder = os.path.dirname(os.path.abspath(path))
            if fmt == "kaldi" and not wav_scp and os.path.isfile(os.path.join(folder, "wav.scp")):
                wav_scp = os.path.join(folder, "wav.scp")
            utt2dur = os.path.join(folder, "utt2dur")
            if fmt == "kaldi" and os.path.isfile(utt2dur):
                frame["duration"] = read_utt2dur(utt2dur).reindex(frame.index).to_numpy(dtype=float)
                used["duration_col"] = "utt2dur"
                extra_files.append({"role": "utt2dur", "path": utt2dur, "sha256": sha256_file(utt2dur)})
            utt2spk = _utt2spk_path(report, folder)
            if utt2spk:
                from .readers import _read_utt2spk

                spk = pd.Series(_read_utt2spk(utt2spk), dtype=object).reindex(frame.index)
                frame["speaker_id"] = [v if isinstance(v, str) else None for v in spk.to_numpy(dtype=object)]
                used["speaker_col"] = "utt2spk"
                extra_files.append({"role": "utt2spk", "path": utt2spk, "sha256": sha256_file(utt2spk)})
        else:
            frame, used = _read_table_content(path, fmt, report, audio_col, duration_col, warnings)
        if wav_scp:
            require_file(wav_scp, "wav.scp file")
            entries = read_wav_scp(wav_scp).reindex(frame.index)
            frame["wav_entry"] = entries.to_numpy(dtype=object)
            frame["audio"] = [None if (e is None or (isinstance(e, float) and np.isnan(e)) or is_command(e)) else e
                              for e in entries.to_numpy(dtype=object)]
            used["audio_col"] = "wav.scp"
            extra_files.append({"role": "wav_scp", "path": wav_scp, "sha256": sha256_file(wav_scp)})
    for col in ("text", "audio", "wav_entry", "speaker_id"):
        if col not in frame.columns:
            frame[col] = None
    if "duration" not in frame.columns:
        frame["duration"] = np.nan
    frame["duration"] = pd.to_numeric(frame["duration"], errors="coerce").astype(float)
    if audio_root:
        frame["audio"] = [a if a is None or os.path.isabs(a) else os.path.join(audio_root, a)
                          for a in frame["audio"].to_numpy(dtype=object)]
    wav = frame["wav_entry"].to_numpy(dtype=object)
    frame["wav_entry"] = [w if isinstance(w, str) else a for w, a in zip(wav, frame["audio"].to_numpy(dtype=object))]
    return Content(frame=frame, source={**source, **used, "audio_root": audio_root, "files": extra_files},
                   warnings=warnings)


def _utt2spk_path(report: dict, folder: str) -> str | None:
    """The utt2spk file of a Kaldi/trn input: the one the audit recorded (when still there),
    else ``utt2spk`` beside the reference file."""
    rec = next((f for f in (report.get("inputs") or {}).get("files") or [] if f.get("role") == "utt2spk"), None)
    if rec and rec.get("path") and os.path.isfile(rec["path"]):
        return rec["path"]
    beside = os.path.join(folder, "utt2spk")
    return beside if os.path.isfile(beside) else None


def measure_durations(paths: list[str | None]) -> tuple[np.ndarray, dict[str, int]]:
    """Durations (seconds, NaN when unknown) of audio files from their headers, and how
    many could not be measured, by reason.  WAV through the standard library's ``wave``;
    other formats through ``soundfile`` when it is installed."""
    import wave

    try:
        import soundfile
    except ImportError:  # optional: only WAV headers are read without it
        soundfile = None
    out = np.full(len(paths), np.nan)
    why: dict[str, int] = {}
    for i, p in enumerate(paths):
        if not p:
            continue
        if not os.path.isfile(p):
            why["audio file not found"] = why.get("audio file not found", 0) + 1
            continue
        try:
            if p.lower().endswith(".wav"):
                with wave.open(p, "rb") as w:
                    out[i] = w.getnframes() / float(w.getframerate())
            elif soundfile is not None:
                out[i] = float(soundfile.info(p).duration)
            else:
                why["not WAV, and soundfile is not installed"] = why.get("not WAV, and soundfile is not installed", 0) + 1
        except Exception:  # noqa: BLE001 - any unreadable header is one counted reason
            why["unreadable audio header"] = why.get("unreadable audio header", 0) + 1
    return out, why
