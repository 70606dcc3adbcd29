"""Seed streams: the one documented path to randomness.

There is no global random state. The runner derives one independent
:class:`numpy.random.Generator` per (seed, generation, component) from the run's
root seed. ``stream(root, s, g, c)`` equals
``SeedSequence(root).spawn(s + 1)[s].spawn(g + 1)[g].spawn(k + 1)[k]`` (k the
component's index), built directly in O(1); :func:`streams` builds many at once, the
same generators for a tenth of the cost. Because every stream is a pure function of
its coordinates, a run gives bit-identical results serially, in a process pool or on
a cluster, fresh or resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Components that draw randomness, in a fixed order: the index is part of the key.
#: New components are appended, never inserted, so existing streams never change.
COMPONENTS: tuple[str, ...] = ("data", "fit", "sample", "regime", "curate", "metrics", "extra")

#: Seed coordinate of the streams that drive all seeds at once on the batched path.
BATCH = 2**32 - 1


def seed_sequence(
    root_seed: int, seed: int, generation: int, component: str
) -> np.random.SeedSequence:
    """The :class:`~numpy.random.SeedSequence` at (seed, generation, component)."""
    try:
        index = COMPONENTS.index(component)
    except ValueError:
        raise ValueError(f"unknown random component {component!r}; one of {COMPONENTS}") from None
    if seed < 0 or generation < 0:
        raise ValueError("seed and generation must be >= 0")
    return np.random.SeedSequence(int(root_seed), spawn_key=(int(seed), int(generation), index))


def stream(root_seed: int, seed: int, generation: int, component: str) -> np.random.Generator:
    """An independent generator for one (seed, generation, component)."""
    return np.random.default_rng(seed_sequence(root_seed, seed, generation, component))


def streams(
    root_seed: int, seeds: Sequence[int] | int, generations: Sequence[int] | int, component: str
) -> list[np.random.Generator]:
    """``[stream(root_seed, s, g, component) for s, g in zip(seeds, generations)]`` (either
    may be one int, shared by all), built in bulk: the same generators, with the same
    states and draws, for a tenth of the cost.

    Seeding a generator through its :class:`~numpy.random.SeedSequence` costs about
    17 microseconds, most of it Python-level bookkeeping around a small hash: a third
    of the exact sufficient-statistic chain's time went to seeding 1,000 seeds' data
    streams and 1,000 generations' streams. Here the hash (numpy's, word for word) runs
    vectorized over every stream at once. Each generator's ``bit_generator.seed_seq``
    is a stand-in (:class:`BulkSeedSequence`) that generates the same state and spawns
    the same children as the sequence at its coordinates, but is not a
    :class:`~numpy.random.SeedSequence`: use this only where no component inspects it.
    """
    index = COMPONENTS.index(component)
    keys = np.broadcast_arrays(np.asarray(seeds), np.asarray(generations))
    flat = [k.ravel().astype(object) for k in keys]
    if any((k < 0).any() or (k >= 2**32).any() for k in flat):
        return [stream(root_seed, int(s), int(g), component) for s, g in zip(*flat, strict=True)]
    state = _seed_states(int(root_seed), np.stack([*keys, np.full(keys[0].shape, index)], -1))
    return [
        np.random.Generator(
            # numpy takes any ISeedSequence; its type stubs name SeedSequence only
            np.random.PCG64(BulkSeedSequence(int(root_seed), (int(s), int(g), index), words))  # type: ignore[arg-type]
        )
        for s, g, words in zip(*flat, state.reshape(-1, 4), strict=True)
    ]


class BulkSeedSequence(np.random.bit_generator.ISpawnableSeedSequence):
    """The :class:`~numpy.random.SeedSequence` ``SeedSequence(entropy, spawn_key=spawn_key)``
    with its 128-bit generator state computed already (by :func:`streams`); anything else
    it is asked builds that sequence once and defers to it."""

    def __init__(self, entropy: int, spawn_key: tuple[int, ...], words: np.ndarray) -> None:
        self.entropy = entropy
        self.spawn_key = spawn_key
        self._words = words
        self._sequence: np.random.SeedSequence | None = None

    def sequence(self) -> np.random.SeedSequence:
        if self._sequence is None:
            self._sequence = np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key)
        return self._sequence

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words == 4 and np.dtype(dtype) == np.uint64:  # what PCG64 asks for
            return self._words.copy()
        return self.sequence().generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:  # type: ignore[override]
        # the children are the real sequence's, as a stream seeded one by one spawns
        return self.sequence().spawn(n_children)


# numpy's SeedSequence hash (numpy/random/bit_generator.pyx), on 32-bit words.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _MASK = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF


def _seed_states(root_seed: int, keys: np.ndarray) -> np.ndarray:
    """``SeedSequence(root_seed, spawn_key=key).generate_state(4, np.uint64)`` for every
    row ``key`` of ``keys`` (..., m), each coordinate below 2**32 (one word)."""
    keys = keys.reshape(-1, keys.shape[-1]).astype(np.uint32)
    run = []  # the root's 32-bit words, low first, padded to the pool size of 4
    rest = root_seed
    while True:
        run.append(rest & _MASK)
        rest >>= 32
        if not rest:
            break
    run += [0] * (4 - len(run))
    entropy = [np.full(len(keys), w, dtype=np.uint32) for w in run]
    entropy += [keys[:, j] for j in range(keys.shape[1])]
    hash_const = _INIT_A

    def hashmix(value: NDArray[np.uint32]) -> NDArray[np.uint32]:
        nonlocal hash_const
        mixed: NDArray[np.uint32] = value ^ np.uint32(hash_const)
        hash_const = (hash_const * _MULT_A) & _MASK
        mixed = mixed * np.uint32(hash_const)
        return mixed ^ (mixed >> np.uint32(16))

    def mix(x: NDArray[np.uint32], y: NDArray[np.uint32]) -> NDArray[np.uint32]:
        result: NDArray[np.uint32] = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
        return result ^ (result >> np.uint32(16))

    with np.errstate(over="ignore"):  # the hash is arithmetic modulo 2**32
        pool = [hashmix(entropy[i]) for i in range(4)]
        for source in range(4):
            for target in range(4):
                if source != target:
                    pool[target] = mix(pool[target], hashmix(pool[source]))
        for source in range(4, len(entropy)):
            for target in range(4):
                pool[target] = mix(pool[target], hashmix(entropy[source]))
        out = np.empty((len(keys), 8), dtype=np.uint32)
        hash_const = _INIT_B
        for i in range(8):
            value = pool[i % 4] ^ np.uint32(hash_const)
            hash_const = (hash_const * _MULT_B) & _MASK
            value = value * np.uint32(hash_const)
            out[:, i] = value ^ (value >> np.uint32(16))
    return out.astype("<u4").view("<u8").astype(np.uint64)


def child_seed(rng: np.random.Generator) -> int:
    """A 32-bit integer seed for libraries that take ``random_state`` (scikit-learn, POT)."""
    return int(rng.integers(0, 2**31 - 1))


class LazyGenerator:
    """A :class:`numpy.random.Generator` built on first use.

    Many components draw nothing (a Gaussian fit, most metrics, ``replace``);
    seeding a generator costs about 20 microseconds, which dominates a batched
    generation of cheap models. The seed sequence itself is built lazily too, so an
    unused stream costs nothing; a used one gives exactly the eager stream.
    """

    __slots__ = ("_generator", "_make")

    def __init__(self, make: Callable[[], np.random.SeedSequence]) -> None:
        self._make = make
        self._generator: np.random.Generator | None = None

    def __getattr__(self, name: str) -> object:
        if self._generator is None:
            self._generator = np.random.default_rng(self._make())
        return getattr(self._generator, name)


def lazy_stream(root_seed: int, seed: int, generation: int, component: str) -> np.random.Generator:
    """:func:`stream`, seeded only if something draws from it."""
    return LazyGenerator(lambda: seed_sequence(root_seed, seed, generation, component))  # type: ignore[return-value]


def metric_stream(
    root_seed: int, seed: int, generation: int, metric_id: str
) -> np.random.Generator:
    """A stream per metric, keyed by the metric's id (not its position in the list),
    so adding or reordering metrics never changes another metric's values."""
    import zlib

    index = COMPONENTS.index("metrics")
    key = (int(seed), int(generation), index, zlib.crc32(metric_id.encode()))
    return LazyGenerator(lambda: np.random.SeedSequence(int(root_seed), spawn_key=key))  # type: ignore[return-value]
