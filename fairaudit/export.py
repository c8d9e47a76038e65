"""From cohorts to the data that fixes them: training manifests, sample weights, cohort features.

:func:`export` takes a saved audit and writes, into one folder:

* per chosen cohort (:mod:`fairaudit.selection`: the bottom ones, those worse than the
  rest after multiplicity control, every cohort, or named ones) and, when there are
  several, for all of them together (``all``): its utterances as training manifests in
  the formats asked for (:mod:`fairaudit.io.manifests`), split into train and dev **by
  speaker** (no speaker has utterances on both sides; :func:`split_speakers`);
* ``weights.csv``: a sample weight per audited utterance from its cohorts' excess WER
  (:mod:`fairaudit.weights`), for reweighting or oversampling;
* ``cohort_weights.csv``: each cohort's WER, excess and raw weight;
* ``speaker_cohorts.csv``: per speaker its cohort id under every discoverer, the input of
  a cohort embedding (Dheram et al. feed the cohort to the model as a feature);
* ``export.json``: what was chosen and why, where every field came from (file hashes),
  how many utterances each format took and why the others were left out, the split and
  the weight formula.

The utterances are the audit's scored ones (utterance_scores.parquet beside report.json,
ids and counts only); transcripts, audio paths and durations are read again from the
audit's input, checked against its SHA-256 (:mod:`fairaudit.io.content`).  A report
folder without utterance_scores.parquet (written by an older fairaudit) takes the
utterance ids from the utterance table given as ``--utterances FILE``: every row of an
audited speaker, with the per-speaker utterance counts checked against
speaker_scores.csv (a mismatch is said in export.json, as the audit may have dropped
rows).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

import numpy as np
import pandas as pd

from . import limits
from .errors import UserInputError
from .io import manifests
from .io.content import Content, measure_durations, read_content, recorded_input
from .result import UTTERANCE_SCORES, AuditResult, _clean
from .selection import Selected, select_cohorts
from .stats import rng
from .weights import DEFAULT_CAP, FORMULA, check_cap, cohort_weights, utterance_weights

SPLIT_METHOD = ("speakers of the chosen cohorts shuffled within strata (each speaker's first chosen cohort), "
                "round(dev_fraction x speakers) of each stratum to dev (at least one when the stratum has two "
                "or more speakers), the rest to train: no speaker is in both")


def split_speakers(strata: pd.Series, dev_fraction: float, seed: int = 0) -> pd.Series:
    """``train``/``dev`` per speaker_id (index of ``strata``, whose values name each
    speaker's stratum).  Deterministic for ``seed``: each stratum draws from its own
    named stream (``stream(seed, "export", "split", stratum)``), over its speakers in
    sorted order, so the split does not depend on row order."""
    if not 0.0 <= float(dev_fraction) < 1.0:
        raise UserInputError(f"--dev-fraction {dev_fraction} must be at least 0 and below 1",
                             hint="e.g. --dev-fraction 0.1 (0: no dev split)")
    out = pd.Series("train", index=strata.index, dtype=object)
    for stratum in sorted(set(map(str, strata.to_numpy()))):
        ids = np.array(sorted(strata.index[(strata.astype(str) == stratum).to_numpy()].astype(str)), dtype=object)
        n = len(ids)
        n_dev = int(round(dev_fraction * n))
        if dev_fraction > 0 and n >= 2:
            n_dev = min(max(n_dev, 1), n - 1)
        if n_dev == 0:
            continue
        gen = rng.generator(seed, "export", "split", stratum)
        out.loc[ids[gen.permutation(n)[:n_dev]]] = "dev"
    return out


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "cohort"
    slug, i = base, 2
    while slug in taken or slug == "all":
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def _first_system_assignments(result: AuditResult) -> pd.DataFrame:
    frames = []
    for key in result.discoverers:
        a = result.assignment(key)
        frames.append(pd.DataFrame({"speaker_id": a.index.to_numpy(dtype=object), "discoverer": key,
                                    "cohort_id": a.astype(str).to_numpy(dtype=object)}))
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))


def _content(result: AuditResult, input_path: str | None, **kw) -> Content:
    """The transcripts and audio of the audit's utterances: from its input file, or from
    memory for an audit of a DataFrame in this session."""
    if input_path is None and recorded_input(result.report) is None and result.utterances is not None:
        u = result.utterances
        frame = pd.DataFrame({"text": u["reference"].to_numpy(dtype=object) if "reference" in u.columns else None,
                              "audio": None, "wav_entry": None, "duration": np.nan,
                              "speaker_id": u["speaker_id"].astype(str).to_numpy(dtype=object)},
                             index=pd.Index(u["utt_id"].astype(str).to_numpy(dtype=object), name="utt_id"))
        return Content(frame=frame, source={"given": "the audit's utterances in memory (a DataFrame)"})
    return read_content(result.report, result.path, input_path=input_path, **kw)


def export(result: AuditResult | str, out_dir: str, *, cohorts: str | None = None, named: Iterable[str] = (),
           discoverers: Iterable[str] | None = None, formats: Iterable[str] = ("csv",), dev_fraction: float = 0.1,
           seed: int = 0, weight_cap: float = DEFAULT_CAP, input_path: str | None = None, input_format: str | None = None, audio_col: str | None = None,
           duration_col: str | None = None, wav_scp: str | None = None, audio_root: str | None = None,
           normalize_text: bool = False, kaldi_wav_command: str | None = None) -> dict[str, Any]:
    """Write the mitigation hand-off of an audit into ``out_dir`` (see the module docstring).

    ``result``: an :class:`AuditResult` or the path of a saved audit (folder or report.json).
    ``cohorts``/``named``/``discoverers``: which cohorts
    (:func:`fairaudit.selection.select_cohorts`).  ``formats``: any of csv, jsonl, nemo,
    kaldi, hf.  ``dev_fraction``: share of each stratum's speakers in dev (ratio, 0 = no
    dev).  ``weight_cap``: the largest raw weight (ratio >= 1).  ``input_path`` (and
    ``input_format``, ``audio_col``, ``duration_col``, ``wav_scp``, ``audio_root``): where
    transcripts, audio paths and durations come from (:func:`fairaudit.io.content.read_content`).
    ``normalize_text``: write transcripts normalised as the audit scored them.
    ``kaldi_wav_command``: wav.scp entry template for audio files (``{path}``), default
    the path itself for WAV and ``sox {path} -t wav - |`` otherwise.

    Returns the summary written as export.json (counts, sources, split, weights).
    """
    if not isinstance(result, AuditResult):
        result = AuditResult.load(str(result))
    if result.is_comparison:
        raise UserInputError("is a comparison, not an audit", path=result.path,
                             hint="export from the report.json of `fairaudit audit`")
    formats = manifests.check_formats(formats)
    seed = limits.check_seed(seed)
    cap = check_cap(weight_cap)
    report = result.report
    chosen = select_cohorts(report, cohorts, named, discoverers)
    has_scores = result.utterances is not None or bool(
        result.path and os.path.isfile(os.path.join(result.path, UTTERANCE_SCORES)))
    if not has_scores and input_path is None:
        raise UserInputError(f"no {UTTERANCE_SCORES} beside report.json (an audit by an older fairaudit)",
                             path=result.path, hint="pass --utterances FILE (the utterance table the audit read), "
                                                    "or run the audit again")
    content = _content(result, input_path, input_format=input_format, audio_col=audio_col,
                       duration_col=duration_col, wav_scp=wav_scp, audio_root=audio_root)
    if has_scores:
        utts = result.utterance_scores()
        ids_from = ("the audit's scored utterances (in memory)" if result.utterances is not None
                    else f"{UTTERANCE_SCORES} (the audit's scored utterances)")
    else:
        utts = _ids_from_content(result, content)
        ids_from = "the --utterances table (rows of audited speakers)"
    assignments = _first_system_assignments(result)

    # Members of each chosen cohort, from the audit's assignments.
    members: dict[str, pd.Index] = {}
    for s in chosen:
        a = result.assignment(s.key)
        members[s.name] = pd.Index(a.index[(a.astype(str) == s.id).to_numpy()].astype(str))
        if len(members[s.name]) != s.speakers:
            raise UserInputError(f"assignments.csv gives {s.name} {len(members[s.name])} speakers, report.json "
                                 f"{s.speakers}", path=result.path, hint="run the audit again: the files disagree")
    first_of: dict[str, str] = {}
    for s in chosen:
        for spk in members[s.name]:
            first_of.setdefault(spk, s.name)
    strata = pd.Series(first_of, dtype=object)
    split = split_speakers(strata, dev_fraction, seed)

    weight_keys = list(dict.fromkeys(s.key for s in chosen))
    table = cohort_weights(report, weight_keys, cap)
    weights = utterance_weights(utts, assignments, table)

    rows = _rows(utts, weights, content, set(first_of), normalize_text, report)
    measured = _fill_durations(rows)

    # The formats' row checks before anything is written: a format that could take no
    # row is refused in one line, with its fix.
    plans = {}
    for fmt in formats:
        keep, why = manifests.usable(rows, fmt)
        if not keep.any():
            raise UserInputError(_nothing_for(fmt, why, len(rows)), hint=_fix_for(fmt, why))
        plans[fmt] = (keep, why)

    os.makedirs(out_dir, exist_ok=True)
    targets: list[tuple[str, str | None, pd.Index]] = []
    taken: set[str] = set()
    for s in chosen:
        targets.append((_slug(s.name, taken), s.name, members[s.name]))
    if len(chosen) > 1:
        targets.append(("all", None, pd.Index(sorted(first_of))))
    names_of = _cohort_names(chosen, members)
    written: dict[str, dict] = {}
    kaldi_prefixed = False
    for fmt in formats:
        keep, why = plans[fmt]
        per_target = []
        for slug, name, spk in targets:
            sub = rows.loc[keep & rows["speaker_id"].isin(spk).to_numpy()].copy()
            sub["cohort"] = name if name else sub["speaker_id"].map(names_of).to_numpy(dtype=object)
            splits = {part: sub.loc[(sub["speaker_id"].map(split) == part).to_numpy()]
                      for part in ("train", "dev")}
            splits = {k: v for k, v in splits.items() if len(v) or k == "train"}
            folder = os.path.join(out_dir, fmt, slug)
            os.makedirs(folder, exist_ok=True)
            if fmt == "kaldi":
                files, prefixed = manifests.write_kaldi(splits, folder, kaldi_wav_command)
                kaldi_prefixed |= prefixed
            else:
                files = getattr(manifests, f"write_{fmt}")(splits, folder)
            per_target.append({"folder": os.path.relpath(folder, out_dir), "cohort": name or "all chosen cohorts",
                               "rows": {k: int(len(v)) for k, v in splits.items()},
                               "speakers": {k: int(v["speaker_id"].nunique()) for k, v in splits.items()},
                               "files": [os.path.relpath(f, out_dir) for f in files]})
        written[fmt] = {"rows": int(keep.sum()), "left_out": why, "targets": per_target}
        if fmt == "kaldi":
            written[fmt]["ids_prefixed_with_speaker"] = kaldi_prefixed
            written[fmt]["wav_scp"] = bool(manifests.has(rows.loc[keep], "wav_entry").any())
            if not written[fmt]["wav_scp"]:
                content.warnings.append("the input has no audio paths: the Kaldi directories are text-only (no "
                                        "wav.scp; check them with Kaldi's utils/validate_data_dir.sh and its no-wav and no-feats options)")

    # Sample weights and cohort features for every audited utterance and speaker.
    weights.to_csv(os.path.join(out_dir, "weights.csv"), index=False, lineterminator="\n")
    table.to_csv(os.path.join(out_dir, "cohort_weights.csv"), index=False, lineterminator="\n")
    features = assignments.pivot(index="speaker_id", columns="discoverer", values="cohort_id")
    features = features.reindex(columns=list(result.discoverers)).dropna(axis=1, how="all")
    features.reset_index().to_csv(os.path.join(out_dir, "speaker_cohorts.csv"), index=False, lineterminator="\n")

    summary = _summary(result, chosen, members, rows, split, dev_fraction, seed, cap, weight_keys, weights,
                       content, measured, written, formats, normalize_text, ids_from)
    with open(os.path.join(out_dir, "export.json"), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(_clean(summary), indent=2, ensure_ascii=False, allow_nan=False))
    return summary


def _ids_from_content(result: AuditResult, content: Content) -> pd.DataFrame:
    """utt_id/speaker_id of the input rows of audited speakers (no utterance_scores.parquet):
    the first row of a repeated id, references with words after the audit's normalisation
    (the audit's row checks), the per-speaker counts checked against speaker_scores.csv
    (a mismatch is a warning)."""
    frame = content.frame
    if "speaker_id" not in frame.columns or not frame["speaker_id"].notna().any():
        raise UserInputError("the --utterances table has no speaker ids to match the audit's speakers",
                             hint="pass the utterance table the audit read (with its speaker column), or run the "
                                  "audit again to write utterance_scores.parquet")
    audited = set(result.assignments["speaker_id"].astype(str)) if len(result.assignments) else set()
    if result.speakers is not None:
        audited |= set(result.speakers["speaker_id"].astype(str))
    spk = frame["speaker_id"].to_numpy(dtype=object)
    keep = np.array([isinstance(v, str) and v in audited for v in spk], dtype=bool)
    if (result.report.get("inputs") or {}).get("mode", "text") == "text" and manifests.has(frame, "text").any():
        # The audit's own row check: a reference without words after its normalisation
        # cannot enter a WER denominator, so it was dropped (empty_reference).
        from .normalize import normalize

        mode = ((result.report.get("inputs") or {}).get("normalization") or {}).get("mode", "default")
        texts = [t if isinstance(t, str) else "" for t in frame["text"].to_numpy(dtype=object)]
        keep &= np.array([bool(str(t).split()) for t in normalize(texts, mode).to_pylist()], dtype=bool)
    out = pd.DataFrame({"utt_id": frame.index.to_numpy(dtype=object)[keep], "speaker_id": spk[keep]})
    if result.speakers is not None and "utterances" in result.speakers.columns:
        audit_n = result.speakers.drop_duplicates("speaker_id").set_index(
            result.speakers.drop_duplicates("speaker_id")["speaker_id"].astype(str))["utterances"]
        here = out["speaker_id"].value_counts()
        differ = int((here.reindex(audit_n.index).fillna(0).to_numpy() != audit_n.to_numpy()).sum())
        if differ:
            content.warnings.append(f"{differ:,} speaker(s) have another number of utterances in the --utterances "
                                    f"table than the audit scored (it may have dropped rows, or the table differs)")
    if out.empty:
        raise UserInputError("no row of the --utterances table belongs to a speaker of the audit",
                             hint="pass the utterance table the audit read")
    return out


def _cohort_names(chosen: list[Selected], members: dict[str, pd.Index]) -> pd.Series:
    """Per speaker, the chosen cohorts it is in, ';'-joined (the ``cohort`` of ``all``)."""
    out: dict[str, list[str]] = {}
    for s in chosen:
        for spk in members[s.name]:
            out.setdefault(spk, []).append(s.name)
    return pd.Series({k: ";".join(v) for k, v in out.items()}, dtype=object)


def _rows(utts: pd.DataFrame, weights: pd.DataFrame, content: Content, speakers: set[str],
          normalize_text: bool, report: dict) -> pd.DataFrame:
    """The chosen speakers' scored utterances with weight, text, audio and duration."""
    sub = utts.loc[utts["speaker_id"].isin(speakers).to_numpy(), ["utt_id", "speaker_id"]].reset_index(drop=True)
    w = weights.set_index("utt_id")["weight"]
    sub["weight"] = w.reindex(sub["utt_id"].to_numpy()).to_numpy(dtype=float)
    c = content.frame.reindex(sub["utt_id"].to_numpy())
    sub["found_in_input"] = pd.Index(sub["utt_id"]).isin(content.frame.index)
    for col in ("text", "audio", "wav_entry"):
        sub[col] = [v if isinstance(v, str) else None for v in c[col].to_numpy(dtype=object)]
    sub["duration"] = c["duration"].to_numpy(dtype=float)
    if normalize_text:
        from .normalize import normalize

        mode = ((report.get("inputs") or {}).get("normalization") or {}).get("mode", "default")
        has = manifests.has(sub, "text")
        if has.any():
            texts = normalize(list(sub.loc[has, "text"]), mode).to_pylist()
            sub.loc[has, "text"] = np.array(texts, dtype=object)
    return sub


def _fill_durations(rows: pd.DataFrame) -> dict[str, Any]:
    """Durations of rows with an audio file but none given, from the files' headers."""
    need = manifests.has(rows, "audio") & ~manifests.has(rows, "duration")
    if not need.any():
        return {"measured": 0, "not_measured": {}}
    values, why = measure_durations(list(rows.loc[need, "audio"]))
    rows.loc[need, "duration"] = values
    return {"measured": int(np.isfinite(values).sum()), "not_measured": why}


def _nothing_for(fmt: str, why: dict[str, int], n: int) -> str:
    reason = max(why, key=why.get) if why else "nothing to write"
    return f"--format {fmt}: none of the {n:,} utterances can be written ({reason})"


def _fix_for(fmt: str, why: dict[str, int]) -> str:
    if "no transcript" in why:
        return "the audit's input has no transcripts: pass --input FILE with a reference column"
    if "no audio path" in why:
        return "name the audio column with --audio-col COL, or give --wav-scp FILE"
    if "no duration" in why:
        return "name the duration column with --duration-col COL, or make the audio files reachable (--audio-root DIR)"
    return f"use another --format than {fmt}"


def _summary(result, chosen, members, rows, split, dev_fraction, seed, cap, weight_keys, weights, content,
             measured, written, formats, normalize_text, ids_from) -> dict[str, Any]:
    from . import __version__

    in_split = {part: sorted(split.index[(split == part).to_numpy()]) for part in ("train", "dev")}
    return {
        "kind": "export",
        "tool": {"name": "fairaudit", "version": __version__},
        "report": os.path.join(result.path, "report.json") if result.path else None,
        "system": result.report.get("system"),
        "selection": [{**s.to_dict(), "folder_speakers": int(len(members[s.name]))} for s in chosen],
        "utterances": {
            "chosen": int(len(rows)),
            "speakers": int(rows["speaker_id"].nunique()),
            "with_transcript": int(manifests.has(rows, "text").sum()),
            "with_audio_path": int(manifests.has(rows, "audio").sum()),
            "with_duration": int(manifests.has(rows, "duration").sum()),
            "not_in_input": int((~rows["found_in_input"].to_numpy(dtype=bool)).sum()),
            "durations": measured,
            "transcripts": "normalised as the audit scored them" if normalize_text else "as in the input",
        },
        "source": {"utterance_ids": ids_from, **content.source,
                   "warnings": content.warnings},
        "split": {"by": "speaker", "seed": seed, "dev_fraction": dev_fraction, "method": SPLIT_METHOD,
                  **{part: {"speakers": len(ids),
                            "utterances": int(rows["speaker_id"].isin(ids).sum())} for part, ids in in_split.items()}},
        "weights": {"formula": FORMULA, "cap": cap, "discoverers": weight_keys, "utterances": int(len(weights)),
                    "mean": float(weights["weight"].mean()) if len(weights) else None,
                    "min": float(weights["weight"].min()) if len(weights) else None,
                    "max": float(weights["weight"].max()) if len(weights) else None,
                    "files": ["weights.csv", "cohort_weights.csv"]},
        "features": {"file": "speaker_cohorts.csv", "what": "per speaker its cohort id under every discoverer"},
        "formats": {fmt: written[fmt] for fmt in formats},
    }
