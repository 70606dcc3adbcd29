import pytest

import collapselab
from collapselab import registry
from collapselab.errors import ConfigError, InvalidParameterError, UnknownIdError


def test_builtin_ids_registered():
    assert {"gaussian", "gmm", "kde"} <= set(collapselab.list_ids("model"))
    assert {"replace", "accumulate", "accumulate-subsample", "fresh"} <= set(
        collapselab.list_ids("regime")
    )
    assert {
        "gaussian",
        "moons",
        "circles",
        "blobs",
        "swiss_roll",
        "iris",
        "wine",
        "breast_cancer",
    } <= set(collapselab.list_ids("data"))


def test_unknown_id_suggests_nearest():
    with pytest.raises(UnknownIdError) as info:
        collapselab.make("model", "gausian")
    message = str(info.value)
    assert "Did you mean 'gaussian'?" in message
    assert "\n" not in message


def test_unknown_parameter_suggests_nearest():
    with pytest.raises(ConfigError, match="Did you mean 'bandwidth'"):
        collapselab.make("model", "kde", bandwith=0.3)


def test_parameter_constraint_message_template():
    with pytest.raises(InvalidParameterError) as info:
        collapselab.make("model", "kde", bandwidth=0)
    assert str(info.value).startswith("The 'bandwidth' parameter of KDE must be a float > 0")
    assert str(info.value).endswith("Got 0 instead.")
    with pytest.raises(InvalidParameterError, match="'n_components' parameter of GMM"):
        collapselab.make("model", "gmm", n_components=1.5)
    with pytest.raises(InvalidParameterError, match="'unbiased'"):
        collapselab.make("model", "gaussian", unbiased="yes")


def test_register_and_plugin_entry_point(monkeypatch):
    from collapselab.core import Regime, Step

    calls = []

    def plugin():
        calls.append(1)

        @registry.register("regime", "test-plugin-regime")
        class Plugin(Regime):
            def update(self, state, output, generation, *, real, rng):
                return Step(output, state)

    class EntryPoint:
        def load(self):
            return plugin

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [EntryPoint()] if group == "collapselab.plugins" else [],
    )
    try:
        assert "test-plugin-regime" in registry.list_ids("regime")
        assert calls == [1]
    finally:
        registry._REGISTRY["regime"].pop("test-plugin-regime", None)


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):

        @registry.register("model", "gaussian")
        class Other:
            pass


def test_an_array_parameter_is_refused_in_one_line_not_a_numpy_error():
    # Options compared ``value == option`` before the types: for an array that is an
    # array, and ``and`` raised numpy's "truth value of an array is ambiguous".
    import numpy as np

    with pytest.raises(InvalidParameterError, match="'cov' parameter of GaussianTruth"):
        collapselab.make("data", "gaussian", dim=2, cov=np.eye(2))
    with pytest.raises(InvalidParameterError, match="'mean' parameter of GaussianTruth"):
        collapselab.make("data", "gaussian", dim=2, mean=np.zeros(2))
