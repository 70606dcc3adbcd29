"""The generational chain: fit, sample, measure, curate, assemble the next training set.

See :mod:`collapselab.core` for the call order. Two paths run the same loop
(:func:`_run`), which differ only in how a generation is fitted, sampled and measured:

* :func:`run_seed` advances one seed's chain, with any model;
* :func:`run_batched` advances all seeds at once for models with a ``batched_class``
  (parameters carry a leading seed axis; one vectorized pass per generation).

A third, :func:`run_sufficient`, simulates the ``replace`` chain of models whose fit
depends only on sufficient statistics (a Gaussian, a categorical model) without drawing
the samples at all: equal in distribution, not in values.

Both resume from a :class:`ChainState` at any completed generation and give the
same results as an uninterrupted run, because every random stream is a pure
function of (root seed, seed, generation, component) and the regime's state is
part of the chain's state.

Each generation fits a fresh, unfitted clone. A model that declares
:attr:`~collapselab.core.GenerativeModel.takes_ancestors` is also given
``previous=`` (model t-1) and ``first=`` (model 0; both ``None`` at generation 0),
so a neural model can keep generation 0's vocabulary and start from earlier weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
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
    curate,
    length,
    take,
)
from .errors import ConfigError, DataError
from .rng import BATCH, lazy_stream, metric_stream, stream, streams
from .stats import Moments

#: Called with the chain's state after every completed generation.
Callback = Callable[["ChainState"], None]


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
    seeds on the batched path). ``output`` is the last generation's output after
    curation, which the next generation's regime update reads; ``regime_state`` is
    what the regime keeps of the history.
    """

    generation: int = -1
    model: Any = None
    model_0: Any = None
    regime_state: Any = None
    output: Any = None
    values: dict[str, list[Any]] = field(default_factory=dict)
    #: Per-item values of :attr:`~collapselab.core.Metric.per_item` metrics: one array
    #: per generation (on the batched path, a list of one array per seed).
    distributions: dict[str, list[Any]] = field(default_factory=dict)
    #: The generation at which the chain had nothing left to train on (its curators
    #: kept no sample of the last output and the regime adds no real data), or None.
    halted_at: int | None = None


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


class _Path:
    """How one path fits, samples, measures and curates a generation; :func:`_run`
    does the rest. ``coordinate`` is the seed coordinate of its random streams."""

    def __init__(self, spec: ChainSpec, real: RealData, coordinate: int) -> None:
        self.spec = spec
        self.real = real
        self.coordinate = coordinate

    def rng(self, t: int, component: str) -> np.random.Generator:
        return lazy_stream(self.spec.root_seed, self.coordinate, t, component)

    def fit(self, train: Any, t: int, state: ChainState) -> Any:
        raise NotImplementedError

    def generate(self, model: Any, t: int, state: ChainState) -> Any:
        """Sample, measure and (where there are curators) curate; the output trained on next."""
        raise NotImplementedError


class _OneSeed(_Path):
    def fit(self, train: Any, t: int, state: ChainState) -> Any:
        model: Any = self.spec.model.clone()
        if type(model).takes_ancestors:
            # Neural models start from (or keep the vocabulary of) earlier generations.
            return model.fit(
                train, rng=self.rng(t, "fit"), previous=state.model, first=state.model_0
            )
        return model.fit(train, rng=self.rng(t, "fit"))

    def generate(self, model: Any, t: int, state: ChainState) -> Any:
        spec, seed = self.spec, self.coordinate
        n = spec.samples_per_generation
        candidates = model.sample(
            math.ceil(n * spec.oversample) if spec.curators else n,
            rng=stream(spec.root_seed, seed, t, "sample"),
            decoding=spec.decoding,
        )
        # Metrics describe the model's own output, before any curation.
        output = candidates if length(candidates) == n else take(candidates, np.arange(n))
        if t == 0:
            state.model_0 = model
        for name, metric in spec.metrics.items():
            value, items = measure(
                metric,
                model,
                output,
                self.real,
                state.model_0,
                metric_stream(spec.root_seed, seed, t, name),
            )
            _record(spec, state, name, value, t)
            if items is not None:
                state.distributions.setdefault(name, []).append(items)
        if spec.curators:
            result = curate(
                spec.curators,
                candidates,
                reference=self.real,
                rng=self.rng(t, "curate"),
                model=model,
                model_0=state.model_0,
            )
            # Keeping nothing is a result (the filter rejected a collapsed model's whole
            # output), not an error: the chain goes on if its regime still has real data.
            size = min(length(result.kept), n)
            result.stats["curation.kept_fraction"] = size / length(candidates)
            for name, value in result.stats.items():
                _record(spec, state, name, value, t)
            output = take(result.kept, np.arange(size))
        _align(state, t)
        return output


class _AllSeeds(_Path):
    def __init__(self, spec: ChainSpec, reals: list[RealData]) -> None:
        batched_class = type(spec.model).batched_class
        assert batched_class is not None, f"{type(spec.model).__name__} has no batched path"
        self.batched_class = batched_class
        self.reals = reals
        self.references = ReferenceBatch(reals)
        real = _BatchedRealData(
            train=batch_train(reals),
            test=None,
            kind=reals[0].kind,
            truth=reals[0].truth,
            source=reals[0].source,
        )
        super().__init__(spec, real, BATCH)

    def fit(self, train: Any, t: int, state: ChainState) -> Any:
        return self.batched_class(**self.spec.model.get_params()).fit(train, rng=self.rng(t, "fit"))

    def generate(self, model: Any, t: int, state: ChainState) -> Any:
        spec = self.spec
        output = model.sample(
            spec.samples_per_generation,
            rng=stream(spec.root_seed, BATCH, t, "sample"),
            decoding=spec.decoding,
        )
        self.measure(model, output, t, state)
        return output

    def measure(self, model: Any, output: Any, t: int, state: ChainState) -> None:
        """Record every metric of generation ``t`` for every seed."""
        spec = self.spec
        if t == 0 and any(m.uses_model_0 for m in spec.metrics.values()):
            state.model_0 = model
        for name, metric in spec.metrics.items():
            values = None
            if not (metric.uses_model_0 or metric.per_item):
                values = metric.batched(model, output, self.references, rng=self.rng(t, "metrics"))
            if values is None:  # no vectorized form: measure seed by seed
                measured = [
                    measure(
                        metric,
                        model.unbatch(s),
                        _seed_part(output, s),
                        self.reals[s],
                        state.model_0.unbatch(s) if metric.uses_model_0 else None,
                        metric_stream(spec.root_seed, s, t, name),
                    )
                    for s in range(len(self.reals))
                ]
                values = np.array([value for value, _ in measured], dtype=float)
                if metric.per_item:
                    state.distributions.setdefault(name, []).append([i for _, i in measured])
            _record(spec, state, name, np.asarray(values, dtype=float), t)


def _run(path: _Path, state: ChainState | None, on_generation: Callback | None) -> ChainState:
    """The loop both paths share: regime update, fit, generate, callback."""
    spec = path.spec
    state = state or ChainState()
    if state.generation < 0:
        state.regime_state = spec.regime.init(path.real, fits_moments=type(spec.model).fits_moments)
    for t in range(state.generation + 1, spec.generations):
        train = path.real.train if t == 0 else _update(path, state, t)
        if train is None:
            _halt(spec, state, t)
        else:
            model = path.fit(train, t, state)
            state.output = path.generate(model, t, state)
            state.model = model
            state.generation = t
        if on_generation is not None:
            on_generation(state)
        if state.halted_at is not None:
            break
    return state


def _update(path: _Path, state: ChainState, t: int) -> Any:
    """Generation ``t``'s training set (its regime statistics recorded), or ``None`` when
    the last output is empty (its curators kept nothing) and the regime has nothing
    else to train on."""

    def update() -> Any:
        step = path.spec.regime.update(
            state.regime_state, state.output, t, real=path.real, rng=path.rng(t, "regime")
        )
        state.regime_state = step.state
        for name, value in step.stats.items():
            _record(path.spec, state, name, float(value), t)
        return step.data

    if length(state.output) > 0:
        return update()
    try:
        train = update()
    except (DataError, ValueError, IndexError):  # a regime that samples the empty output
        return None
    size = train.count if isinstance(train, Moments) else length(train)
    return train if size > 0 else None


def _halt(spec: ChainSpec, state: ChainState, t: int) -> None:
    """End a chain that has nothing to train on at generation ``t``: every series is
    NaN from ``t`` on, and the remaining generations output nothing."""
    state.halted_at = t
    for name, values in state.values.items():
        metric = spec.metrics.get(name)
        # an absorbing state (collapsed) stays reached; anything else was not measured
        last = values[-1] if metric is not None and metric.absorbing and values else np.nan
        values.extend([float(last)] * (spec.generations - len(values)))
    state.generation = spec.generations - 1  # state.output stays the empty output


def run_seed(
    spec: ChainSpec,
    seed: int,
    state: ChainState | None = None,
    on_generation: Callback | None = None,
    *,
    real: RealData | None = None,
) -> ChainState:
    """Run (or resume) one seed's chain to ``spec.generations`` generations.

    ``real``: the seed's real data if the caller has it already (:func:`load_real`).
    """
    real = load_real(spec, seed) if real is None else real
    return _run(_OneSeed(spec, real, seed), state, on_generation)


def run_batched(
    spec: ChainSpec,
    n_seeds: int,
    state: ChainState | None = None,
    on_generation: Callback | None = None,
    *,
    real_0: RealData | None = None,
) -> ChainState:
    """Run (or resume) all seeds' chains at once with the model's batched class.

    ``real_0``: seed 0's real data if the caller has it already (:func:`load_real`).
    """
    return _run(_AllSeeds(spec, _load_reals(spec, n_seeds, real_0)), state, on_generation)


def sufficient_problem(spec: ChainSpec) -> str | None:
    """Why :func:`run_sufficient` cannot run ``spec`` (one line), or ``None`` if it can."""
    batched_class = type(spec.model).batched_class
    if batched_class is None or not batched_class.refits_exactly:
        return f"model {spec.model.registry_id!r} has no exact sufficient-statistic refit"
    if spec.curators:
        return "curators read the generated items, which this path never draws"
    for name, metric in spec.metrics.items():
        needs = metric.model_only
        if needs is None or not needs <= type(spec.model).provides or metric.per_item:
            return f"metric {name!r} reads the generated items, which this path never draws"
    return None


def run_sufficient(
    spec: ChainSpec,
    n_seeds: int,
    state: ChainState | None = None,
    on_generation: Callback | None = None,
    *,
    real_0: RealData | None = None,
) -> ChainState:
    """Run (or resume) every seed's ``replace`` chain without drawing its samples.

    Generation 0 fits the real data; each later generation is the batched model's
    :meth:`~collapselab.core.BatchedModel.sufficient_refit`: the fit to
    ``samples_per_generation`` of the previous model's own samples, drawn through the
    exact law of the fit's sufficient statistics. The chain is equal in distribution
    to :func:`run_batched` with the ``replace`` regime (``spec.regime`` is not used),
    at a cost independent of the sample size. Only for specs without a
    :func:`sufficient_problem`; metrics see ``None`` for the output.
    """
    problem = sufficient_problem(spec)
    if problem is not None:
        raise ConfigError(f"the sufficient-statistic path cannot run this chain: {problem}")
    path = _AllSeeds(spec, _load_reals(spec, n_seeds, real_0))
    state = state or ChainState()
    rngs = _generation_streams(spec, state.generation + 1)
    for t in range(state.generation + 1, spec.generations):
        rng = next(rngs)
        if t == 0:
            model = path.fit(path.real.train, t, state)
        else:
            model = state.model.sufficient_refit(
                spec.samples_per_generation, rng=rng, decoding=spec.decoding
            )
        path.measure(model, None, t, state)
        state.model, state.generation = model, t
        if on_generation is not None:
            on_generation(state)
    return state


def _load_reals(spec: ChainSpec, n_seeds: int, real_0: RealData | None) -> list[RealData]:
    """Every seed's :func:`load_real`, its streams seeded in bulk (data sources never
    inspect a stream's seed sequence) and loaded in one call of the source's
    :meth:`~collapselab.core.DataSource.load_seeds`; ``real_0``: seed 0's, if the
    caller has it."""
    first = 0 if real_0 is None else 1
    rngs = streams(spec.root_seed, range(first, n_seeds), 0, "data")
    reals = spec.data.load_seeds(n=spec.real_samples, rngs=rngs)
    return reals if real_0 is None else [real_0, *reals]


def _generation_streams(spec: ChainSpec, start: int) -> Iterator[np.random.Generator]:
    """The ``sample`` streams of all seeds at once for generations ``start, start + 1, ...``,
    seeded in bulk a block of generations at a time (a sufficient refit never inspects
    its stream's seed sequence; a batched model's ``sample`` may, so it gets
    :func:`~collapselab.rng.stream`'s)."""
    for first in range(start, spec.generations, _STREAM_BLOCK):
        last = min(first + _STREAM_BLOCK, spec.generations)
        yield from streams(spec.root_seed, BATCH, range(first, last), "sample")


#: Generations per block of :func:`_generation_streams`.
_STREAM_BLOCK = 256


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


def batch_train(reals: list[RealData]) -> Any:
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
