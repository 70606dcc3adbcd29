"""Reading a user's documents from disk: text files and folders, JSONL/CSV/Parquet columns,
and Hugging Face ``datasets`` saved with ``save_to_disk`` (read locally, never from the hub).

Text files and JSONL/JSON/CSV tables may be gzip-compressed (``.jsonl.gz``,
``.txt.gz``). Every failure a user can cause (a missing path, a binary file, an
encoding that is not the one given, an empty corpus, a missing column) raises
:class:`~collapselab.errors.DataError` with one line that names the file and the fix.

Only regular files are read (and folders of them): a FIFO would block forever and
``/dev/zero`` never ends. Every read is bounded: a file (after decompression) may
hold at most what this process can allocate divided by :data:`MEMORY_FACTOR` (its
text, documents and tokens take several times its size), read through
:func:`collapselab.io.memory_budget`, which ``--max-memory`` overrides. Rows of a
table that lack the column are counted and reported in one warning.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import json
import re
import stat
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError, require
from ..io import format_bytes, memory_budget

#: File suffixes read as plain text when a folder is given (each also gzipped: ``.txt.gz``).
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text", "")
#: Suffixes read as tables, with one document per row of ``column``.
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
UNITS = ("document", "paragraph", "line")
#: Bytes of memory a byte of text takes once read: decoded, split and tokenized.
MEMORY_FACTOR = 8
#: Bytes read at a time from a streamed JSONL file.
_LINE_BUFFER = 1 << 20

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def split_units(documents: Iterable[str], unit: str) -> list[str]:
    """Documents split into ``unit``s (``document``: unchanged), stripped, empties dropped."""
    return list(_split_units(documents, unit))


def _split_units(documents: Iterable[str], unit: str) -> Iterator[str]:
    for doc in documents:
        if unit == "document":
            parts: Iterable[str] = (doc,)
        elif unit == "paragraph":
            parts = _PARAGRAPH_BREAK.split(doc)
        else:
            parts = doc.splitlines()
        for part in parts:
            part = part.strip()
            if part:
                yield part


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: Path) -> int:
    """The size of ``path``, a regular file; raises :class:`DataError` otherwise
    (a FIFO, ``/dev/zero``, a socket), before anything is opened."""
    try:
        mode = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode.st_mode):
        raise DataError(
            f"{str(path)!r} is {_kind(mode.st_mode)}; give a regular file or a folder of them"
        )
    return mode.st_size


def read_limit() -> int | None:
    """The most bytes of text one read may produce (``None``: unbounded)."""
    budget = memory_budget()
    return None if budget is None else budget // MEMORY_FACTOR


def _too_large(path: Path, size: str, limit: int) -> DataError:
    return DataError(
        f"{str(path)!r} holds {size} of text; reading it needs about {MEMORY_FACTOR} times "
        f"that, more than the {format_bytes(limit * MEMORY_FACTOR)} this process can "
        "allocate (split the corpus, or pass --max-memory if you know better)"
    )


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Reading ``path``: a damaged gzip stream or an OS error is one clear line."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{str(path)!r} is not a readable gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file (gunzipped if its name ends in ``.gz``), at most
    :func:`read_limit` of them."""
    size = regular_file(path)
    limit = read_limit()
    gzipped = path.suffix.lower() == ".gz"
    if limit is not None and not gzipped and size > limit:
        raise _too_large(path, format_bytes(size), limit)
    with _reading(path):
        if gzipped:
            with gzip.open(path, "rb") as handle:
                raw = handle.read(-1 if limit is None else limit + 1)
        else:
            with open(path, "rb") as handle:  # /proc files say size 0: bound the read too
                raw = handle.read(-1 if limit is None else limit + 1)
    if limit is not None and len(raw) > limit:
        raise _too_large(path, f"more than {format_bytes(limit)}", limit)
    return raw


def _base_suffix(path: Path) -> str:
    """The suffix that says what a file holds: ``.jsonl`` for ``c.jsonl.gz``."""
    name = path.name.lower()
    name = name[: -len(".gz")] if name.endswith(".gz") else name
    return Path(name).suffix


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path`` (gunzipped if ``.gz``); binary files and undecodable bytes
    are clear errors. A UTF-8 byte-order mark is dropped."""
    raw = read_bytes(path)
    codec = _codec(encoding)
    if not codec.startswith(("utf-16", "utf-32")):
        _check_start(path, raw)
    if codec == "utf-8":
        codec = "utf-8-sig"  # a byte-order mark (Windows tools write one) is not text
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r} is not valid {encoding} (byte {exc.start}); "
            "convert it to UTF-8 or pass its encoding"
        ) from None


def _is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def _column(rows: list[dict], column: str, origin: str) -> list[str]:
    return list(_column_values(rows, column, origin))


def _column_values(rows: Iterable[dict], column: str, origin: str) -> Iterator[str]:
    """The text of ``column`` in each row that has one: no row with the column is an
    error naming the first row's columns, a value that is not text is an error, and
    rows without a value are counted (:func:`_skipped`) once the rows end."""
    total = kept = 0
    seen = False
    first: dict | None = None
    for row in rows:
        total += 1
        first = row if first is None else first
        seen = seen or column in row
        value = row.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataError(f"{origin}: column {column!r} holds {type(value).__name__}, not text")
        kept += 1
        yield value
    if total and not seen:
        found = ", ".join(map(str, first or {})) or "(none)"
        raise DataError(f"{origin} has no column {column!r}; columns: {found}. Pass --column")
    _skipped(origin, column, total - kept, total)


def _skipped(origin: str, column: str, skipped: int, total: int) -> None:
    """Say how many rows had no value in ``column`` (never drop them silently); none
    with a value is an error."""
    if skipped and skipped == total:
        raise DataError(f"{origin}: column {column!r} is missing or null in all {total} rows")
    if skipped:
        warnings.warn(
            f"{origin}: {skipped} of {total} rows have no {column!r} (missing or null); "
            "they were skipped",
            UserWarning,
            stacklevel=3,
        )


def _read_jsonl(path: Path, column: str, encoding: str) -> list[str]:
    text = read_text_file(path, encoding)
    stripped = text.lstrip()
    if _base_suffix(path) == ".json" and stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(path)!r} is not valid JSON (line {exc.lineno})") from None
        except RecursionError:
            raise DataError(f"{str(path)!r} nests too deeply to be read as JSON") from None
        if not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{str(path)!r} must be a list of objects")
        return _column(rows, column, repr(str(path)))
    rows = [
        _json_row(line, repr(str(path)), number)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    return _column(rows, column, repr(str(path)))


def _read_csv(path: Path, column: str, encoding: str) -> list[str]:
    import csv
    import io

    text = read_text_file(path, encoding)
    # No field is longer than the file, whose size is already bounded: lift the csv
    # module's default limit (131,072 characters) to it.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(f"{str(path)!r} is not valid CSV: {exc}") from None
    return _column(rows, column, repr(str(path)))


def _read_parquet(path: Path, column: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    regular_file(path)
    try:
        metadata = pq.ParquetFile(path).metadata
        names = metadata.schema.names
        if column not in names:
            found = ", ".join(names) or "(none)"
            raise DataError(
                f"{str(path)!r} has no column {column!r}; columns: {found}. Pass --column"
            )
        index = names.index(column)
        size = sum(
            metadata.row_group(g).column(index).total_uncompressed_size
            for g in range(metadata.num_row_groups)
        )
        limit = read_limit()
        if limit is not None and size > limit:
            raise _too_large(path, format_bytes(size), limit)
        table = pq.read_table(path, columns=[column])
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"{str(path)!r} is not a readable Parquet file: {exc}") from None
    kind = table.schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise DataError(f"{str(path)!r}: column {column!r} holds {kind}, not text")
    values = table.column(column).to_pylist()
    out = [v for v in values if isinstance(v, str)]
    _skipped(repr(str(path)), column, len(values) - len(out), len(values))
    return out


def _read_hf(path: Path, column: str, split: str) -> list[str]:
    datasets = require("datasets", "hf", "reading a saved Hugging Face dataset")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ...
        raise DataError(f"{str(path)!r} is not a readable saved dataset: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(
                f"{str(path)!r} has no split {split!r}; splits: {', '.join(loaded)}. Pass split"
            )
        loaded = loaded[split]
    if column not in loaded.column_names:
        found = ", ".join(loaded.column_names) or "(none)"
        raise DataError(f"{str(path)!r} has no column {column!r}; columns: {found}. Pass --column")
    return [v for v in loaded[column] if isinstance(v, str)]


def source_files(path: Path) -> list[Path]:
    """The files :func:`read_documents` reads at ``path``: the file itself, a folder's
    text files, or every file of a saved dataset (none if ``path`` does not exist)."""
    if _is_hf_dataset(path):
        return sorted(f for f in path.rglob("*") if f.is_file())
    if path.is_dir():
        return _folder_files(path)
    return [path] if path.exists() else []


def _folder_files(folder: Path) -> list[Path]:
    def is_text(f: Path) -> bool:
        return _base_suffix(f) in TEXT_SUFFIXES and (
            f.suffix.lower() in TEXT_SUFFIXES or f.suffix.lower() == ".gz"
        )

    return sorted(
        f for f in folder.rglob("*") if not f.is_dir() and is_text(f) and not f.name.startswith(".")
    )


def read_documents(
    path: str | Path,
    *,
    column: str = "text",
    unit: str = "document",
    encoding: str = "utf-8",
    split: str = "train",
) -> list[str]:
    """The documents at ``path``, split into ``unit``s.

    ``path`` is a text file (one document), a folder (each text file one document,
    read recursively in sorted order), a ``.jsonl``/``.json``/``.csv``/``.parquet``
    file (one document per row of ``column``), or a folder written by
    ``datasets.Dataset.save_to_disk`` (rows of ``column``; ``split`` of a DatasetDict).
    Text and JSONL/JSON/CSV files may be gzipped (``.txt.gz``, ``.jsonl.gz``).
    """
    p = _source(path, unit)
    suffix = _base_suffix(p)
    if _is_hf_dataset(p):
        docs = _read_hf(p, column, split)
    elif p.is_dir():
        limit, total = read_limit(), 0
        docs = []
        for f in _text_files(p):
            docs.append(read_text_file(f, encoding))
            total += len(docs[-1])
            if limit is not None and total > limit:
                raise _too_large(p, f"more than {format_bytes(limit)}", limit)
    elif suffix in (".jsonl", ".json"):
        docs = _read_jsonl(p, column, encoding)
    elif suffix == ".csv":
        docs = _read_csv(p, column, encoding)
    elif p.suffix.lower() == ".parquet":
        docs = _read_parquet(p, column)
    else:
        docs = [read_text_file(p, encoding)]
    docs = split_units(docs, unit)
    if not docs:
        raise _no_text(p)
    return docs


def _source(path: str | Path, unit: str) -> Path:
    """``path``, checked to exist, with ``unit`` checked to be one of :data:`UNITS`."""
    if unit not in UNITS:
        raise DataError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{str(p)!r} does not exist; give a text file, a folder or a table")
    return p


def _text_files(folder: Path) -> list[Path]:
    """The text files of ``folder`` (:func:`_folder_files`); none is an error."""
    files = _folder_files(folder)
    if not files:
        raise DataError(
            f"folder {str(folder)!r} holds no text files "
            f"({', '.join(s for s in TEXT_SUFFIXES if s)})"
        )
    return files


def _no_text(path: Path) -> DataError:
    return DataError(f"{str(path)!r} holds no text (every document is empty)")


def iter_documents(
    path: str | Path,
    *,
    column: str = "text",
    unit: str = "document",
    encoding: str = "utf-8",
    split: str = "train",
) -> Iterator[str]:
    """The documents of :func:`read_documents`, in the same order, read as they are used.

    A JSONL file is read line by line and a folder file by file, so memory holds one
    line or one file at a time, whatever the corpus's size (each line or file is
    bounded as :func:`read_bytes` bounds a file); the other formats (a single text
    file, JSON arrays, CSV, Parquet, saved datasets) and wide encodings (UTF-16/32)
    are read whole. The same errors are raised, some only once the bad line is reached.
    """
    p = _source(path, unit)
    codec = _codec(encoding)
    if p.is_dir() and not _is_hf_dataset(p):
        docs: Iterable[str] = (read_text_file(f, encoding) for f in _text_files(p))
    elif p.is_file() and _base_suffix(p) == ".jsonl" and not codec.startswith(("utf-16", "utf-32")):
        docs = _column_values(_jsonl_rows(p, codec, encoding), column, repr(str(p)))
    else:
        docs = read_documents(p, column=column, unit="document", encoding=encoding, split=split)
    empty = True
    for doc in _split_units(docs, unit):
        empty = False
        yield doc
    if empty:
        raise _no_text(p)


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}; e.g. utf-8 or latin-1") from None


def _jsonl_rows(path: Path, codec: str, encoding: str) -> Iterator[dict]:
    """The rows of a JSONL file, one line at a time (each line bounded as
    :func:`read_bytes` bounds a file); ``codec`` is ``encoding``'s (narrow) codec."""
    origin = repr(str(path))
    regular_file(path)
    limit = read_limit()
    with _reading(path):
        # Large buffers: each refill releases and retakes the GIL, which the tokenizer
        # pool's threads hold for milliseconds at a time (small reads wait on them).
        if path.suffix.lower() == ".gz":
            handle: BinaryIO = io.BufferedReader(gzip.GzipFile(path, "rb"), _LINE_BUFFER)
        else:
            handle = open(path, "rb", buffering=_LINE_BUFFER)
        with handle:
            offset = number = 0
            while raw := handle.readline(-1 if limit is None else limit + 1):
                number += 1
                if limit is not None and len(raw) > limit:
                    raise _too_large(path, f"a line of more than {format_bytes(limit)}", limit)
                if number == 1:
                    _check_start(path, raw)
                try:
                    line = raw.decode("utf-8-sig" if codec == "utf-8" and number == 1 else codec)
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{origin} is not valid {encoding} (byte {offset + exc.start}); "
                        "convert it to UTF-8 or pass its encoding"
                    ) from None
                offset += len(raw)
                if line.strip():
                    yield _json_row(line, origin, number)


def _check_start(path: Path, head: bytes) -> None:
    """Refuse text that starts as UTF-16/32 (a byte-order mark) or as a binary file (NUL
    bytes in ``head``'s first 8 KB), for a narrow encoding."""
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if head.startswith(bom):
            raise DataError(
                f"{str(path)!r} is {name} text (it starts with a byte-order mark); "
                f"convert it to UTF-8 or pass its encoding ({name.lower()})"
            )
    if b"\x00" in head[:8192]:
        raise DataError(
            f"{str(path)!r} looks like a binary file (it contains NUL bytes); give a text file"
        )


def _json_row(line: str, origin: str, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        raise DataError(f"{origin} line {number} is not valid JSON") from None
    except RecursionError:
        raise DataError(f"{origin} line {number} nests too deeply to read") from None
    if not isinstance(row, dict):
        raise DataError(f"{origin} line {number} is not a JSON object")
    return row
