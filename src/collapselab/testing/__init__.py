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
from ..core import Component, DataKind, Metric, RealData, Regime, SeedBatch, Step, length
from ..stats import Moments

#: Small example data per kind: ``EXAMPLE_DATA[kind](rng) -> RealData``. Modules that
#: add a data kind add an entry here so every check can run on it.
EXAMPLE_DATA: dict[DataKind, Callable[[np.random.Generator], RealData]] = {}


def _continuous(rng: np.random.Generator) -> RealData:
    train = rng.normal(size=(60, 2)) * [1.0, 2.0] + [0.5, -1.0]
    test = rng.normal(size=(40, 2)) * [1.0, 2.0] + [0.5, -1.0]
    return RealData(train=train, test=test, kind=DataKind.CONTINUOUS)


EXAMPLE_DATA[DataKind.CONTINUOUS] = _continuous


def example_data(kind: DataKind, seed: int = 0) -> RealData:
    from .. import data  # noqa: F401  (its modules add the example data of their kinds)

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


def check_metric(metric_id: str, params: dict[str, Any] | None = None) -> None:
    """A metric returns a float (never NaN on healthy data), deterministic given rng."""
    metric = registry.make("metric", metric_id, **(params or {}))
    assert isinstance(metric, Metric)
    check_parameters(metric)
    for kind in metric.applies_to:
        if kind not in EXAMPLE_DATA:
            continue
        # a metric that needs a particular source (a task with a verifier) brings its own example
        real = type(metric).example() or example_data(kind)
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
    # Models with an optional extra (neural) are slow and may need optional packages:
    # measure metrics with any other model that fits.
    return sorted(model_ids, key=lambda i: registry.get("model", i).extra is not None)


def _conformance_params(model_id: str) -> dict[str, Any]:
    # A model that needs files (a local pretrained network) writes them in its
    # conformance_example(), which returns the parameters.
    return registry.get("model", model_id).conformance_example()


def _small_model(model_id: str) -> Any:
    return registry.make("model", model_id, **_conformance_params(model_id))


def _fits(metric: Metric, model: Any) -> bool:
    return not type(model).lacks(metric.requires)


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
