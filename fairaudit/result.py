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
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

SCHEMA_VERSION = "1.2"

COHORT_FIELDS = ["id", "rank", "label", "speakers", "utterances", "ref_words", "substitutions", "deletions",
                 "insertions", "errors", "wer", "share_pct", "utterance_share_pct", "too_few_speakers"]
_COUNTS = ["utterances", "ref_words", "substitutions", "deletions", "insertions", "errors"]


def cohort_statistics(speakers: pd.DataFrame, assignment: pd.Series, labels: dict[str, str],
                      min_speakers: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cohort table and the gap-and-share summary of one discoverer.

    ``speakers``: per-speaker table (counts); ``assignment``: cohort id per speaker_id.
    Returns (cohorts, summary).  ``wer`` is a ratio; ``share_pct`` (speakers) and
    ``utterance_share_pct`` are % of the speakers/utterances this discoverer audited.
    Cohorts with fewer than ``min_speakers`` speakers are ranked but cannot be the bottom
    or top cohort: their WER is too noisy to carry the headline gap.
    """
    sp = speakers.set_index("speaker_id")
    joined = sp.loc[assignment.index, [c for c in _COUNTS if c in sp.columns]].copy()
    joined["cohort"] = assignment.to_numpy()
    g = joined.groupby("cohort", sort=True)
    table = g.sum(min_count=1)
    table.insert(0, "speakers", g.size())
    table["wer"] = table["errors"] / table["ref_words"]
    total_spk = int(table["speakers"].sum())
    total_utt = int(table["utterances"].sum())
    table["share_pct"] = 100.0 * table["speakers"] / total_spk if total_spk else np.nan
    table["utterance_share_pct"] = 100.0 * table["utterances"] / total_utt if total_utt else np.nan
    table["too_few_speakers"] = table["speakers"] < min_speakers
    table["label"] = [labels.get(i, str(i)) for i in table.index]
    # rank 1 = highest WER (the bottom cohort); ties by id for determinism
    table = table.reset_index(names="id").sort_values(["wer", "id"], ascending=[False, True], kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    table = table[[c for c in COHORT_FIELDS if c in table.columns]].reset_index(drop=True)
    ranked = table.loc[~table["too_few_speakers"]]
    summary: dict[str, Any] = {"audited_speakers": total_spk, "audited_utterances": total_utt,
                               "cohort_count": int(len(table)), "eligible_cohorts": int(len(ranked))}
    if len(ranked) >= 2:
        bottom, top = ranked.iloc[0], ranked.iloc[-1]
        gap_abs = float(bottom["wer"] - top["wer"])
        summary.update({
            "bottom": bottom["id"], "top": top["id"],
            "wer_gap_abs": gap_abs,
            "wer_gap_pct": 100.0 * gap_abs / float(top["wer"]) if top["wer"] > 0 else None,
            "bottom_share_pct": float(bottom["share_pct"]),
            "bottom_utterance_share_pct": float(bottom["utterance_share_pct"]),
        })
    else:
        summary.update({"bottom": None, "top": None, "wer_gap_abs": None, "wer_gap_pct": None,
                        "bottom_share_pct": None, "bottom_utterance_share_pct": None,
                        "note": f"fewer than two cohorts with at least {min_speakers} speakers"})
    w = ranked["wer"].to_numpy(dtype=float)
    summary.update({"wer_mean": float(w.mean()) if len(w) else None, "wer_max": float(w.max()) if len(w) else None,
                    "wer_variance": float(w.var()) if len(w) else None})
    return table, summary


def _clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
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


def frame_records(frame: pd.DataFrame) -> list[dict]:
    return _clean(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))


@dataclass
class AuditResult:
    """An audit: the report document plus the speaker-to-cohort assignments.

    ``report``: the JSON document (dict).  ``assignments``: columns speaker_id,
    discoverer, cohort_id.  ``speakers``: per-speaker table, when computed in this session.
    """

    report: dict
    assignments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
    speakers: pd.DataFrame | None = None
    utterances: pd.DataFrame | None = None

    # ------------------------------------------------------------- views
    @property
    def overall(self) -> dict:
        """Overall wer (ratio), speakers, utterances, ref_words, errors (counts)."""
        return self.report["overall"]

    @property
    def discoverers(self) -> dict[str, dict]:
        return self.report["discoverers"]

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

    def cohorts(self, discoverer: str | None = None) -> pd.DataFrame:
        """Cohort table: one row per discoverer x cohort (or of one discoverer)."""
        rows = []
        for key, d in self.discoverers.items():
            if discoverer and key != discoverer:
                continue
            for c in d.get("cohorts", []):
                rows.append({"discoverer": key, **c})
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

    # ------------------------------------------------------------- persistence
    def to_json(self, indent: int | None = 2) -> str:
        """The report document as JSON text (valid against the report schema)."""
        return json.dumps(_clean(self.report), indent=indent, ensure_ascii=False, allow_nan=False)

    def save(self, out_dir: str) -> dict[str, str]:
        """Write report.json, cohorts.csv and assignments.csv into ``out_dir``; returns the paths."""
        os.makedirs(out_dir, exist_ok=True)
        paths = {"report": os.path.join(out_dir, "report.json"), "cohorts": os.path.join(out_dir, "cohorts.csv"),
                 "assignments": os.path.join(out_dir, "assignments.csv")}
        with open(paths["report"], "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        self.cohorts().to_csv(paths["cohorts"], index=False, lineterminator="\n")
        self.assignments.to_csv(paths["assignments"], index=False, lineterminator="\n")
        return paths

    @classmethod
    def load(cls, path: str) -> "AuditResult":
        """Read a saved report.json (and assignments.csv beside it, when present)."""
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
        assign_path = os.path.join(os.path.dirname(path), "assignments.csv")
        assignments = (pd.read_csv(assign_path, dtype=str, keep_default_na=False) if os.path.exists(assign_path)
                       else pd.DataFrame(columns=["speaker_id", "discoverer", "cohort_id"]))
        return cls(report=report, assignments=assignments)


def schema() -> dict:
    """The JSON Schema of report.json."""
    return json.loads(resources.files("fairaudit").joinpath("schema/report.schema.json").read_text(encoding="utf-8"))


def validate(report: dict) -> None:
    """Raise jsonschema.ValidationError if ``report`` does not match the schema."""
    import jsonschema

    jsonschema.validate(_clean(report), schema())
