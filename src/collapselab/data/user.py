"""Reading a user's documents from disk: text files and folders, JSONL/CSV/Parquet columns,
and Hugging Face ``datasets`` saved with ``save_to_disk`` (read locally, never from the hub).

Every failure a user can cause (a missing path, a binary file, an encoding that is
not the one given, an empty corpus, a missing column) raises
:class:`~collapselab.errors.DataError` with one line that names the file and the fix.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError, require

#: File suffixes read as plain text when a folder is given.
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text", "")
#: Suffixes read as tables, with one document per row of ``column``.
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
UNITS = ("document", "paragraph", "line")

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def split_units(documents: Iterable[str], unit: str) -> list[str]:
    """Documents split into ``unit``s (``document``: unchanged), stripped, empties dropped."""
    out: list[str] = []
    for doc in documents:
        if unit == "document":
            parts: Iterable[str] = (doc,)
        elif unit == "paragraph":
            parts = _PARAGRAPH_BREAK.split(doc)
        else:
            parts = doc.splitlines()
        out.extend(p.strip() for p in parts if p.strip())
    return out


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path``; binary files and undecodable bytes are clear errors."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".gz":
        import gzip
        import zlib

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise DataError(f"{str(path)!r} is not a readable gzip file") from None
    try:
        wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}; e.g. utf-8 or latin-1") from None
    if not wide:
        for bom, name in (
            (codecs.BOM_UTF32_LE, "UTF-32"),
            (codecs.BOM_UTF32_BE, "UTF-32"),
            (codecs.BOM_UTF16_LE, "UTF-16"),
            (codecs.BOM_UTF16_BE, "UTF-16"),
        ):
            if raw.startswith(bom):
                raise DataError(
                    f"{str(path)!r} is {name} text (it starts with a byte-order mark); "
                    f"convert it to UTF-8 or pass its encoding ({name.lower()})"
                )
        if b"\x00" in raw[:8192]:
            raise DataError(
                f"{str(path)!r} looks like a binary file (it contains NUL bytes); give a text file"
            )
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r} is not valid {encoding} (byte {exc.start}); "
            "convert it to UTF-8 or pass its encoding"
        ) from None
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}; e.g. utf-8 or latin-1") from None


def _is_hf_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def _column(rows: list[dict], column: str, origin: str) -> list[str]:
    if not rows:
        return []
    if column not in rows[0]:
        found = ", ".join(map(str, rows[0])) or "(none)"
        raise DataError(f"{origin} has no column {column!r}; columns: {found}. Pass --column")
    out = []
    for row in rows:
        value = row.get(column)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataError(f"{origin}: column {column!r} holds {type(value).__name__}, not text")
        out.append(value)
    return out


def _read_jsonl(path: Path, column: str, encoding: str) -> list[str]:
    text = read_text_file(path, encoding)
    stripped = text.lstrip()
    if _suffix(path) == ".json" and stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(path)!r} is not valid JSON (line {exc.lineno})") from None
        if not all(isinstance(r, dict) for r in rows):
            raise DataError(f"{str(path)!r} must be a list of objects")
        return _column(rows, column, repr(str(path)))
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{str(path)!r} line {number} is not valid JSON") from None
        if not isinstance(row, dict):
            raise DataError(f"{str(path)!r} line {number} is not a JSON object")
        rows.append(row)
    return _column(rows, column, repr(str(path)))


def _read_csv(path: Path, column: str, encoding: str) -> list[str]:
    import csv
    import io

    text = read_text_file(path, encoding)
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(f"{str(path)!r} is not valid CSV: {exc}") from None
    return _column(rows, column, repr(str(path)))


def _read_parquet(path: Path, column: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"{str(path)!r} is not a readable Parquet file: {exc}") from None
    if column not in table.column_names:
        found = ", ".join(table.column_names) or "(none)"
        raise DataError(f"{str(path)!r} has no column {column!r}; columns: {found}. Pass --column")
    return [v for v in table.column(column).to_pylist() if isinstance(v, str)]


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


def _suffix(path: Path) -> str:
    """The format suffix, looking through ``.gz`` (``a.jsonl.gz``: ``.jsonl``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


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
    file (one document per row of ``column``; text, JSON and CSV files may be
    gzipped: ``.txt.gz``, ``.jsonl.gz``), or a folder written by
    ``datasets.Dataset.save_to_disk`` (rows of ``column``; ``split`` of a DatasetDict).
    """
    if unit not in UNITS:
        raise DataError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{str(p)!r} does not exist; give a text file, a folder or a table")
    if _is_hf_dataset(p):
        docs = _read_hf(p, column, split)
    elif p.is_dir():
        files = sorted(
            f
            for f in p.rglob("*")
            if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES and not f.name.startswith(".")
        )
        if not files:
            raise DataError(
                f"folder {str(p)!r} holds no text files ({', '.join(s for s in TEXT_SUFFIXES if s)})"
            )
        docs = [read_text_file(f, encoding) for f in files]
    elif _suffix(p) in (".jsonl", ".json"):
        docs = _read_jsonl(p, column, encoding)
    elif _suffix(p) == ".csv":
        docs = _read_csv(p, column, encoding)
    elif p.suffix.lower() == ".parquet":
        docs = _read_parquet(p, column)
    else:
        docs = [read_text_file(p, encoding)]
    docs = split_units(docs, unit)
    if not docs:
        raise DataError(f"{str(p)!r} holds no text (every document is empty)")
    return docs
