"""Text files as users write them: encodings, byte-order marks, line ends, long rows.

* **Encoding.**  Inputs are UTF-8 unless the run says otherwise (``--encoding``, or
  :func:`input_encoding` from Python).  The encoding is one setting of the run, shared by
  every text input (utterance table, Kaldi/trn files, utt2spk, speaker table, census
  table, embedding ids), so it is a context variable rather than an argument threaded
  through every reader.  Bytes that do not decode are one error naming the file, the
  line (or row and column) and the fix.
* **Byte-order mark.**  A UTF-8 BOM at the start of a file is not part of its first line
  (it used to glue itself to the first id of an ``--embedding-ids`` file).
* **Line ends.**  A line ends at ``\\n`` (a ``\\r`` before it belongs to the line end).
  ``str.splitlines`` also splits at U+2028, U+2029, form feed, vertical tab, U+001C-1E
  and U+0085, which inside a Kaldi or trn transcript invented extra utterances.
* **Long rows.**  pyarrow's CSV reader needs a whole row inside one block; reads that
  fail for that reason are retried with a larger block (:func:`with_block_retry`).
"""
from __future__ import annotations

import codecs
import contextlib
import contextvars
import gzip
from typing import Callable, Iterator, TypeVar

import pyarrow as pa

from ..errors import UserInputError

DEFAULT_ENCODING = "utf-8"
#: the hint of every decoding error
ENCODING_HINT = "re-encode the file as UTF-8, or name its encoding with --encoding (e.g. --encoding latin-1)"

_ENCODING: contextvars.ContextVar[str] = contextvars.ContextVar("fairaudit_input_encoding",
                                                                default=DEFAULT_ENCODING)


def check_encoding(name: str | None) -> str:
    """The codec name ``name`` (default UTF-8), or a UserInputError naming the flag."""
    if not name:
        return DEFAULT_ENCODING
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UserInputError(f"unknown encoding {name!r}",
                             hint="--encoding takes a codec name such as utf-8, latin-1, cp1252 or utf-16") from None


def current_encoding() -> str:
    """The encoding of this run's text inputs (codec name; ``utf-8`` unless set)."""
    return _ENCODING.get()


def is_utf8(encoding: str | None = None) -> bool:
    return codecs.lookup(encoding or current_encoding()).name in ("utf-8", "utf-8-sig")


@contextlib.contextmanager
def input_encoding(name: str | None) -> Iterator[str]:
    """Read every text input inside the ``with`` block in encoding ``name``."""
    token = _ENCODING.set(check_encoding(name))
    try:
        yield _ENCODING.get()
    finally:
        _ENCODING.reset(token)


def read_bytes(path: str) -> bytes:
    """The raw bytes of ``path`` (gunzipped for ``.gz``)."""
    try:
        if path.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError) as exc:
        raise UserInputError(f"cannot read file: {exc}", path=path) from exc


def decode(data: bytes, path: str, encoding: str | None = None) -> str:
    """``data`` decoded (BOM dropped); an undecodable byte is a UserInputError naming its line."""
    encoding = encoding or current_encoding()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise undecodable(path, data, exc.start, encoding) from None
    return text[1:] if text.startswith("\ufeff") else text


def undecodable(path: str, data: bytes, start: int, encoding: str | None = None, column: str | None = None
                ) -> UserInputError:
    """The error for the byte at offset ``start`` of ``data`` that does not decode."""
    encoding = encoding or current_encoding()
    line = data.count(b"\n", 0, start) + 1
    where = f"line {line}" + (f", column {column!r}" if column else "")
    return UserInputError(f"{where}: byte 0x{data[start]:02x} is not valid {encoding}", path=path,
                          hint=ENCODING_HINT)


def split_lines(text: str) -> list[str]:
    """Lines of ``text``, ending at ``\\n`` or ``\\r\\n`` only (see the module docstring)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_text_lines(path: str, encoding: str | None = None) -> list[str]:
    """The lines of a text file (``.gz`` aware, BOM dropped, ``\\n``/``\\r\\n`` line ends)."""
    return split_lines(decode(read_bytes(path), path, encoding))


def first_undecodable(path: str, column: str | None = None) -> UserInputError | None:
    """The decoding error of the first bad byte of ``path`` in the run's encoding, or None."""
    data = read_bytes(path)
    try:
        data.decode(current_encoding())
    except UnicodeDecodeError as exc:
        return undecodable(path, data, exc.start, column=column)
    return None


def check_decodable_table(table: pa.Table, path: str, what: str = "row") -> None:
    """Raise when a column came back as bytes (text that is not UTF-8: pyarrow infers
    ``binary`` for it, and decoding it later raised UnicodeDecodeError).

    For a text file the error names the file's first undecodable line; for Parquet (no
    lines) the first row of the column whose bytes are not UTF-8.
    """
    for name, col in zip(table.schema.names, table.columns):
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            continue
        if not path.lower().endswith((".parquet", ".pq")):
            err = first_undecodable(path, column=name)
            if err is not None:
                raise err
        for i, value in enumerate(col.to_pylist(), start=1):
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise UserInputError(f"{what} {i}, column {name!r}: bytes that are not UTF-8 text", path=path,
                                     hint="store the column as UTF-8 strings") from None
        raise UserInputError(f"column {name!r} holds bytes, not text", path=path,
                             hint="store the column as UTF-8 strings")


#: pyarrow's CSV block sizes tried in turn: a row must fit inside one block
BLOCK_SIZES = (1 << 24, 1 << 26, 1 << 28, (1 << 31) - 1)

T = TypeVar("T")


def is_block_too_small(exc: BaseException) -> bool:
    """Whether a pyarrow error means a row did not fit in one read block."""
    return "straddl" in str(exc) or "block size" in str(exc)


def with_block_retry(read: Callable[[int], T]) -> T:
    """``read(block_size)``, retried with the next of :data:`BLOCK_SIZES` while a row is
    longer than the block (pyarrow then reports a misleading "straddling object")."""
    for size in BLOCK_SIZES[:-1]:
        try:
            return read(size)
        except pa.ArrowInvalid as exc:
            if not is_block_too_small(exc):
                raise
    return read(BLOCK_SIZES[-1])
