"""Seed streams: the one documented path to randomness.

There is no global random state. The runner derives one independent
:class:`numpy.random.Generator` per (seed, generation, component) from the run's
root seed. ``stream(root, s, g, c)`` equals
``SeedSequence(root).spawn(s + 1)[s].spawn(g + 1)[g].spawn(k + 1)[k]`` (k the
component's index), built directly in O(1). Because every stream is a pure function
of its coordinates, a run gives bit-identical results serially, in a process pool or
on a cluster, fresh or resumed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
