"""Baseline vs candidate on the same cohorts.

Two systems can only be compared fairly on the same speaker sets: cohorts are discovered
once (on the baseline, or read from a saved ``assignments.csv``) and both systems are
scored on exactly those speakers.  Per cohort: each system's WER, the change (ΔWER) with a
paired test over speakers; per discoverer: each system's gap and share on those cohorts.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .align_sclite import check_alignment
from .audit import (_frame_to_raw, _tool_version, audit_scored, build_discoverers, input_files, prepare_speakers,
                    read_speaker_table, side_values)
from .cohorts import cohort_table, members
from .discover.sides import load_side_inputs, side_flags
from .errors import UserInputError
from .fingerprint import check_comparable, normalizer_fingerprint
from .io.readers import InputSpec, RawUtterances, read_utterances, SYSTEM_PREFIX
from .normalize import DESCRIPTIONS
from .result import SCHEMA_VERSION, AuditResult
from .speakers import score
from .units import RATE_NAMES, check_unit


def _with_candidate_file(raw: RawUtterances, spec: InputSpec, candidate: str) -> RawUtterances:
    """Add the hypotheses (or errors) of a second utterance table, matched by utt_id, as system 2."""
    other = read_utterances(InputSpec(**{**spec.__dict__, "path": candidate, "more_hyp_cols": (),
                                         "more_value_cols": (), "more_hyp_paths": ()}))
    if other.mode != raw.mode:
        raise UserInputError("baseline and candidate inputs must both have text or both counts", path=candidate)
    col = "hypothesis" if raw.mode == "text" else "errors"
    ids = other.frame["utt_id"].astype("string").str.strip()
    values = pd.Series(other.frame[col].to_numpy(), index=ids.to_numpy())
    values = values[~values.index.duplicated(keep="first")]
    base_ids = raw.frame["utt_id"].astype("string").str.strip().to_numpy()
    matched = values.reindex(base_ids)
    missing = int(matched.isna().sum())
    frame = raw.frame.copy()
    name = candidate
    if raw.mode == "text":
        frame[SYSTEM_PREFIX + name] = matched.fillna("").to_numpy()
        if missing:
            raw.warnings.append(f"{missing} utterance(s) have no candidate hypothesis and are scored as empty "
                                f"output (all deletions) for the candidate")
    else:
        if missing:
            raise UserInputError(f"{missing} utterance(s) of the baseline have no row in the candidate file",
                                 path=candidate, hint="both files must hold the same utt_ids")
        frame[SYSTEM_PREFIX + name] = matched.to_numpy()
    base_name = next(iter(raw.systems)) if raw.systems else "baseline"
    if base_name == name:
        name = name + " (candidate)"
    return RawUtterances(frame, raw.mode, raw.rows_read, raw.unparsable, raw.orphan_hypotheses, raw.warnings,
                         raw.paths + [candidate], {base_name: raw.systems.get(base_name, col), name: SYSTEM_PREFIX + candidate})


def _baseline_from_cohorts(path: str, min_speakers: int) -> AuditResult:
    """The baseline's cohorts from a saved audit: its report.json (beside or as ``path``),
    or a bare assignments.csv (+ cohorts.csv beside it for the labels)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(folder, "report.json")):
        return AuditResult.load(folder)
    try:
        a = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserInputError("cohort file not found", path=path, hint="pass the assignments.csv of an earlier audit") from None
    need = {"speaker_id", "discoverer", "cohort_id"}
    if not need <= set(a.columns):
        raise UserInputError(f"needs columns {', '.join(sorted(need))}", path=path,
                             hint="pass the assignments.csv written by fairaudit audit")
    if "system" in a.columns:
        first = a["system"].iloc[0] if len(a) else None
        a = a.loc[a["system"] == first].drop(columns="system")
    labels: dict[str, dict[str, str]] = {}
    cohorts_path = os.path.join(folder, "cohorts.csv")
    if os.path.exists(cohorts_path):
        c = pd.read_csv(cohorts_path, dtype=str, keep_default_na=False)
        if {"discoverer", "id", "label"} <= set(c.columns):
            for row in c.itertuples(index=False):
                labels.setdefault(row.discoverer, {})[row.id] = row.label
    entries = {}
    for key, grp in a.groupby("discoverer", sort=False):
        ids = sorted(set(grp["cohort_id"]))
        entries[key] = {"name": key.split(":")[0], "skipped": None, "init_params": {"min_speakers": min_speakers},
                        "cohorts": [{"id": i, "label": labels.get(key, {}).get(i, i)} for i in ids]}
    return AuditResult(report={"schema_version": SCHEMA_VERSION, "discoverers": entries}, assignments=a)


def _check_cohorts_report(cohorts: str, unit: str, fingerprint: dict, allow: bool) -> None:
    """Cohorts saved by an earlier audit are reused only under the same unit and
    normaliser (its report.json: ``cohorts`` itself, in its folder, or beside assignments.csv)."""
    folder = cohorts if os.path.isdir(cohorts) else os.path.dirname(os.path.abspath(cohorts))
    path = os.path.join(folder, "report.json")
    if not os.path.isfile(path):
        return
    saved = AuditResult.load(path).report
    check_comparable({"inputs": {"unit": unit, "normalization": {"fingerprint": fingerprint}}}, saved,
                     allow_normalizer_change=allow, path=path, against="the audit that saved these cohorts")


def _gap_block(summary: dict) -> dict:
    return {k: summary.get(k) for k in ("bottom", "top", "wer_gap_pct", "wer_gap_abs", "bottom_share_pct")}


def compare_on_cohorts(baseline: AuditResult, sb, sc, base: str, cand: str, *, resamples: int = 10000,
                       seed: int = 0, min_speakers: int = 20) -> dict[str, dict]:
    """Per discoverer of ``baseline`` (an audit of the baseline system), its cohorts scored
    for both systems (``sb``/``sc``: scored sets on the same speakers): each cohort's WERs
    and ΔWER with a paired test, each system's gap and share on those same cohorts."""
    from .stats import paired_delta

    spk_b = sb.speakers.set_index("speaker_id")
    spk_c = sc.speakers.set_index("speaker_id").reindex(spk_b.index)
    entries = {}
    for key, entry in baseline.discoverers.items():
        if entry.get("skipped"):
            entries[key] = {"name": entry.get("name", key.split(":")[0]), "skipped": entry["skipped"]}
            continue
        a = baseline.assignment(key)
        a = a[a.index.isin(spk_b.index)]
        labels = {c["id"]: c.get("label", c["id"]) for c in entry.get("cohorts", [])}
        floor = int((entry.get("init_params") or entry.get("params") or {}).get("min_speakers", min_speakers))
        tb, sumb = cohort_table(sb.speakers, a, labels, floor)
        tc, sumc = cohort_table(sc.speakers, a, labels, floor)
        tc = tc.set_index("id")
        rows = []
        for row in tb.itertuples(index=False):
            ids = members(a, row.id)
            eb = spk_b.loc[ids, "errors"].to_numpy(np.int64)
            ec = spk_c.loc[ids, "errors"].to_numpy(np.int64)
            w = spk_b.loc[ids, "ref_words"].to_numpy(np.int64)
            test = paired_delta(eb, ec, w, n_resamples=resamples, seed=seed, key=f"{key}/{row.id}")
            rows.append({"id": row.id, "label": row.label, "speakers": int(row.speakers),
                         "ref_words": int(row.ref_words), "too_few_speakers": bool(row.too_few_speakers),
                         "wer": {base: float(row.wer), cand: float(tc.loc[row.id, "wer"])},
                         "rank": {base: int(row.rank), cand: int(tc.loc[row.id, "rank"])},
                         "delta_wer": test["delta_wer"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
                         "p_value": test["p_value"]})
        entries[key] = {"name": entry.get("name", key.split(":")[0]), "skipped": None, "min_speakers": floor,
                        "cohorts": rows, "gap": {base: _gap_block(sumb), cand: _gap_block(sumc)}}
    return entries


def compare(utterances: str | InputSpec | pd.DataFrame, *, candidate: str | None = None,
            speakers: str | None = None, census: str | None = None, embeddings: str | None = None,
            embedding_ids: str | None = None, side_inputs: Mapping[str, Any] | None = None,
            cohorts: str | None = None, by: Iterable[str] = (), discoverers: Iterable[str] | None = None,
            normalization: str = "default", min_speakers: int = 20, seed: int = 0,
            params: dict[str, dict[str, Any]] | None = None, instances: dict[str, list] | None = None,
            resamples: int = 10000, workers: int | None = None, unit: str = "word", alignment: str = "jiwer",
            allow_normalizer_change: bool = False) -> AuditResult:
    """Compare a baseline and a candidate system on the same cohorts; returns a comparison result.

    The systems are the first two of ``utterances`` (two hypothesis/WER columns, or two
    Kaldi/trn hypothesis files), or ``utterances`` (baseline) and ``candidate`` (a second
    utterance table with the same utt_ids).  The cohorts are the baseline's audit: the same
    pipeline as ``fairaudit audit`` (:func:`fairaudit.audit.audit_scored`, zip centroids
    included), or a saved audit given as ``cohorts`` (its folder, report.json or
    assignments.csv).  ``resamples``: paired bootstrap/permutation resamples per cohort
    for ΔWER (count).  ``unit``/``alignment``: as for :func:`fairaudit.audit.audit`.  With
    ``cohorts``, the saved audit's report.json (when present) must have the same unit and
    normaliser fingerprint as this run, unless ``allow_normalizer_change`` (the unit must
    match regardless).
    """
    from .stats import paired_delta

    check_unit(unit)
    check_alignment(alignment)
    fingerprint = normalizer_fingerprint(normalization, unit, alignment)
    if cohorts:
        _check_cohorts_report(cohorts, unit, fingerprint, allow_normalizer_change)
    spec = utterances if isinstance(utterances, InputSpec) else (
        InputSpec(path=str(utterances)) if isinstance(utterances, (str, os.PathLike)) else None)
    discs = None if cohorts else build_discoverers(discoverers, by, min_speakers=min_speakers, seed=seed,
                                                   params=params, instances=instances)
    raw = read_utterances(spec) if spec else _frame_to_raw(utterances, InputSpec(path="<DataFrame>"))
    if candidate:
        raw = _with_candidate_file(raw, spec, candidate)
    names = list(raw.systems)
    if len(names) != 2:
        raise UserInputError(f"compare needs exactly two systems, got {len(names)}",
                             hint="give two --hyp-col/--wer-col/--hyp, or --candidate FILE")
    base, cand = names
    speaker_table = read_speaker_table(speakers)
    required = sorted({c for d in discs or [] for c in d.required_columns()})
    scored = {name: score(raw.for_system(name), normalization, speaker_table, required, workers=workers, unit=unit,
                          alignment=alignment) for name in (base, cand)}
    prepare_speakers(scored)
    sb, sc = scored[base], scored[cand]
    values = side_values(census, embeddings, embedding_ids, side_inputs)
    if cohorts:
        baseline = _baseline_from_cohorts(cohorts, min_speakers)
        cohorts_from = cohorts
    else:
        side = load_side_inputs(values, sb.utterances)
        baseline = audit_scored({base: sb}, discs, side, normalization=normalization, seed=seed,
                                min_speakers=min_speakers, params=params, worst_n=0, n_boot=0, n_perm=0,
                                honest=False, workers=workers)
        cohorts_from = f"discovered on {base}"
    entries = compare_on_cohorts(baseline, sb, sc, base, cand, resamples=resamples, seed=seed,
                                 min_speakers=min_speakers)
    spk_b = sb.speakers.set_index("speaker_id")
    spk_c = sc.speakers.set_index("speaker_id").reindex(spk_b.index)
    overall_test = paired_delta(spk_b["errors"].to_numpy(np.int64), spk_c["errors"].to_numpy(np.int64),
                                spk_b["ref_words"].to_numpy(np.int64), n_resamples=resamples, seed=seed,
                                key="overall")
    path_flags = [f.name for f in side_flags() if f.path]
    files = input_files(spec, [("candidate", candidate), ("cohorts", cohorts), ("speakers", speakers),
                               *((n, values.get(n)) for n in path_flags)])
    report = {
        "schema_version": SCHEMA_VERSION, "kind": "comparison",
        "tool": {"name": "fairaudit", "version": _tool_version()},
        "inputs": {"files": files, "mode": sb.mode,
                   "normalization": {"mode": normalization, "description": DESCRIPTIONS.get(normalization, ""),
                                     "fingerprint": fingerprint},
                   "unit": unit, "rate": RATE_NAMES[unit], "alignment": alignment,
                   "options": {"seed": seed, "min_speakers": min_speakers, "resamples": resamples,
                               "cohorts_from": cohorts_from}},
        "baseline": base, "candidate": cand,
        "accounting": sb.accounting.to_dict(),
        "overall": {base: sb.overall, cand: sc.overall, "delta_wer": overall_test["delta_wer"],
                    "ci_low": overall_test["ci_low"], "ci_high": overall_test["ci_high"],
                    "p_value": overall_test["p_value"], "method": overall_test.get("method")},
        "discoverers": entries,
    }
    return AuditResult(report=report)
