"""Helpers shared by the readers: opening (.gz aware), format detection, checks."""
from __future__ import annotations

import gzip
import io
import os

from ..errors import UserInputError
from . import text_files

TABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
ALL_FORMATS = TABLE_FORMATS + ("kaldi", "trn", "nemo")

_EXTENSIONS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".trn": "trn",
}


def strip_gz(path: str) -> str:
    return path[:-3] if path.lower().endswith(".gz") else path


def detect_format(path: str, override: str | None = None, *, flag: str | None = "--input-format") -> str:
    """Format from the file name (``.gz`` ignored) unless ``override`` names one."""
    if override:
        fmt = override.lower()
        if fmt not in ALL_FORMATS:
            raise UserInputError(f"unknown format {override!r}", path=path,
                                 hint=f"{flag} takes one of: {', '.join(ALL_FORMATS)}")
        return fmt
    name = os.path.basename(strip_gz(path))
    ext = os.path.splitext(name)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if flag is None:  # a side table: its extension is the only way to say its format
        raise UserInputError(f"cannot tell the format from the file name {name!r}", path=path,
                             hint="name it .csv, .tsv, .jsonl or .parquet (optionally .gz)")
    raise UserInputError(
        f"cannot tell the format from the file name {name!r}", path=path,
        hint=f"name it .csv/.tsv/.jsonl/.parquet/.trn (optionally .gz) or pass {flag} "
             f"({'|'.join(ALL_FORMATS)})",
    )


def require_file(path: str, what: str = "input file") -> None:
    if not os.path.exists(path):
        raise UserInputError(f"{what} not found", path=path, hint="check the path")
    if os.path.isdir(path):
        raise UserInputError(f"{what} is a directory, expected a file", path=path)


def open_text(path: str):
    """Open a text file for a quick look (e.g. its first line), transparently gunzipping
    ``.gz``, in the run's encoding; bytes that do not decode are replaced, never raised:
    the reader proper reports them with :func:`read_lines`."""
    require_file(path)
    encoding = text_files.current_encoding()
    if path.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace")


def read_lines(path: str) -> list[str]:
    """The lines of a text file in the run's encoding (see :mod:`.text_files`: BOM dropped,
    lines end at ``\\n``/``\\r\\n`` only, an undecodable byte is an error naming its line)."""
    require_file(path)
    return text_files.read_text_lines(path)
