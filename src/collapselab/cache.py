"""A content-addressed cache of expensive, deterministic results, under the user's cache directory.

Pretraining is paid once: generation 0 of a neural chain (``gpt``) and the fixed
reference model of the fluency metrics depend only on their configuration, their
training data and their random stream, so every run and every arm that shares those
reuses one stored result. An entry is addressed by the SHA-256 of its *key*, a
JSON-able mapping that must hold everything the result depends on (the caller's
parameters, a digest of the data, the random stream's state, the library and
framework versions)::

    <root>/<kind>/<digest>/entry.json     key, sha256 and size of every file, when made
    <root>/<kind>/<digest>/<file>         the payload: safetensors weights, JSON, ...

Nothing in the cache is ever unpickled: payloads are bytes that their owner decodes
(safetensors, JSON, ``numpy.load(allow_pickle=False)``). Every read checks the
stored key against the requested one and each file against its SHA-256; an entry
that fails (corrupted, truncated, edited) is removed and :func:`load` answers
``None``, so the caller recomputes it. Writes are atomic (a temporary folder
renamed into place), and :func:`compute_once` holds a file lock while computing,
so parallel workers wanting the same entry compute it once.

Where: ``$COLLAPSELAB_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir
("collapselab")``. Off when ``$COLLAPSELAB_NO_CACHE`` is set to anything but
``""`` or ``"0"`` (``collapselab run --no-cache`` sets it); then nothing is read or
written. ``collapselab cache list`` and ``collapselab cache clear`` show and empty it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: Environment variables: the cache's folder, and a switch that turns it off.
CACHE_DIR_ENV = "COLLAPSELAB_CACHE_DIR"
NO_CACHE_ENV = "COLLAPSELAB_NO_CACHE"
_ENTRY = "entry.json"


def root() -> Path:
    """The cache's folder (it may not exist yet)."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("collapselab"))


def enabled() -> bool:
    """False when ``$COLLAPSELAB_NO_CACHE`` turns the cache off."""
    return os.environ.get(NO_CACHE_ENV, "") in ("", "0")


def library_version() -> str:
    """collapselab's installed version, part of every key."""
    try:
        return version("collapselab")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def digest(key: dict[str, Any]) -> str:
    """The SHA-256 (hex) of ``key`` as canonical JSON: the entry's address."""
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _folder(kind: str, key: dict[str, Any]) -> Path:
    return root() / kind / digest(key)


def load(kind: str, key: dict[str, Any]) -> dict[str, bytes] | None:
    """The files stored under ``key``, verified; ``None`` if absent, off or refused.

    An entry whose key or any file's checksum does not match is removed (so the
    next :func:`store` replaces it).
    """
    if not enabled():
        return None
    folder = _folder(kind, key)
    try:
        entry = json.loads((folder / _ENTRY).read_text(encoding="utf-8"))
        if entry.get("key") != json.loads(json.dumps(key)):
            raise ValueError("key mismatch")
        files = {}
        for name, meta in entry["files"].items():
            payload = (folder / name).read_bytes()
            if hashlib.sha256(payload).hexdigest() != meta["sha256"]:
                raise ValueError(f"checksum mismatch in {name}")
            files[name] = payload
        return files
    except FileNotFoundError:
        if folder.exists():  # a folder without its entry file, or a missing payload
            shutil.rmtree(folder, ignore_errors=True)
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None


def store(
    kind: str, key: dict[str, Any], files: dict[str, bytes], info: dict[str, Any] | None = None
) -> None:
    """Store ``files`` under ``key`` (atomically; silently skipped when off or unwritable).

    ``info`` is a short JSON-able description shown by ``collapselab cache list``.
    """
    if not enabled():
        return
    folder = _folder(kind, key)
    entry = {
        "key": key,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in files.items()
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "info": info or {},
    }
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError:
        return  # a read-only or full disk: the result is simply not reused
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / _ENTRY).write_text(json.dumps(entry, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # a refused entry, if any
        os.replace(staging, folder)
    except OSError:
        pass  # another process stored it first, or the disk is full: nothing lost
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _locked(kind: str, key: dict[str, Any]) -> Iterator[None]:
    """An exclusive file lock for one entry (no-op where ``fcntl`` or the folder is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: parallel workers may compute the same entry twice
        yield
        return
    path = root() / kind / f".{digest(key)}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compute_once(
    kind: str,
    key: dict[str, Any],
    compute: Callable[[], dict[str, bytes]],
    info: dict[str, Any] | None = None,
) -> tuple[dict[str, bytes], bool]:
    """The files stored under ``key``, computing and storing them first if needed.

    Returns the files and whether they came from the cache. While one process
    computes an entry, others asking for the same key wait for it.
    """
    if not enabled():
        return compute(), False
    found = load(kind, key)
    if found is not None:
        return found, True
    with _locked(kind, key):
        found = load(kind, key)  # computed by another process meanwhile
        if found is not None:
            return found, True
        files = compute()
        store(kind, key, files, info)
    return files, False


@dataclass(frozen=True)
class Entry:
    """One stored result, as ``collapselab cache list`` shows it."""

    kind: str
    digest: str
    bytes: int
    created: str
    info: dict[str, Any]
    path: Path


def entries() -> list[Entry]:
    """Every entry in the cache, by kind then creation time (unreadable ones included,
    with ``info`` saying so, so that ``clear`` can remove them)."""
    base = root()
    found = []
    for folder in sorted(base.glob("*/*")) if base.is_dir() else []:
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        try:
            entry = json.loads((folder / _ENTRY).read_text(encoding="utf-8"))
            created, info = str(entry.get("created", "")), dict(entry.get("info") or {})
        except (OSError, ValueError, TypeError):
            created, info = "", {"unreadable": True}
        found.append(Entry(folder.parent.name, folder.name, size, created, info, folder))
    return sorted(found, key=lambda e: (e.kind, e.created))


def clear(kind: str | None = None) -> int:
    """Remove every entry (of ``kind`` only, if given); the number removed."""
    removed = 0
    for entry in entries():
        if kind is None or entry.kind == kind:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    base = root()
    for lock in base.glob("*/.*.lock") if base.is_dir() else []:
        if kind is None or lock.parent.name == kind:
            lock.unlink(missing_ok=True)
    return removed


__all__ = [
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "Entry",
    "clear",
    "compute_once",
    "digest",
    "enabled",
    "entries",
    "library_version",
    "load",
    "root",
    "store",
]
