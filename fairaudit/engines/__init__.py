"""Scoring engines: where the utterances are read and scored.

* ``default``: the whole input in memory (:func:`fairaudit.speakers.score`); fastest
  below a few million utterances, and the only engine for Kaldi/trn/NeMo input,
  precomputed counts and several systems side by side.
* ``streaming``: chunk by chunk with bounded memory (:mod:`.streaming`).
* ``dask``: partitions of a Parquet dataset scored on a dask.distributed cluster
  (:mod:`.dask_engine`; needs ``pip install 'fairaudit[dask]'``).

``auto`` picks ``streaming`` for a text-mode table file larger than
:data:`STREAMING_THRESHOLD_BYTES`, else ``default``.  Every engine gives the same
speaker table, accounting and report.
"""
from __future__ import annotations

import os

import pandas as pd

from ..errors import UserInputError
from ..io.readers import InputSpec

ENGINES = ("auto", "default", "streaming", "dask")
#: input size (bytes) above which ``auto`` streams
STREAMING_THRESHOLD_BYTES = 500 * 2**20


def _input_bytes(path: str) -> int:
    from .streaming import parquet_files

    if os.path.isfile(path):
        return os.path.getsize(path)
    try:
        return sum(os.path.getsize(p) for p in parquet_files(path))
    except UserInputError:
        return 0


def resolve_engine(engine: str | None, spec: InputSpec | None) -> str:
    """The engine to run: ``engine`` checked, ``auto`` resolved for ``spec``."""
    engine = (engine or "auto").lower()
    if engine not in ENGINES:
        raise UserInputError(f"unknown engine {engine!r}", hint=f"--engine takes one of: {', '.join(ENGINES)}")
    if engine != "auto":
        if engine != "default" and spec is None:
            raise UserInputError(f"--engine {engine} reads a file, not a DataFrame", hint="use engine='default'")
        return engine
    if spec is None or os.path.isfile(spec.path) and _input_bytes(spec.path) <= STREAMING_THRESHOLD_BYTES:
        return "default"
    from .streaming import check_streamable

    try:
        check_streamable(spec, "streaming")
    except UserInputError:
        return "default"
    return "streaming" if _input_bytes(spec.path) > STREAMING_THRESHOLD_BYTES or not os.path.isfile(spec.path) \
        else "default"


def score_with_engine(engine: str, spec: InputSpec, normalization: str = "default",
                      speaker_table: pd.DataFrame | None = None, required_attributes=(), *,
                      workers: int | None = None, progress=None, chunk_rows: int | None = None,
                      scheduler: str | None = None, unit: str = "word", alignment: str = "jiwer"):
    """Score ``spec`` with a chunked engine (``streaming`` or ``dask``); returns a ScoredSet."""
    if engine == "streaming":
        from .streaming import score_streaming

        return score_streaming(spec, normalization, speaker_table, required_attributes, chunk_rows=chunk_rows,
                               workers=workers, progress=progress, unit=unit, alignment=alignment)
    if engine == "dask":
        from .dask_engine import score_dask

        return score_dask(spec, normalization, speaker_table, required_attributes, scheduler=scheduler,
                          n_workers=workers, progress=progress, unit=unit, alignment=alignment)
    raise ValueError(f"not a chunked engine: {engine}")
