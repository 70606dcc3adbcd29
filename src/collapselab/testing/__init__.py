"""Conformance checks every registered component must pass (like scikit-learn's
``check_estimator`` or Gymnasium's ``check_env``). Plugin authors can run them too::

    from collapselab.testing import check_model
    check_model("my-model")

Each check raises ``AssertionError`` with a message naming the broken rule.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import registry
from ..core import Assembled, Component, DataKind, Metric, RealData, Regime, length

#: Small example data per kind: ``EXAMPLE_DATA[kind](rng) -> RealData``. Modules that
#: add a data kind add an entry here so every check can run on it.
EXAMPLE_DATA: dict[DataKind, Callable[[np.random.Generator], RealData]] = {}


def _continuous(rng: np.random.Generator) -> RealData:
    train = rng.normal(size=(60, 2)) * [1.0, 2.0] + [0.5, -1.0]
    test = rng.normal(size=(40, 2)) * [1.0, 2.0] + [0.5, -1.0]
    return RealData(train=train, test=test, kind=DataKind.CONTINUOUS)


EXAMPLE_DATA[DataKind.CONTINUOUS] = _continuous


def example_data(kind: DataKind, seed: int = 0) -> RealData:
    if kind not in EXAMPLE_DATA:
        raise AssertionError(
            f"no example data for kind {kind}; add one to collapselab.testing.EXAMPLE_DATA"
        )
    return EXAMPLE_DATA[kind](np.random.default_rng(seed))


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

    Without ``params``, a model class's ``conformance_fixture()`` (a classmethod that
    writes the files the model needs, such as a tiny pretrained network, and returns
    parameters) or its ``conformance_params`` (small sizes for slow neural models) are
    used, else its defaults.
    """
    if params is None:
        params = _conformance_params(model_id)
    model = registry.make("model", model_id, **(params or {}))
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


def check_regime(regime_id: str, params: dict[str, Any] | None = None) -> None:
    """A regime is pure, deterministic given rng, and returns data of the input kind."""
    regime = registry.make("regime", regime_id, **(params or {}))
    assert isinstance(regime, Regime)
    check_parameters(regime)
    for kind in EXAMPLE_DATA:
        real = example_data(kind)
        history = [example_data(kind, seed=s).train for s in (1, 2, 3)]
        before = pickle.dumps((real.train, history))
        if type(regime).stateful:
            first = regime.assemble(real, history, 1, rng=np.random.default_rng(0), state=None)
            assert isinstance(first, Assembled), (
                "a stateful regime's assemble must return Assembled"
            )
            again = regime.assemble(real, history, 1, rng=np.random.default_rng(0), state=None)
            assert _same(first.state, again.state), (
                "a stateful regime must be deterministic given rng"
            )
            # the state it returned carries over to the next generation
            out1 = regime.assemble(
                real, history, 2, rng=np.random.default_rng(0), state=first.state
            ).data
            out2 = regime.assemble(
                real, history, 2, rng=np.random.default_rng(0), state=again.state
            ).data
        else:
            out1 = regime(real, history, 3, rng=np.random.default_rng(0))
            out2 = regime(real, history, 3, rng=np.random.default_rng(0))
        assert pickle.dumps((real.train, history)) == before, "a regime must not modify its inputs"
        assert _same(out1, out2), "a regime must be deterministic given rng"
        assert length(out1) > 0, "a regime must return training data"
        assert type(out1) is type(real.train), "a regime must return data of the same kind"


def check_metric(metric_id: str, params: dict[str, Any] | None = None) -> None:
    """A metric returns a float (never NaN on healthy data), deterministic given rng."""
    metric = registry.make("metric", metric_id, **(params or {}))
    assert isinstance(metric, Metric)
    check_parameters(metric)
    for kind in metric.applies_to:
        if kind not in EXAMPLE_DATA:
            continue
        # a metric that needs a particular source (a task with a verifier) brings its own example
        real = type(metric).example() if hasattr(type(metric), "example") else example_data(kind)
        model = next(
            m
            for m in (_small_model(i) for i in _cheap_first(registry.list_ids("model")))
            if m.kind == kind and _fits(metric, m)
        )
        model.fit(real.train, rng=np.random.default_rng(0))
        output = model.sample(length(real.train), rng=np.random.default_rng(1))
        # generation 0's model is the model itself here (as at generation 0 of a chain)
        extra = {"model_0": model} if metric.uses_model_0 else {}
        v1 = metric(model, output, real, rng=np.random.default_rng(2), **extra)
        v2 = metric(model, output, real, rng=np.random.default_rng(2), **extra)
        assert isinstance(v1, float), f"a metric must return a float; got {type(v1).__name__}"
        assert not np.isnan(v1), "a metric must not be NaN on healthy data"
        assert _same(v1, v2), "a metric must be deterministic given rng"
        if metric.per_item:
            items = metric.item_values(model, output, real, rng=np.random.default_rng(2), **extra)
            assert np.ndim(items) == 1, "item_values must return one value per item"
            assert len(items) == length(output), "item_values must return one value per item"
            assert _same(float(metric.summarize(np.asarray(items, float))), v1), (
                "a per-item metric's value must be summarize(item_values(...))"
            )


def _cheap_first(model_ids: list[str]) -> list[str]:
    # Models with conformance_params are slow (neural) and may need optional packages:
    # measure metrics with any other model that fits. (Every model has the attribute
    # now that the base declares it: an empty one is a cheap model.)
    return sorted(
        model_ids,
        key=lambda i: (
            bool(registry.get("model", i).conformance_params)
            or hasattr(registry.get("model", i), "conformance_fixture")
        ),
    )


def _conformance_params(model_id: str) -> dict[str, Any] | None:
    # A model that needs files (a local pretrained network) writes them in its
    # ``conformance_fixture()`` classmethod, which returns the parameters.
    cls = registry.get("model", model_id)
    fixture = getattr(cls, "conformance_fixture", None)
    if fixture is not None:
        return fixture()
    return getattr(cls, "conformance_params", None)


def _small_model(model_id: str) -> Any:
    params = _conformance_params(model_id)
    return registry.make("model", model_id, **(params or {}))


def _fits(metric: Metric, model: Any) -> bool:
    requires = getattr(metric, "requires", None)
    return requires is None or all(hasattr(model, attr) for attr in requires)


def check_data(data_id: str, params: dict[str, Any] | None = None) -> None:
    """A data source gives non-empty train and test splits, deterministic given rng."""
    source = registry.make("data", data_id, **(params or {}))
    check_parameters(source)
    a = source.load(n=30, rng=np.random.default_rng(0))
    b = source.load(n=30, rng=np.random.default_rng(0))
    assert isinstance(a, RealData)
    assert a.kind == source.kind
    assert length(a.train) > 0 and length(a.test) > 0, "train and test must be non-empty"
    assert _same((a.train, a.test), (b.train, b.test)), "load must be deterministic given rng"
    if source.can_draw:
        assert length(source.draw(5, rng=np.random.default_rng(0))) == 5


__all__ = [
    "EXAMPLE_DATA",
    "check_data",
    "check_metric",
    "check_model",
    "check_parameters",
    "check_regime",
    "example_data",
]
