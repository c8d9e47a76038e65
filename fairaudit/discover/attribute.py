"""Attribute cohorts: known speaker attributes and their intersections (the baseline).

``--by gender`` gives one cohort per gender; ``--by gender,age_band`` one per
combination (each ``--by`` is one instance of this discoverer, keyed
``attribute:<columns>``).  Nothing is searched, so there is no selection bias to
correct, which is why these cohorts are the baseline shown beside the discovered ones.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserInputError
from .base import Discoverer, Discovery, SideInputs, register
from .planting import Planter, ValuePlanter

#: power analysis: at most this many values (largest first) get a row
MAX_ATTRIBUTE_VALUES = 12


@register
class AttributeDiscoverer(Discoverer):
    """One cohort per value (combination) of known speaker attribute columns.

    Parameters
    ----------
    columns : list of str
        Attribute columns (of the speaker table or, constant per speaker, of the utterance
        table); several columns give one cohort per combination of values.
    """

    name = "attribute"
    title = "Attribute cohorts"
    description = "Cohorts are the values of known speaker attributes: the baseline beside the discovered cohorts."
    fixed_cohorts = True
    order = 90
    instance_param = "columns"
    flag_aliases = {"columns": ("--by",)}
    _parameter_constraints = {"columns": [list, tuple]}

    def __init__(self, columns: tuple[str, ...] | list[str] = (), **common):
        super().__init__(**common)
        self.columns = tuple(columns)

    @property
    def key(self) -> str:
        return "attribute:" + ",".join(self.columns)

    def required_columns(self) -> list[str]:
        return list(self.columns)

    def missing_inputs(self, speakers: pd.DataFrame, side: SideInputs) -> str | None:
        missing = [c for c in self.columns if c not in speakers.columns]
        if missing:
            return f"no column {missing[0]!r} in the speaker table or the utterance table"
        return None

    def _values(self, speakers: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        values = speakers[list(self.columns)].astype("string").apply(lambda s: s.str.strip())
        missing = (values.isna().any(axis=1) | (values == "").any(axis=1)).to_numpy(dtype=bool)
        return values, missing

    def fit(self, speakers: pd.DataFrame, side: SideInputs) -> Discovery:
        if not self.columns:
            raise UserInputError("attribute cohorts need at least one column", hint="--by COLUMN[,COLUMN]")
        values, missing = self._values(speakers)
        not_audited = {}
        if missing.any():
            not_audited[f"missing {' or '.join(self.columns)}"] = int(missing.sum())
        kept = values.loc[~missing]
        text = None
        for c in self.columns:  # vectorised string building: one pass per column
            part = f"{c}=" + kept[c]
            text = part if text is None else text + ", " + part
        codes, uniques = pd.factorize(text if text is not None else pd.Series(dtype="string"), sort=True)
        names = [f"A{i + 1:02d}" for i in range(len(uniques))]
        assignment = pd.Series(pd.Categorical.from_codes(codes, names).astype(object) if len(uniques) else [],
                               index=pd.Index(speakers.loc[~missing, "speaker_id"].to_numpy(), name="speaker_id"),
                               dtype=object)
        code = dict(zip(uniques, names))
        first = pd.Series(np.arange(len(kept)), index=kept.index).groupby(codes).first() if len(kept) else []
        definition = {"kind": "attribute values", "columns": list(self.columns),
                      "values": {names[c]: {col: str(kept[col].iloc[int(i)]) for col in self.columns}
                                 for c, i in (first.items() if len(kept) else [])}}
        return Discovery(assignment=assignment, labels={v: k for k, v in code.items()}, not_audited=not_audited,
                         params={"columns": list(self.columns), "min_speakers": self.min_speakers},
                         definition=definition)

    # ------------------------------------------------------------ hooks

    def assign(self, definition: dict, speakers: pd.DataFrame, side: SideInputs) -> pd.Series | None:
        """The cohort of each speaker whose values are one of the saved combinations."""
        cols = list(definition.get("columns", self.columns))
        if any(c not in speakers.columns for c in cols):
            return pd.Series([], index=pd.Index([], name="speaker_id"), dtype=object)
        values = speakers[cols].astype("string").apply(lambda s: s.str.strip())
        key = values.astype(object).agg(tuple, axis=1)
        lookup = {tuple(v[c] for c in cols): cid for cid, v in definition.get("values", {}).items()}
        cohort = key.map(lookup)
        ok = cohort.notna().to_numpy()
        return pd.Series(cohort.to_numpy(dtype=object)[ok], index=pd.Index(
            speakers["speaker_id"].to_numpy(dtype=object)[ok], name="speaker_id"), dtype=object)

    def planter(self, speakers: pd.DataFrame, side: SideInputs, discovery: Discovery) -> Planter:
        return ValuePlanter(discovery, max_rows=MAX_ATTRIBUTE_VALUES)

    def report_section(self, entry: dict, report: dict):
        from fairaudit.reports.sections import ReportSection

        columns = (entry.get("init_params") or entry.get("params") or {}).get("columns") or list(self.columns)
        return ReportSection(title=f"{self.title}: {' × '.join(map(str, columns))}", method=self.description)
