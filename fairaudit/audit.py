"""Orchestration: inputs -> scored set -> discoverers -> audit result (computed once)."""
from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd


from .alignment import worst_utterances
from .discover import REGISTRY, Discoverer, SideInputs
from .discover.base import NotEnoughData
from .engines import resolve_engine, score_with_engine
from .errors import UserInputError
from .io.readers import InputSpec, RawUtterances, read_utterances
from .io.speakers import read_speakers
from .normalize import DESCRIPTIONS
from .result import SCHEMA_VERSION, AuditResult, cohort_statistics, frame_records
from .speakers import ScoredSet, score
from .stats import add_statistics, overall_ci

#: the discovered-cohort discoverers run by default, in report order
DEFAULT_DISCOVERERS = ("geographic", "geodemographic", "automatic", "metadata")


def score_input(spec: InputSpec, normalization: str = "default", speakers_path: str | None = None,
                required_attributes: tuple[str, ...] | list[str] = (), *, workers: int | None = None,
                progress=None, engine: str = "auto", chunk_rows: int | None = None,
                scheduler: str | None = None) -> ScoredSet:
    """Read ``spec`` (and the speaker table), score every utterance, build the speaker table.

    ``engine``: ``default`` (in memory), ``streaming`` (chunks of ``chunk_rows`` rows,
    bounded memory), ``dask`` (on the dask.distributed ``scheduler``, or a local cluster)
    or ``auto`` (streaming above 500 MB of input); see :mod:`fairaudit.engines`.
    """
    engine = resolve_engine(engine, spec)
    if engine != "default":
        speaker_table = read_speakers(speakers_path) if speakers_path else None
        return score_with_engine(engine, spec, normalization, speaker_table, required_attributes, workers=workers,
                                 progress=progress, chunk_rows=chunk_rows, scheduler=scheduler)
    raw = read_utterances(spec)
    if len(raw.systems) > 1:
        raise UserInputError("`score` takes one system", path=spec.path,
                             hint="give one --hyp-col/--wer-col/--hyp, or use `fairaudit audit` for several side by side")
    speaker_table = read_speakers(speakers_path) if speakers_path else None
    return score(raw, normalization, speaker_table, required_attributes, workers=workers, progress=progress)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _frame_to_raw(frame: pd.DataFrame, spec: InputSpec) -> RawUtterances:
    rename = {spec.utt_col: "utt_id", spec.speaker_col: "speaker_id", spec.ref_col: "reference",
              spec.hyp_col: "hypothesis"}
    out = frame.rename(columns=rename).copy()
    for col in ("utt_id", "speaker_id"):
        if col not in out.columns:
            raise UserInputError(f"the utterance frame has no {col!r} column", hint="map it with the *_col arguments")
    mode = "counts" if {"errors", "ref_words"} <= set(out.columns) and "reference" not in out.columns else "text"
    if mode == "text" and not {"reference", "hypothesis"} <= set(out.columns):
        raise UserInputError("the utterance frame needs reference and hypothesis columns (or errors and ref_words)")
    out.index = np.arange(1, len(out) + 1)
    return RawUtterances(out, mode, rows_read=len(out), paths=["<DataFrame>"])


def load_side_inputs(census: str | pd.DataFrame | None = None, embeddings: str | None = None,
                     embedding_ids: str | None = None, utterances: pd.DataFrame | None = None) -> SideInputs:
    """Census table and speaker embeddings for the discoverers that need them.

    ``census``: a path (read with :func:`fairaudit.io.census.read_census`) or a DataFrame;
    ``embeddings``: a .npy (with ``embedding_ids``) or Parquet/CSV path; ``utterances``: the
    scored utterance table (utt_id, speaker_id), used when embeddings are per utterance
    (they are averaged per speaker).
    """
    side = SideInputs()
    if census is not None:
        from .io.census import read_census

        side.census = read_census(census) if isinstance(census, (str, os.PathLike)) else census
        side.census_path = str(census) if isinstance(census, (str, os.PathLike)) else None
    if embeddings is not None:
        from .io.embeddings import read_embeddings

        utt_to_spk = None
        if utterances is not None:
            utt_to_spk = pd.Series(utterances["speaker_id"].to_numpy(), index=utterances["utt_id"].to_numpy())
        side.embeddings, side.embedding_ids, _ = read_embeddings(str(embeddings), embedding_ids, utt_to_spk)
        side.embeddings_path = str(embeddings)
    return side


def build_discoverers(names: Iterable[str], by: Iterable[str | Iterable[str]] = (), *, min_speakers: int = 20,
                      seed: int = 0, params: dict[str, dict[str, Any]] | None = None) -> list[Discoverer]:
    """Instantiate discoverers by registry name, plus one attribute discoverer per ``by`` entry."""
    params = params or {}
    out: list[Discoverer] = []
    for name in names:
        if name not in REGISTRY or name == "attribute":
            raise UserInputError(f"unknown discoverer {name!r}",
                                 hint=f"choose from: {', '.join(n for n in REGISTRY if n != 'attribute')}")
        out.append(REGISTRY[name](min_speakers=min_speakers, seed=seed, **params.get(name, {})))
    for cols in by:
        cols = [c.strip() for c in (cols.split(",") if isinstance(cols, str) else cols) if c.strip()]
        if cols:
            out.append(REGISTRY["attribute"](min_speakers=min_speakers, seed=seed, columns=cols))
    return out


def run_discoverer(disc: Discoverer, speakers: pd.DataFrame, side: SideInputs) -> tuple[dict, pd.Series | None]:
    """Fit one discoverer and compute its cohort statistics; returns (report entry, assignment)."""
    reason = disc.missing_inputs(speakers, side)
    if reason:
        return {"name": disc.name, "skipped": reason}, None
    try:
        found = disc.fit(speakers, side)
    except NotEnoughData as exc:
        return {"name": disc.name, "skipped": str(exc)}, None
    cohorts, summary = cohort_statistics(speakers, found.assignment, found.labels, disc.min_speakers)
    records = frame_records(cohorts)
    for rec in records:
        extra = found.cohort_details.get(rec["id"])
        if extra:
            rec["details"] = extra
    entry = {"name": disc.name, "skipped": None, "params": found.params or disc.get_params(),
             "not_audited": found.not_audited, **summary, "cohorts": records, "details": found.details}
    return entry, found.assignment


def audit(utterances: str | InputSpec | pd.DataFrame, *, speakers: str | pd.DataFrame | None = None,
          census: str | pd.DataFrame | None = None, embeddings: str | None = None, embedding_ids: str | None = None,
          by: Iterable[str | Iterable[str]] = (), discoverers: Iterable[str] = DEFAULT_DISCOVERERS,
          normalization: str = "default", min_speakers: int = 20, seed: int = 0,
          params: dict[str, dict[str, Any]] | None = None, workers: int | None = None,
          progress: Callable[[int], None] | None = None, options: dict[str, Any] | None = None,
          worst_n: int = 5, redact_text: bool = False, n_boot: int = 1000, n_perm: int = 200,
          ci_level: float = 0.95, honest: bool = True, engine: str = "auto", chunk_rows: int | None = None,
          scheduler: str | None = None) -> AuditResult:
    """Score a decoded test set and run every discoverer whose inputs are present.

    ``utterances``: a file path, an :class:`InputSpec` (column mapping, Kaldi/trn...) or a
    DataFrame with utt_id, speaker_id and reference/hypothesis (or errors/ref_words).
    ``speakers``/``census``: file paths or DataFrames (speakers indexed or keyed by speaker_id;
    census keyed by zip).  ``embeddings``: .npy (+ ``embedding_ids``) or Parquet/CSV path.
    ``by``: attribute columns, e.g. ``["gender", "gender,age_band"]``.
    ``params``: per-discoverer parameters, e.g. ``{"automatic": {"k": 8}}``.
    ``min_speakers``: smallest cohort (count of speakers) that may be a bottom/top cohort.
    ``worst_n``: worst utterances of each bottom cohort kept for the report (aligned text,
    or ids and counts only with ``redact_text``).
    ``n_boot``: bootstrap resamples of speakers for confidence intervals (count, 0 = none);
    ``n_perm``: permutations for each discoverer's selection-corrected p-value (0 = none);
    ``ci_level``: confidence level (ratio, 0.95); ``honest``: also measure each discovered
    gap on held-out utterances.
    ``engine``/``chunk_rows``/``scheduler``: how the utterances are read and scored (see
    :func:`score_input`); every engine gives the same report.

    Returns an :class:`AuditResult` (report dict + pandas views + ``to_json()``).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    by = list(by)
    by_cols = sorted({c.strip() for b in by for c in (b.split(",") if isinstance(b, str) else b) if c.strip()})
    spec = utterances if isinstance(utterances, InputSpec) else (
        InputSpec(path=utterances) if isinstance(utterances, (str, os.PathLike)) else None)
    engine = resolve_engine(engine, spec)
    if engine == "default":
        raw = read_utterances(spec) if spec is not None else _frame_to_raw(utterances, InputSpec(path="<DataFrame>"))
    speaker_table = None
    if isinstance(speakers, (str, os.PathLike)):
        speaker_table = read_speakers(str(speakers))
    elif isinstance(speakers, pd.DataFrame):
        speaker_table = speakers.set_index("speaker_id") if "speaker_id" in speakers.columns else speakers
        speaker_table.index = speaker_table.index.astype(str)
    timings["read"] = time.perf_counter() - t0

    scored_sets: dict[str, ScoredSet] = {}
    if engine != "default":
        # Chunked engines read and score in one pass: the time is all "score".
        t = time.perf_counter()
        names = spec.system_names
        scored_sets[names[0]] = score_with_engine(engine, spec, normalization, speaker_table, by_cols,
                                                  workers=workers, progress=progress, chunk_rows=chunk_rows,
                                                  scheduler=scheduler)
        timings["score"] = time.perf_counter() - t
    else:
        names = list(raw.systems) or ["hypothesis"]
    for name in (names if engine == "default" else ()):
        t = time.perf_counter()
        scored_sets[name] = score(raw.for_system(name) if len(names) > 1 else raw, normalization, speaker_table,
                                  by_cols, workers=workers, progress=progress)
        timings[f"score:{name}" if len(names) > 1 else "score"] = time.perf_counter() - t
    scored = scored_sets[names[0]]
    # Speakers with a zip but no coordinates are placed at the zip's centroid (offline
    # table), flagged in coords_approx, so the geographic discoverer runs on zip-only data.
    zipgeo_info = None
    if "zip" in scored.speakers.columns:
        from .io.zipgeo import fill_coordinates_from_zip

        for sset in scored_sets.values():
            sset.speakers, zipgeo_info = fill_coordinates_from_zip(sset.speakers)

    t = time.perf_counter()
    side = load_side_inputs(census, embeddings, embedding_ids, scored.utterances)
    timings["read_side_inputs"] = time.perf_counter() - t

    per_system: dict[str, dict] = {}
    assignment_parts = []
    for name, sset in scored_sets.items():
        discs = build_discoverers(discoverers, by, min_speakers=min_speakers, seed=seed, params=params)
        entries, parts = discover_all(discs, sset, side, seed=seed, normalization=normalization, worst_n=worst_n,
                                      redact_text=redact_text, timings=timings, n_boot=n_boot, n_perm=n_perm,
                                      ci_level=ci_level, honest=honest, workers=workers)
        overall = {**sset.overall, "wer_ci": overall_ci(sset.speakers, n_boot, seed, ci_level)}
        per_system[name] = {"overall": overall, "accounting": sset.accounting.to_dict(), "discoverers": entries}
        for part in parts:
            if len(names) > 1:
                part.insert(0, "system", name)
            assignment_parts.append(part)

    paths = []
    hyp_files = [spec.hyp_path, *spec.more_hyp_paths] if spec else []
    for role, p in (("utterances", spec.path if spec else None), *(("hypotheses", h) for h in hyp_files),
                    ("utt2spk", spec.utt2spk if spec else None), ("speakers", speakers), ("census", census),
                    ("embeddings", embeddings), ("embedding_ids", embedding_ids)):
        if isinstance(p, (str, os.PathLike)) and os.path.isfile(p):
            paths.append({"role": role, "path": str(p), "sha256": _sha256(str(p))})
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "fairaudit", "version": _tool_version()},
        "inputs": {
            "files": paths,
            "mode": scored.mode,
            "normalization": {"mode": normalization, "description": DESCRIPTIONS.get(normalization, "")},
            "options": {"seed": seed, "min_speakers": min_speakers, "by": [",".join(b) if not isinstance(b, str) else b for b in by],
                        "discoverers": list(discoverers), "params": params or {}, "redact_text": redact_text,
                        "bootstrap": n_boot, "permutations": n_perm, "ci_level": ci_level, "honest_gap": honest,
                        **(options or {})},
        },
        # The first system's audit stands at the top level, so one-system views read it as is.
        "system": names[0],
        **per_system[names[0]],
    }
    if len(names) > 1:
        report["systems"] = per_system
    assignments = (pd.concat(assignment_parts, ignore_index=True) if assignment_parts
                   else pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
    result = AuditResult(report=report, assignments=assignments, speakers=scored.speakers,
                         utterances=scored.utterances)
    result.timings = timings
    result.side = side  # kept so power/selftest reuse what was read, not read it again
    timings["total"] = time.perf_counter() - t0
    return result


def discover_all(discs: list[Discoverer], scored: ScoredSet, side: SideInputs, *, seed: int = 0,
                 normalization: str = "default", worst_n: int = 5, redact_text: bool = False,
                 timings: dict[str, float] | None = None, n_boot: int = 0, n_perm: int = 0,
                 ci_level: float = 0.95, honest: bool = False,
                 workers: int | None = None) -> tuple[dict[str, dict], list[pd.DataFrame]]:
    """Run each discoverer on one scored system (with its statistics); returns report
    entries and assignment frames."""
    entries: dict[str, dict] = {}
    parts = []
    # Chunked engines keep no transcripts: the worst utterances' text is read in one
    # second pass over the input once every discoverer has picked its rows.
    fetch_text = (scored.text_source is not None and "reference" not in scored.utterances.columns
                  and not redact_text and scored.mode == "text")
    pending_worst: list[tuple[dict, pd.Index]] = []
    for disc in discs:
        t = time.perf_counter()
        entry, assignment = run_discoverer(disc, scored.speakers, side)
        if timings is not None:
            timings[f"discover:{disc.key}"] = timings.get(f"discover:{disc.key}", 0.0) + time.perf_counter() - t
        entries[disc.key] = entry
        if assignment is None:
            continue
        t = time.perf_counter()
        add_statistics(entry, disc, scored.speakers, scored.utterances, side, assignment, n_boot=n_boot,
                       n_perm=n_perm, seed=seed, level=ci_level, honest=honest, workers=workers)
        if timings is not None:
            timings[f"stats:{disc.key}"] = timings.get(f"stats:{disc.key}", 0.0) + time.perf_counter() - t
        if entry.get("bottom") is not None:
            members = assignment.index[assignment.to_numpy() == entry["bottom"]]
            if fetch_text:
                entry["worst_utterances"] = []  # filled below: the same place in the report
                pending_worst.append((entry, members))
            else:
                entry["worst_utterances"] = worst_utterances(scored.utterances, members, worst_n, normalization,
                                                             redact_text or scored.mode != "text")
        if disc.name == "geographic":
            entry["details"]["speaker_points"] = _speaker_points(scored.speakers, assignment, seed)
            if "coords_approx" in scored.speakers.columns:
                approx = scored.speakers.set_index("speaker_id").loc[assignment.index, "coords_approx"]
                entry["approximate_coordinates"] = int(approx.fillna(False).astype(bool).sum())
        parts.append(pd.DataFrame({"speaker_id": assignment.index.to_numpy(), "discoverer": disc.key,
                                   "cohort_id": assignment.to_numpy()}))
    if pending_worst:
        _worst_with_text(pending_worst, scored, worst_n, normalization)
    return entries, parts


def _worst_with_text(pending: list[tuple[dict, pd.Index]], scored: ScoredSet, worst_n: int,
                     normalization: str) -> None:
    """Worst utterances of each bottom cohort, their transcripts read back by row number."""
    utts = scored.utterances
    picks = []
    for entry, members in pending:
        ids = [r["utt_id"] for r in worst_utterances(utts, members, worst_n, normalization, True)]
        picks.append(utts.index[utts["utt_id"].isin(ids).to_numpy()])
    rows = np.unique(np.concatenate([p.to_numpy() for p in picks])) if picks else np.zeros(0, np.int64)
    texts = scored.text_source(rows)
    for (entry, members), pick in zip(pending, picks):
        sub = utts.loc[pick].join(texts)
        entry["worst_utterances"] = worst_utterances(sub, members, worst_n, normalization, False)


MAX_POINTS = 5000


def _speaker_points(speakers: pd.DataFrame, assignment: pd.Series, seed: int) -> dict:
    """Audited speakers' coordinates, WER and region for the map (a seeded sample of at most MAX_POINTS)."""
    sp = speakers.set_index("speaker_id").loc[assignment.index]
    audited = len(sp)
    if len(sp) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(sp), MAX_POINTS, replace=False))
        sp, assignment = sp.iloc[pick], assignment.iloc[pick]
    return {"sampled": len(sp) < audited, "lat": sp["lat"].round(4).tolist(), "lon": sp["lon"].round(4).tolist(),
            "wer": sp["wer"].round(5).tolist(), "cohort": assignment.astype(str).tolist()}


def _tool_version() -> str:
    from . import __version__

    return __version__
