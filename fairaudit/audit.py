"""Orchestration: inputs -> scored set -> discoverers -> audit result (computed once)."""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd


from . import drilldown, fingerprint, limits
from .align_sclite import check_alignment
from .alignment import worst_utterances
from .cohorts import cohort_table
from .discover import Discoverer, SideInputs, default_discoverers, discoverer_class, load_plugins
from .discover.base import PLUGINS, NotEnoughData
from .discover.sides import load_side_inputs as _load_side_inputs
from .discover.sides import side_flags
from .engines import resolve_engine, score_with_engine
from .errors import UserInputError
from .fingerprint import normalizer_fingerprint
from .io.readers import InputSpec, RawUtterances, read_utterances
from .io.speakers import read_speakers
from .normalize import DESCRIPTIONS
from .result import SCHEMA_VERSION, AuditResult, frame_records
from .speakers import ScoredSet, score
from .stats import overall_ci, parallel
from .stats._common import one_thread
from .stats.permutation import SEQUENTIAL_STOP_AFTER
from .stats.report import stage
from .units import RATE_NAMES, check_unit

#: the discoverer behind ``by=`` / ``--by`` (attribute cohorts, one instance per entry)
BY_DISCOVERER = "attribute"


def score_input(spec: InputSpec, normalization: str = "default", speakers_path: str | None = None,
                required_attributes: tuple[str, ...] | list[str] = (), *, workers: int | None = None,
                progress=None, engine: str = "auto", chunk_rows: int | None = None,
                scheduler: str | None = None, unit: str = "word", alignment: str = "jiwer") -> ScoredSet:
    """Read ``spec`` (and the speaker table), score every utterance, build the speaker table.

    ``engine``: ``default`` (in memory), ``streaming`` (chunks of ``chunk_rows`` rows,
    bounded memory), ``dask`` (on the dask.distributed ``scheduler``, or a local cluster)
    or ``auto`` (streaming above 500 MB of input); see :mod:`fairaudit.engines`.
    ``unit``: ``word`` (WER), ``char`` (CER) or ``mixed`` (MER); ``alignment``: ``jiwer``
    or ``sclite`` (see :func:`fairaudit.scoring.count_errors`).
    """
    check_unit(unit)
    check_alignment(alignment)
    engine = resolve_engine(engine, spec)
    if engine != "default":
        speaker_table = read_speakers(speakers_path) if speakers_path else None
        return score_with_engine(engine, spec, normalization, speaker_table, required_attributes, workers=workers,
                                 progress=progress, chunk_rows=chunk_rows, scheduler=scheduler, unit=unit,
                                 alignment=alignment)
    raw = read_utterances(spec)
    if len(raw.systems) > 1:
        raise UserInputError("`score` takes one system", path=spec.path,
                             hint="give one --hyp-col/--wer-col/--hyp/--hyp-table, or use `fairaudit audit` for several side by side")
    speaker_table = read_speakers(speakers_path) if speakers_path else None
    return score(raw, normalization, speaker_table, required_attributes, workers=workers, progress=progress,
                 unit=unit, alignment=alignment)


def _sha256(path: str) -> str:
    return fingerprint.sha256_file(path)


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
                     embedding_ids: str | None = None, utterances: pd.DataFrame | None = None,
                     **more: Any) -> SideInputs:
    """Side inputs for the discoverers that need them (see :mod:`fairaudit.discover.sides`).

    ``census``: a path or a DataFrame; ``embeddings``: a .npy (with ``embedding_ids``) or
    Parquet/CSV path; ``more``: flags of side inputs registered by plugins;
    ``utterances``: the scored utterance table (utt_id, speaker_id), used when embeddings
    are per utterance (they are averaged per speaker).
    """
    return _load_side_inputs({"census": census, "embeddings": embeddings, "embedding_ids": embedding_ids, **more},
                             utterances)


def _split_by(by: Iterable[str | Iterable[str]]) -> list[list[str]]:
    out = []
    for cols in by:
        cols = [c.strip() for c in (cols.split(",") if isinstance(cols, str) else cols) if c.strip()]
        if cols:
            out.append(cols)
    return out


def build_discoverers(names: Iterable[str] | None = None, by: Iterable[str | Iterable[str]] = (), *,
                      min_speakers: int = 20, seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
                      instances: dict[str, list] | None = None) -> list[Discoverer]:
    """Instantiate discoverers by registry name (None: the defaults), plus one instance of
    a repeatable discoverer per value in ``instances`` (``by`` entries are instances of the
    attribute discoverer), and validate their parameters (one validator, before any data
    is read: the same check ``fit`` would make).

    ``params``: per discoverer name, parameter -> value, e.g. ``{"automatic": {"k": 8}}``.
    """
    load_plugins()
    params = dict(params or {})
    for name in params:
        discoverer_class(name)   # a typo in a name is an error, not silently ignored
    instances = {k: list(v) for k, v in (instances or {}).items()}
    by_groups = _split_by(by)
    if by_groups:
        instances.setdefault(BY_DISCOVERER, []).extend(by_groups)
    out: list[Discoverer] = []

    def make(cls, **extra) -> Discoverer:
        kwargs = {**params.get(cls.name, {}), **extra}
        try:
            disc = cls(min_speakers=min_speakers, seed=seed, **kwargs)
        except TypeError as exc:
            raise UserInputError(f"{cls.name} discoverer: {exc}",
                                 hint=f"its parameters are {', '.join(cls.own_params())}") from None
        disc.validate_params()
        return disc

    for name in (default_discoverers() if names is None else list(names)):
        cls = discoverer_class(name)
        if cls.instance_param is not None:
            flag = cls.flag_aliases.get(cls.instance_param, (cls.flag(cls.instance_param),))[0]
            raise UserInputError(f"the {name} discoverer is not chosen with --discoverers", hint=f"use {flag} instead")
        out.append(make(cls))
    for name, values in instances.items():
        cls = discoverer_class(name)
        for value in values:
            out.append(make(cls, **{cls.instance_param: value}))
    return out


def run_discoverer(disc: Discoverer, speakers: pd.DataFrame, side: SideInputs) -> tuple[dict, pd.Series | None]:
    """Fit one discoverer (its audit fit: hooks included) and compute its cohort
    statistics; returns (report entry, assignment), or a skipped entry and None."""
    reason = disc.missing_inputs(speakers, side) or disc.missing_side_inputs(side)
    if reason:
        return {"name": disc.name, "skipped": reason}, None
    try:
        found = disc.fit(speakers, side)
    except NotEnoughData as exc:
        return {"name": disc.name, "skipped": str(exc)}, None
    disc.annotate(found, speakers, side)
    cohorts, summary = cohort_table(speakers, found.assignment, found.labels, disc.min_speakers)
    records = frame_records(cohorts)
    for rec in records:
        extra = found.cohort_details.get(rec["id"])
        if extra:
            rec["details"] = extra
    entry = {"name": disc.name, "skipped": None, "params": found.params or disc.get_params(),
             "init_params": _jsonable(disc.get_params()), "not_audited": found.not_audited, **summary,
             "cohorts": records, "details": found.details, **found.entry_fields}
    if found.definition is not None:
        entry["definition"] = found.definition
    if found.statistic is not None:
        entry["statistic"] = {"name": found.statistic_name or "statistic", "value": float(found.statistic)}
    return entry, found.assignment


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def read_speaker_table(speakers: str | os.PathLike | pd.DataFrame | None) -> pd.DataFrame | None:
    """The speaker table indexed by speaker_id (str), from a path or a DataFrame."""
    if isinstance(speakers, (str, os.PathLike)):
        return read_speakers(str(speakers))
    if isinstance(speakers, pd.DataFrame):
        table = speakers.set_index("speaker_id") if "speaker_id" in speakers.columns else speakers.copy()
        table.index = table.index.astype(str)
        return table
    return None


def prepare_speakers(scored_sets: dict[str, ScoredSet]) -> None:
    """The speaker-table step every pipeline runs after scoring: speakers with a zip but no
    coordinates are placed at the zip's centroid (offline table), flagged in
    ``coords_approx``, so coordinate-based discoverers run on zip-only data."""
    for sset in scored_sets.values():
        if "zip" in sset.speakers.columns:
            from .io.zipgeo import fill_coordinates_from_zip

            sset.speakers, _ = fill_coordinates_from_zip(sset.speakers)


def input_files(spec: InputSpec | None, roles: Iterable[tuple[str, Any]]) -> list[dict]:
    """Files of an audit with their SHA-256: the utterance input(s), then ``roles``
    (role, path) pairs (the speaker table, side inputs, ...); non-files are left out."""
    return fingerprint.input_files(spec, **dict(roles))


def audit_fingerprint(spec: InputSpec | None, files: list[dict], discs: list[Discoverer], *,
                      normalization: str, min_speakers: int, unit: str = "word", alignment: str = "jiwer") -> dict:
    """What the report is computed from (:mod:`fairaudit.fingerprint`): the files' hashes
    and the options that shape the data, with every discoverer's own parameters (all of
    them, given or default) keyed by its report key."""
    return fingerprint.fingerprint(files, fingerprint.run_options(
        spec, normalization=normalization, min_speakers=min_speakers,
        discoverers=[d.name for d in discs if d.instance_param is None],
        by=[",".join(map(str, getattr(d, d.instance_param))) for d in discs if d.instance_param],
        params={d.key: _jsonable({p: getattr(d, p) for p in d.own_params()}) for d in discs}, unit=unit,
        alignment=alignment))


def side_values(census: Any = None, embeddings: Any = None, embedding_ids: Any = None,
                side_inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Flag name -> value of every side input given (the built-in keywords plus plugins')."""
    values = {"census": census, "embeddings": embeddings, "embedding_ids": embedding_ids, **dict(side_inputs or {})}
    return {k: v for k, v in values.items() if v is not None}


def audit(utterances: str | InputSpec | pd.DataFrame, *, speakers: str | pd.DataFrame | None = None,
          census: str | pd.DataFrame | None = None, embeddings: str | None = None, embedding_ids: str | None = None,
          side_inputs: Mapping[str, Any] | SideInputs | None = None,
          by: Iterable[str | Iterable[str]] = (), discoverers: Iterable[str] | None = None,
          normalization: str = "default", min_speakers: int = 20, seed: int = 0,
          params: dict[str, dict[str, Any]] | None = None, instances: dict[str, list] | None = None,
          workers: int | None = None, progress: Callable[[int], None] | None = None, options: dict[str, Any] | None = None,
          worst_n: int = 5, redact_text: bool = False, n_boot: int = 1000, n_perm: int = 200,
          ci_level: float = 0.95, honest: bool = True, engine: str = "auto", chunk_rows: int | None = None,
          scheduler: str | None = None, unit: str = "word", alignment: str = "jiwer",
          adjust: Iterable[str] = (), adjust_model: str = "gee", adjust_bins: int = 5,
          cohort_tests: bool = True, heldout_splits: int = 5, heldout_folds: int = 2,
          perm_stop_after: int | None = SEQUENTIAL_STOP_AFTER,
          on_scored: Callable[[dict[str, ScoredSet]], None] | None = None) -> AuditResult:
    """Score a decoded test set and run every discoverer whose inputs are present.

    ``utterances``: a file path, an :class:`InputSpec` (column mapping, Kaldi/trn...) or a
    DataFrame with utt_id, speaker_id and reference/hypothesis (or errors/ref_words).
    ``speakers``/``census``: file paths or DataFrames (speakers indexed or keyed by speaker_id;
    census keyed by zip).  ``embeddings``: .npy (+ ``embedding_ids``) or Parquet/CSV path.
    ``side_inputs``: values of side inputs registered by plugins (flag name -> value), or
    a ready :class:`SideInputs`.
    ``discoverers``: registry names (default: every discoverer marked ``default``);
    ``by``: attribute columns, e.g. ``["gender", "gender,age_band"]``.
    ``params``: per-discoverer parameters, e.g. ``{"automatic": {"k": 8}}``;
    ``instances``: repeatable discoverers, one instance per value (``by`` is sugar for
    ``{"attribute": [...]}``).
    ``min_speakers``: smallest cohort (count of speakers) that may be a bottom/top cohort.
    ``worst_n``: worst utterances of each bottom cohort kept for the report (aligned text,
    or ids and counts only with ``redact_text``).
    ``n_boot``: bootstrap resamples of speakers for confidence intervals (count, 0 = none);
    ``n_perm``: permutations for each discoverer's selection-corrected p-value (0 = none);
    ``perm_stop_after``: h of the sequential (Besag-Clifford) p-value: a discoverer's
    permutations stop at the h-th null value >= its observed one (p = h / permutations
    run; None or 0 = always run ``n_perm``);
    ``ci_level``: confidence level (ratio, 0.95); ``honest``: also measure each discovered
    gap on held-out speakers (:func:`fairaudit.heldout.heldout_gap`: ``heldout_folds``
    folds of speakers, ``heldout_splits`` random repetitions).
    ``engine``/``chunk_rows``/``scheduler``: how the utterances are read and scored (see
    :func:`score_input`); every engine gives the same report.
    ``unit``: ``word`` (WER), ``char`` (CER) or ``mixed`` (MER): what a token is; the
    report's count columns keep their names (``ref_words``, ``wer``) and
    ``inputs.unit`` says which rate they are.  ``alignment``: ``jiwer`` or ``sclite``.
    ``cohort_tests``: give every cohort its rate ratio vs the rest (speaker-clustered,
    Holm and Benjamini-Hochberg over the audit; see :mod:`fairaudit.adjust`);
    ``adjust``: covariate columns (utterance- or speaker-level, numeric or categorical;
    ``ref_words`` is the utterance length) for the adjusted rate ratios;
    ``adjust_model``: ``gee`` (Poisson GEE, speaker clusters) or ``frailty`` (gamma
    speaker random intercept); ``adjust_bins``: quantile bins of numeric covariates.
    ``on_scored``: called with the scored systems (name -> :class:`ScoredSet`) once their
    speaker tables are final, before discovery; the CLI starts writing the per-speaker and
    per-utterance tables there, on the core discovery leaves idle.  It must not change them.

    Returns an :class:`AuditResult` (report dict + pandas views + ``to_json()``).
    """
    check_unit(unit)
    check_alignment(alignment)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # Numbers out of range are refused before any input is read; too few resamples warn.
    seed = limits.check_seed(seed)
    warnings = limits.permutation_warnings(limits.check_count(n_perm, "--permutations", limits.MAX_PERMUTATIONS))
    perm_stop_after = limits.check_count(perm_stop_after or 0, "--permutations-stop-after",
                                         limits.MAX_PERMUTATIONS) or None
    n_boot_used = limits.usable_bootstrap(limits.check_count(n_boot, "--bootstrap", limits.MAX_BOOTSTRAP), warnings)
    discs = build_discoverers(discoverers, by, min_speakers=min_speakers, seed=seed, params=params,
                              instances=instances)
    adjust = _check_adjust(adjust, adjust_model, adjust_bins)
    required = sorted({c for d in discs for c in d.required_columns()})
    spec = utterances if isinstance(utterances, InputSpec) else (
        InputSpec(path=utterances) if isinstance(utterances, (str, os.PathLike)) else None)
    engine = resolve_engine(engine, spec)
    if engine == "default":
        raw = read_utterances(spec) if spec is not None else _frame_to_raw(utterances, InputSpec(path="<DataFrame>"))
    speaker_table = read_speaker_table(speakers)
    timings["read"] = time.perf_counter() - t0

    scored_sets: dict[str, ScoredSet] = {}
    if engine != "default":
        # Chunked engines read and score in one pass: the time is all "score".
        t = time.perf_counter()
        names = spec.system_names
        scored_sets[names[0]] = score_with_engine(engine, spec, normalization, speaker_table, required,
                                                  workers=workers, progress=progress, chunk_rows=chunk_rows,
                                                  scheduler=scheduler, unit=unit, alignment=alignment)
        timings["score"] = time.perf_counter() - t
    else:
        names = list(raw.systems) or ["hypothesis"]
    for name in (names if engine == "default" else ()):
        t = time.perf_counter()
        scored_sets[name] = score(raw.for_system(name) if len(names) > 1 else raw, normalization, speaker_table,
                                  required, workers=workers, progress=progress, unit=unit, alignment=alignment,
                                  utterance_columns=adjust)
        timings[f"score:{name}" if len(names) > 1 else "score"] = time.perf_counter() - t
    with stage(timings, "prepare_speakers"):
        prepare_speakers(scored_sets)
    if adjust and engine != "default":
        missing = [c for c in adjust if c != "ref_words" and c not in scored_sets[names[0]].speakers.columns]
        if missing:
            raise UserInputError(f"covariate {missing[0]!r} is not a speaker attribute, and the {engine} engine "
                                 "keeps no per-utterance columns",
                                 hint="pass --engine default for utterance-level covariates, or put the column "
                                      "in --speakers FILE")
    if adjust:   # a misspelt covariate is refused before discovery and resampling, not after
        from .adjust import check_covariates

        first = scored_sets[names[0]]
        check_covariates(adjust, first.utterances.columns, first.speakers.columns)

    t = time.perf_counter()
    values = {} if isinstance(side_inputs, SideInputs) else side_values(census, embeddings, embedding_ids,
                                                                          side_inputs)
    side = side_inputs if isinstance(side_inputs, SideInputs) else _load_side_inputs(
        values, scored_sets[names[0]].utterances)
    timings["read_side_inputs"] = time.perf_counter() - t
    path_flags = [f.name for f in side_flags() if f.path]
    with stage(timings, "hash_inputs"):
        files = input_files(spec, [("speakers", speakers), *((n, values.get(n)) for n in path_flags)])
        prints = audit_fingerprint(spec, files, discs, normalization=normalization, min_speakers=min_speakers,
                                   unit=unit, alignment=alignment)
    if on_scored is not None:
        on_scored(scored_sets)
    result = audit_scored(scored_sets, discs, side, files=files, fingerprint=prints,
                          normalization=normalization, seed=seed, min_speakers=min_speakers, params=params,
                          options={"bootstrap": n_boot, **(options or {})}, worst_n=worst_n,
                          redact_text=redact_text, n_boot=n_boot_used, n_perm=n_perm, ci_level=ci_level,
                          honest=honest, workers=workers, timings=timings, warnings=warnings,
                          cohort_tests=cohort_tests, adjust=adjust, adjust_model=adjust_model,
                          adjust_bins=adjust_bins, heldout_splits=heldout_splits,
                          heldout_folds=heldout_folds, perm_stop_after=perm_stop_after)
    timings["total"] = time.perf_counter() - t0
    return result


def _check_adjust(adjust: Iterable[str] | str, model: str, bins: int) -> list[str]:
    """The covariate names of ``--adjust`` (comma-separated or a list), checked options."""
    from .adjust import MODELS

    items = [adjust] if isinstance(adjust, str) else list(adjust or ())
    names = list(dict.fromkeys(c.strip() for item in items for c in str(item).split(",") if c.strip()))
    if model not in MODELS:
        raise UserInputError(f"unknown adjustment model {model!r}", hint=f"--adjust-model takes {' or '.join(MODELS)}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise UserInputError(f"--adjust-bins must be a whole number >= 2, not {bins!r}")
    return names


def audit_scored(scored_sets: dict[str, ScoredSet], discs: list[Discoverer], side: SideInputs, *,
                 files: list[dict] | None = None, fingerprint: dict | None = None,
                 normalization: str = "default", seed: int = 0, min_speakers: int = 20,
                 params: dict | None = None, options: dict[str, Any] | None = None, worst_n: int = 5,
                 redact_text: bool = False, n_boot: int = 1000, n_perm: int = 200, ci_level: float = 0.95,
                 honest: bool = True, workers: int | None = None, timings: dict[str, float] | None = None,
                 warnings: list[str] | None = None, cohort_tests: bool = False, adjust: Iterable[str] = (),
                 adjust_model: str = "gee", adjust_bins: int = 5, heldout_splits: int = 5,
                 heldout_folds: int = 2, perm_stop_after: int | None = SEQUENTIAL_STOP_AFTER) -> AuditResult:
    """The audit of already scored systems (name -> :class:`ScoredSet`, the first one at the
    top level of the report): every discoverer, its statistics, the report.  The one
    pipeline behind ``audit`` and ``compare`` (which audits its baseline here).
    ``files``/``fingerprint``: the inputs as :func:`input_files` and
    :func:`audit_fingerprint` describe them; ``warnings``: about the statistics;
    ``cohort_tests``/``adjust``/``adjust_model``/``adjust_bins``: every cohort's rate
    ratio vs the rest, raw and adjusted (:func:`fairaudit.adjust.audit_rate_ratios`);
    ``perm_stop_after``: see :func:`audit`."""
    perm_stop_after = perm_stop_after or None
    timings = {} if timings is None else timings
    names = list(scored_sets)
    per_system: dict[str, dict] = {}
    assignment_parts = []
    for name, sset in scored_sets.items():
        fresh = [d.clone() for d in discs] if len(names) > 1 else discs
        extra: dict[str, Any] = {}

        def meanwhile(entries: dict[str, dict], parts: list[pd.DataFrame], name=name, sset=sset, fresh=fresh,
                      extra=extra) -> None:
            # What needs no statistic, while the statistics run in worker processes.
            if name == names[0]:  # the report's sections show the first system: its cohorts get drill-downs
                with stage(timings, "drilldown"):
                    drilldown.add_drilldown(entries, parts, sset, normalization=normalization,
                                            redact_text=redact_text)
            with stage(timings, "bootstrap:overall"):
                extra["overall"] = {**sset.overall, "wer_ci": overall_ci(sset.speakers, n_boot, seed, ci_level)}
            if cohort_tests or adjust:
                t = time.perf_counter()
                extra["rate_ratios"] = _rate_ratios(fresh, entries, parts, sset, side, adjust=adjust,
                                                    model=adjust_model, bins=adjust_bins, seed=seed, level=ci_level)
                timings["rate_ratios"] = timings.get("rate_ratios", 0.0) + time.perf_counter() - t

        # One BLAS/OpenMP thread for the discoverers and their statistics (see one_thread).
        with one_thread():
            entries, parts = discover_all(fresh, sset, side, seed=seed, normalization=normalization,
                                          worst_n=worst_n, redact_text=redact_text, timings=timings, n_boot=n_boot,
                                          n_perm=n_perm, ci_level=ci_level, honest=honest, workers=workers,
                                          heldout_splits=heldout_splits, heldout_folds=heldout_folds,
                                          perm_stop_after=perm_stop_after, meanwhile=meanwhile)
        per_system[name] = {"overall": extra["overall"], "accounting": sset.accounting.to_dict(),
                            "discoverers": entries}
        if "rate_ratios" in extra:
            per_system[name]["rate_ratios"] = extra["rate_ratios"]
        for part in parts:
            if len(names) > 1:
                part.insert(0, "system", name)
            assignment_parts.append(part)
    scored = scored_sets[names[0]]
    tool: dict[str, Any] = {"name": "fairaudit", "version": _tool_version()}
    used = {d.name for d in discs}
    plugins = {n: info for n, info in PLUGINS.items() if n in used}
    if plugins:
        tool["plugins"] = plugins
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": tool,
        "inputs": {
            "files": files or [],
            **({"fingerprint": fingerprint} if fingerprint is not None else {}),
            "mode": scored.mode,
            "normalization": {"mode": normalization, "description": DESCRIPTIONS.get(normalization, ""),
                              "fingerprint": normalizer_fingerprint(normalization, scored.unit, scored.alignment)},
            "unit": scored.unit, "rate": RATE_NAMES[scored.unit], "alignment": scored.alignment,
            # how the input was read: hypotheses matched per system, missing attribute markers
            **scored.input_report,
            "options": {"seed": seed, "min_speakers": min_speakers,
                        # the repeatable discoverers' values (--by gender --by gender,age_band)
                        "by": [",".join(map(str, getattr(d, d.instance_param))) for d in discs if d.instance_param],
                        "discoverers": [d.name for d in discs if d.instance_param is None],
                        "params": params or {}, "redact_text": redact_text,
                        "bootstrap": n_boot, "permutations": n_perm, "permutations_stop_after": perm_stop_after,
                        "ci_level": ci_level, "honest_gap": honest,
                        "cohort_tests": bool(cohort_tests or adjust), "adjust": list(adjust),
                        "adjust_model": adjust_model, "adjust_bins": adjust_bins,
                        "heldout_splits": heldout_splits, "heldout_folds": heldout_folds,
                        **(options or {})},
        },
        # Warnings about the statistics (too few resamples), beside the accounting's about rows.
        "warnings": list(warnings or []),
        # The first system's audit stands at the top level, so one-system views read it as is.
        "system": names[0],
        **per_system[names[0]],
    }
    with stage(timings, "speaker_table"):
        report["speaker_table"] = drilldown.speaker_table(scored.speakers, ci_level)
    if len(names) > 1:
        drilldown.add_system_comparison(per_system, assignment_parts,
                                        {n: s.speakers for n, s in scored_sets.items()})
        # the first system stands at the top level with its drill-downs: not twice
        first = per_system[names[0]]
        report["systems"] = {**per_system, names[0]: {**first, "discoverers": {
            k: {f: v for f, v in e.items() if f != "drilldown"} for k, e in first["discoverers"].items()}}}
    assignments = (pd.concat(assignment_parts, ignore_index=True) if assignment_parts
                   else pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
    result = AuditResult(report=report, assignments=assignments, speakers=scored.speakers,
                         utterances=scored.utterances, side=side)
    result.timings = timings
    return result


def _rate_ratios(discs: list[Discoverer], entries: dict[str, dict], parts: list[pd.DataFrame], scored: ScoredSet,
                 side: SideInputs, **kwargs) -> dict:
    """Every cohort's rate ratio vs the rest for the discoverers that ran (see
    :func:`fairaudit.adjust.audit_rate_ratios`); entries are updated in place."""
    from .adjust import audit_rate_ratios

    by_key = {p["discoverer"].iloc[0]: p for p in parts if len(p)}
    items = []
    for disc in discs:
        entry = entries.get(disc.key)
        if not entry or entry.get("skipped") or disc.key not in by_key:
            continue
        part = by_key[disc.key]
        # the frames' own (Arrow) arrays: no round trip through Python objects
        items.append((disc, entry, pd.Series(part["cohort_id"].array, index=pd.Index(part["speaker_id"].array))))
    return audit_rate_ratios(items, scored.utterances, scored.speakers, side, **kwargs)


def discover_all(discs: list[Discoverer], scored: ScoredSet, side: SideInputs, *, seed: int = 0,
                 normalization: str = "default", worst_n: int = 5, redact_text: bool = False,
                 timings: dict[str, float] | None = None, n_boot: int = 0, n_perm: int = 0,
                 ci_level: float = 0.95, honest: bool = False, workers: int | None = None,
                 heldout_splits: int = 5, heldout_folds: int = 2, perm_stop_after: int | None = None,
                 meanwhile: Callable[[dict[str, dict], list[pd.DataFrame]], None] | None = None
                 ) -> tuple[dict[str, dict], list[pd.DataFrame]]:
    """Run each discoverer on one scored system (with its statistics); returns report
    entries and assignment frames.  ``meanwhile(entries, assignment frames)``: work that
    needs no statistic, run in this process while worker processes compute the statistics
    (or before them, when they run here); it must not touch the statistics' fields
    (:data:`fairaudit.stats.report.PART_FIELDS`)."""
    entries: dict[str, dict] = {}
    parts = []
    # Chunked engines keep no transcripts: the worst utterances' text is read in one
    # second pass over the input once every discoverer has picked its rows.
    fetch_text = (scored.text_source is not None and "reference" not in scored.utterances.columns
                  and not redact_text and scored.mode == "text")
    pending_worst: list[tuple[dict, pd.Index]] = []
    fitted = []
    options = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "level": ci_level, "honest": honest,
               "workers": workers, "heldout_splits": heldout_splits, "heldout_folds": heldout_folds,
               "perm_stop_after": perm_stop_after}
    # The statistics' shared random draws, in a forked process on the core discovery
    # leaves idle (large tables, statistics side by side; see parallel.start_shared_draws).
    draws = parallel.start_shared_draws(scored.speakers, options, parallel.processes(
        len(discs) * len(parallel.PARTS), len(scored.speakers), workers))
    try:
        for disc in discs:
            with stage(timings, f"discover:{disc.key}"):
                entry, assignment = run_discoverer(disc, scored.speakers, side)
            entries[disc.key] = entry
            if assignment is not None:
                fitted.append((entry, disc, assignment))
    except BaseException:
        if draws is not None:
            draws.kill()
        raise
    if draws is not None:
        try:
            seconds = draws.finish()
            if timings is not None:
                timings["shared_draws"] = timings.get("shared_draws", 0.0) + seconds
        except Exception:   # nothing lost: what it did not draw is drawn where it is needed
            pass
    # The statistics (bootstrap, permutation null, held-out gap of each discoverer), in
    # forked worker processes on large tables: started now, collected after the work
    # below and ``meanwhile``, which need none of them.
    n_proc = parallel.processes(len(fitted) * len(parallel.PARTS), len(scored.speakers), workers)
    t_stats = time.perf_counter()
    pending = parallel.PendingStatistics(fitted, scored.speakers, scored.utterances, side, options, n_proc)
    if timings is not None and pending.resample_seconds:
        timings["resamples"] = timings.get("resamples", 0.0) + pending.resample_seconds
    try:
        with stage(timings, "worst_utterances"):
            # Each bottom cohort's utterances with at least its worst_n-th error count (the
            # ranking shared with the drill-down: integer speaker rows, no string look-up),
            # taken from the utterance table in one go.
            wanted = []
            for entry, disc, assignment in fitted:
                if entry.get("bottom") is not None:
                    in_bottom = assignment.to_numpy() == entry["bottom"]
                    if fetch_text:
                        entry["worst_utterances"] = []  # filled below: the same place in the report
                        pending_worst.append((entry, assignment.index[in_bottom]))
                    else:
                        ranked = drilldown.ranking(scored)
                        cohort = ranked.per_row(assignment.index, np.where(in_bottom, 0, -1))
                        wanted.append((entry, ranked.candidates(cohort, 1, worst_n)[0]))
                # str columns passed as they are: to_numpy makes 100k Python objects that the
                # frame turns back into Arrow strings (0.06 s per discoverer), the same column
                ids, values = assignment.index, assignment
                parts.append(pd.DataFrame({"speaker_id": ids.array if ids.dtype == "str" else ids.to_numpy(),
                                           "discoverer": disc.key,
                                           "cohort_id": values.array if values.dtype == "str" else values.to_numpy()}))
            for (entry, _), sub in zip(wanted, drilldown.take_rows(scored.utterances, [r for _, r in wanted])):
                entry["worst_utterances"] = worst_utterances(
                    sub, None, worst_n, normalization, redact_text or scored.mode != "text",
                    scored.unit, scored.alignment, mask=np.ones(len(sub), bool))
        if pending_worst:
            with stage(timings, "worst_utterances"):
                _worst_with_text(pending_worst, scored, worst_n, normalization)
        if meanwhile is not None:
            meanwhile(entries, parts)
    except BaseException:
        pending.cancel()     # the workers stop with the audit, not after their queue
        raise
    t_wait = time.perf_counter()
    done = pending.finish()
    if n_proc > 1 and timings is not None:
        # wall time from the start of the side-by-side statistics to the last result, and
        # how much of it the audit process spent waiting (its own work ran meanwhile)
        timings["statistics"] = timings.get("statistics", 0.0) + time.perf_counter() - t_stats
        timings["statistics_wait"] = timings.get("statistics_wait", 0.0) + time.perf_counter() - t_wait
    for (_, disc, _), (entry, stat_times) in zip(fitted, done):
        entries[disc.key] = entry
        if timings is not None:
            for k, v in stat_times.items():
                timings[k] = timings.get(k, 0.0) + v
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
        entry["worst_utterances"] = worst_utterances(sub, members, worst_n, normalization, False, scored.unit,
                                                     scored.alignment)


def _tool_version() -> str:
    from . import __version__

    return __version__
