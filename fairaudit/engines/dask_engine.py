"""Score a partitioned Parquet dataset on a dask.distributed cluster.

The expensive part (reading transcripts, normalising, aligning) runs as Dask DataFrame
work: ``dask.dataframe.read_parquet`` + ``map_partitions`` calling
:func:`fairaudit.scoring.count_errors` (one process per task: ``workers=1``).  Each
partition comes back without transcripts (cleaned ids, five counts, attribute columns);
the client feeds the partitions in input order to the same
:class:`~fairaudit.engines.accumulate.Accumulator` as the streaming engine, so that
"first occurrence wins" for duplicate utterance ids holds across partitions and every
drop, sum and example equals the in-memory engine's.  Per-utterance counts are needed on
the client anyway (speaker bootstrap, honest held-out gap), so the client holds
O(utterances) compact counts (~60 bytes each) and O(speakers) sums.

Needs ``pip install 'fairaudit[dask]'``.  With ``scheduler=None`` a LocalCluster with one
single-threaded worker process per core is started and closed again.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import UserInputError
from ..io.readers import InputSpec
from ..scoring import count_errors
from ..speakers import _STR, ScoredSet, _clean_ids, _text_array
from ..io import columns
from ..text_checks import unspaced_mask
from .accumulate import COUNT_NAMES, Accumulator

#: per-row flag a partition returns beside its counts (see fairaudit.text_checks)
UNSPACED_COLUMN = "::unspaced"
from .streaming import TextSource, _check_columns, check_streamable, parquet_files


def _import_dask():
    try:
        import dask.dataframe as dd
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise UserInputError(f"--engine dask needs dask and distributed ({exc.name} is not installed)",
                             hint="pip install 'fairaudit[dask]'") from None
    return dd, Client, LocalCluster


def score_partition(pdf: pd.DataFrame, rename: dict[str, str], normalization: str, unit: str = "word",
                    alignment: str = "jiwer") -> pd.DataFrame:
    """One partition: cleaned ids, counts of every row with both ids (others 0), attributes; no text."""
    clash = [v for k, v in rename.items() if v in pdf.columns and k != v]
    pdf = pdf.drop(columns=clash).rename(columns=rename)
    pdf = columns.numbers_as_text(columns.ids_as_text(pdf, ["utt_id", "speaker_id"], None, []),
                                  ["reference", "hypothesis"])
    utt = _clean_ids(pdf["utt_id"])
    spk = _clean_ids(pdf["speaker_id"])
    rows = np.flatnonzero(((utt != "") & (spk != "")).to_numpy())
    c = count_errors(_text_array(pdf["reference"], rows), _text_array(pdf["hypothesis"], rows), normalization,
                     workers=1, unit=unit, alignment=alignment)
    out = pd.DataFrame({"utt_id": utt.to_numpy(dtype=object), "speaker_id": spk.to_numpy(dtype=object)},
                       index=pd.RangeIndex(len(pdf)))
    for name in COUNT_NAMES:
        col = np.zeros(len(pdf), np.int64)
        col[rows] = getattr(c, name)
        out[name] = col
    for col in pdf.columns:
        if col not in ("utt_id", "speaker_id", "reference", "hypothesis", *COUNT_NAMES):
            out[col] = pdf[col].to_numpy()
    out[UNSPACED_COLUMN] = unspaced_mask(_text_array(pdf["reference"], None))
    return out


def _client(scheduler: str | None, n_workers: int | None):
    _, Client, LocalCluster = _import_dask()
    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise UserInputError(f"cannot reach the Dask scheduler at {scheduler}: {first}",
                                 hint="check --scheduler (tcp://host:8786) and that the scheduler runs") from None
    cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster), cluster


def score_dask(spec: InputSpec, normalization: str = "default", speaker_table: pd.DataFrame | None = None,
               required_attributes=(), *, scheduler: str | None = None, n_workers: int | None = None,
               progress=None, unit: str = "word", alignment: str = "jiwer") -> ScoredSet:
    """Score a Parquet file, directory or glob on Dask; same result as the default engine.

    Rows are numbered across the files in sorted path order (the order of
    :func:`~fairaudit.engines.streaming.parquet_files`), as if they were one table.
    """
    check_streamable(spec, "dask")
    dd, _, _ = _import_dask()
    files = parquet_files(spec.path)
    rename = {spec.ref_col: "reference", spec.hyp_col: "hypothesis", spec.utt_col: "utt_id",
              spec.speaker_col: "speaker_id"}
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0])
    _check_columns(pa.RecordBatch.from_pylist([], schema=schema), spec)
    warnings = columns.float_id_warnings(schema, [spec.utt_col, spec.speaker_col], spec.path)
    client, cluster = _client(scheduler, n_workers)
    try:
        ddf = dd.read_parquet(files, split_row_groups=True, index=False)
        meta = score_partition(ddf._meta, rename, normalization, unit, alignment)
        scored = ddf.map_partitions(score_partition, rename, normalization, unit, alignment, meta=meta)
        futures = client.compute(scored.to_delayed())
        acc = Accumulator(normalization, unit=unit, alignment=alignment)
        row = 1
        for fut in futures:
            part = fut.result()
            fut.release()
            for col in part.columns:
                if isinstance(part[col].dtype, pd.StringDtype) and part[col].dtype != _STR:
                    part[col] = part[col].astype(_STR)
            part.index = np.arange(row, row + len(part))
            acc.unspaced += int(part.pop(UNSPACED_COLUMN).sum())
            row += len(part)
            acc.add(part.drop(columns=list(COUNT_NAMES)), counts={k: part[k].to_numpy() for k in COUNT_NAMES})
            if progress:
                progress(len(part))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return acc.finish(speaker_table, required_attributes, [spec.path], warnings=warnings,
                      text_source=TextSource(spec, "parquet"))
