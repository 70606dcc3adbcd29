"""The collapsed state at a generation and the absorbing state: a chain that keeps real
data can fall below the threshold and recover, and only ``ever_collapsed`` remembers."""

import numpy as np
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed
from collapselab.core import DataKind, RealData
from collapselab.metrics.continuous import EverCollapsed, first_passage
from collapselab.models.gaussian import Gaussian

REAL = RealData(
    train=np.random.default_rng(0).normal(size=(200, 1)),
    test=np.zeros((5, 1)),
    kind=DataKind.CONTINUOUS,
    truth={"mean": np.zeros(1), "cov": np.eye(1)},
)


def _model(std: float) -> Gaussian:
    x = np.array([[-std], [std]])  # MLE variance std^2
    return Gaussian().fit(x, rng=np.random.default_rng(0))


def test_state_now_and_its_alias():
    rng = np.random.default_rng(0)
    for metric_id in ("collapsed_now", "ever_collapsed", "collapsed"):
        metric = make("metric", metric_id, tolerance=0.1)
        assert metric(_model(0.1), None, REAL, rng=rng) == 1.0  # 0.01 < 0.1 * 1
        assert metric(_model(1.0), None, REAL, rng=rng) == 0.0
    assert not make("metric", "collapsed_now").absorbing
    assert make("metric", "ever_collapsed").absorbing
    # `collapsed` keeps its meaning (and its results): the absorbing state.
    assert isinstance(make("metric", "collapsed"), EverCollapsed)


def test_first_passage():
    series = np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=float)
    np.testing.assert_array_equal(first_passage(series), [2, np.nan, 0])


def _spec(generations: int = 60) -> ChainSpec:
    # phase-gaussian's recovering corner: n = 20 with 20% of the real data kept
    return ChainSpec(
        data=make("data", "gaussian"),
        model=make("model", "gaussian"),
        regime=make("regime", "fresh", real_fraction=0.2, source="fixed"),
        metrics={
            name: make("metric", name, tolerance=0.1)
            for name in ("collapsed_now", "ever_collapsed", "collapsed")
        },
        samples_per_generation=20,
        generations=generations,
        real_samples=20,
    )


@pytest.mark.parametrize("path", ["batched", "per-seed"])
def test_a_recovering_chain_is_collapsed_once_but_not_now(path):
    spec = _spec()
    if path == "batched":
        values = {k: np.stack(v, axis=1) for k, v in run_batched(spec, 40).values.items()}
    else:
        seeds = [run_seed(spec, s).values for s in range(40)]
        values = {k: np.array([v[k] for v in seeds]) for k in seeds[0]}
    now, ever = values["collapsed_now"], values["ever_collapsed"]
    np.testing.assert_array_equal(values["collapsed"], ever)
    # ever is the running maximum of now
    np.testing.assert_array_equal(ever, np.maximum.accumulate(now, axis=1))
    recovered = (ever[:, -1] == 1) & (now[:, -1] == 0)
    assert recovered.sum() >= 3, "some seeds fall below the threshold and come back"
    assert ever[:, -1].mean() > now[:, -1].mean()
    onset = first_passage(ever)
    np.testing.assert_array_equal(onset, first_passage(now))
    assert np.all(np.isnan(onset) == (ever[:, -1] == 0))
