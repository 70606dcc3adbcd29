"""Conformance checks every registered component must pass (like scikit-learn's
``check_estimator`` or Gymnasium's ``check_env``). Plugin authors can run them too::

    from collapselab.testing import check_model
    check_model("my-model")

:func:`check_model` (with :func:`check_batched` for a model with a batched class: the
batched and per-seed paths compute the same thing), :func:`check_regime`,
:func:`check_curator`, :func:`check_metric` and :func:`check_data` also check that
what a component declares is true: the decoding controls it honours, the methods it
provides, a metric's label and share bounds. Each raises ``AssertionError`` with a
message naming the broken rule.

In a plugin's test suite, :func:`parametrize_with_checks` makes one pytest case per
component and check (as scikit-learn's ``parametrize_with_checks``)::

    from collapselab.testing import parametrize_with_checks

    @parametrize_with_checks([MyModel(scale=2.0), MyMetric])
    def test_conforms(component, check):
        check(component)
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import registry
from ..core import (
    BatchedModel,
    Component,
    Curated,
    Curator,
    DataKind,
    DataSource,
    Direction,
    GenerativeModel,
    Metric,
    RealData,
    Regime,
    SeedBatch,
    Step,
    length,
    take,
)
from ..errors import ConfigError
from ..stats import Moments
from .examples import EXAMPLE_DATA, example_data


def _same(a: Any, b: Any) -> bool:
    return pickle.dumps(a) == pickle.dumps(b)


def check_parameters(component: Component) -> None:
    """Constructor stores parameters unchanged; defaults validate; clone keeps them."""
    params = component.get_params()
    assert set(params) == set(component.parameter_names()), (
        "get_params must list every constructor parameter"
    )
    component.validate_params()
    rebuilt = type(component)(**params)
    assert _same(rebuilt.get_params(), params), "the constructor must store parameters unchanged"
    assert _same(component.clone().get_params(), params), "clone() must keep the parameters"
    for name in component.parameter_constraints:
        assert name in params, f"constraint on unknown parameter {name!r}"


def check_model(model_id: str, params: dict[str, Any] | None = None, n: int = 50) -> None:
    """Run every model rule on ``model_id`` with its example data.

    Without ``params``, the model class's ``conformance_example()`` gives them (by
    default its ``conformance_params``: small sizes for slow neural models; a model
    that needs files, such as a tiny pretrained network, writes them there).
    """
    if params is None:
        params = _conformance_params(model_id)
    model = registry.make("model", model_id, **params)
    check_parameters(model)
    data = example_data(model.kind)
    assert not model.is_fitted(), "a new model must be unfitted"
    fitted = model.fit(data.train, rng=np.random.default_rng(1))
    assert fitted is model, "fit must return self"
    assert model.is_fitted(), "fit must set learned attributes ending in '_'"
    clone = model.clone()
    assert not clone.is_fitted(), "clone() must return an unfitted copy"
    a = model.sample(n, rng=np.random.default_rng(7))
    b = model.sample(n, rng=np.random.default_rng(7))
    c = model.sample(n, rng=np.random.default_rng(8))
    assert length(a) == n, f"sample(n) must return n items; got {length(a)}"
    assert _same(a, b), "the same seed must give the same samples"
    assert not _same(a, c), "a different seed must give different samples"
    refit = model.clone().fit(data.train, rng=np.random.default_rng(1))
    assert _same(refit.sample(n, rng=np.random.default_rng(7)), a), (
        "fit must be deterministic given rng"
    )
    logp = np.asarray(model.log_prob(data.test))
    assert logp.shape == (length(data.test),), (
        f"log_prob must give one value per item; got shape {logp.shape}"
    )
    assert not np.any(np.isnan(logp)), "log_prob must not be NaN"
    model.clone().fit(a, rng=np.random.default_rng(2))  # a model can train on its own output
    for name in sorted(type(model).provides):
        assert callable(getattr(model, name, None)), (
            f"the model declares it provides {name!r} but has no such method"
        )
    _check_decoding(model, a)
    if type(model).batched_class is not None:
        check_batched(model_id, params)


#: A value away from the default for each decoding control, which must change samples.
_DECODING_PROBES: dict[str, Any] = {"temperature": 0.3, "top_k": 1, "top_p": 0.3, "bias": 0.3}
#: Beam search replaces sampling: probed against the plain sample.
_BEAM_PROBES: dict[str, dict[str, Any]] = {"beams": {"beams": 3}}
#: Controls whose effect a generic example cannot force (a length penalty acts only
#: where beams end at different lengths): run here, their effect tested by the model's
#: own tests (tests/test_beam_search.py for gpt and hf-causal-lm).
_RUN_ONLY: dict[str, dict[str, Any]] = {"length_penalty": {"beams": 3, "length_penalty": 2.0}}


def _check_decoding(model: Any, plain: Any) -> None:
    """Each declared decoding control changes what ``sample`` draws: ``plain`` is the
    model's sample with ``default_rng(7)`` and no decoding."""
    from ..decoding import Decoding

    n = length(plain)

    def draw(**controls: Any) -> Any:
        decoded = model.sample(n, rng=np.random.default_rng(7), decoding=Decoding(**controls))
        assert length(decoded) == n, f"sample with {controls} must still return n items"
        return decoded

    for control in sorted(type(model).decoding_controls):
        if control in _RUN_ONLY:
            draw(**_RUN_ONLY[control])
            continue
        if control in _BEAM_PROBES:
            changed = not _same(draw(**_BEAM_PROBES[control]), plain)
        else:
            changed = not _same(draw(**{control: _DECODING_PROBES[control]}), plain)
        assert changed, (
            f"the model declares the decoding control {control!r} but sampling ignores it"
        )


def check_batched(
    model_id: str, params: dict[str, Any] | None = None, seeds: int = 3, n: int = 2000
) -> None:
    """The batched class of ``model_id`` computes what the per-seed model computes.

    Every seed trains on its own example data with the streams the runner gives it (the
    per-seed path's stream of seed ``s``, the batched path's ``BATCH`` stream): each
    seed's fitted model (``unbatch``) scores held-out data as the per-seed fit does, up
    to rounding. Samples are identical where both paths draw the same numbers, and
    otherwise equal in distribution: the mean log-likelihood of batched and per-seed
    samples under the per-seed model agree within 5 standard errors.
    """
    from ..chain import batch_train  # the batched path's own stacking of the seeds' data
    from ..rng import BATCH, stream

    if params is None:
        params = _conformance_params(model_id)
    model = registry.make("model", model_id, **params)
    batched_class = type(model).batched_class
    assert batched_class is not None, f"model {model_id!r} has no batched class"
    reals = [example_data(model.kind, seed=s) for s in range(seeds)]
    batched = batched_class(**model.get_params())
    assert isinstance(batched, BatchedModel), "a batched class must derive from BatchedModel"
    batched.fit(batch_train(reals), rng=stream(0, BATCH, 1, "fit"))
    output = batched.sample(n, rng=stream(0, BATCH, 1, "sample"))
    for s, real in enumerate(reals):
        alone = model.clone().fit(real.train, rng=stream(0, s, 1, "fit"))
        one = batched.unbatch(s)
        assert isinstance(one, type(model)), "unbatch must return the per-seed model"
        np.testing.assert_allclose(
            one.log_prob(real.test),
            alone.log_prob(real.test),
            rtol=1e-6,
            atol=1e-9,
            err_msg="a seed of the batched fit must score data as the per-seed fit does",
        )
        mine = _seed_part(output, s)
        theirs = alone.sample(n, rng=stream(0, s, 1, "sample"))
        assert length(mine) == n, "the batched sample must hold n items per seed"
        if _same(mine, theirs):
            continue
        a, b = np.asarray(alone.log_prob(mine)), np.asarray(alone.log_prob(theirs))
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) <= 5 * se + 1e-12, (
            "batched and per-seed samples must come from the same distribution: mean "
            f"log-likelihood {a.mean():.4g} against {b.mean():.4g} (s.e. {se:.2g})"
        )


def _seed_part(data: Any, seed: int) -> Any:
    if isinstance(data, tuple):
        return tuple(part.array[seed] for part in data)
    return data.array[seed]


def check_regime(regime_id: str, params: dict[str, Any] | None = None) -> None:
    """A regime follows the init/update protocol: deterministic given rng, its state
    carried from one update to the next, its inputs untouched, data of the input kind."""
    regime = registry.make("regime", regime_id, **(params or {}))
    assert isinstance(regime, Regime)
    check_parameters(regime)
    for kind in EXAMPLE_DATA:
        real = example_data(kind)
        outputs = [example_data(kind, seed=s).train for s in (1, 2, 3)]
        before = pickle.dumps((real.train, outputs))
        runs = []
        for _ in range(2):
            state = regime.init(real)
            steps = []
            for t, output in enumerate(outputs, start=1):
                step = regime.update(state, output, t, real=real, rng=np.random.default_rng(t))
                assert isinstance(step, Step), "update must return a Step"
                assert length(step.data) > 0, "a regime must return training data"
                assert type(step.data) is type(real.train), (
                    "a regime must return data of the same kind"
                )
                assert all(isinstance(v, float) for v in step.stats.values()), (
                    "a regime's statistics must be floats"
                )
                # the state must survive a checkpoint: resuming from its pickle gives the same
                state = pickle.loads(pickle.dumps(step.state))
                steps.append(step)
            runs.append(steps)
        assert pickle.dumps((real.train, outputs)) == before, "a regime must not modify its inputs"
        for a, b in zip(*runs, strict=True):
            assert _same((a.data, a.state, a.stats), (b.data, b.state, b.stats)), (
                "a regime must be deterministic given rng"
            )
        if type(regime).batched and kind in (DataKind.CONTINUOUS, DataKind.TOKENS):
            _check_regime_batched(regime, real, outputs)


def _check_regime_batched(regime: Regime, real: RealData, outputs: list[Any]) -> None:
    """A regime that declares ``batched`` works on SeedBatch data, one row per seed."""
    batch = RealData(
        train=SeedBatch(np.stack([np.asarray(real.train)] * 2)), test=None, kind=real.kind
    )
    state = regime.init(batch)
    for t, output in enumerate(outputs, start=1):
        step = regime.update(
            state, SeedBatch(np.stack([output] * 2)), t, real=batch, rng=np.random.default_rng(t)
        )
        assert isinstance(step.data, SeedBatch | Moments) and _n_seeds(step.data) == 2, (
            "a batched regime must return data of every seed"
        )
        state = step.state


def _n_seeds(data: Any) -> int:
    return data.n_seeds if isinstance(data, SeedBatch) else int(np.shape(data.mean)[0])


def check_curator(curator_id: str, params: dict[str, Any] | None = None, n: int = 60) -> None:
    """A curator returns a :class:`Curated` of its input, deterministic given rng.

    It is given the output of a small fitted model of each kind it applies to, with a
    mixed provenance (as in a web scrape), against example data and, for continuous
    data, a known ground truth. A curator that needs what an example lacks (a task's
    verifier, a true density) must say so with a :class:`ConfigError`; it must judge
    at least one example.
    """
    curator = registry.make("curator", curator_id, **(params or {}))
    assert isinstance(curator, Curator)
    check_parameters(curator)
    judged = 0
    for kind in sorted(curator.applies_to):
        if kind not in EXAMPLE_DATA:
            continue
        examples = [example_data(kind)]
        if kind == DataKind.CONTINUOUS:  # a ground truth: true densities, fresh draws
            examples.append(registry.make("data", "gaussian", dim=2).load(n=n, rng=_rng(0)))
        for real in examples:
            model = _small_model(_model_for(kind))
            model.fit(real.train, rng=_rng(0))
            items = model.sample(n, rng=_rng(1))
            provenance = np.arange(n) % 3 > 0  # a third of the items are human
            before = pickle.dumps((items, provenance))
            results = []
            for _ in range(2):
                try:
                    results.append(
                        curator(
                            items,
                            reference=real,
                            rng=_rng(2),
                            provenance=provenance,
                            model=model,
                            model_0=model,
                        )
                    )
                except ConfigError:
                    break  # needs a source this example lacks, and says so
            if not results:
                continue
            judged += 1
            a, b = results
            assert isinstance(a, Curated), "a curator must return a Curated"
            assert pickle.dumps((items, provenance)) == before, (
                "a curator must not modify its input"
            )
            assert _same((a.index, a.kept, a.stats), (b.index, b.kept, b.stats)), (
                "a curator must be deterministic given rng"
            )
            assert a.total == n, "Curated.total must be the number of items given"
            index = np.asarray(a.index)
            assert np.all(np.diff(index) > 0) and (
                len(index) == 0 or 0 <= index[0] <= index[-1] < n
            ), "Curated.index must list input positions in increasing order"
            if type(curator).edits:  # a corrector returns the kept items, edited
                assert length(a.kept) == len(index), "Curated.kept must hold one item per index"
                assert type(a.kept) is type(items), "an edited item must keep its data kind"
            else:
                assert _same(a.kept, take(items, index)), "Curated.kept must be the items at index"
            assert all(isinstance(v, float | int) for v in a.stats.values()), (
                "a curator's statistics must be numbers"
            )
            assert "kept_fraction" not in a.stats, (
                "kept_fraction is Curated's (computed once by curate), not a curator statistic"
            )
    assert judged, f"curator {curator_id!r} judged none of the example data"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_metric(metric_id: str, params: dict[str, Any] | None = None) -> None:
    """A metric returns a float (never NaN on healthy data), deterministic given rng."""
    metric = registry.make("metric", metric_id, **(params or {}))
    assert isinstance(metric, Metric)
    check_parameters(metric)
    if metric.direction != Direction.NEUTRAL:
        assert metric.label, "a metric that declares a direction must have a label"
    for kind in metric.applies_to:
        if kind not in EXAMPLE_DATA:
            continue
        # a metric that needs a particular source (a task with a verifier) brings its own example
        real = type(metric).example() or example_data(kind)
        model = _small_model(_model_for(kind, metric.requires))
        model.fit(real.train, rng=np.random.default_rng(0))
        output = model.sample(length(real.train), rng=np.random.default_rng(1))
        # generation 0's model is the model itself here (as at generation 0 of a chain)
        extra = {"model_0": model} if metric.uses_model_0 else {}
        v1 = metric(model, output, real, rng=np.random.default_rng(2), **extra)
        v2 = metric(model, output, real, rng=np.random.default_rng(2), **extra)
        assert isinstance(v1, float), f"a metric must return a float; got {type(v1).__name__}"
        assert not np.isnan(v1), "a metric must not be NaN on healthy data"
        assert _same(v1, v2), "a metric must be deterministic given rng"
        if metric.share:
            assert 0.0 <= v1 <= 1.0, f"a metric declared a share must lie in [0, 1]; got {v1}"
        if metric.per_item:
            items = metric.item_values(model, output, real, rng=np.random.default_rng(2), **extra)
            assert np.ndim(items) == 1, "item_values must return one value per item"
            assert len(items) == length(output), "item_values must return one value per item"
            assert _same(float(metric.summarize(np.asarray(items, float))), v1), (
                "a per-item metric's value must be summarize(item_values(...))"
            )


def _model_for(kind: DataKind, requires: tuple[str, ...] = ()) -> str:
    """A model of ``kind`` that provides ``requires``; by its declarations alone (building
    one may write fixture files), and one without an optional extra where there is one:
    neural models are slow and may need optional packages."""
    fitting = [
        i
        for i in registry.list_ids("model")
        if _model_class(i).kind == kind and not _model_class(i).lacks(requires)
    ]
    assert fitting, f"no registered model of kind {kind} provides {list(requires)}"
    return sorted(fitting, key=lambda i: _model_class(i).extra is not None)[0]


def _model_class(model_id: str) -> type[GenerativeModel]:
    cls = registry.get("model", model_id)
    assert isinstance(cls, type) and issubclass(cls, GenerativeModel), (
        f"model {model_id!r} must be registered as a GenerativeModel subclass"
    )
    return cls


def _conformance_params(model_id: str) -> dict[str, Any]:
    # A model that needs files (a local pretrained network) writes them in its
    # conformance_example(), which returns the parameters.
    return _model_class(model_id).conformance_example()


def _small_model(model_id: str) -> Any:
    return registry.make("model", model_id, **_conformance_params(model_id))


def check_data(data_id: str, params: dict[str, Any] | None = None) -> None:
    """A data source gives non-empty train and test splits, deterministic given rng, and
    ``load_seeds`` (the batched chain's loader) gives each seed what ``load`` gives it."""
    source = registry.make("data", data_id, **(params or {}))
    check_parameters(source)
    a = source.load(n=30, rng=np.random.default_rng(0))
    b = source.load(n=30, rng=np.random.default_rng(0))
    assert isinstance(a, RealData)
    assert a.kind == source.kind
    assert length(a.train) > 0 and length(a.test) > 0, "train and test must be non-empty"
    assert _same((a.train, a.test), (b.train, b.test)), "load must be deterministic given rng"
    seeds = source.load_seeds(n=30, rngs=[np.random.default_rng(s) for s in (0, 1)])
    for seed, real in enumerate(seeds):
        alone = source.load(n=30, rng=np.random.default_rng(seed))
        assert _same((real.train, real.test), (alone.train, alone.test)), (
            "load_seeds must give each seed what load gives it (override both or neither)"
        )
    if source.can_draw:
        assert length(source.draw(5, rng=np.random.default_rng(0))) == 5


# ---------------------------------------------------------------------------
# A pytest parametrization for plugin authors (as scikit-learn's parametrize_with_checks)
# ---------------------------------------------------------------------------

#: The registry kind of each contract, and the checks of a component of that kind
#: (each called with the component's registry id and parameters).
_CHECKS: tuple[tuple[type[Component], str, tuple[Callable[..., None], ...]], ...] = (
    (GenerativeModel, "model", (check_model,)),
    (DataSource, "data", (check_data,)),
    (Regime, "regime", (check_regime,)),
    (Curator, "curator", (check_curator,)),
    (Metric, "metric", (check_metric,)),
)


@dataclass(frozen=True)
class Check:
    """One conformance check bound to a component's kind: ``check(component)`` runs it
    on the component's registry id and parameters (``None`` for a class: its
    conformance example or defaults)."""

    function: Callable[..., None]
    kind: str

    @property
    def name(self) -> str:
        """The check's function name (``check_model``)."""
        return self.function.__name__

    def __call__(self, component: Component | type[Component]) -> None:
        if isinstance(component, type):
            if self.function is check_parameters:
                check_parameters(component())
            else:
                self.function(component.registry_id, None)
        elif self.function is check_parameters:
            check_parameters(component)
        else:
            self.function(type(component).registry_id, component.get_params())

    def __repr__(self) -> str:
        return self.name


def _kind_and_checks(component: Any) -> tuple[str, tuple[Callable[..., None], ...]]:
    cls = component if isinstance(component, type) else type(component)
    for base, kind, checks in _CHECKS:
        if isinstance(cls, type) and issubclass(cls, base):
            registered = registry.get(kind, cls.registry_id) if cls.registry_id else None
            if registered is not cls:
                raise ConfigError(
                    f"{cls.__name__} is not registered under its own id; decorate it with "
                    f'@collapselab.register("{kind}", "my-id") before checking it'
                )
            return kind, checks
    raise ConfigError(
        f"{component!r} is not a component: a model, data source, regime, curator or metric "
        "(a subclass of its base class in collapselab.core)"
    )


def conformance_checks(
    component: Component | type[Component],
) -> Iterator[tuple[Component | type[Component], Check]]:
    """Every ``(component, check)`` pair of one component: :func:`check_parameters`, then
    the checks of its kind (:func:`check_model`, which runs :func:`check_batched` for a
    model with a batched class; :func:`check_data`, :func:`check_regime`,
    :func:`check_curator` or :func:`check_metric`)."""
    kind, checks = _kind_and_checks(component)
    for function in (check_parameters, *checks):
        yield component, Check(function, kind)


def parametrize_with_checks(components: Sequence[Component | type[Component]]) -> Any:
    """A ``pytest.mark.parametrize`` of every conformance check of every component.

    As scikit-learn's ``parametrize_with_checks``: each test case is one
    ``(component, check)`` pair, named ``Component(params)-check_name``, so a broken
    rule fails one named case. A component is an instance (checked with its
    parameters) or a class (checked with its conformance example or defaults), and
    must be registered (:func:`collapselab.register`): the checks build it by id, as a
    config does.

    Parameters
    ----------
    components : list of components or component classes

    Returns
    -------
    pytest.MarkDecorator
        Parametrizes the arguments ``component`` and ``check``.

    Raises
    ------
    ConfigError
        If an entry is not a component, or not registered under its own id.

    Examples
    --------
    >>> from collapselab.testing import parametrize_with_checks
    >>> @parametrize_with_checks([MyModel(scale=2.0)])  # doctest: +SKIP
    ... def test_conforms(component, check):
    ...     check(component)
    """
    import pytest

    pairs = [pair for component in components for pair in conformance_checks(component)]
    ids = [f"{_component_id(c)}-{check.name}" for c, check in pairs]
    return pytest.mark.parametrize(("component", "check"), pairs, ids=ids)


def _component_id(component: Component | type[Component]) -> str:
    return component.__name__ if isinstance(component, type) else repr(component)


__all__ = [
    "EXAMPLE_DATA",
    "Check",
    "check_batched",
    "check_curator",
    "check_data",
    "check_metric",
    "check_model",
    "check_parameters",
    "check_regime",
    "conformance_checks",
    "example_data",
    "parametrize_with_checks",
]
