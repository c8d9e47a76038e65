"""Training manifests: CSV, JSONL, NeMo, Kaldi data directories, Hugging Face JSONL.

Every writer takes the rows of one split (a DataFrame with ``utt_id``, ``speaker_id``,
``cohort``, ``weight`` and, when known, ``text``, ``audio`` (a file path), ``wav_entry``
(what Kaldi's wav.scp should say) and ``duration`` (seconds)) and writes the files of
that split; the export decides which rows each format can take (:data:`REQUIRES`).

* CSV / JSONL: one row per utterance, the columns above (``audio``/``duration``/``text``
  only when some row has them); empty cells / ``null`` where unknown.
* NeMo: one JSON object per line with ``audio_filepath``, ``duration``, ``text`` (the keys
  NeMo's ASR manifest parser requires) plus ``utt_id``, ``speaker_id``, ``cohort``,
  ``weight``.
* Kaldi: a data directory (``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, and
  ``utt2dur`` when every duration is known; without ``wav.scp`` when the input had no
  audio path at all: a text-only directory, for Kaldi's ``utils/validate_data_dir.sh`` with its no-wav and no-feats options), every file sorted by its first field in C
  (byte) order, ``spk2utt`` listing each speaker's utterances in that order.  Kaldi wants
  the utterances sorted by speaker to be sorted by utterance id too; when the ids do not
  already satisfy that, each utterance id is prefixed with its speaker id and a dash (as
  Kaldi recipes do), and the CSV beside it keeps the original ids.
* Hugging Face: ``train.jsonl`` / ``validation.jsonl`` plus a README.md whose ``configs``
  front matter names the splits, so ``datasets.load_dataset(FOLDER)`` loads them;
  ``audio`` holds the file path (``cast_column("audio", Audio())`` decodes it) and is
  present only when every row has one, as is ``duration`` (a column must have one type
  in every split).
"""
from __future__ import annotations

import json
import math
import os
import shlex
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import UserInputError

FORMATS = ("csv", "jsonl", "nemo", "kaldi", "hf")
#: fields a row must have to enter a format (the rest are left out, counted by reason)
REQUIRES = {"csv": (), "jsonl": (), "nemo": ("audio", "duration", "text"), "kaldi": ("wav_entry", "text"),
            "hf": ("text",)}
#: fields required only when some row has them (a Kaldi directory is text-only when no
#: utterance has audio, but one wav.scp must cover every utterance of its ``text``)
REQUIRED_IF_ANY = {"kaldi": ("wav_entry",)}
#: why a row without the field is left out
MISSING_REASON = {"audio": "no audio path", "wav_entry": "no audio path", "duration": "no duration",
                  "text": "no transcript"}
#: the wav.scp entry of a non-WAV file when --kaldi-wav-command is not given (Kaldi reads WAV only)
DEFAULT_WAV_COMMAND = "sox {path} -t wav - |"
#: Hugging Face's name of the dev split
HF_SPLIT = {"train": "train", "dev": "validation"}
_BASE = ["utt_id", "speaker_id", "cohort", "weight"]
_OPTIONAL = ["text", "audio", "duration"]


def check_formats(formats: Iterable[str]) -> list[str]:
    """The formats asked for, each once, or a one-line UserInputError."""
    out = []
    for f in formats:
        f = str(f).strip().lower()
        if f not in FORMATS:
            raise UserInputError(f"--format {f!r} is not an export format", hint=f"use {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    return out or ["csv"]


def has(frame: pd.DataFrame, col: str) -> np.ndarray:
    """Rows of ``frame`` with a value in ``col`` (a non-empty string, a finite number)."""
    if col not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    values = frame[col].to_numpy(dtype=object)
    return np.array([(isinstance(v, str) and v != "") or (isinstance(v, (int, float, np.number))
                                                         and not isinstance(v, bool) and math.isfinite(float(v)))
                     for v in values], dtype=bool)


def usable(frame: pd.DataFrame, fmt: str) -> tuple[np.ndarray, dict[str, int]]:
    """(rows the format can take, left-out rows by reason: the first missing field counts)."""
    keep = np.ones(len(frame), dtype=bool)
    why: dict[str, int] = {}
    for col in REQUIRES[fmt]:
        if col in REQUIRED_IF_ANY.get(fmt, ()) and not has(frame, col).any():
            continue
        miss = keep & ~has(frame, col)
        if miss.any():
            why[MISSING_REASON[col]] = why.get(MISSING_REASON[col], 0) + int(miss.sum())
            keep &= ~miss
    return keep, why


def _columns(frames: Iterable[pd.DataFrame]) -> list[str]:
    frames = list(frames)
    return _BASE + [c for c in _OPTIONAL if any(has(f, c).any() for f in frames)]


def _value(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _jsonl(records: Iterable[dict], path: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps({k: _value(v) for k, v in rec.items()}, ensure_ascii=False, allow_nan=False))
            fh.write("\n")


def _records(frame: pd.DataFrame, cols: list[str]) -> Iterable[dict]:
    data = {c: frame[c].to_numpy(dtype=object) if c in frame.columns else [None] * len(frame) for c in cols}
    for i in range(len(frame)):
        yield {c: data[c][i] for c in cols}


def write_csv(splits: dict[str, pd.DataFrame], folder: str) -> list[str]:
    cols = _columns(splits.values())
    out = []
    for name, frame in splits.items():
        path = os.path.join(folder, f"{name}.csv")
        frame.reindex(columns=cols).to_csv(path, index=False, lineterminator="\n")
        out.append(path)
    return out


def write_jsonl(splits: dict[str, pd.DataFrame], folder: str) -> list[str]:
    cols = _columns(splits.values())
    out = []
    for name, frame in splits.items():
        path = os.path.join(folder, f"{name}.jsonl")
        _jsonl(_records(frame, cols), path)
        out.append(path)
    return out


def write_nemo(splits: dict[str, pd.DataFrame], folder: str) -> list[str]:
    out = []
    for name, frame in splits.items():
        path = os.path.join(folder, f"{name}_manifest.json")
        recs = ({"audio_filepath": r["audio"], "duration": float(r["duration"]), "text": r["text"],
                 "utt_id": r["utt_id"], "speaker_id": r["speaker_id"], "cohort": r["cohort"], "weight": r["weight"]}
                for r in _records(frame, ["audio", "duration", "text", "utt_id", "speaker_id", "cohort", "weight"]))
        _jsonl(recs, path)
        out.append(path)
    return out


def write_hf(splits: dict[str, pd.DataFrame], folder: str) -> list[str]:
    frames = list(splits.values())
    cols = ["utt_id", "speaker_id", "cohort", "weight", "text"]
    for c in ("audio", "duration"):
        if frames and all(has(f, c).all() for f in frames):
            cols.append(c)
    out, files = [], []
    for name, frame in splits.items():
        fname = f"{HF_SPLIT[name]}.jsonl"
        _jsonl(_records(frame, cols), os.path.join(folder, fname))
        out.append(os.path.join(folder, fname))
        files.append((HF_SPLIT[name], fname))
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, fname in files:
        lines += [f"  - split: {split}", f"    path: {fname}"]
    lines += ["---", "", "Utterances of under-served cohorts exported by `fairaudit export`.",
              "Columns: " + ", ".join(cols) + ".", ""]
    readme = os.path.join(folder, "README.md")
    with open(readme, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
    return out + [readme]


def _c_order(values: Iterable[str]) -> list[str]:
    """Sorted as ``LC_ALL=C sort`` sorts (by UTF-8 bytes)."""
    return sorted(values, key=lambda s: s.encode("utf-8"))


def _kaldi_ids(frame: pd.DataFrame) -> tuple[pd.Series, bool]:
    """(Kaldi utterance id per row, whether ids were prefixed with the speaker id)."""
    for col in ("utt_id", "speaker_id"):
        bad = [v for v in frame[col].astype(str) if not v or any(ch.isspace() for ch in v)]
        if bad:
            raise UserInputError(f"Kaldi ids cannot be empty or hold white space: {col} {bad[0]!r}",
                                 hint="export these utterances with --format csv, jsonl, nemo or hf")
    utt, spk = frame["utt_id"].astype(str), frame["speaker_id"].astype(str)

    def consistent(ids: pd.Series) -> bool:
        by_utt = _c_order(ids)
        pairs = sorted(zip(spk, ids), key=lambda p: (p[0].encode("utf-8"), p[1].encode("utf-8")))
        return by_utt == [u for _, u in pairs]

    if consistent(utt):
        return utt, False
    prefixed = spk + "-" + utt
    if not consistent(prefixed):
        raise UserInputError("Kaldi data directory: utterance ids sorted by speaker are not sorted by id, even "
                             "prefixed with the speaker id (a speaker id is a prefix of another, dash included)",
                             hint="rename those speakers, or export with --format csv, jsonl, nemo or hf")
    return prefixed, True


def _wav_entry(entry: str, template: str | None) -> str:
    from .content import is_command

    if is_command(entry):
        return entry
    if entry.lower().endswith(".wav") and template is None:
        return entry
    return (template or DEFAULT_WAV_COMMAND).replace("{path}", shlex.quote(entry))


def write_kaldi(splits: dict[str, pd.DataFrame], folder: str, wav_command: str | None = None) -> tuple[list[str], bool]:
    """One data directory per split (``folder/train``, ``folder/dev``); returns the files
    and whether utterance ids were prefixed with speaker ids."""
    out: list[str] = []
    prefixed_any = False
    for name, frame in splits.items():
        d = os.path.join(folder, name)
        os.makedirs(d, exist_ok=True)
        ids, prefixed = _kaldi_ids(frame)
        prefixed_any |= prefixed
        kid = ids.to_numpy(dtype=object)
        rows = dict(zip(kid, range(len(frame))))
        order = _c_order(kid)
        text = [" ".join(str(t).split()) for t in frame["text"].to_numpy(dtype=object)]
        wav = frame["wav_entry"].to_numpy(dtype=object)
        spk = frame["speaker_id"].astype(str).to_numpy(dtype=object)
        files = {"text": [f"{u} {text[rows[u]]}".rstrip() for u in order],
                 "utt2spk": [f"{u} {spk[rows[u]]}" for u in order]}
        if has(frame, "wav_entry").all() and len(frame):
            files["wav.scp"] = [f"{u} {_wav_entry(str(wav[rows[u]]), wav_command)}" for u in order]
        by_spk: dict[str, list[str]] = {}
        for u in order:
            by_spk.setdefault(spk[rows[u]], []).append(u)
        files["spk2utt"] = [f"{s} {' '.join(by_spk[s])}" for s in _c_order(by_spk)]
        if has(frame, "duration").all() and len(frame):
            dur = frame["duration"].to_numpy(dtype=float)
            files["utt2dur"] = [f"{u} {dur[rows[u]]:.3f}" for u in order]
        for fname, lines in files.items():
            path = os.path.join(d, fname)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write("".join(line + "\n" for line in lines))
            out.append(path)
    return out, prefixed_any
