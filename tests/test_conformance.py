"""Every registered component passes the public conformance checks."""

import pytest

from collapselab import list_ids as registered
from collapselab.errors import MissingDependencyError
from collapselab.testing import (
    check_curator,
    check_data,
    check_metric,
    check_model,
    check_regime,
)


def list_ids(kind):
    """The registered components of ``kind``, less the test plugins that
    tests/test_plugin_checks.py registers (some broken on purpose), whichever module
    pytest imports first."""
    return [i for i in registered(kind) if not i.startswith("test-plugin-")]


@pytest.mark.parametrize("model_id", list_ids("model"))
def test_model_conforms(model_id):
    try:
        check_model(model_id)
    except MissingDependencyError as exc:  # neural models without torch installed
        pytest.skip(str(exc))


@pytest.mark.parametrize("regime_id", list_ids("regime"))
def test_regime_conforms(regime_id):
    check_regime(regime_id)


@pytest.mark.parametrize("metric_id", list_ids("metric"))
def test_metric_conforms(metric_id):
    try:
        check_metric(metric_id)
    except MissingDependencyError as exc:  # image metrics need a neural model
        pytest.skip(str(exc))


@pytest.mark.parametrize("data_id", list_ids("data"))
def test_data_conforms(data_id):
    check_data(data_id)


@pytest.mark.parametrize("curator_id", list_ids("curator"))
def test_curator_conforms(curator_id):
    check_curator(curator_id)
