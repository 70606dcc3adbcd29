"""The held-out real test sample is drawn only when a metric reads it, and is the
sample an eager draw would have given (so results do not change)."""

import pickle

import numpy as np
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed
from collapselab.data.continuous import GaussianTruth
from collapselab.data.text import ZipfTruth, draw_categorical


@pytest.mark.parametrize(
    ("source", "eager"),
    [
        (
            make("data", "zipf", vocabulary=7, n_test=50),
            lambda s, rng: (
                draw_categorical(s.probs(), 20, rng),
                draw_categorical(s.probs(), 50, rng),
            ),
        ),
        (
            make("data", "gaussian", dim=2, n_test=30),
            lambda s, rng: (s.draw(20, rng=rng), s.draw(30, rng=rng)),
        ),
        (
            make("data", "moons", n_test=30),
            lambda s, rng: (s.draw(20, rng=rng), s.draw(30, rng=rng)),
        ),
    ],
)
def test_the_deferred_test_sample_is_the_eager_one(source, eager):
    train, test = eager(source, np.random.default_rng(4))
    real = source.load(n=20, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(real.train, train)
    np.testing.assert_array_equal(real.test, test)
    assert real.test is real.test  # drawn once, then kept
    again = pickle.loads(pickle.dumps(source.load(n=20, rng=np.random.default_rng(4))))
    np.testing.assert_array_equal(again.test, test)  # a process pool gets the same sample


class CountingZipf(ZipfTruth):
    """Counts the test samples it draws."""

    test_draws = 0

    def draw(self, n, *, rng):
        if n == self.n_test:
            type(self).test_draws += 1
        return super().draw(n, rng=rng)


class CountingGaussian(GaussianTruth):
    test_draws = 0

    def draw(self, n, *, rng):
        if n == self.n_test:
            type(self).test_draws += 1
        return super().draw(n, rng=rng)


def _spec(data, model, metrics):
    return ChainSpec(
        data=data,
        model=make("model", model),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in metrics},
        samples_per_generation=40,
        generations=3,
        real_samples=40,
    )


@pytest.mark.parametrize("batched", [True, False])
def test_a_chain_draws_test_samples_only_for_metrics_that_read_them(batched):
    def run(spec):
        if batched:
            return run_batched(spec, 4)
        return [run_seed(spec, s) for s in range(4)]

    CountingZipf.test_draws = CountingGaussian.test_draws = 0
    run(_spec(CountingZipf(vocabulary=2, n_test=333), "categorical", ["types", "entropy"]))
    run(_spec(CountingGaussian(n_test=333), "gaussian", ["variance"]))
    assert CountingZipf.test_draws == CountingGaussian.test_draws == 0
    run(_spec(CountingZipf(vocabulary=2, n_test=333), "categorical", ["coverage_real"]))
    run(_spec(CountingGaussian(n_test=333), "gaussian", ["nll_real"]))
    assert CountingZipf.test_draws == CountingGaussian.test_draws == 4  # once per seed
