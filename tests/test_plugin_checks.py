"""``collapselab.testing.parametrize_with_checks`` on a toy plugin model defined here, as
a plugin author would use it, and on a broken one whose failure names the rule."""

from typing import ClassVar

import numpy as np
import pytest

from collapselab import make, register
from collapselab.core import DataKind, DataSource, GenerativeModel, Interval, RealData
from collapselab.errors import ConfigError
from collapselab.testing import (
    Check,
    check_metric,
    check_parameters,
    conformance_checks,
    parametrize_with_checks,
)


@register("model", "test-plugin-box")
class Box(GenerativeModel):
    """Uniform on the bounding box of the training data, widened by ``margin``."""

    kind = DataKind.CONTINUOUS
    parameter_constraints: ClassVar = {"margin": [Interval(0, None)]}

    def __init__(self, *, margin: float = 0.0) -> None:
        self.margin = margin

    def fit(self, data, *, rng):
        x = np.asarray(data, dtype=float)
        self.low_ = x.min(axis=0) - self.margin
        self.high_ = x.max(axis=0) + self.margin
        return self

    def sample(self, n, *, rng, decoding=None):
        return rng.uniform(self.low_, self.high_, size=(n, len(self.low_)))

    def log_prob(self, data):
        x = np.asarray(data, dtype=float)
        inside = np.all((x >= self.low_) & (x <= self.high_), axis=1)
        return np.where(inside, -np.log(self.high_ - self.low_).sum(), -np.inf)


@register("model", "test-plugin-broken-box")
class BrokenBox(Box):
    """A box whose ``fit`` forgets to return ``self``."""

    def fit(self, data, *, rng):
        super().fit(data, rng=rng)


@register("data", "test-plugin-drifting-source")
class DriftingSource(DataSource):
    """Normal data whose batched ``load_seeds`` forgets to use each seed's own stream."""

    kind = DataKind.CONTINUOUS

    def load(self, *, n, rng):
        x = rng.normal(size=(2 * n, 1))
        return RealData(train=x[:n], test=x[n:], kind=self.kind, source=self)

    def load_seeds(self, *, n, rngs):
        shared = np.random.default_rng(0)
        return [self.load(n=n, rng=shared) for _ in rngs]


class Unregistered(Box):
    """Inherits Box's registry id without being registered under it."""


@parametrize_with_checks([Box(margin=0.1), Box, make("metric", "variance")])
def test_plugin_conforms(component, check):
    check(component)


def test_each_component_gets_its_kinds_checks_with_readable_ids():
    replace = make("regime", "replace")
    mark = parametrize_with_checks([Box(margin=0.1), replace])
    names, pairs = mark.args
    assert names == ("component", "check")
    assert [check.name for _, check in pairs] == [
        "check_parameters",
        "check_model",
        "check_parameters",
        "check_regime",
    ]
    assert mark.kwargs["ids"] == [
        "Box(margin=0.1)-check_parameters",
        "Box(margin=0.1)-check_model",
        f"{replace!r}-check_parameters",
        f"{replace!r}-check_regime",
    ]


def test_a_check_gets_the_registry_id_and_the_instances_parameters():
    calls = []
    check = Check(lambda *args: calls.append(args), "model")
    check(Box(margin=0.25))
    check(Box)  # a class: its conformance example or defaults
    assert calls == [("test-plugin-box", {"margin": 0.25}), ("test-plugin-box", None)]
    assert [c.function for _, c in conformance_checks(make("metric", "variance"))] == [
        check_parameters,
        check_metric,
    ]


def test_a_broken_plugin_fails_naming_the_rule():
    pairs = list(conformance_checks(BrokenBox()))
    component, check = pairs[1]
    with pytest.raises(AssertionError, match="fit must return self"):
        check(component)
    parameters_component, parameters = pairs[0]
    parameters(parameters_component)  # its parameters are fine


def test_a_source_whose_batched_load_differs_fails_naming_the_rule():
    pairs = list(conformance_checks(DriftingSource()))
    component, check = pairs[1]
    with pytest.raises(AssertionError, match="load_seeds must give each seed what load"):
        check(component)


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (Unregistered(), "Unregistered is not registered under its own id"),
        (object(), "is not a component"),
        ("test-plugin-box", "is not a component"),
    ],
)
def test_what_cannot_be_checked_is_one_line_error(component, message):
    with pytest.raises(ConfigError, match=message):
        parametrize_with_checks([component])
