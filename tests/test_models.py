import numpy as np
import pytest

from collapselab.core import SeedBatch
from collapselab.models import GMM, KDE, BatchedGaussian, Gaussian


def test_gaussian_mle_and_unbiased():
    x = np.array([[0.0], [1.0], [2.0], [5.0]])
    m = Gaussian().fit(x, rng=np.random.default_rng(0))
    assert m.mean_[0] == pytest.approx(2.0)
    assert m.cov_[0, 0] == pytest.approx(np.var(x, ddof=0))
    u = Gaussian(unbiased=True).fit(x, rng=np.random.default_rng(0))
    assert u.cov_[0, 0] == pytest.approx(np.var(x, ddof=1))


def test_gaussian_log_prob_matches_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0, 0, 0.5]])
    m = Gaussian().fit(x, rng=rng)
    np.testing.assert_allclose(
        m.log_prob(x[:10]), multivariate_normal(m.mean_, m.cov_).logpdf(x[:10])
    )


def test_gaussian_samples_have_fitted_moments():
    rng = np.random.default_rng(2)
    m = Gaussian().fit(rng.normal([1, -2], [1, 3], size=(500, 2)), rng=rng)
    s = m.sample(200_000, rng=rng)
    np.testing.assert_allclose(s.mean(0), m.mean_, atol=0.03)
    np.testing.assert_allclose(np.cov(s, rowvar=False), m.cov_, rtol=0.02, atol=0.02)


def test_collapsed_gaussian_is_a_state_not_a_crash():
    m = Gaussian().fit(np.full((10, 1), 3.0), rng=np.random.default_rng(0))
    assert m.cov_[0, 0] == 0
    np.testing.assert_array_equal(m.sample(5, rng=np.random.default_rng(0)), np.full((5, 1), 3.0))
    logp = m.log_prob(np.array([[3.0], [3.5]]))
    assert logp[0] == np.inf and logp[1] == -np.inf


def test_batched_gaussian_unbatch_matches_per_seed_fit():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4, 50, 2))
    batch = BatchedGaussian().fit(SeedBatch(data), rng=rng)
    for s in range(4):
        single = Gaussian().fit(data[s], rng=rng)
        np.testing.assert_allclose(batch.unbatch(s).mean_, single.mean_)
        np.testing.assert_allclose(batch.unbatch(s).cov_, single.cov_)


def test_gmm_moments_match_samples():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(-3, 1, size=(300, 1)), rng.normal(3, 0.5, size=(300, 1))])
    m = GMM(n_components=2).fit(x, rng=rng)
    mean, cov = m.moments()
    s = m.sample(200_000, rng=rng)
    assert s.mean() == pytest.approx(mean[0], abs=0.03)
    assert s.var() == pytest.approx(cov[0, 0], rel=0.02)
    # the marginal CDF is the mixture's
    grid = np.array([[-3.0], [0.0], [3.0]])
    np.testing.assert_allclose(
        m.marginal_cdf(grid)[:, 0], [(s[:, 0] <= g).mean() for g in grid[:, 0]], atol=0.01
    )


def test_kde_variance_adds_bandwidth_squared():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 1))
    m = KDE(bandwidth=0.5).fit(x, rng=rng)
    _, cov = m.moments()
    assert cov[0, 0] == pytest.approx(x.var() + 0.25)
    s = m.sample(200_000, rng=rng)
    assert s.var() == pytest.approx(cov[0, 0], rel=0.02)
    scott = KDE(bandwidth="scott").fit(x, rng=rng)
    assert scott.bandwidth_ == pytest.approx(400 ** (-1 / 5))
