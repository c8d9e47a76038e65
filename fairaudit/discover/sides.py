"""Side inputs: what some discoverers need beyond the per-speaker table.

A side input is declared once (:class:`SideInput`: name, CLI flags, loader) and registered
with :func:`register_side_input`; a discoverer names the ones it needs in its
``side_inputs``.  The CLI generates the flags of every registered side input on ``audit``,
``compare``, ``power`` and ``selftest``; the audit loads those the user gave
(:func:`load_side_inputs`), records their files (hashes in report.json) so that ``power``
can load them again, and hands every discoverer one :class:`SideInputs` object.

Built in: ``census`` (``--census``: ``side.census``, ``side.census_path``) and
``embeddings`` (``--embeddings`` [``--embedding-ids``]: ``side.embeddings``,
``side.embedding_ids``, ``side.embeddings_path``).  A plugin registers its own the same
way (see docs/plugins.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from ..errors import UserInputError

__all__ = ["SideFlag", "SideInput", "SideInputs", "SIDE_INPUTS", "register_side_input", "side_input",
           "load_side_inputs", "side_flags"]


@dataclass(frozen=True)
class SideFlag:
    """One CLI flag of a side input.

    ``name``: keyword of :func:`load_side_inputs` and of ``fairaudit.audit(...)``
    (``embedding_ids``); the flag is ``--embedding-ids``.  ``path``: the value is a file,
    hashed into report.json (role = ``name``) and read again by ``fairaudit power DIR``.
    ``required``: the side input needs this flag (``--embeddings``), as opposed to an
    optional companion (``--embedding-ids``).
    """

    name: str
    help: str
    path: bool = True
    required: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class SideInput:
    """A side input: ``fields`` it sets on :class:`SideInputs`, its ``flags``, and
    ``load(values, utterances) -> {field: value}`` where ``values`` maps each flag name to
    what was given (None when not given) and ``utterances`` is the scored utterance table
    (utt_id, speaker_id; for inputs given per utterance).  The first field is the one that
    says whether the input is present."""

    name: str
    flags: tuple[SideFlag, ...]
    fields: tuple[str, ...]
    load: Callable[[dict[str, Any], pd.DataFrame | None], dict[str, Any]]
    description: str = ""
    #: speaker-table columns this input joins on or adds (never speaker attributes)
    non_attribute_columns: tuple[str, ...] = field(default=())


SIDE_INPUTS: dict[str, SideInput] = {}


def register_side_input(spec: SideInput) -> SideInput:
    """Make a side input known (its flags appear on the CLI; discoverers can name it)."""
    taken = {f.name for s in SIDE_INPUTS.values() if s.name != spec.name for f in s.flags}
    clash = [f.name for f in spec.flags if f.name in taken]
    if clash:
        raise TypeError(f"side input {spec.name!r}: flag(s) {clash} already belong to another side input")
    SIDE_INPUTS[spec.name] = spec
    return spec


def side_input(name: str) -> SideInput:
    if name not in SIDE_INPUTS:
        raise TypeError(f"unknown side input {name!r} (registered: {', '.join(SIDE_INPUTS)})")
    return SIDE_INPUTS[name]


def side_flags() -> list[SideFlag]:
    """Every registered side-input flag, in registration order."""
    return [f for spec in SIDE_INPUTS.values() for f in spec.flags]


def _known_fields() -> set[str]:
    return {f for spec in SIDE_INPUTS.values() for f in spec.fields}


class SideInputs:
    """The side inputs of one audit, as attributes: ``side.census``, ``side.embeddings``,
    ``side.embedding_ids``, ... (None when not given).  ``SideInputs(census=frame)`` builds
    one by hand (tests, notebooks)."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set: a registered field that was not given is None.
        if not name.startswith("__") and name in _known_fields():
            return None
        raise AttributeError(name)

    def has(self, name: str) -> bool:
        """Whether the side input ``name`` was given (its first field is set)."""
        return self.__dict__.get(side_input(name).fields[0]) is not None

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)

    def __repr__(self) -> str:
        parts = [f"{k}={type(v).__name__}" for k, v in self.__dict__.items() if v is not None]
        return f"SideInputs({', '.join(parts)})"


def load_side_inputs(values: Mapping[str, Any] | None = None, utterances: pd.DataFrame | None = None,
                     **kwargs: Any) -> SideInputs:
    """Load every side input whose flags were given.

    ``values`` (or keywords): flag name -> value, e.g. ``census="census.csv"`` (a path, or
    a DataFrame), ``embeddings="emb.npy", embedding_ids="ids.txt"``.  ``utterances``: the
    scored utterance table (utt_id, speaker_id), for inputs given per utterance.
    """
    given = {**(values or {}), **kwargs}
    known = {f.name for f in side_flags()}
    unknown = [k for k, v in given.items() if k not in known and v is not None]
    if unknown:
        raise UserInputError(f"unknown side input {unknown[0]!r}", hint=f"known: {', '.join(sorted(known))}")
    side = SideInputs()
    for spec in SIDE_INPUTS.values():
        mine = {f.name: given.get(f.name) for f in spec.flags}
        if all(v is None for v in mine.values()):
            continue
        missing = [f.flag for f in spec.flags if f.required and mine[f.name] is None]
        if missing:
            extra = ", ".join(f.flag for f in spec.flags if mine[f.name] is not None)
            raise UserInputError(f"{extra} given without {missing[0]}", hint=f"pass {missing[0]} FILE as well")
        side.__dict__.update(spec.load(mine, utterances))
    return side


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


# ---------------------------------------------------------------- built-in side inputs

def _load_census(values: dict[str, Any], utterances: pd.DataFrame | None) -> dict[str, Any]:
    from ..io.census import prepare_census, read_census

    census = values["census"]
    if _is_path(census):
        return {"census": read_census(str(census)), "census_path": str(census)}
    if isinstance(census, pd.DataFrame):
        if "share_columns" in census.attrs and census.index.name == "zip":
            return {"census": census, "census_path": None}   # already prepared
        return {"census": prepare_census(census), "census_path": None}
    raise UserInputError(f"census must be a file path or a DataFrame, not {type(census).__name__}")


def _load_embeddings(values: dict[str, Any], utterances: pd.DataFrame | None) -> dict[str, Any]:
    from ..io.embeddings import read_embeddings

    utt_to_spk = None
    if utterances is not None and "utt_id" in utterances.columns:
        # the columns' own arrays: a round trip through 1M Python str costs ~0.3 s
        utt_to_spk = pd.Series(utterances["speaker_id"].array, index=pd.Index(utterances["utt_id"].array))
    ids = values.get("embedding_ids")
    matrix, emb_ids, _ = read_embeddings(str(values["embeddings"]), str(ids) if ids is not None else None, utt_to_spk)
    return {"embeddings": matrix, "embedding_ids": emb_ids, "embeddings_path": str(values["embeddings"])}


register_side_input(SideInput(
    name="census", description="census table",
    flags=(SideFlag("census", "Census table: zip plus numeric columns (shares as 0-1 or 0-100)."),),
    fields=("census", "census_path"), load=_load_census, non_attribute_columns=("zip",)))
register_side_input(SideInput(
    name="embeddings", description="speaker embeddings",
    flags=(SideFlag("embeddings", "Speaker (or utterance) embeddings: .npy with --embedding-ids, or Parquet/CSV."),
           SideFlag("embedding_ids", "One speaker id per line, in the row order of the .npy matrix.",
                    required=False)),
    fields=("embeddings", "embedding_ids", "embeddings_path"), load=_load_embeddings))
