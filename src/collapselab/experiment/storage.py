"""Run-directory storage: the tidy metrics file, manifests read against their schema,
content digests of user data, and authenticated checkpoints.

Every file is written atomically through :mod:`collapselab.io` (whose helpers are
re-exported here for the modules that read run folders).

Reading trusts nothing in a run folder: a manifest is validated against its schema
(:class:`RunManifest`, :class:`ArmManifest`), a stored config against
:class:`StoredConfig`, a metrics file against :data:`SCHEMA` and the SHA-256 its
arm's manifest recorded. A file that fails raises
:class:`~collapselab.errors.ResultsError` in one line naming the file and the field.

A :class:`FolderLock` keeps two runs out of one folder. Checkpoints hold the chain's state as a pickle (its models are any registered
model's fitted state), and unpickling runs code, so a checkpoint is unpickled only
after it proves it was written by this user's collapselab: each carries an
HMAC-SHA256 over its header and payload, keyed by a secret kept outside every run
folder (:func:`checkpoint_key`: a per-user key file, mode 0600, created on first
use). A checkpoint received from someone else, crafted, or damaged fails the check
and is ignored (its generations are recomputed, to the same results). Its header
binds it to one chain (config hash, arm, seed, the digest of the data files, the
layout of the state); a checkpoint copied to another seed's name is ignored too.
Everything else in a run folder (Parquet, JSON, YAML, ``.npz`` without pickles) is
plain data and safe to read from anyone.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import pickle
import re
import secrets
import threading
import warnings
from pathlib import Path
from stat import S_ISREG
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ResultsError
from ..io import (
    atomic_write,
    check_digest,
    dump_yaml,
    load_yaml,
    parquet_bytes,
    read_json,
    read_table,
    read_yaml_mapping,
    write_json,
    write_table,
    write_yaml,
)

__all__ = [
    "KEY_VARIABLE",
    "LOCK_FILE",
    "MAGIC",
    "METRIC_COLUMNS",
    "NAME_PATTERN",
    "RESERVED_NAMES",
    "SCHEMA",
    "ArmManifest",
    "FolderLock",
    "RunManifest",
    "StoredConfig",
    "atomic_write",
    "checkpoint_key",
    "data_digests",
    "dump_yaml",
    "load_checkpoint",
    "load_yaml",
    "read_arm_manifest",
    "read_json",
    "read_metrics",
    "read_run_manifest",
    "read_stored_config",
    "read_table",
    "read_yaml_mapping",
    "save_checkpoint",
    "write_json",
    "write_metrics",
    "write_table",
    "write_yaml",
]

MAGIC = b"collapselab-checkpoint-v2\n"
#: A hex-encoded checkpoint key; where set, it replaces the key file (Ray workers on
#: other machines get the driver's key this way).
KEY_VARIABLE = "COLLAPSELAB_CHECKPOINT_KEY"
KEY_FILE = "checkpoint.key"

#: What a run folder holds of its own besides one folder per arm: no arm may be named so
#: (compared without case, for case-insensitive file systems).
RESERVED_NAMES = frozenset(
    {
        "config.yaml",
        "manifest.json",
        "report.html",
        "figures",
        "checkpoints",
        "sweep.json",
        "metrics.parquet",
        "distributions.parquet",
        "snapshots.npz",
        "theory_notes.json",
        "comparison.html",
    }
)

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
SOURCES = ("simulation", "theory", "chance")


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def write_metrics(path: Path, frame: pd.DataFrame) -> None:
    """Write a tidy metrics frame with the columns and types of :data:`SCHEMA`, atomically."""
    table = pa.Table.from_pandas(frame[list(METRIC_COLUMNS)], schema=SCHEMA, preserve_index=False)
    atomic_write(path, parquet_bytes(table))


def metrics_problem(path: Path, schema: pa.Schema, rows: int) -> str | None:
    """Why a metrics file of ``schema`` and ``rows`` cannot be read (``None`` if it can)."""
    if schema.names != list(METRIC_COLUMNS):
        return f"{str(path)!r} has columns {schema.names}, expected {list(METRIC_COLUMNS)}"
    for name in METRIC_COLUMNS:
        found, expected = schema.field(name).type, SCHEMA.field(name).type
        if found != expected and not (pa.types.is_large_string(found) and expected == pa.string()):
            return f"{str(path)!r}: column {name!r} holds {found}, expected {expected}"
    if rows == 0:
        return f"{str(path)!r} holds no rows; rerun to redo it"
    return None


def read_metrics(path: Path, digest: str | Literal["manifest"] | None = "manifest") -> pd.DataFrame:
    """Read a metrics file, with a clear error if it is missing, partial, corrupt, of
    another schema, or no longer the bytes its manifest recorded.

    ``digest``: the SHA-256 to check; ``"manifest"`` (default) takes the one the
    ``manifest.json`` beside it recorded, if any; ``None`` checks none.
    """
    path = Path(path)
    if digest == "manifest":
        manifest = read_arm_manifest(path.with_name("manifest.json"))
        digest = manifest.metrics_sha256 if manifest is not None else None
    if not path.exists():
        raise ResultsError(f"{str(path)!r} does not exist: has the run finished?")
    check_digest(path, digest)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(
            f"{str(path)!r} is not a readable Parquet file ({exc}); rerun to redo it"
        ) from None
    problem = metrics_problem(path, table.schema, table.num_rows)
    if problem is None:
        for name in ("run_id", "seed", "generation", "metric", "source"):
            if table.column(name).null_count:
                problem = f"{str(path)!r}: column {name!r} has empty values"
                break
    if problem is not None:
        raise ResultsError(problem)
    frame = table.to_pandas()
    if not frame["source"].isin(SOURCES).all():
        raise ResultsError(f"{str(path)!r}: column 'source' holds values other than {SOURCES}")
    return frame


# ---------------------------------------------------------------------------
# Manifests and stored configs, read against their schema
# ---------------------------------------------------------------------------


#: The names of runs and arms (one safe path component; the config checks it too).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def _arm_name(value: Any) -> Any:
    """An arm name as a run folder may list it: one safe path component."""
    if not isinstance(value, str) or not re.match(NAME_PATTERN, value):
        raise ValueError(f"{value!r} is not an arm name")
    if value.lower() in RESERVED_NAMES:
        raise ValueError(f"{value!r} is one of the run folder's own files")
    return value


Status = Literal["running", "complete", "failed", "interrupted"]


class RunManifest(BaseModel):
    """``OUT/manifest.json``: the whole run (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    description: str | None = None
    arms: list[str] | None = None
    root_seed: int | None = None
    status: Status | None = None
    started: str | None = None
    finished: str | None = None
    error: str | None = None

    @field_validator("arms", mode="before")
    @classmethod
    def _names(cls, arms: Any) -> Any:
        return [_arm_name(a) for a in arms] if isinstance(arms, list) else arms


class ArmManifest(BaseModel):
    """``OUT/<arm>/manifest.json``: one arm (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")
    run_id: str | None = None
    config_hash: str | None = None
    root_seed: int | None = None
    seeds: int | None = Field(default=None, ge=1)
    generations: int | None = Field(default=None, ge=1)
    path: str | None = None
    status: Status | None = None
    started: str | None = None
    finished: str | None = None
    elapsed_s: float | None = None
    resumed: bool | None = None
    metrics_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: By seed (as a string): the generation from which it had nothing to train on.
    halted: dict[str, int] = Field(default_factory=dict)
    #: Each user data file the arm read and the SHA-256 of its bytes.
    data_files: dict[str, str] = Field(default_factory=dict)
    error: str | None = None

    @field_validator("halted")
    @classmethod
    def _seeds(cls, halted: dict[str, int]) -> dict[str, int]:
        for seed in halted:
            if not seed.isdigit():
                raise ValueError(f"{seed!r} is not a seed")
        return halted


class _Component(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class StoredConfig(BaseModel):
    """A ``config.yaml`` in a run folder, as readers need it (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    description: str | None = None
    data: str | _Component | None = None
    model: str | _Component | None = None
    regime: str | _Component | None = None
    metrics: list[str | _Component] | None = None
    curators: list[str | _Component] | None = None
    seeds: int | None = None
    generations: int | None = None
    samples_per_generation: int | None = None
    arms: list[dict[str, Any]] | None = None


def _schema_error(path: Path, exc: ValidationError) -> ResultsError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    where = f"field {field!r}" if field else "its content"
    message = err["msg"].removeprefix("Value error, ")
    return ResultsError(
        f"{str(path)!r}: {where}: {message}; the file was edited or damaged "
        "(restore it, or rerun with --overwrite)"
    )


def _read_model(path: Path, model: type[BaseModel]) -> Any:
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise ResultsError(
            f"{str(path)!r} is not a JSON object; the file was edited or damaged "
            "(restore it, or rerun with --overwrite)"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(path, exc) from None


def read_run_manifest(path: Path) -> RunManifest | None:
    """A run's ``manifest.json`` (``None`` if missing; refused if it fails its schema)."""
    return _read_model(Path(path), RunManifest)


def read_arm_manifest(path: Path) -> ArmManifest | None:
    """An arm's ``manifest.json`` (``None`` if missing; refused if it fails its schema)."""
    return _read_model(Path(path), ArmManifest)


def read_stored_config(path: Path) -> dict[str, Any]:
    """A run folder's ``config.yaml`` as a mapping (``{}`` if missing), validated by
    :class:`StoredConfig`; one that is not UTF-8, not YAML or not a config is refused."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
        cause = " ".join(str(getattr(exc, "problem", None) or exc).split())[:120]
        raise ResultsError(
            f"{str(path)!r} is not a readable config ({cause}); the file was edited or damaged"
        ) from None
    if not isinstance(data, dict):
        raise ResultsError(f"{str(path)!r} is not a mapping of config fields")
    try:
        StoredConfig.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(path, exc) from None
    return data


# ---------------------------------------------------------------------------
# Data identity
# ---------------------------------------------------------------------------


def data_digests(files: list[Path]) -> dict[str, str]:
    """Each file (by its path as given) and the SHA-256 of its bytes."""
    out = {}
    for path in files:
        try:
            mode = path.stat()
            if not S_ISREG(mode.st_mode):  # never open a FIFO or a device
                raise ResultsError(f"data file {str(path)!r} is not a regular file")
            out[str(path)] = _stream_sha256(str(path), mode.st_mtime_ns, mode.st_size)
        except OSError as exc:
            raise ResultsError(f"cannot read data file {str(path)!r}: {exc.strerror}") from None
    return out


@functools.lru_cache(maxsize=1024)
def _stream_sha256(path: str, mtime_ns: int, size: int) -> str:
    # (mtime, size) make an edited file a cache miss; a sweep digests its corpus once
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

_key_lock = threading.Lock()
_keys: dict[str, bytes] = {}


def key_path() -> Path:
    """Where the checkpoint key is kept: the per-user config folder, never a run folder."""
    import platformdirs

    return Path(platformdirs.user_config_dir("collapselab")) / KEY_FILE


def checkpoint_key() -> bytes:
    """This user's secret checkpoint key (see the module's docstring).

    ``$COLLAPSELAB_CHECKPOINT_KEY`` (hex) where set; else the key file, created with
    mode 0600 on first use. Where it cannot be created, a key for this process only
    (its checkpoints then resume only within it), with a warning.
    """
    override = os.environ.get(KEY_VARIABLE, "")
    if override:
        try:
            return bytes.fromhex(override)
        except ValueError:
            raise ResultsError(f"${KEY_VARIABLE} is not hexadecimal") from None
    with _key_lock:
        path = key_path()
        cached = _keys.get(str(path))
        if cached is not None:
            return cached
        try:
            key = _read_or_create_key(path)
        except OSError as exc:
            warnings.warn(
                f"cannot keep a checkpoint key at {str(path)!r} ({exc.strerror}); this run's "
                f"checkpoints resume only within this process (set ${KEY_VARIABLE})",
                RuntimeWarning,
                stacklevel=2,
            )
            key = secrets.token_bytes(32)
        _keys[str(path)] = key
        return key


def _read_or_create_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) == 64:
            return bytes.fromhex(text)
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # never replaces a key another process just made
    except FileExistsError:
        tmp.unlink()
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    tmp.unlink()
    return key


def _mac(key: bytes, header: bytes, payload: bytes) -> bytes:
    return hmac.new(key, MAGIC + header + b"\n" + payload, hashlib.sha256).hexdigest().encode()


def save_checkpoint(path: Path, obj: Any, binding: dict[str, Any] | None = None) -> None:
    """Pickle ``obj`` behind :data:`MAGIC`, a JSON header (``binding``) and an HMAC of
    both under :func:`checkpoint_key`, atomically."""
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    header = json.dumps(binding or {}, sort_keys=True, separators=(",", ":")).encode()
    mac = _mac(checkpoint_key(), header, payload)
    atomic_write(path, MAGIC + header + b"\n" + mac + b"\n" + payload)


def checkpoint_header(path: Path) -> dict[str, Any] | None:
    """A checkpoint's header (plain JSON, read without trusting or unpickling anything)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + 4096)
    except OSError:
        return None
    if not head.startswith(MAGIC):
        return None
    line, sep, _ = head[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(line) if sep else None
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def load_checkpoint(path: Path, binding: dict[str, Any] | None = None) -> Any | None:
    """The checkpoint's object, or ``None`` if it is missing, truncated, corrupt, not
    authenticated by this user's key, or bound to another chain than ``binding`` (every
    key of ``binding`` must match the header). Nothing is unpickled before the HMAC
    and the binding check pass."""
    try:
        blob = Path(path).read_bytes()
    except OSError:
        return None
    if not blob.startswith(MAGIC):
        return None
    header, sep, rest = blob[len(MAGIC) :].partition(b"\n")
    mac, sep2, payload = rest.partition(b"\n")
    if not (sep and sep2):
        return None
    try:
        fields = json.loads(header)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    if binding is not None and any(fields.get(k) != v for k, v in binding.items()):
        return None
    if not hmac.compare_digest(mac, _mac(checkpoint_key(), header, payload)):
        return None
    try:
        return pickle.loads(payload)
    except Exception:
        return None


# ---------------------------------------------------------------------------
# One writer per folder
# ---------------------------------------------------------------------------

#: Who holds a folder's lock (pid, host, since when): written once the holder starts writing.
LOCK_FILE = ".lock"


class FolderLock:
    """An OS lock (``flock``) on a run or sweep folder, so two runs never interleave.

    Entering creates the folder if needed and takes the lock without writing inside
    it; :meth:`claim` then records who holds it in ``.lock`` (removed on exit), which a
    second run names in its one-line refusal. A folder this lock created and nobody
    claimed (the run was refused) is removed again. The kernel releases the lock of a
    process that dies, so a killed run never leaves its folder locked.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.fd: int | None = None
        self.claimed = False
        self.created = False

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        try:
            self.created = not self.directory.exists()
            self.directory.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.directory, os.O_RDONLY)
        except OSError as exc:
            raise ResultsError(
                f"cannot write {str(self.directory)!r}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            holder = read_json(self.directory / LOCK_FILE)
            who = (
                f" (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')})"
                if isinstance(holder, dict)
                else ""
            )
            raise ResultsError(
                f"{str(self.directory)!r} is in use by another run{who}; wait for it to "
                "finish, or choose another --out"
            ) from None
        return self

    def claim(self) -> None:
        """Record this process as the holder (call before the first write)."""
        if self.fd is None or self.claimed:
            return
        import platform
        from datetime import UTC, datetime

        started = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(
            self.directory / LOCK_FILE,
            {"pid": os.getpid(), "host": platform.node(), "started": started},
        )
        self.claimed = True

    def __exit__(self, *exc: Any) -> None:
        if self.fd is None:
            return
        if self.claimed:
            (self.directory / LOCK_FILE).unlink(missing_ok=True)
        os.close(self.fd)  # releases the lock
        self.fd = None
        if self.created and not self.claimed:
            try:  # refused before writing: leave no empty folder behind
                self.directory.rmdir()
            except OSError:
                pass
