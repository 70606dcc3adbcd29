"""Run-directory storage: the tidy metrics file and checksummed checkpoints.

Every file is written atomically through :mod:`collapselab.io` (whose helpers are
re-exported here for the modules that read run folders). A checkpoint carries a
SHA-256 of its payload; one that fails the check is ignored and its generations are
recomputed, never loaded.

Checkpoints are pickles of collapselab's own objects: load only run directories
you (or your runs) wrote.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ResultsError
from ..io import (
    atomic_write,
    dump_yaml,
    load_yaml,
    parquet_bytes,
    read_json,
    read_table,
    read_yaml_mapping,
    sha256_hex,
    write_json,
    write_table,
    write_yaml,
)

__all__ = [
    "MAGIC",
    "METRIC_COLUMNS",
    "SCHEMA",
    "atomic_write",
    "dump_yaml",
    "load_checkpoint",
    "load_yaml",
    "read_json",
    "read_metrics",
    "read_table",
    "read_yaml_mapping",
    "save_checkpoint",
    "write_json",
    "write_metrics",
    "write_table",
    "write_yaml",
]

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


def write_metrics(path: Path, frame: pd.DataFrame) -> None:
    """Write a tidy metrics frame with the columns and types of :data:`SCHEMA`, atomically."""
    table = pa.Table.from_pandas(frame[list(METRIC_COLUMNS)], schema=SCHEMA, preserve_index=False)
    atomic_write(path, parquet_bytes(table))


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
    """Pickle ``obj`` behind :data:`MAGIC` and the payload's SHA-256, atomically."""
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    digest = sha256_hex(payload).encode()
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
    if not sep or sha256_hex(payload).encode() != digest:
        return None
    try:
        return pickle.loads(payload)
    except Exception:
        return None
