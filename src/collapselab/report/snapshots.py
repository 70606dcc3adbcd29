"""Distribution snapshots: a small, bounded sample of what a chain produced.

A run stores metrics only; the "tails vanish" pictures need samples. For seed 0
the runner keeps the model output at generation 0, the middle and the last
generation (:func:`~collapselab.report.summary.snapshot_generations`), plus the
real held-out data, in ``OUT/<arm>/snapshots.npz``. Each generation's snapshot is
written as a part file next to the checkpoints *before* that generation's
checkpoint, so a resumed run always has every snapshot up to its checkpoint and
ends with the same ``snapshots.npz`` as an uninterrupted run. Arms that finished
before snapshots existed simply have none; their reports say so.

The file holds plain arrays only (``allow_pickle=False``) and is bounded: at most
:data:`MAX_ITEMS` samples (documents, images, pairs) per snapshot.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import DataKind, SeedBatch, length
from ..io import atomic_write
from .summary import snapshot_generations

#: The seed whose outputs are kept.
SNAPSHOT_SEED = 0
#: Most samples kept per snapshot, by data kind (images are large, points are small).
MAX_ITEMS = {DataKind.IMAGES: 64, DataKind.TEXT: 500}
DEFAULT_MAX_ITEMS = 5000
FORMAT = "collapselab-snapshots-v1"


@dataclass
class Snapshots:
    """Samples of one arm: the real data and seed 0's output at a few generations.

    Attributes
    ----------
    kind : DataKind or str
        The data kind of the samples (as recorded; unknown kinds stay strings).
    seed : int
        The seed the outputs come from.
    real : object or None
        Real held-out data (test split, else training split) in its own kind.
    outputs : dict of int to object
        Model output by generation, oldest first.
    truncated : bool
        Whether any snapshot kept fewer samples than the model produced.
    """

    kind: DataKind | str
    seed: int
    real: Any
    outputs: dict[int, Any] = field(default_factory=dict)
    truncated: bool = False


# ---------------------------------------------------------------------------
# Encoding: every data kind as a few plain arrays, never a pickle.
# ---------------------------------------------------------------------------


def _bound(data: Any, limit: int) -> tuple[Any, bool]:
    """The first ``limit`` samples (samples are i.i.d., so the first k are a fair subsample)."""
    if isinstance(data, tuple):
        parts = [_bound(part, limit) for part in data]
        return tuple(p for p, _ in parts), any(t for _, t in parts)
    return data[:limit], len(data) > limit


def _encode(data: Any) -> tuple[str, dict[str, np.ndarray]]:
    """``(encoding, arrays)`` for ``data``; raises ``TypeError`` for what it cannot store."""
    if isinstance(data, tuple):
        arrays = {f"{i}": np.asarray(part) for i, part in enumerate(data)}
        if any(a.dtype == object for a in arrays.values()):
            raise TypeError("a pair of non-numeric arrays")
        return "tuple", arrays
    if isinstance(data, np.ndarray) and data.dtype != object:
        return "array", {"": data}
    items = list(data)
    if all(isinstance(item, str) for item in items):
        # One joined string and the lengths: compact, where a fixed-width array of
        # documents would pad every one to the longest.
        lengths = np.array([len(item) for item in items], dtype=np.int64)
        return "strings", {"text": np.array("".join(items)), "lengths": lengths}
    arrays = [np.asarray(item) for item in items]
    if all(a.dtype != object and a.ndim == 1 for a in arrays):
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        flat = np.concatenate(arrays) if arrays else np.array([], dtype=np.int64)
        return "ragged", {"flat": flat, "lengths": lengths}
    raise TypeError(f"cannot store samples of type {type(items[0]).__name__}")


def _decode(encoding: str, arrays: dict[str, np.ndarray]) -> Any:
    if encoding == "array":
        return arrays[""]
    if encoding == "tuple":
        return tuple(arrays[f"{i}"] for i in range(len(arrays)))
    bounds = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    if encoding == "strings":
        text = str(arrays["text"])
        return [text[a:b] for a, b in itertools.pairwise(bounds)]
    if encoding == "ragged":
        flat = arrays["flat"]
        return [flat[a:b] for a, b in itertools.pairwise(bounds)]
    raise ValueError(f"unknown snapshot encoding {encoding!r}")


def _pack(entries: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """An ``.npz`` of every entry's arrays under ``<entry>/<part>``, with JSON metadata."""
    arrays: dict[str, np.ndarray] = {}
    encodings = {}
    for name, data in entries.items():
        encoding, parts = _encode(data)
        encodings[name] = encoding
        for part, array in parts.items():
            arrays[f"{name}/{part}"] = array
    meta = {**meta, "format": FORMAT, "encodings": encodings}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _unpack(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(meta, entries)`` of a snapshot file, or ``None`` if it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            return None
        entries = {}
        for name, encoding in meta["encodings"].items():
            prefix = f"{name}/"
            parts = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            entries[name] = _decode(encoding, parts)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return meta, entries


# ---------------------------------------------------------------------------
# Recording during a run, reading afterwards.
# ---------------------------------------------------------------------------


class SnapshotRecorder:
    """Keeps seed 0's output at the snapshot generations while a chain runs.

    Call :meth:`observe` (one seed) or :meth:`observe_batch` (all seeds) from the
    chain's per-generation callback *before* checkpointing, then :meth:`finish`
    once the arm is done. Picklable, so per-seed jobs in a process pool can record.

    Parameters
    ----------
    parts : Path
        Folder for the per-generation part files (inside the checkpoints folder).
    generations : int
        The arm's number of generations.
    kind : DataKind
        The data kind the model produces.
    config_hash : str
        Part files of another config are ignored.
    """

    def __init__(self, parts: Path, generations: int, kind: DataKind, config_hash: str) -> None:
        self.parts = Path(parts)
        self.generations = snapshot_generations(generations)
        self.kind = kind
        self.config_hash = config_hash
        self.limit = MAX_ITEMS.get(kind, DEFAULT_MAX_ITEMS)

    def _part(self, generation: int) -> Path:
        return self.parts / f"{self.config_hash}-g{generation:06d}.npz"

    def observe(self, seed: int | None, state: Any) -> None:
        """Record ``state.history[-1]`` (the output of ``state.generation``) if it is wanted.

        ``seed`` is the chain's seed, or ``None`` on the batched path, where the
        output is a :class:`~collapselab.core.SeedBatch` of every seed.
        """
        if state.generation not in self.generations or seed not in (None, SNAPSHOT_SEED):
            return
        output = state.history[-1]
        if getattr(state, "halted_at", None) is not None or length(output) == 0:
            return  # nothing generated (or all of it curated away): no snapshot to show
        if isinstance(output, SeedBatch):
            output = output.array[SNAPSHOT_SEED]
        elif isinstance(output, tuple):  # supervised pairs: a SeedBatch per part
            output = tuple(
                p.array[SNAPSHOT_SEED] if isinstance(p, SeedBatch) else p for p in output
            )
        output, truncated = _bound(output, self.limit)
        try:
            payload = _pack({"output": output}, {"truncated": truncated})
        except TypeError:
            return  # a kind we cannot store: the report says the snapshot is missing
        atomic_write(self._part(state.generation), payload)

    def finish(self, path: Path, real: Any) -> None:
        """Write ``path`` from the part files and ``real`` (the seed's :class:`RealData`)."""
        entries: dict[str, Any] = {}
        truncated = False
        reference = real.test if real.test is not None else real.train
        if reference is not None:
            entries["real"], truncated = _bound(reference, self.limit)
        for generation in self.generations:
            part = _unpack(self._part(generation))
            if part is not None:
                entries[f"g{generation}"] = part[1]["output"]
                truncated = truncated or bool(part[0].get("truncated"))
        if not any(name.startswith("g") for name in entries):
            return
        meta = {"kind": str(self.kind), "seed": SNAPSHOT_SEED, "truncated": truncated}
        try:
            payload = _pack(entries, meta)
        except TypeError:
            payload = _pack({k: v for k, v in entries.items() if k != "real"}, meta)
        atomic_write(path, payload)


def write_snapshots(
    path: str | Path,
    kind: DataKind | str,
    real: Any,
    outputs: dict[int, Any],
    *,
    seed: int = SNAPSHOT_SEED,
    truncated: bool = False,
) -> None:
    """Write a snapshot file directly (for tools and tests that build results by hand)."""
    entries = {f"g{g}": data for g, data in outputs.items()}
    if real is not None:
        entries["real"] = real
    meta = {"kind": str(kind), "seed": seed, "truncated": truncated}
    atomic_write(Path(path), _pack(entries, meta))


def load_snapshots(arm_directory: str | Path) -> Snapshots | None:
    """An arm's snapshots, or ``None`` where it has none (older runs) or they are unreadable."""
    unpacked = _unpack(Path(arm_directory) / "snapshots.npz")
    if unpacked is None:
        return None
    meta, entries = unpacked
    try:
        kind: DataKind | str = DataKind(meta["kind"])
    except ValueError:
        kind = meta["kind"]
    outputs = {
        int(name[1:]): data for name, data in sorted(entries.items()) if name.startswith("g")
    }
    return Snapshots(
        kind=kind,
        seed=int(meta.get("seed", SNAPSHOT_SEED)),
        real=entries.get("real"),
        outputs=dict(sorted(outputs.items())),
        truncated=bool(meta.get("truncated", False)),
    )
