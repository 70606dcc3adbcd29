"""Saving what each generation produced (``run --save-generations``), per seed, as plain files.

Metrics say how far a chain drifted; the samples themselves let a user read, diagnose
or retrain on them (as lm-evaluation-harness's ``--log_samples`` does). For each
chosen seed and each generation, :class:`GenerationSaver` writes the generation's
output (after curation: what the next generation trains on) under the arm's folder::

    OUT/<arm>/generations/seed-0000/generation-0003.jsonl   text: {"seed", "generation", "text"}
    OUT/<arm>/generations/seed-0000/generation-0003.npz     arrays: "samples" (or "X", "y")

Text is JSONL, one object per document, so a saved generation is a ``text`` data
source as it stands (``data: {id: text, params: {path: .../generation-0003.jsonl}}``)
and a ``collapselab diagnose`` side. Token draws (one id per item) are JSONL with a
``token`` field; arrays (points, images) and supervised pairs are ``.npz`` of plain
arrays (``numpy.load(path, allow_pickle=False)`` reads them). With ``datasets``
installed, ``--save-format datasets`` also writes each seed's text generations as
one Hugging Face dataset folder, ``generations/datasets/seed-0000`` (``save_to_disk``;
columns ``seed, generation, text``), at the end of the arm.

Each file is written atomically, from the chain's observers *before* its checkpoint
(as snapshots are), so a resumed run has every generation up to its checkpoint.
Saving draws no random numbers and changes no result: ``metrics.parquet`` is the
same with and without it.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..chain import ChainState
from ..core import DataKind, SeedBatch, length
from ..errors import ConfigError
from ..io import atomic_write

#: The arm's subfolder that holds the saved generations.
FOLDER = "generations"
#: ``--save-format`` values: files only, or also a Hugging Face dataset per seed.
FORMATS = ("files", "datasets")


@dataclass(frozen=True)
class SaveGenerations:
    """Which seeds' generations to save (``None``: every seed) and in which format."""

    seeds: frozenset[int] | None = None
    format: str = "files"

    @classmethod
    def parse(cls, value: str, format: str = "files") -> SaveGenerations:
        """From ``--save-generations`` (``all``, or seeds such as ``0,1``) and ``--save-format``."""
        if format not in FORMATS:
            raise ConfigError(f"--save-format must be one of {', '.join(FORMATS)}; got {format!r}")
        if format == "datasets":
            _require_datasets()
        text = value.strip().lower()
        if text == "all":
            return cls(None, format)
        try:
            seeds = frozenset(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            seeds = frozenset({-1})
        if not seeds or min(seeds) < 0:
            raise ConfigError(
                f"--save-generations must be 'all' or seed numbers like 0,1; got {value!r}"
            )
        return cls(seeds, format)

    def check(self, seeds: int, arm: str, kind: DataKind) -> None:
        """Refuse seeds the arm does not have, and a dataset of what is not text
        (before anything is written)."""
        if self.seeds is not None and max(self.seeds) >= seeds:
            raise ConfigError(
                f"--save-generations: seed {max(self.seeds)} is not in arm {arm!r}, "
                f"which has seeds 0..{seeds - 1}"
            )
        if self.format == "datasets" and kind != DataKind.TEXT:
            raise ConfigError(
                f"--save-format datasets saves text; arm {arm!r} generates {kind} data "
                "(drop --save-format: its .npz or JSONL files are saved)"
            )

    def wants(self, seed: int) -> bool:
        return self.seeds is None or seed in self.seeds


def _require_datasets() -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--save-format datasets needs the 'datasets' package: pip install 'collapselab[hf]'"
        ) from None


def generation_path(folder: Path, seed: int, generation: int, kind: DataKind) -> Path:
    """Where seed ``seed``'s generation ``generation`` is saved under ``folder``."""
    suffix = ".jsonl" if kind in (DataKind.TEXT, DataKind.TOKENS) else ".npz"
    return folder / f"seed-{seed:04d}" / f"generation-{generation:04d}{suffix}"


def encode(data: Any, kind: DataKind, seed: int, generation: int) -> bytes:
    """One generation's output of one seed as file bytes (see the module's docstring)."""
    if kind == DataKind.TEXT:
        rows: Iterable[dict[str, Any]] = (
            {"seed": seed, "generation": generation, "text": str(doc)} for doc in data
        )
        return b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)
    if kind == DataKind.TOKENS:
        tokens = np.asarray(data).reshape(-1)
        return b"".join(
            json.dumps({"seed": seed, "generation": generation, "token": int(t)}).encode() + b"\n"
            for t in tokens
        )
    if isinstance(data, tuple):  # supervised pairs
        arrays = {"X": np.asarray(data[0]), "y": np.asarray(data[1])}
    else:
        arrays = {"samples": np.asarray(data)}
    arrays["seed"] = np.array(seed)
    arrays["generation"] = np.array(generation)
    if any(a.dtype == object for a in arrays.values()):
        raise TypeError("cannot save samples that are not plain arrays")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub
    return buffer.getvalue()


def _of_seed(output: Any, seed: int) -> Any:
    """Seed ``seed``'s part of a batched output (a :class:`SeedBatch`, or a tuple of them)."""
    if isinstance(output, SeedBatch):
        return output.array[seed]
    if isinstance(output, tuple):
        return tuple(p.array[seed] if isinstance(p, SeedBatch) else p for p in output)
    return output


def _seeds_of(output: Any) -> int:
    if isinstance(output, SeedBatch):
        return output.n_seeds
    if isinstance(output, tuple) and output and isinstance(output[0], SeedBatch):
        return output[0].n_seeds
    return 1


class GenerationSaver:
    """Writes each chosen seed's output of every generation (picklable, for pool workers).

    Parameters
    ----------
    folder : Path
        The arm's ``generations`` folder.
    kind : DataKind
        The data kind the model produces.
    saving : SaveGenerations
        Which seeds.
    """

    def __init__(self, folder: Path, kind: DataKind, saving: SaveGenerations) -> None:
        self.folder = Path(folder)
        self.kind = kind
        self.saving = saving

    def observe(self, seed: int | None, state: ChainState) -> None:
        """Save ``state.generation``'s output of ``seed`` (every chosen seed when batched)."""
        if state.halted_at is not None or state.output is None:
            return  # a halted chain generated nothing
        seeds = range(_seeds_of(state.output)) if seed is None else [seed]
        for s in seeds:
            if not self.saving.wants(s):
                continue
            data = _of_seed(state.output, s) if seed is None else state.output
            if length(data) == 0:
                continue
            path = generation_path(self.folder, s, state.generation, self.kind)
            atomic_write(path, encode(data, self.kind, s, state.generation))

    def finish(self) -> None:
        """With ``--save-format datasets``: each seed's text as one saved dataset."""
        if self.saving.format != "datasets" or self.kind != DataKind.TEXT:
            return
        import datasets

        for seed_folder in sorted(self.folder.glob("seed-*")):
            rows = [
                json.loads(line)
                for path in sorted(seed_folder.glob("generation-*.jsonl"))
                for line in path.read_text(encoding="utf-8").splitlines()
                if line
            ]
            if not rows:
                continue
            columns = {key: [row[key] for row in rows] for key in ("seed", "generation", "text")}
            target = self.folder / "datasets" / seed_folder.name
            temporary = target.with_name(f".{target.name}.tmp")
            shutil.rmtree(temporary, ignore_errors=True)
            datasets.Dataset.from_dict(columns).save_to_disk(str(temporary))
            shutil.rmtree(target, ignore_errors=True)
            temporary.rename(target)
