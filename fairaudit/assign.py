"""Put speakers who were not in the audit into its cohorts, by the saved definitions.

Every discoverer saves in report.json what its cohorts are (``definition``: the region
tree's splits, the census rule, the cluster centroids, the attribute values, ...), and
its ``assign`` hook applies that definition to other speakers.  :func:`assign_speakers`
runs every discoverer of an audit on a new speaker table, so training data from
elsewhere can be selected (or weighted) by cohort, and says, for each speaker a
discoverer cannot place, why (counted: every row of the table is placed or has a reason,
for every discoverer).

Side inputs are those of the audit (the files report.json records, checked against
their SHA-256: a file that changed is refused in one line), unless given again: the
census table for the new speakers' zip codes, their embeddings (``--embeddings`` with
``--embedding-ids``) for the clusters.  A recorded file that is gone is no error: the
discoverers needing it leave every speaker out with that reason.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .discover import discoverer_class
from .discover.sides import SideInputs, load_side_inputs, side_flags
from .errors import UserInputError
from .fingerprint import sha256_file
from .result import AuditResult
from .weights import DEFAULT_CAP, cohort_weights

#: columns of the assignments table :func:`assign_speakers` returns
COLUMNS = ["speaker_id", "discoverer", "cohort_id", "label", "cohort_weight", "reason", "in_audit", "audit_cohort"]


@dataclass
class Assignment:
    """``table``: one row per speaker x discoverer (:data:`COLUMNS`; ``cohort_id`` empty
    and ``reason`` set when the speaker could not be placed; ``cohort_weight`` the raw
    weight r_c of :mod:`fairaudit.weights`; ``in_audit``/``audit_cohort`` for speakers the
    audit had).  ``summary``: counts per discoverer (placed, unplaced by reason, agreement
    with the audit), the side inputs used."""

    table: pd.DataFrame
    summary: dict[str, Any]


def _recorded_side(report: dict, report_dir: str | None, overrides: Mapping[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, dict]]:
    """(flag -> value to load, role -> record of where it came from)."""
    flags = {f.name: f for f in side_flags()}
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    used = {k: {"path": str(v) if isinstance(v, (str, os.PathLike)) else "<given>", "given": "on the command line"}
            for k, v in values.items()}
    for rec in (report.get("inputs") or {}).get("files") or []:
        role = rec.get("role")
        if role not in flags or role in values:
            continue
        path = rec.get("path") or ""
        candidates = [path] + ([os.path.join(report_dir, path)] if report_dir and not os.path.isabs(path) else [])
        found = next((p for p in candidates if p and os.path.isfile(p)), None)
        if found is None:
            used[role] = {"path": path, "given": "recorded by the audit", "missing": True}
            continue
        if rec.get("sha256") and sha256_file(found) != rec["sha256"]:
            raise UserInputError(f"the audit's {role} file changed since the audit (SHA-256 differs)", path=found,
                                 hint=f"pass {flags[role].flag} FILE to use a file as it is")
        values[role] = found
        used[role] = {"path": found, "given": "recorded by the audit", "sha256": rec.get("sha256")}
    # A companion without its main file (ids without embeddings) cannot load: drop it.
    for spec_flags in _side_groups():
        main = [f.name for f in spec_flags if f.required]
        if any(m not in values for m in main):
            for f in spec_flags:
                values.pop(f.name, None)
    return values, used


def _side_groups():
    from .discover.sides import SIDE_INPUTS

    return [spec.flags for spec in SIDE_INPUTS.values()]


def prepare_new_speakers(speakers: pd.DataFrame, report: dict | None = None) -> pd.DataFrame:
    """The new speaker table as the audits see theirs: ``speaker_id`` a column (str), zip
    centroids for speakers with a zip but no coordinates (``coords_approx``), and attribute
    cells that mean "unknown" (the audit's ``inputs.na_values``/``missing_attribute``,
    :mod:`fairaudit.io.missing`) set to missing, so a speaker whose gender is ``NA`` is
    left out of the gender cohorts here as in the audit."""
    from .discover import non_attribute_columns
    from .io.missing import DEFAULT_NA_VALUES, MissingValues

    frame = speakers.copy()
    if "speaker_id" not in frame.columns:
        frame = frame.reset_index(names="speaker_id") if frame.index.name in (None, "speaker_id") else \
            frame.reset_index().rename(columns={frame.index.name: "speaker_id"})
    frame["speaker_id"] = frame["speaker_id"].astype(str).to_numpy(dtype=object)
    if "zip" in frame.columns:
        from .io.zipgeo import fill_coordinates_from_zip

        frame, _ = fill_coordinates_from_zip(frame)
    inputs = (report or {}).get("inputs") or {}
    missing = MissingValues(na_values=tuple(inputs.get("na_values") or DEFAULT_NA_VALUES),
                            mode=inputs.get("missing_attribute") or "unknown")
    skip = non_attribute_columns() | {"speaker_id", "coords_approx"}
    frame, _ = missing.mark(frame, [c for c in frame.columns if c not in skip])
    return frame.reset_index(drop=True)


def assign_speakers(result: AuditResult | str, speakers: pd.DataFrame, *,
                    side_inputs: Mapping[str, Any] | None = None, weight_cap: float = DEFAULT_CAP) -> Assignment:
    """Place every speaker of ``speakers`` (speaker_id as index or column, plus the
    attributes the discoverers read: lat/lon, zip, attribute columns) into the cohorts of
    each discoverer of the audit ``result`` (an :class:`AuditResult` or a saved audit's
    path).  ``side_inputs``: flag name -> file or frame (``census``, ``embeddings``,
    ``embedding_ids``, plugins'), replacing what the audit recorded.  ``weight_cap``: as
    for :func:`fairaudit.weights.cohort_weights`."""
    if not isinstance(result, AuditResult):
        result = AuditResult.load(str(result))
    if result.is_comparison:
        raise UserInputError("is a comparison, not an audit", path=result.path,
                             hint="pass the report.json of `fairaudit audit` with --from")
    report = result.report
    frame = prepare_new_speakers(speakers, report)
    ids = pd.Index(frame["speaker_id"].to_numpy(dtype=object))
    values, used = _recorded_side(report, result.path, dict(side_inputs or {}))
    side = load_side_inputs(values, None) if values else SideInputs()
    weights = cohort_weights(report, list(result.discoverers), weight_cap).set_index(["discoverer", "cohort_id"])
    parts, per_disc = [], {}
    for key, entry in result.discoverers.items():
        labels = {str(c["id"]): str(c.get("label", c["id"])) for c in entry.get("cohorts", [])}
        placed, reasons = _place(key, entry, frame, side)
        placed = placed[placed.index.isin(ids)]
        placed = placed[~placed.index.duplicated(keep="first")].astype(str)
        cohort = placed.reindex(ids)
        why = pd.Series("", index=ids, dtype=object)
        unplaced = cohort.isna().to_numpy()
        if reasons is not None:
            r = reasons[~reasons.index.duplicated(keep="first")].reindex(ids)
            why[unplaced] = r[unplaced].fillna("").to_numpy(dtype=object)
        generic = f"not placed by the saved {entry.get('name', key)} definition"
        why[unplaced & (why == "").to_numpy()] = generic
        audit = result.assignment(key).astype(str)
        audit = audit[~audit.index.duplicated(keep="first")]
        in_audit = ids.isin(audit.index)
        audit_cohort = audit.reindex(ids)
        cid = cohort.to_numpy(dtype=object)
        wkeys = [(key, c) for c in cid]
        cw = [float(weights["raw_weight"].get(k, np.nan)) if isinstance(k[1], str) else np.nan for k in wkeys]
        parts.append(pd.DataFrame({
            "speaker_id": ids.to_numpy(dtype=object), "discoverer": key,
            "cohort_id": [c if isinstance(c, str) else "" for c in cid],
            "label": [labels.get(c, c) if isinstance(c, str) else "" for c in cid],
            "cohort_weight": cw, "reason": why.to_numpy(dtype=object), "in_audit": in_audit,
            "audit_cohort": [c if isinstance(c, str) else "" for c in audit_cohort.to_numpy(dtype=object)]}))
        both = in_audit & ~unplaced
        reason_counts = pd.Series(why[unplaced]).value_counts()
        per_disc[key] = {
            "placed": int((~unplaced).sum()),
            "unplaced": {str(k): int(v) for k, v in reason_counts.items()},
            "audited_speakers_given": int(in_audit.sum()),
            "audited_and_placed": int(both.sum()),
            "same_cohort_as_audit": int((both & (cohort.to_numpy(dtype=object) == audit_cohort.to_numpy(dtype=object))
                                         ).sum()),
            "cohorts": {str(k): int(v) for k, v in placed.value_counts().sort_index().items()},
        }
        assert per_disc[key]["placed"] + sum(per_disc[key]["unplaced"].values()) == len(ids)
    table = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS))[COLUMNS]
    summary = {"kind": "assignment", "speakers": int(len(ids)), "report": result.path,
               "side_inputs": used, "discoverers": per_disc}
    return Assignment(table=table, summary=summary)


def _place(key: str, entry: dict, frame: pd.DataFrame, side: SideInputs) -> tuple[pd.Series, pd.Series | None]:
    """(cohort id per placed speaker_id, reason per unplaced speaker_id or None)."""
    empty = pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
    ids = frame["speaker_id"].to_numpy(dtype=object)
    if entry.get("skipped"):
        return empty, pd.Series(f"{key} was skipped in the audit ({entry['skipped']})", index=ids, dtype=object)
    definition = entry.get("definition")
    if definition is None:
        return empty, pd.Series("the audit saved no cohort definition for this discoverer", index=ids, dtype=object)
    cls = discoverer_class(entry.get("name") or key.split(":")[0])
    params = entry.get("init_params") or {}
    disc = cls(**{k: v for k, v in params.items() if k in set(cls.param_names())})
    missing = disc.missing_side_inputs(side)
    if missing:
        return empty, pd.Series(missing, index=ids, dtype=object)
    placed = disc.assign(definition, frame, side)
    if placed is None:
        return empty, pd.Series(f"the {disc.name} discoverer cannot apply its cohorts to other speakers",
                                index=ids, dtype=object)
    placed = placed[pd.Series(placed).notna().to_numpy()]
    placed.index = placed.index.astype(str)
    reasons = disc.assign_reasons(definition, frame, side)
    if reasons is not None:
        reasons.index = reasons.index.astype(str)
    return placed, reasons
