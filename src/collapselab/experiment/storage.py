"""Run-directory storage: atomic writes, checksummed checkpoints, tidy Parquet.

Every file is written to a temporary name in the same folder, flushed, fsynced and
renamed into place, so a crash leaves either the old file or the new one. A
checkpoint carries a SHA-256 of its payload; one that fails the check is ignored
and its generations are recomputed, never loaded.

Checkpoints are pickles of collapselab's own objects: load only run directories
you (or your runs) wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ..errors import ResultsError

MAGIC = b"collapselab-checkpoint-v1\n"

METRIC_COLUMNS = ("run_id", "config_hash", "seed", "generation", "metric", "value", "source")
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("config_hash", pa.string()),
        ("seed", pa.int64()),
        ("generation", pa.int64()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("source", pa.string()),
    ]
)


def atomic_write(path: Path, payload: bytes) -> None:
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


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_yaml(path: Path, data: Any) -> None:
    """``data`` as YAML, keys in their given order, written atomically."""
    atomic_write(path, dump_yaml(data).encode())


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


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, or ``{}`` if it is missing, unreadable or not a mapping."""
    import yaml

    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def write_metrics(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame[list(METRIC_COLUMNS)], schema=SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write(path, sink.getvalue().to_pybytes())


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """Write any tidy frame as Parquet (zstd), atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write(path, sink.getvalue().to_pybytes())


def read_table(path: Path) -> pd.DataFrame | None:
    """A Parquet file written by :func:`write_table`, or ``None`` if missing or unreadable."""
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException):
        return None


def read_metrics(path: Path) -> pd.DataFrame:
    """Read a metrics file, with a clear error if it is missing, partial or corrupt."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise ResultsError(f"{str(path)!r} does not exist: has the run finished?") from None
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(
            f"{str(path)!r} is not a readable Parquet file ({exc}); rerun to redo it"
        ) from None
    if table.schema.names != list(METRIC_COLUMNS):
        raise ResultsError(
            f"{str(path)!r} has columns {table.schema.names}, expected {list(METRIC_COLUMNS)}"
        )
    return table.to_pandas()


def save_checkpoint(path: Path, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write(path, MAGIC + digest + b"\n" + payload)


def load_checkpoint(path: Path) -> Any | None:
    """The checkpoint's object, or ``None`` if it is missing, truncated or corrupt."""
    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    if not blob.startswith(MAGIC):
        return None
    rest = blob[len(MAGIC) :]
    digest, sep, payload = rest.partition(b"\n")
    if not sep or hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    try:
        return pickle.loads(payload)
    except Exception:
        return None
