"""The generational chain: fit, sample, assemble the next training set, measure.

See :mod:`collapselab.core` for the call order. Two paths run the same loop:

* :func:`run_seed` advances one seed's chain, with any model;
* :func:`run_batched` advances all seeds at once for models with a ``batched_class``
  (parameters carry a leading seed axis; one vectorized pass per generation).

Both resume from a :class:`ChainState` at any completed generation and give the
same results as an uninterrupted run, because every random stream is a pure
function of (root seed, seed, generation, component).

Each generation fits a fresh, unfitted clone. A model whose class sets
``fit_accepts_ancestors = True`` is also given ``previous=`` (model t-1) and
``first=`` (model 0; both ``None`` at generation 0), so a neural model can keep
generation 0's vocabulary and start from earlier weights (``GPT(init=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .core import (
    Curator,
    DataKind,
    DataSource,
    GenerativeModel,
    Metric,
    RealData,
    ReferenceBatch,
    Regime,
    SeedBatch,
    length,
    take,
)
from .errors import DataError
from .regimes import Moments, pool_history, pools_moments
from .rng import BATCH, lazy_stream, metric_stream, stream


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
    #: Curators applied in order to each generation's output before it is trained on.
    curators: dict[str, Curator] = field(default_factory=dict)
    #: Draw ``oversample * samples_per_generation`` candidates for the curators and
    #: keep at most ``samples_per_generation`` of what they accept.
    oversample: float = 1.0


@dataclass
class ChainState:
    """Progress of one seed (or of the whole batch): what a checkpoint holds.

    ``values[metric]`` lists one value per completed generation (an array over
    seeds on the batched path). ``history`` keeps only the outputs the regime
    still needs.
    """

    generation: int = -1
    model: Any = None
    model_0: Any = None
    regime_state: Any = None
    history: list[Any] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    #: Per-item values of :attr:`~collapselab.core.Metric.per_item` metrics: one array
    #: per generation (on the batched path, a list of one array per seed).
    distributions: dict[str, list[Any]] = field(default_factory=dict)
    #: The generation at which the chain had nothing left to train on (its curators
    #: kept no sample of the last output and the regime adds no real data), or None.
    halted_at: int | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written before a field existed resumes with its default.
        defaults = {"model_0": None, "regime_state": None, "distributions": {}, "halted_at": None}
        vars(self).update(defaults)
        vars(self).update(state)


def load_real(spec: ChainSpec, seed: int) -> RealData:
    """The real data of ``seed``: identical on every path and every resume."""
    return spec.data.load(n=spec.real_samples, rng=stream(spec.root_seed, seed, 0, "data"))


def _record(spec: ChainSpec, state: ChainState, name: str, value: Any, t: int) -> None:
    """Record generation ``t``'s value of a series; a series first recorded at ``t``
    (a regime statistic from generation 1, a curator skipped before) is NaN before."""
    values = state.values.setdefault(name, [])
    values.extend([float("nan")] * (t - len(values)))
    metric = spec.metrics.get(name)
    if metric is not None and metric.absorbing and values:
        value = np.fmax(value, values[-1])  # NaN (a generation not measured) is skipped
    values.append(value)


def _align(state: ChainState, t: int) -> None:
    """Every series one value per generation up to ``t``: NaN where a series was not
    recorded (a curator skipped because an earlier one kept nothing, a statistic that
    appears only at some generations)."""
    for values in state.values.values():
        if len(values) < t + 1:
            values.extend([float("nan")] * (t + 1 - len(values)))


def measure(
    metric: Metric,
    model: Any,
    output: Any,
    real: RealData,
    model_0: Any,
    rng: np.random.Generator,
) -> tuple[float, np.ndarray | None]:
    """One metric of one seed's generation: its value and, for a per-item metric, the
    values it summarizes."""
    extra = {"model_0": model_0} if metric.uses_model_0 else {}
    if metric.per_item:
        items = np.asarray(metric.item_values(model, output, real, rng=rng, **extra), float)
        return metric.summarize(items), items.reshape(-1)
    return float(metric(model, output, real, rng=rng, **extra)), None


def _needs_model_0(spec: ChainSpec) -> bool:
    return any(m.uses_model_0 for m in spec.metrics.values())


def curate(
    spec: ChainSpec,
    candidates: Any,
    real: RealData,
    model: Any,
    model_0: Any,
    rng: np.random.Generator,
) -> tuple[Any, dict[str, float]]:
    """Run the curators in order; what survives (at most ``samples_per_generation``)
    and each curator's statistics, named ``<curator id>.<stat>``."""
    kept, stats = candidates, {}
    for name, curator in spec.curators.items():
        if length(kept) == 0:
            break  # an earlier curator kept nothing: nothing left to judge
        result = curator(kept, reference=real, rng=rng, model=model, model_0=model_0)
        kept = result.kept
        stats.update({f"{name}.{key}": float(value) for key, value in result.stats.items()})
    # Keeping nothing is a result (the filter rejected a collapsed model's whole
    # output), not an error: the chain goes on if its regime still has real data.
    size = min(length(kept), spec.samples_per_generation)
    stats["curation.kept_fraction"] = size / length(candidates)
    return take(kept, np.arange(size)), stats


def _assemble(
    spec: ChainSpec, state: ChainState, real: RealData, t: int, rng: np.random.Generator
) -> Any:
    """Generation ``t``'s training set; a stateful regime's statistics become metrics."""
    if not type(spec.regime).stateful:
        return spec.regime(real, state.history, t, rng=rng)
    assembled = spec.regime.assemble(real, state.history, t, rng=rng, state=state.regime_state)
    state.regime_state = assembled.state
    # (generation 0 trained on the real data alone: its statistics are NaN)
    for name, value in assembled.stats.items():
        _record(spec, state, name, float(value), t)
    return assembled.data


def _keep(spec: ChainSpec, history: list[Any]) -> list[Any]:
    if pools_moments(spec.regime, spec.model):
        # The regime needs only the pool's sufficient statistics: memory and
        # checkpoints stay constant in the number of generations.
        return pool_history(history)
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
            train = _assemble_or_none(spec, state, real, t, lazy_stream(root, seed, t, "regime"))
            if train is None:
                _halt(spec, state, t, on_generation)
                break
        model = spec.model.clone()
        if getattr(model, "fit_accepts_ancestors", False):
            # Neural models start from (or keep the vocabulary of) earlier generations.
            model.fit(
                train,
                rng=lazy_stream(root, seed, t, "fit"),
                previous=state.model,
                first=state.model_0,
            )
        else:
            model.fit(train, rng=lazy_stream(root, seed, t, "fit"))
        n = spec.samples_per_generation
        candidates = model.sample(
            math.ceil(n * spec.oversample) if spec.curators else n,
            rng=stream(root, seed, t, "sample"),
            decoding=spec.decoding,
        )
        # Metrics describe the model's own output, before any curation.
        output = candidates if length(candidates) == n else take(candidates, np.arange(n))
        model_0 = model if t == 0 else state.model_0
        for name, metric in spec.metrics.items():
            value, items = measure(
                metric, model, output, real, model_0, metric_stream(root, seed, t, name)
            )
            _record(spec, state, name, value, t)
            if items is not None:
                state.distributions.setdefault(name, []).append(items)
        if t == 0:
            state.model_0 = model
        if spec.curators:
            output, stats = curate(
                spec, candidates, real, model, state.model_0, lazy_stream(root, seed, t, "curate")
            )
            for name, value in stats.items():
                _record(spec, state, name, value, t)
        _align(state, t)
        state.model = model
        state.history = _keep(spec, [*state.history, output])
        state.generation = t
        if on_generation is not None:
            on_generation(state)
    return state


def _assemble_or_none(
    spec: ChainSpec, state: ChainState, real: RealData, t: int, rng: np.random.Generator
) -> Any:
    """Generation ``t``'s training set, or ``None`` when the last output is empty (its
    curators kept nothing) and the regime has nothing else to train on."""
    if not state.history or length(state.history[-1]) > 0:
        return _assemble(spec, state, real, t, rng)
    try:
        train = _assemble(spec, state, real, t, rng)
    except (DataError, ValueError, IndexError):  # a regime that samples the empty output
        return None
    size = train.count if isinstance(train, Moments) else length(train)
    return train if size > 0 else None


def _halt(
    spec: ChainSpec,
    state: ChainState,
    t: int,
    on_generation: Callable[[ChainState], None] | None,
) -> None:
    """End a chain that has nothing to train on at generation ``t``: every series is
    NaN from ``t`` on, and the remaining generations output nothing."""
    state.halted_at = t
    for name, values in state.values.items():
        metric = spec.metrics.get(name)
        # an absorbing state (collapsed) stays reached; anything else was not measured
        last = values[-1] if metric is not None and metric.absorbing and values else np.nan
        values.extend([float(last)] * (spec.generations - len(values)))
    state.generation = spec.generations - 1
    state.history = [*state.history[-1:]]  # the empty output, as the last generation's
    if on_generation is not None:
        on_generation(state)


class _BatchedRealData(RealData):
    """Real data of all seeds as one :class:`SeedBatch`, for regimes on the batched path."""

    def draw(self, n: int, *, rng: np.random.Generator) -> SeedBatch:
        n_seeds = self.train.n_seeds
        sample = np.asarray(super().draw(n_seeds * n, rng=rng))
        return SeedBatch(sample.reshape(n_seeds, n, *sample.shape[1:]))


def _batch_item(real: RealData) -> np.ndarray:
    """One seed's training data for a :class:`SeedBatch`: continuous data as float (n, d),
    token ids kept as integers (n,)."""
    if real.kind == DataKind.CONTINUOUS:
        return np.asarray(real.train, dtype=float).reshape(len(real.train), -1)
    return np.asarray(real.train)


def _batch_train(reals: list[RealData]) -> Any:
    """All seeds' training data: a :class:`SeedBatch`, or a tuple of them for pairs (X, y)."""
    first = reals[0].train
    if isinstance(first, tuple):
        return tuple(
            SeedBatch(np.stack([np.asarray(r.train[i]) for r in reals])) for i in range(len(first))
        )
    return SeedBatch(np.stack([_batch_item(r) for r in reals]))


def _seed_part(data: Any, seed: int) -> Any:
    """Seed ``seed``'s part of batched data (a :class:`SeedBatch` or a tuple of them)."""
    if isinstance(data, tuple):
        return tuple(part.array[seed] for part in data)
    return data.array[seed]


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
        train=_batch_train(reals),
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
            train = spec.regime(
                batch_real, state.history, t, rng=lazy_stream(root, BATCH, t, "regime")
            )
        model = batched_class(**spec.model.get_params()).fit(
            train, rng=lazy_stream(root, BATCH, t, "fit")
        )
        output = model.sample(
            spec.samples_per_generation,
            rng=stream(root, BATCH, t, "sample"),
            decoding=spec.decoding,
        )
        if t == 0 and _needs_model_0(spec):
            state.model_0 = model
        for name, metric in spec.metrics.items():
            values = None
            if not (metric.uses_model_0 or metric.per_item):
                values = metric.batched(
                    model, output, references, rng=lazy_stream(root, BATCH, t, "metrics")
                )
            if values is None:  # no vectorized form: measure seed by seed
                measured = [
                    measure(
                        metric,
                        model.unbatch(s),
                        _seed_part(output, s),
                        reals[s],
                        state.model_0.unbatch(s) if metric.uses_model_0 else None,
                        metric_stream(root, s, t, name),
                    )
                    for s in range(n_seeds)
                ]
                values = np.array([value for value, _ in measured], dtype=float)
                if metric.per_item:
                    state.distributions.setdefault(name, []).append([i for _, i in measured])
            _record(spec, state, name, np.asarray(values, dtype=float), t)
        state.model = model
        state.history = _keep(spec, [*state.history, output])
        state.generation = t
        if on_generation is not None:
            on_generation(state)
    return state
