"""Reading distribution snapshots: a small, bounded sample of what a chain produced.

The runner records them while a chain runs (:mod:`collapselab.experiment.snapshots`
describes what ``OUT/<arm>/snapshots.npz`` holds and how it is written); this module
reads them back for the report. Arms that finished before snapshots existed simply
have none; their reports say so.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import DataKind
from ..experiment.snapshots import FORMAT, SNAPSHOT_SEED, UNREADABLE, pack, read_npz
from ..io import atomic_write


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
    texts : dict of int to list of str
        A few documents of the output at *every* generation (entries ``texts_g<g>``),
        for the report's per-generation table of sample texts; empty if not recorded.
    predictions : dict of int to ndarray
        The model's predicted classes on the stored real test pairs (``real``, same
        order) by generation (entries ``predictions_g<g>``); empty if not recorded.
    """

    kind: DataKind | str
    seed: int
    real: Any
    outputs: dict[int, Any] = field(default_factory=dict)
    truncated: bool = False
    texts: dict[int, list[str]] = field(default_factory=dict)
    predictions: dict[int, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Decoding (the encodings are those of collapselab.experiment.snapshots.encode).
# ---------------------------------------------------------------------------


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


def _unpack(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(meta, entries)`` of a snapshot file, or ``None`` if it is missing or unreadable."""
    try:
        arrays = read_npz(path)
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return None
        entries = {}
        for name, encoding in meta["encodings"].items():
            prefix = f"{name}/"
            parts = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            entries[name] = _decode(encoding, parts)
    except (*UNREADABLE, AttributeError, IndexError):  # a damaged or hand-made file
        return None
    return meta, entries


def write_snapshots(
    path: str | Path,
    kind: DataKind | str,
    real: Any,
    outputs: dict[int, Any],
    *,
    seed: int = SNAPSHOT_SEED,
    truncated: bool = False,
    texts: dict[int, list[str]] | None = None,
    predictions: dict[int, np.ndarray] | None = None,
) -> None:
    """Write a snapshot file directly (for tools and tests that build results by hand)."""
    entries = {f"g{g}": data for g, data in outputs.items()}
    entries.update({f"texts_g{g}": list(docs) for g, docs in (texts or {}).items()})
    entries.update({f"predictions_g{g}": np.asarray(p) for g, p in (predictions or {}).items()})
    if real is not None:
        entries["real"] = real
    meta = {"kind": str(kind), "seed": seed, "truncated": truncated}
    atomic_write(Path(path), pack(entries, meta))


def load_snapshots(arm_directory: str | Path) -> Snapshots | None:
    """An arm's snapshots, or ``None`` where it has none (older runs) or they are unreadable."""
    unpacked = _unpack(Path(arm_directory) / "snapshots.npz")
    if unpacked is None:
        return None
    meta, entries = unpacked
    try:
        kind: DataKind | str = DataKind(meta["kind"])
    except (KeyError, ValueError):
        kind = str(meta.get("kind", "unknown"))

    def by_generation(prefix: str) -> dict[int, Any]:
        found = {
            int(name[len(prefix) :]): data
            for name, data in entries.items()
            if name.startswith(prefix) and name[len(prefix) :].isdigit()
        }
        return dict(sorted(found.items()))

    return Snapshots(
        kind=kind,
        seed=int(meta["seed"]) if isinstance(meta.get("seed"), int) else SNAPSHOT_SEED,
        real=entries.get("real"),
        outputs=by_generation("g"),
        truncated=bool(meta.get("truncated", False)),
        texts={g: [str(d) for d in docs] for g, docs in by_generation("texts_g").items()},
        predictions={g: np.asarray(p) for g, p in by_generation("predictions_g").items()},
    )
