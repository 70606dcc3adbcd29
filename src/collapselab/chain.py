"""The generational chain: fit, sample, assemble the next training set, measure.

See :mod:`collapselab.core` for the call order. Two paths run the same loop:

* :func:`run_seed` advances one seed's chain, with any model;
* :func:`run_batched` advances all seeds at once for models with a ``batched_class``
  (parameters carry a leading seed axis; one vectorized pass per generation).

Both resume from a :class:`ChainState` at any completed generation and give the
same results as an uninterrupted run, because every random stream is a pure
function of (root seed, seed, generation, component).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import DataSource, GenerativeModel, Metric, RealData, ReferenceBatch, Regime, SeedBatch
from .rng import BATCH, metric_stream, stream


@dataclass
class ChainSpec:
    """Everything a chain needs, built from a resolved config (picklable)."""

    data: DataSource
    model: GenerativeModel
    regime: Regime
    metrics: dict[str, Metric]
    samples_per_generation: int
    generations: int
    real_samples: int
    root_seed: int = 0
    decoding: Any = None


@dataclass
class ChainState:
    """Progress of one seed (or of the whole batch): what a checkpoint holds.

    ``values[metric]`` lists one value per completed generation (an array over
    seeds on the batched path). ``history`` keeps only the outputs the regime
    still needs.
    """

    generation: int = -1
    model: Any = None
    history: list[Any] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)


def load_real(spec: ChainSpec, seed: int) -> RealData:
    """The real data of ``seed``: identical on every path and every resume."""
    return spec.data.load(n=spec.real_samples, rng=stream(spec.root_seed, seed, 0, "data"))


def _record(spec: ChainSpec, state: ChainState, name: str, value: Any) -> None:
    values = state.values.setdefault(name, [])
    if spec.metrics[name].absorbing and values:
        value = np.maximum(value, values[-1])
    values.append(value)


def _keep(spec: ChainSpec, history: list[Any]) -> list[Any]:
    window = type(spec.regime).history_window
    return history if window is None else history[-window:]


def run_seed(
    spec: ChainSpec,
    seed: int,
    state: ChainState | None = None,
    on_generation: Callable[[ChainState], None] | None = None,
) -> ChainState:
    """Run (or resume) one seed's chain to ``spec.generations`` generations."""
    state = state or ChainState()
    real = load_real(spec, seed)
    root = spec.root_seed
    for t in range(state.generation + 1, spec.generations):
        if t == 0:
            train = real.train
        else:
            train = spec.regime(real, state.history, t, rng=stream(root, seed, t, "regime"))
        model = spec.model.clone().fit(train, rng=stream(root, seed, t, "fit"))
        output = model.sample(
            spec.samples_per_generation, rng=stream(root, seed, t, "sample"), decoding=spec.decoding
        )
        for name, metric in spec.metrics.items():
            value = metric(model, output, real, rng=metric_stream(root, seed, t, name))
            _record(spec, state, name, float(value))
        state.model = model
        state.history = _keep(spec, [*state.history, output])
        state.generation = t
        if on_generation is not None:
            on_generation(state)
    return state


class _BatchedRealData(RealData):
    """Real data of all seeds as one :class:`SeedBatch`, for regimes on the batched path."""

    def draw(self, n: int, *, rng: np.random.Generator) -> SeedBatch:
        n_seeds = self.train.n_seeds
        sample = super().draw(n_seeds * n, rng=rng)
        return SeedBatch(np.asarray(sample).reshape(n_seeds, n, -1))


def run_batched(
    spec: ChainSpec,
    n_seeds: int,
    state: ChainState | None = None,
    on_generation: Callable[[ChainState], None] | None = None,
) -> ChainState:
    """Run (or resume) all seeds' chains at once with the model's batched class."""
    state = state or ChainState()
    reals = [load_real(spec, s) for s in range(n_seeds)]
    references = ReferenceBatch(reals)
    batch_real = _BatchedRealData(
        train=SeedBatch(
            np.stack([np.asarray(r.train, dtype=float).reshape(len(r.train), -1) for r in reals])
        ),
        test=None,
        kind=reals[0].kind,
        truth=reals[0].truth,
        source=reals[0].source,
    )
    batched_class = type(spec.model).batched_class
    assert batched_class is not None, f"{type(spec.model).__name__} has no batched path"
    root = spec.root_seed
    for t in range(state.generation + 1, spec.generations):
        if t == 0:
            train = batch_real.train
        else:
            train = spec.regime(batch_real, state.history, t, rng=stream(root, BATCH, t, "regime"))
        model = batched_class(**spec.model.get_params()).fit(
            train, rng=stream(root, BATCH, t, "fit")
        )
        output = model.sample(spec.samples_per_generation, rng=stream(root, BATCH, t, "sample"))
        for name, metric in spec.metrics.items():
            values = metric.batched(
                model, output, references, rng=stream(root, BATCH, t, "metrics")
            )
            if values is None:  # no vectorized form: measure seed by seed
                values = np.array(
                    [
                        metric(
                            model.unbatch(s),
                            output.array[s],
                            reals[s],
                            rng=metric_stream(root, s, t, name),
                        )
                        for s in range(n_seeds)
                    ],
                    dtype=float,
                )
            _record(spec, state, name, np.asarray(values, dtype=float))
        state.model = model
        state.history = _keep(spec, [*state.history, output])
        state.generation = t
        if on_generation is not None:
            on_generation(state)
    return state
