"""Files written whole or not at all, checksums, and YAML/JSON/Parquet read and written
one way everywhere.

Every write goes to a temporary name in the target's folder, is flushed, fsynced and
renamed into place, so a crash leaves either the old file or the new one. YAML is read
and written with the same resolvers (YAML 1.2 floats such as ``1e9``), so what
:func:`dump_yaml` writes :func:`load_yaml` reads back unchanged.

A leaf module: it imports nothing of collapselab but :mod:`collapselab.errors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_write",
    "check_digest",
    "dump_yaml",
    "file_sha256",
    "load_yaml",
    "parquet_bytes",
    "read_json",
    "read_table",
    "read_yaml_mapping",
    "sha256_hex",
    "write_json",
    "write_table",
    "write_yaml",
]


def atomic_write(path: Path | str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically, creating the folder if needed.

    Raises
    ------
    ResultsError
        The folder or file cannot be written (one line naming the path and the cause).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ResultsError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ResultsError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def sha256_hex(payload: bytes) -> str:
    """The SHA-256 of ``payload`` as 64 hexadecimal digits."""
    return hashlib.sha256(payload).hexdigest()


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits."""
    return sha256_hex(Path(path).read_bytes())


def check_digest(path: Path | str, expected: str | None) -> None:
    """Raise :class:`~collapselab.errors.ResultsError` if ``path`` lost the digest
    recorded when it was written (``expected``; ``None``: nothing was recorded).

    Parquet notices a truncated file but not every flipped byte inside a page, so a
    file is trusted only while its bytes are the ones written.
    """
    if expected is None:
        return
    try:
        actual: str | None = file_sha256(path)
    except OSError:
        actual = None
    if actual != expected:
        raise ResultsError(f"{str(path)!r} does not match its recorded checksum; rerun to redo it")


def write_json(path: Path | str, data: Any) -> None:
    """``data`` as indented JSON with sorted keys (other objects as ``str``), atomically."""
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path | str) -> Any:
    """A JSON file's content, or ``None`` if it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e9`` and ``1E-3``
    are floats (YAML 1.1 needs a dot, ``1.0e+9``, and reads ``1e9`` as a string)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper with :class:`_Loader`'s resolvers, so that a string that
    reads as a number there (``"1e3"``) is written quoted and reads back a string."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def dump_yaml(data: Any) -> str:
    """YAML text of plain data that :func:`load_yaml` reads back unchanged."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no code, no objects), with YAML 1.2 floats such as ``1e9``."""
    return yaml.load(text, Loader=_Loader)


def write_yaml(path: Path | str, data: Any) -> None:
    """``data`` as YAML, keys in their given order, written atomically."""
    atomic_write(path, dump_yaml(data).encode())


def read_yaml_mapping(path: Path | str) -> dict[str, Any]:
    """A YAML file's top-level mapping, or ``{}`` if it is missing, unreadable or not a mapping."""
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def write_table(path: Path | str, frame: pd.DataFrame) -> None:
    """Write a frame as Parquet (zstd), atomically."""
    import pyarrow as pa

    atomic_write(path, parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False)))


def parquet_bytes(table: Any) -> bytes:
    """A :class:`pyarrow.Table` as the bytes of a zstd-compressed Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def read_table(path: Path | str) -> pd.DataFrame | None:
    """A Parquet file as a frame, or ``None`` if it is missing or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        frame: pd.DataFrame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException):
        return None
    return frame
