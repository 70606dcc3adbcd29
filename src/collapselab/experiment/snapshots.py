"""Recording distribution snapshots while a chain runs: a small, bounded sample of its output.

A run stores metrics only; the "tails vanish" pictures need samples. For seed 0
the runner keeps the model output at generation 0, the middle and the last
generation (:func:`snapshot_generations`), plus the real held-out data, in
``OUT/<arm>/snapshots.npz``; for text, also the first :data:`SAMPLE_DOCUMENTS`
documents of seed 0 at *every* generation, for a per-generation table of samples.
Each generation's snapshot is written as a part file next to the checkpoints
*before* that generation's checkpoint, so a resumed run always has every snapshot
up to its checkpoint and ends with the same ``snapshots.npz`` as an uninterrupted run.

The file holds plain arrays only (``allow_pickle=False``) and is bounded: at most
:data:`MAX_ITEMS` samples (documents, images, pairs) per snapshot. Its entries are

* ``real``: the real held-out data (its test split, else its training split);
* ``g<t>``: seed 0's output at snapshot generation ``t``;
* ``texts_g<t>``: text only, the first documents of seed 0's output at generation
  ``t``, for every generation (the metadata's ``samples`` lists them);
* ``predictions_g<t>``: supervised models that provide ``class_logits`` only: seed 0's
  predicted class of each stored real test pair at snapshot generation ``t`` (for
  the report's confusion matrices);

each stored as a few arrays ``<entry>/<part>`` in the encoding the metadata names
(see :func:`encode`), beside a JSON ``meta`` array. :mod:`collapselab.report.snapshots`
reads it.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..chain import ChainSpec, ChainState, load_real
from ..core import DataKind, SeedBatch, length
from .storage import atomic_write

#: The seed whose outputs are kept.
SNAPSHOT_SEED = 0
#: Most samples kept per snapshot, by data kind (images are large, points are small).
MAX_ITEMS = {DataKind.IMAGES: 64, DataKind.TEXT: 500}
DEFAULT_MAX_ITEMS = 5000
#: Documents of seed 0 kept at every generation of a text chain.
SAMPLE_DOCUMENTS = 3
FORMAT = "collapselab-snapshots-v1"


def snapshot_generations(generations: int) -> list[int]:
    """First, middle and last generation."""
    return sorted({0, (generations - 1) // 2, generations - 1})


def bound(data: Any, limit: int) -> tuple[Any, bool]:
    """The first ``limit`` samples (samples are i.i.d., so the first k are a fair
    subsample) and whether any were left out."""
    if isinstance(data, tuple):
        parts = [bound(part, limit) for part in data]
        return tuple(p for p, _ in parts), any(t for _, t in parts)
    return data[:limit], len(data) > limit


def encode(data: Any) -> tuple[str, dict[str, np.ndarray]]:
    """``(encoding, arrays)`` for ``data``; raises ``TypeError`` for what it cannot store.

    Encodings: ``array`` (one numeric array), ``tuple`` (pairs: one array per part),
    ``strings`` (documents: one joined string and the lengths) and ``ragged`` (token
    sequences: the concatenated ids and the lengths).
    """
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
    sequences = [np.asarray(item) for item in items]
    if all(a.dtype != object and a.ndim == 1 for a in sequences):
        lengths = np.array([len(a) for a in sequences], dtype=np.int64)
        flat = np.concatenate(sequences) if sequences else np.array([], dtype=np.int64)
        return "ragged", {"flat": flat, "lengths": lengths}
    raise TypeError(f"cannot store samples of type {type(items[0]).__name__}")


def pack(entries: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """An ``.npz`` of every entry's arrays under ``<entry>/<part>``, with JSON metadata."""
    arrays: dict[str, np.ndarray] = {}
    encodings = {}
    for name, data in entries.items():
        encoding, parts = encode(data)
        encodings[name] = encoding
        for part, array in parts.items():
            arrays[f"{name}/{part}"] = array
    return _npz(arrays, {**meta, "encodings": encodings})


def _npz(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    arrays = {**arrays, "meta": np.array(json.dumps({**meta, "format": FORMAT}))}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub
    return buffer.getvalue()


#: What a damaged or foreign ``.npz`` raises when read (a truncated zip, a bad header).
UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)
#: Largest snapshot file read back, uncompressed (snapshots are bounded far below it).
MAX_READ_BYTES = 1 << 30


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` of plain arrays (never pickles); raises one of
    :data:`UNREADABLE` if it is damaged or would expand past :data:`MAX_READ_BYTES`."""
    with np.load(path, allow_pickle=False) as npz:
        size = sum(info.file_size for info in npz.zip.infolist())
        if size > MAX_READ_BYTES:
            raise ValueError(f"{path} expands to {size} bytes")
        return {key: npz[key] for key in npz.files}


def _read_part(path: Path) -> tuple[dict[str, Any], str, dict[str, np.ndarray]] | None:
    """A part file's metadata, its one entry's encoding and arrays (``None`` if missing
    or unreadable: that generation's snapshot is then missing, as after a crash; the
    runner recomputes nothing for it)."""
    try:
        arrays = read_npz(path)
        meta = json.loads(str(arrays.pop("meta")))
        ((name, encoding),) = meta["encodings"].items()
    except UNREADABLE:  # json.JSONDecodeError is a ValueError
        return None
    prefix = f"{name}/"
    return meta, encoding, {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _seed_zero(output: Any) -> Any:
    """Seed 0's part of an output (a :class:`SeedBatch`, or a tuple of them, when batched)."""
    if isinstance(output, SeedBatch):
        return output.array[SNAPSHOT_SEED]
    if isinstance(output, tuple):  # supervised pairs: a SeedBatch per part
        return tuple(p.array[SNAPSHOT_SEED] if isinstance(p, SeedBatch) else p for p in output)
    return output


class SnapshotRecorder:
    """Keeps seed 0's output at the snapshot generations (and, for text, a few documents
    of every generation) while a chain runs.

    Call :meth:`observe` from the chain's per-generation observers *before*
    checkpointing, then :meth:`finish` once the arm is done. Picklable, so per-seed
    jobs in a process pool or on Ray can record.

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
    spec : ChainSpec, optional
        The chain, whose seed-0 real test pairs a classifier's predictions are recorded
        on (supervised models that provide ``class_logits``).
    """

    def __init__(
        self,
        parts: Path,
        generations: int,
        kind: DataKind,
        config_hash: str,
        spec: ChainSpec | None = None,
    ) -> None:
        self.parts = Path(parts)
        self.spec = spec
        self.generations = snapshot_generations(generations)
        self.last = generations - 1
        self.kind = kind
        self.config_hash = config_hash
        self.limit = MAX_ITEMS.get(kind, DEFAULT_MAX_ITEMS)

    def _part(self, generation: int, entry: str = "g") -> Path:
        return self.parts / f"{self.config_hash}-{entry}{generation:06d}.npz"

    def _entries(self, last: int) -> list[tuple[str, int]]:
        """The part files wanted up to generation ``last``."""
        wanted = [("g", g) for g in self.generations if g <= last]
        if self.kind == DataKind.TEXT:
            wanted += [("s", g) for g in range(last + 1)]
        if self.kind == DataKind.SUPERVISED:
            wanted += [("p", g) for g in self.generations if g <= last]
        return wanted

    def intact(self, seed: int | None, state: ChainState) -> bool:
        """Whether every part file that ``state``'s chain has written is readable, so
        resuming from ``state`` ends with the same ``snapshots.npz`` as an uninterrupted
        run (a damaged part means its chain is recomputed, like a damaged checkpoint)."""
        if seed not in (None, SNAPSHOT_SEED):
            return True
        last = state.generation if state.halted_at is None else state.halted_at - 1
        wanted = self._entries(last)
        return all(
            not self._part(g, entry).exists() or _read_part(self._part(g, entry)) is not None
            for entry, g in wanted
        )

    def observe(self, seed: int | None, state: ChainState) -> None:
        """Record the output of ``state.generation`` where it is wanted.

        ``seed`` is the chain's seed, or ``None`` on the batched path, where the
        output holds every seed.
        """
        if seed not in (None, SNAPSHOT_SEED) or state.halted_at is not None:
            return  # a halted chain generated nothing (or its curators kept nothing)
        if state.output is None or length(state.output) == 0:
            return  # the sufficient-statistic path draws no output
        output = _seed_zero(state.output)
        if self.kind == DataKind.TEXT:
            self._write(state.generation, "s", bound(output, SAMPLE_DOCUMENTS)[0], False)
        if state.generation in self.generations:
            self._write(state.generation, "g", *bound(output, self.limit))
            predicted = self._predictions(seed, state)
            if predicted is not None:
                self._write(state.generation, "p", predicted, False)

    def _predictions(self, seed: int | None, state: ChainState) -> np.ndarray | None:
        """Seed 0's predicted classes on the stored real test pairs, for a classifier."""
        if self.kind != DataKind.SUPERVISED or self.spec is None or state.model is None:
            return None
        model = state.model.unbatch(SNAPSHOT_SEED) if seed is None else state.model
        if "class_logits" not in type(model).provides:
            return None
        x = self._test_inputs
        if x is None:
            return None
        return np.argmax(model.class_logits(x), axis=-1).astype(np.int64)

    @functools.cached_property
    def _test_inputs(self) -> np.ndarray | None:
        """Seed 0's stored real test inputs, loaded once for every snapshot generation."""
        assert self.spec is not None
        test = load_real(self.spec, SNAPSHOT_SEED).test
        if not isinstance(test, tuple):
            return None
        return np.asarray(bound(test, self.limit)[0][0])

    def _write(self, generation: int, entry: str, data: Any, truncated: bool) -> None:
        try:
            payload = pack({entry: data}, {"truncated": truncated})
        except TypeError:
            return  # a kind we cannot store: the report says the snapshot is missing
        atomic_write(self._part(generation, entry), payload)

    def finish(self, path: Path, real: Any) -> None:
        """Write ``path`` from the part files and ``real`` (seed 0's :class:`RealData`)."""
        arrays: dict[str, np.ndarray] = {}
        encodings: dict[str, str] = {}
        truncated = False
        reference = real.test if real.test is not None else real.train
        if reference is not None:
            data, truncated = bound(reference, self.limit)
            try:
                encodings["real"], parts = encode(data)
                arrays.update({f"real/{part}": array for part, array in parts.items()})
            except TypeError:
                truncated = False
        samples = []
        for entry, generation in self._entries(self.last):
            part = _read_part(self._part(generation, entry))
            if part is None:
                continue
            meta, encoding, part_arrays = part
            name = {"g": "g", "s": "texts_g", "p": "predictions_g"}[entry] + str(generation)
            encodings[name] = encoding
            arrays.update({f"{name}/{key}": array for key, array in part_arrays.items()})
            if entry == "g":
                truncated = truncated or bool(meta.get("truncated"))
            elif entry == "s":
                samples.append(generation)
        if not any(name.startswith("g") for name in encodings):
            return
        meta = {
            "kind": str(self.kind),
            "seed": SNAPSHOT_SEED,
            "truncated": truncated,
            "encodings": encodings,
        }
        if samples:
            meta["samples"] = samples
        atomic_write(path, _npz(arrays, meta))
