"""The audit result: computed once, saved as report.json; every view reads it.

:class:`AuditResult` wraps the report dictionary (the JSON document, see
``fairaudit/schema/report.schema.json``) and the speaker-to-cohort assignments, and
gives tidy pandas views of both (fairlearn's MetricFrame idea: the same object behind the
CLI, the reports and the tests).
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .cohorts import COHORT_FIELDS, cohort_table  # noqa: F401  (re-exported)

SCHEMA_VERSION = "1.4"

# The cohort table and gap rule live in fairaudit.cohorts (one ranking module).
cohort_statistics = cohort_table


_PLAIN = frozenset({str, int, float, bool, type(None)})
_NUMERIC = frozenset({int, float, bool, type(None)})


def _finite_sum(values: list) -> bool:
    """True when the numbers (None, int, float, bool) of ``values`` sum to a finite float:
    then none of them is NaN or infinite (either would make the sum so).  False also when
    the sum overflows: the caller then checks each value."""
    try:
        return math.isfinite(sum(filter(None, values)))  # filter(None): drops None (and zeros)
    except OverflowError:  # an int too large for a float
        return False


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        # per-speaker columns (100k values): type checks and the finiteness test in C, no
        # recursion; a copy either way (the caller owns what it gets)
        kinds = set(map(type, obj))
        if kinds <= _PLAIN:
            if float not in kinds or (kinds <= _NUMERIC and _finite_sum(obj)):
                return list(obj)
            return [None if type(v) is float and not math.isfinite(v) else v for v in obj]
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


_FLAT_TOKEN = re.compile(r'"\\u0000flat:(\d+)\\u0000"')


def _stash_flat_lists(obj, store: list[list]):
    """``obj`` with each list of scalars (or of lists of scalars) replaced by a placeholder
    string (the list kept in ``store``)."""
    if isinstance(obj, dict):
        return {k: _stash_flat_lists(v, store) for k, v in obj.items()}
    if isinstance(obj, list):
        if obj and _flat(obj):
            store.append(obj)
            return f"\u0000flat:{len(store) - 1}\u0000"
        return [_stash_flat_lists(v, store) for v in obj]
    if isinstance(obj, str) and "\u0000flat:" in obj:
        raise _Unflattenable  # a report string that looks like a placeholder: write plainly
    return obj


def _containers(kinds) -> tuple[bool, bool]:
    """(some kind is a dict, some kind is a list) of a set of types."""
    return any(issubclass(k, dict) for k in kinds), any(issubclass(k, list) for k in kinds)


def _flat(obj: list) -> bool:
    """True when no item of ``obj`` is a dict and its list items hold no dict or list: a
    list written on one line.  Type checks on the set of item types (in C), not per item:
    a report holds per-speaker columns of 100k values."""
    kinds = set(map(type, obj))
    if kinds <= _PLAIN:
        return True
    has_dict, has_list = _containers(kinds)
    if has_dict:
        return False
    return not has_list or not any(any(_containers(set(map(type, v)))) for v in obj if isinstance(v, list))


class _Unflattenable(Exception):
    pass


def frame_records(frame: pd.DataFrame) -> list[dict]:
    return _clean(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


#: top-level keys of an audit report that views and the schema own; sections added with
#: :meth:`AuditResult.add_section` (``power``, ...) may not take these names
CORE_KEYS = ("schema_version", "tool", "inputs", "accounting", "overall", "discoverers", "system", "systems",
             "kind", "baseline", "candidate", "rate_ratios")
#: the per-speaker table saved beside report.json (read back by ``fairaudit power DIR``)
SPEAKER_SCORES = "speaker_scores.csv"
#: the per-utterance ids and counts saved beside report.json (no transcripts): what
#: ``fairaudit export`` selects a cohort's utterances from
UTTERANCE_SCORES = "utterance_scores.parquet"
#: its columns, those of :data:`fairaudit.speakers.UTTERANCE_COLUMNS` the scoring kept
UTTERANCE_SCORE_COLUMNS = ["utt_id", "speaker_id", "ref_words", "hits", "substitutions", "deletions", "insertions",
                           "errors"]


@dataclass
class AuditResult:
    """An audit: the report document plus the speaker-to-cohort assignments.

    ``report``: the JSON document (dict).  ``assignments``: columns speaker_id,
    discoverer, cohort_id.  ``speakers``/``utterances``: per-speaker and per-utterance
    tables (the speaker table is saved as speaker_scores.csv and read back by
    :meth:`load`).  ``side``: the side inputs the audit used (in memory only; a loaded
    result reads them again from the files report.json records, :meth:`side_inputs`).
    ``path``: the folder it was loaded from or last saved to.

    This class is the only writer of report.json: :meth:`save` writes it, and other
    commands add their sections with :meth:`add_section` then :meth:`save`.
    """

    report: dict
    assignments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
    speakers: pd.DataFrame | None = None
    utterances: pd.DataFrame | None = None
    side: Any = None
    path: str | None = None
    timings: dict = field(default_factory=dict)

    # ------------------------------------------------------------- views
    @property
    def overall(self) -> dict:
        """Overall wer (ratio), speakers, utterances, ref_words, errors (counts)."""
        return self.report["overall"]

    @property
    def discoverers(self) -> dict[str, dict]:
        return self.report["discoverers"]

    @property
    def is_comparison(self) -> bool:
        return self.report.get("kind") == "comparison"

    @property
    def system_names(self) -> list[str]:
        """Names of the systems audited (one unless several hypothesis/WER columns were given)."""
        return list(self.report.get("systems") or [self.report.get("system", "hypothesis")])

    def for_system(self, name: str) -> "AuditResult":
        """The audit of one system, as a one-system result (same inputs and options)."""
        systems = self.report.get("systems") or {}
        if name not in systems:
            if name == self.report.get("system"):
                return self
            raise KeyError(name)
        report = {k: v for k, v in self.report.items() if k != "systems"} | systems[name] | {"system": name}
        a = self.assignments
        if "system" in a.columns:
            a = a.loc[a["system"] == name].drop(columns="system").reset_index(drop=True)
        return AuditResult(report=report, assignments=a)

    def assignment(self, key: str) -> pd.Series:
        """Cohort id per speaker_id of one discoverer (of the first system)."""
        a = self.assignments
        if "system" in a.columns and len(a):
            a = a.loc[a["system"] == self.report.get("system", a["system"].iloc[0])]
        a = a.loc[a["discoverer"] == key]
        return pd.Series(a["cohort_id"].to_numpy(dtype=object),
                         index=pd.Index(a["speaker_id"].astype(str).to_numpy(dtype=object), name="speaker_id"),
                         dtype=object)

    def cohorts(self, discoverer: str | None = None) -> pd.DataFrame:
        """Cohort table: one row per discoverer x cohort (or of one discoverer)."""
        rows = []
        for key, d in self.discoverers.items():
            if discoverer and key != discoverer:
                continue
            for c in d.get("cohorts", []):
                # JSON-clean (lists, not tuples; Python, not numpy, scalars): cohorts.csv then has
                # the same cell text whether written from this result or from its report.json
                rows.append({"discoverer": key, **_clean(c)})
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """The seed-paper table: per discoverer bottom cohort, its WER, WER gap %, bottom share %."""
        rows = []
        for key, d in self.discoverers.items():
            if d.get("skipped"):
                rows.append({"discoverer": key, "skipped": d["skipped"]})
                continue
            bottom = next((c for c in d["cohorts"] if c["id"] == d["bottom"]), None)
            rows.append({"discoverer": key, "bottom_cohort": bottom["label"] if bottom else None,
                         "bottom_wer": bottom["wer"] if bottom else None, "top": d["top"],
                         "wer_gap_pct": d["wer_gap_pct"], "wer_gap_abs": d["wer_gap_abs"],
                         "bottom_share_pct": d["bottom_share_pct"], "audited_speakers": d["audited_speakers"],
                         "cohorts": d["cohort_count"], "skipped": None})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------- the discoverers again
    def discoverer_objects(self) -> list:
        """The discoverers of this audit, rebuilt from report.json (class from the registry,
        parameters from each entry's ``init_params``), in report order: ``power`` and
        ``selftest`` run exactly what the audit ran.  Entries whose discoverer is not
        installed here are a UserInputError."""
        from .discover import discoverer_class

        out = []
        for key, entry in self.discoverers.items():
            cls = discoverer_class(entry.get("name") or key.split(":")[0])
            params = entry.get("init_params")
            if params is None:  # a schema 1.0 report: take what its params say
                known = set(cls.param_names())
                params = {k: v for k, v in (entry.get("params") or {}).items() if k in known}
                if cls.instance_param and cls.instance_param not in params and ":" in key:
                    params[cls.instance_param] = key.split(":", 1)[1].split(",")
            out.append(cls(**params))
        return out

    def side_inputs(self, overrides: dict[str, Any] | None = None):
        """The side inputs of this audit: ``self.side`` when computed in this session, else
        loaded again from the files report.json records (role = flag name), checked against
        their SHA-256; ``overrides`` (flag name -> value) replace recorded files."""
        from .discover.sides import load_side_inputs, side_flags
        from .errors import UserInputError

        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        if self.side is not None and not overrides:
            return self.side
        flags = {f.name: f for f in side_flags()}
        values: dict[str, Any] = {}
        for rec in (self.report.get("inputs") or {}).get("files") or []:
            role = rec.get("role")
            if role not in flags or role in overrides:
                continue
            path = rec.get("path")
            if not path or not os.path.isfile(path):
                raise UserInputError(f"the audit's {role} file {path!r} is not there any more",
                                     hint=f"pass {flags[role].flag} FILE")
            from .audit import _sha256

            if rec.get("sha256") and _sha256(path) != rec["sha256"]:
                raise UserInputError(f"the {role} file changed since the audit (SHA-256 differs)", path=path,
                                     hint=f"run the audit again, or pass {flags[role].flag} FILE to use it as it is")
            values[role] = path
        values.update(overrides)
        return load_side_inputs(values, self.utterances)

    def utterance_scores(self) -> pd.DataFrame:
        """One row per scored utterance: utt_id, speaker_id and its counts (ref_words,
        errors, ...).  From memory after an audit in this session, else from
        utterance_scores.parquet beside report.json (a UserInputError if an older
        fairaudit wrote the report without it)."""
        from .errors import UserInputError

        if self.utterances is not None:
            cols = [c for c in UTTERANCE_SCORE_COLUMNS if c in self.utterances.columns]
            out = self.utterances[cols].reset_index(drop=True)
            out["utt_id"] = out["utt_id"].astype(str).to_numpy(dtype=object)
            out["speaker_id"] = out["speaker_id"].astype(str).to_numpy(dtype=object)
            return out
        path = os.path.join(self.path, UTTERANCE_SCORES) if self.path else None
        if not path or not os.path.isfile(path):
            raise UserInputError(f"no {UTTERANCE_SCORES} beside the report", path=self.path,
                                 hint="run `fairaudit audit` again: this version saves the scored utterances' ids")
        return read_utterance_scores(path)

    def export(self, out_dir: str, **options: Any) -> dict:
        """Training manifests, sample weights and cohort features of this audit's cohorts
        (:func:`fairaudit.export.export`); returns the export summary (export.json)."""
        from .export import export

        return export(self, out_dir, **options)

    # ------------------------------------------------------------- persistence
    def add_section(self, name: str, data: dict) -> "AuditResult":
        """Add (or replace) a top-level section of the report, e.g. ``power``; written by the
        next :meth:`save`.  Core keys cannot be replaced; the section must be JSON-able."""
        if name in CORE_KEYS or not name or not isinstance(data, dict):
            raise ValueError(f"cannot add a report section named {name!r}")
        json.dumps(_clean(data), allow_nan=False)
        self.report[name] = _clean(data)
        return self

    def to_json(self, indent: int | None = 2, *, timings: bool = False) -> str:
        """The report document as JSON text (valid against the report schema).

        Indented, except that lists of numbers or strings (per-speaker columns, map
        points, aligned words) stay on one line: one line per item would make a 100k-speaker
        report several times larger and no easier to read.  ``timings``: include the stage
        timings (seconds, ``self.timings``) as report.json's ``timings``; off by default
        because they are the one part that differs between two runs with the same seed
        (:meth:`save` writes them).
        """
        doc = self.report
        if timings and self.timings:
            doc = {**doc, "timings": {str(k): float(v) for k, v in self.timings.items()}}
        doc = _clean(doc)
        if indent is None:
            return json.dumps(doc, ensure_ascii=False, allow_nan=False)
        flat: list[list] = []
        try:
            doc = _stash_flat_lists(doc, flat)
        except _Unflattenable:
            flat = []
        text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)
        if not flat:
            return text
        # the placeholders are strings no report text can hold (a NUL inside markers)
        return _FLAT_TOKEN.sub(lambda m: json.dumps(flat[int(m.group(1))], ensure_ascii=False, allow_nan=False), text)

    def save(self, out_dir: str | None = None, *, tables: bool = True, report: bool = True,
             written: Iterable[str] = ()) -> dict[str, str]:
        """Write the report into ``out_dir`` (default: the folder it came from): report.json
        (compare.json for a comparison) and, with ``tables``, cohorts.csv, assignments.csv,
        speaker_scores.csv and utterance_scores.parquet (ids and counts of every scored
        utterance, never transcripts; written when the utterances are in memory, i.e. by
        the audit itself).  ``report`` False: the tables only (the caller writes report.json
        last, with :meth:`save_report`, once its views are timed).  ``written``: keys
        (``speaker_scores``, ``utterance_scores``) of tables already in ``out_dir``, written
        by :func:`write_scored_tables` while the audit ran.  Returns the paths written."""
        out_dir = out_dir or self.path
        if not out_dir:
            raise ValueError("save() needs a folder: this result was not loaded from one")
        os.makedirs(out_dir, exist_ok=True)
        name = "compare.json" if self.is_comparison else "report.json"
        paths = {"report": os.path.join(out_dir, name)}
        # The tables first, so report.json can carry the time they took.
        t0 = time.perf_counter()
        if tables and not self.is_comparison:
            paths["cohorts"] = os.path.join(out_dir, "cohorts.csv")
            paths["assignments"] = os.path.join(out_dir, "assignments.csv")
            self.cohorts().to_csv(paths["cohorts"], index=False, lineterminator="\n")
            self.assignments.to_csv(paths["assignments"], index=False, lineterminator="\n")
            paths.update(write_scored_tables(self.speakers, self.utterances, out_dir, skip=written))
            if self.timings:
                self.timings["write:tables"] = time.perf_counter() - t0
        if report:
            self.save_report(out_dir)
        return paths

    def save_report(self, out_dir: str | None = None, body: str | None = None) -> str:
        """Write report.json (compare.json for a comparison) alone, with the timings; returns its path.

        ``body``: :meth:`to_json` (no timings) of this report made earlier, e.g. while the
        HTML page rendered: the timings are added to it (the same text as
        ``to_json(timings=True)``), so the long serialisation is not on the critical path."""
        out_dir = out_dir or self.path
        if not out_dir:
            raise ValueError("save_report() needs a folder: this result was not loaded from one")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "compare.json" if self.is_comparison else "report.json")
        text = self.to_json(timings=True) if body is None else _with_timings(body, self.timings)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        self.path = out_dir
        return path

    @classmethod
    def load(cls, path: str) -> "AuditResult":
        """Read a saved report.json (or its folder), with assignments.csv and
        speaker_scores.csv beside it when present."""
        from .errors import UserInputError

        if os.path.isdir(path):
            path = os.path.join(path, "report.json")
        try:
            with open(path, encoding="utf-8") as fh:
                report = json.load(fh)
        except FileNotFoundError as exc:
            raise UserInputError("report not found", path=path, hint="run `fairaudit audit ... --out DIR` first") from exc
        except json.JSONDecodeError as exc:
            raise UserInputError(f"not valid JSON (line {exc.lineno})", path=path,
                                 hint="pass the report.json written by fairaudit audit") from exc
        if not isinstance(report, dict) or "discoverers" not in report or "schema_version" not in report:
            raise UserInputError("not a fairaudit report (no schema_version/discoverers)", path=path)
        timings = report.pop("timings", None) or {}
        folder = os.path.dirname(os.path.abspath(path))
        assign_path = os.path.join(folder, "assignments.csv")
        assignments = (pd.read_csv(assign_path, dtype=str, keep_default_na=False) if os.path.exists(assign_path)
                       else pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
        scores = os.path.join(folder, SPEAKER_SCORES)
        speakers = read_speaker_scores(scores) if os.path.exists(scores) else None
        return cls(report=report, assignments=assignments, speakers=speakers, path=folder, timings=timings)


def _with_timings(body: str, timings: dict | None) -> str:
    """``body`` (a report's indented :meth:`AuditResult.to_json`, no timings) with
    ``timings`` as its last key, as ``to_json(timings=True)`` writes it."""
    if not timings:
        return body
    if not body.endswith("\n}"):
        raise ValueError("not an indented report document")
    tail = json.dumps({"timings": _clean({str(k): float(v) for k, v in timings.items()})}, indent=2,
                      ensure_ascii=False, allow_nan=False)
    return body[:-2] + ",\n" + tail[2:]


def write_scored_tables(speakers: pd.DataFrame | None, utterances: pd.DataFrame | None, out_dir: str, *,
                        skip: Iterable[str] = ()) -> dict[str, str]:
    """speaker_scores.csv and utterance_scores.parquet of a scored system into ``out_dir``
    (those given, less the keys in ``skip``); returns key -> path of the tables written."""
    paths = {}
    if speakers is not None and "speaker_scores" not in skip:
        paths["speaker_scores"] = os.path.join(out_dir, SPEAKER_SCORES)
        speakers.to_csv(paths["speaker_scores"], index=False, lineterminator="\n")
    if utterances is not None and "utterance_scores" not in skip:
        paths["utterance_scores"] = os.path.join(out_dir, UTTERANCE_SCORES)
        write_utterance_scores(utterances, paths["utterance_scores"])
    return paths


def write_utterance_scores(utterances: pd.DataFrame, path: str) -> None:
    """The scored utterances' ids and counts as Parquet (:data:`UTTERANCE_SCORES`).

    Transcripts are left out whatever ``--redact-text`` says: the folder is the report's,
    shared as such; ``fairaudit export`` reads transcripts and audio paths from the
    audit's input files, checked against the SHA-256 report.json records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .lookup import _arrow

    cols = [c for c in UTTERANCE_SCORE_COLUMNS if c in utterances.columns]
    arrays = {}
    for c in cols:
        col = utterances[c]
        if c in ("utt_id", "speaker_id"):
            # Arrow-backed text as it is: a round trip through 1M Python str costs ~0.3 s
            arrays[c] = (pa.array(col.array, type=pa.string()) if _arrow(col) is not None
                         else pa.array(col.astype(str).to_numpy(dtype=object), type=pa.string()))
        else:  # counts: Int64 (hits etc. are NA when the input gave precomputed counts)
            arrays[c] = pa.array(pd.array(col, dtype="Int64"), type=pa.int64())
    pq.write_table(pa.table(arrays), path)


def read_utterance_scores(path: str) -> pd.DataFrame:
    """The table :func:`write_utterance_scores` wrote: ids as str, counts as Int64."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .errors import UserInputError

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"not a readable Parquet file: {exc}", path=path,
                             hint="run the audit again to write it anew") from None
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    for c in ("utt_id", "speaker_id"):
        if c not in frame.columns:
            raise UserInputError(f"has no {c} column", path=path, hint="run the audit again to write it anew")
        frame[c] = frame[c].astype(str).to_numpy(dtype=object)
    return frame


def read_speaker_scores(path: str) -> pd.DataFrame:
    """The per-speaker table saved by :meth:`AuditResult.save`, with its types back: ids
    and zip codes as text, counts and coordinates as numbers, ``coords_approx`` boolean."""
    from .io.readers import _read_table

    frame, bad = _read_table(path, "csv", ["speaker_id", "zip"])
    if bad:
        from .errors import UserInputError

        raise UserInputError(f"{len(bad)} unparsable row(s), first: {bad[0]}", path=path)
    frame["speaker_id"] = frame["speaker_id"].astype(str)
    if "zip" in frame.columns:
        frame["zip"] = frame["zip"].astype("string")
    for col in ("lat", "lon"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    if "coords_approx" in frame.columns:
        frame["coords_approx"] = frame["coords_approx"].astype("string").str.lower().isin(["true", "1"]).to_numpy()
    return frame


def schema() -> dict:
    """The JSON Schema of report.json."""
    return json.loads(resources.files("fairaudit").joinpath("schema/report.schema.json").read_text(encoding="utf-8"))


def validate(report: dict) -> None:
    """Raise jsonschema.ValidationError if ``report`` does not match the schema."""
    import jsonschema

    jsonschema.validate(_clean(report), schema())
