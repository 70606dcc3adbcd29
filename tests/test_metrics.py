import numpy as np
import pytest
from scipy.stats import norm, wasserstein_distance

from collapselab import list_ids, make
from collapselab.chain import ChainSpec, run_seed
from collapselab.core import DataKind, Metric, RealData, ReferenceBatch, SeedBatch
from collapselab.metrics.continuous import wasserstein_1d_rows
from collapselab.models import BatchedGaussian, Gaussian

CONTINUOUS_METRICS = [
    "variance",
    "log_variance",
    "mean_shift",
    "logdet_ratio",
    "nll_real",
    "wasserstein",
    "tail_mass",
    "collapsed",
]


def gaussian_reference(rng, n=2000, d=1, truth=True):
    train = rng.normal(size=(n, d))
    test = rng.normal(size=(n, d))
    facts = {"mean": np.zeros(d), "cov": np.eye(d)} if truth else {}
    return RealData(train=train, test=test, kind=DataKind.CONTINUOUS, truth=facts)


def fixed_gaussian(mean, var):
    m = Gaussian()
    m.mean_, m.cov_, m.n_features_in_ = (
        np.atleast_1d(mean).astype(float),
        np.atleast_2d(var).astype(float),
        1,
    )
    return m


def test_spread_and_shift_metrics_exact():
    rng = np.random.default_rng(0)
    ref = gaussian_reference(rng)
    m = fixed_gaussian(0.5, 0.25)
    assert make("metric", "variance")(m, None, ref, rng=rng) == pytest.approx(0.25)
    assert make("metric", "log_variance")(m, None, ref, rng=rng) == pytest.approx(np.log(0.25))
    assert make("metric", "mean_shift")(m, None, ref, rng=rng) == pytest.approx(0.25)
    assert make("metric", "logdet_ratio")(m, None, ref, rng=rng) == pytest.approx(np.log(0.25))
    expected_nll = -np.mean(norm(0.5, 0.5).logpdf(ref.test[:, 0]))
    assert make("metric", "nll_real")(m, None, ref, rng=rng) == pytest.approx(expected_nll)


def test_wasserstein_rows_match_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 37)), rng.exponential(size=(4, 101))
    np.testing.assert_allclose(
        wasserstein_1d_rows(x, y), [wasserstein_distance(a, b) for a, b in zip(x, y, strict=True)]
    )


def test_wasserstein_2d_exact_and_sliced():
    rng = np.random.default_rng(2)
    ref = gaussian_reference(rng, n=300, d=2)
    shifted = ref.test + np.array([2.0, 0.0])
    exact = make("metric", "wasserstein", method="exact")(None, shifted, ref, rng=rng)
    assert exact == pytest.approx(2.0)  # a pure translation moves every point by 2
    sliced = make("metric", "wasserstein", n_projections=4000)(None, shifted, ref, rng=rng)
    assert sliced == pytest.approx(2.0 * 2 / np.pi, rel=0.03)  # E|cos theta| = 2/pi


def test_tail_mass_is_one_for_the_truth_and_exact_for_a_narrow_model():
    rng = np.random.default_rng(3)
    ref = gaussian_reference(rng, n=50_000)
    metric = make("metric", "tail_mass")
    assert metric(fixed_gaussian(0, 1), None, ref, rng=rng) == pytest.approx(1.0, abs=0.03)
    lo, hi = np.quantile(np.concatenate([ref.train, ref.test]), [0.01, 0.99])
    expected = (norm.cdf(lo, scale=0.5) + norm.sf(hi, scale=0.5)) / 0.02
    assert metric(fixed_gaussian(0, 0.25), None, ref, rng=rng) == pytest.approx(expected, rel=0.02)
    assert metric(fixed_gaussian(0, 0.0), None, ref, rng=rng) == 0.0


def test_tail_mass_radius_mode_monte_carlo():
    rng = np.random.default_rng(4)
    ref = gaussian_reference(rng, n=20_000, d=3)
    model = Gaussian().fit(ref.train, rng=rng)
    value = make("metric", "tail_mass", n_mc=100_000)(model, None, ref, rng=rng)
    assert value == pytest.approx(1.0, abs=0.06)  # MC s.e. about 0.022


@pytest.mark.parametrize("metric_id", CONTINUOUS_METRICS)
def test_batched_metric_equals_per_seed(metric_id):
    rng = np.random.default_rng(5)
    refs = [gaussian_reference(rng, n=200) for _ in range(4)]
    data = SeedBatch(rng.normal(0, [[[0.5]], [[1.0]], [[1.5]], [[1e-9]]], size=(4, 40, 1)))
    model = BatchedGaussian().fit(data, rng=rng)
    output = model.sample(40, rng=rng)
    metric = make("metric", metric_id)
    batched = metric.batched(model, output, ReferenceBatch(refs), rng=rng)
    if batched is None:
        pytest.skip(f"{metric_id} has no batched form")
    single = [metric(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(4)]
    np.testing.assert_allclose(batched, single, rtol=1e-9)


def test_absorbing_metric_never_decreases_along_a_chain():
    class Flicker(Metric):
        absorbing = True

        def __init__(self) -> None:
            pass

        def __call__(self, model, synthetic, reference, *, rng):
            return float(rng.integers(0, 2))

    spec = ChainSpec(
        data=make("data", "gaussian"),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={"flicker": Flicker()},
        samples_per_generation=10,
        generations=30,
        real_samples=10,
    )
    values = run_seed(spec, 0).values["flicker"]
    assert values[-1] == 1 and np.all(np.diff(values) >= 0)


def test_every_continuous_metric_is_registered():
    assert set(CONTINUOUS_METRICS) <= set(list_ids("metric"))


def test_batched_metrics_in_two_dimensions_match_per_seed():
    rng = np.random.default_rng(6)
    refs = [gaussian_reference(rng, n=300, d=2) for _ in range(3)]
    data = SeedBatch(rng.normal(0, [[[0.5, 1.0]], [[1.0, 1.0]], [[1.5, 0.7]]], size=(3, 60, 2)))
    model = BatchedGaussian().fit(data, rng=rng)
    output = model.sample(60, rng=rng)
    sliced = make("metric", "wasserstein")
    batched = sliced.batched(model, output, ReferenceBatch(refs), rng=rng)
    single = [sliced(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-12)  # same fixed directions: exact
    marginal = make("metric", "tail_mass", mode="marginal")
    batched = marginal.batched(model, output, ReferenceBatch(refs), rng=rng)
    single = [marginal(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-9)
    nll = make("metric", "nll_real")
    batched = nll.batched(model, output, ReferenceBatch(refs), rng=rng)
    single = [nll(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-9)
    radius = make("metric", "tail_mass", n_mc=100_000)
    batched = radius.batched(model, output, ReferenceBatch(refs), rng=rng)
    single = np.array(
        [radius(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(3)]
    )
    # two Monte Carlo estimates of the same mass: each has s.e. sqrt(p(1-p)/n_mc) / real mass
    real_mass = np.array([r.cached("tail_bounds", radius._bounds)["radius_mass"] for r in refs])
    p = single * real_mass
    se = np.sqrt(2 * p * (1 - p) / 100_000) / real_mass
    assert np.all(np.abs(batched - single) < 4 * se + 1e-12)
