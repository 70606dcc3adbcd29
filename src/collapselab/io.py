"""Files written whole or not at all, checksums, YAML/JSON/Parquet read and written
one way everywhere, and what memory this process may still allocate.

Every write goes to a temporary name in the target's folder, is flushed, fsynced and
renamed into place, so a crash leaves either the old file or the new one. YAML is read
and written with the same resolvers (YAML 1.2 floats such as ``1e9``), so what
:func:`dump_yaml` writes :func:`load_yaml` reads back unchanged. The one YAML reader
is bounded: a document nested deeper than :data:`YAML_MAX_DEPTH`, one whose aliases
expand to more than :data:`YAML_MAX_NODES` nodes (a "billion laughs" of 500 bytes),
a recursive alias and a duplicate key are each a one-line
:class:`YAMLLimitError`, found before anything is built from the document.

A leaf module: it imports nothing of collapselab but :mod:`collapselab.errors`.
"""

from __future__ import annotations

import functools
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
    "MEMORY_VARIABLE",
    "YAML_MAX_DEPTH",
    "YAML_MAX_NODES",
    "YAMLLimitError",
    "atomic_write",
    "available_memory",
    "check_digest",
    "dump_yaml",
    "file_sha256",
    "format_bytes",
    "load_yaml",
    "memory_budget",
    "parquet_bytes",
    "parse_size",
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
    """A JSON file's content, or ``None`` if it is missing, unreadable or not valid JSON
    (also when it is not UTF-8 or nests too deeply to parse)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
        return None


#: Deepest nesting of a YAML document (a config is a few levels deep).
YAML_MAX_DEPTH = 64
#: Most nodes a YAML document may expand to, aliases counted at every use.
YAML_MAX_NODES = 1_000_000


class YAMLLimitError(yaml.MarkedYAMLError):
    """A YAML document beyond the reader's bounds (depth, expanded size, recursion) or
    with a duplicate key."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e9`` and ``1E-3``
    are floats (YAML 1.1 needs a dot, ``1.0e+9``, and reads ``1e9`` as a string).

    Bounded (see the module's docstring): the composer counts its depth, and the
    composed node graph is measured, aliases expanded, before anything is constructed.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > YAML_MAX_DEPTH:
                raise YAMLLimitError(
                    problem=f"nested deeper than {YAML_MAX_DEPTH} levels",
                    problem_mark=parent.start_mark if parent is not None else None,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return self.construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges another mapping's keys: later keys override them
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: PyYAML's own check names it
            if duplicate:
                raise YAMLLimitError(
                    problem=f"duplicate key {key!r} (first at line {seen[key].line + 1}); "
                    "give each key once",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Any, sizes: dict[int, int], path: set[int]) -> int:
    """The number of nodes ``node`` expands to (an alias counts at every use); raises
    :class:`YAMLLimitError` past :data:`YAML_MAX_NODES` or on a recursive alias.
    The composer bounds the depth, so this recursion is bounded too."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in path:
        raise YAMLLimitError(
            problem="an alias refers to a node that contains it (a recursive alias)",
            problem_mark=node.start_mark,
        )
    size = 1
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
        path.add(key)
        children = node.value
        for child in children:
            for part in child if isinstance(child, tuple) else (child,):
                size += _expanded_size(part, sizes, path)
                if size > YAML_MAX_NODES:
                    raise YAMLLimitError(
                        problem=f"its aliases expand to more than {YAML_MAX_NODES:,} nodes",
                        problem_mark=node.start_mark,
                    )
        path.discard(key)
    sizes[key] = size
    return size


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
    """A YAML file's top-level mapping, or ``{}`` if it is missing, unreadable, not
    UTF-8, beyond the reader's bounds or not a mapping."""
    try:
        data = load_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
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


def format_bytes(n: float) -> str:
    """``n`` bytes as a short size: ``512 B``, ``3.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def available_memory() -> int | None:
    """Bytes this process can still allocate: the machine's available memory
    (``MemAvailable`` of ``/proc/meminfo``, else physical pages), lowered by an
    address-space limit (``RLIMIT_AS``) when one is set; ``None`` where neither is known.
    """
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(max(soft - _address_space_in_use(), 0))
    except (ImportError, OSError, ValueError):
        pass
    return min(found) if found else None


def _address_space_in_use() -> int:
    """This process's virtual size (``VmSize``), which ``RLIMIT_AS`` bounds."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


#: Environment variable of the memory budget (``--max-memory``): a size, or ``off``.
MEMORY_VARIABLE = "COLLAPSELAB_MAX_MEMORY"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str) -> int | None:
    """A size such as ``512M``, ``64G`` or ``2.5T`` (binary units; a plain number is
    bytes) in bytes; ``off`` is ``None`` (no limit). Raises ``ValueError`` otherwise."""
    value = text.strip().lower()
    if value in ("off", "none", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", value)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512M, 64G, or off)")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def memory_budget() -> int | None:
    """Bytes a run or a read may allocate: ``$COLLAPSELAB_MAX_MEMORY`` where set (a
    size, or ``off`` for no limit: ``None``), else :func:`available_memory`."""
    override = os.environ.get(MEMORY_VARIABLE)
    if override:
        try:
            return parse_size(override)
        except ValueError:
            pass  # the CLI checks --max-memory; a bad variable falls back to the machine
    return available_memory()


def trim_heap() -> None:
    """Hand the C heap's free memory back to the system, where the C library can
    (glibc's ``malloc_trim``; elsewhere nothing happens).

    Arrays below glibc's mmap threshold (which rises to 32 MB as large arrays are
    freed) come from the heap, and the heap's free pages stay in the process's resident
    size: after a ``diagnose`` pass over 100 MB they were about 450 MB of it.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """The C library's ``malloc_trim``, or ``None`` where it has none."""
    import ctypes

    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
