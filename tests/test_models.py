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


@pytest.mark.parametrize("collapsed", [False, True])
def test_batched_gaussian_samples_every_seed_from_its_own_fit(collapsed):
    # Cholesky factors sample every seed; a collapsed (singular) seed falls back to
    # the PSD root, and every seed's sample still has its model's moments.
    rng = np.random.default_rng(8)
    d = 3
    data = rng.normal(size=(3, 40, d)) * np.array([1.0, 2.0, 0.5])
    if collapsed:
        data[1] = 5.0  # one seed's fit has covariance 0
    batch = BatchedGaussian().fit(SeedBatch(data), rng=rng)
    sample = batch.sample(100_000, rng=rng).array
    for s in range(3):
        np.testing.assert_allclose(sample[s].mean(axis=0), batch.mean_[s], atol=0.03)
        # 100k draws: a variance's standard error is sqrt(2/n) = 0.45% of it; 3% is 6 of them
        cov = np.cov(sample[s], rowvar=False)
        np.testing.assert_allclose(cov, batch.cov_[s], rtol=0.03, atol=0.02)
    if collapsed:
        np.testing.assert_array_equal(sample[1], np.full((100_000, d), 5.0))


def test_batched_moments_match_per_seed_moments_in_several_dimensions():
    from collapselab.stats import Moments

    x = np.random.default_rng(9).normal(size=(5, 30, 4))
    pooled = Moments.of(SeedBatch(x))
    for s in range(5):
        alone = Moments.of(x[s])
        np.testing.assert_allclose(pooled.mean[s], alone.mean, rtol=1e-13)
        np.testing.assert_allclose(pooled.scatter[s], alone.scatter, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [1.0, 1.3])
def test_batched_gaussian_sample_carries_the_moments_of_its_values(bias):
    # In d > 1 a sample is drawn seed block by seed block, with its moments computed
    # from the standard normals: the values are those of one draw of every seed's
    # normals at once, and the moments are the values' own up to rounding.
    from collapselab.stats import DrawnBatch, Moments

    rng = np.random.default_rng(10)
    s, n, d = 70, 500, 3  # 70 seeds of 500 x 3: more than one block
    batch = BatchedGaussian().fit(SeedBatch(rng.normal(size=(s, 40, d)) * [1.0, 2.0, 0.5]), rng=rng)
    sample = batch.sample(n, rng=np.random.default_rng(11), decoding={"bias": bias})
    assert isinstance(sample, DrawnBatch)
    z = np.random.default_rng(11).standard_normal((s, n, d)) * bias
    root = np.linalg.cholesky(batch.cov_)
    expected = z @ np.swapaxes(root, 1, 2) + batch.mean_[:, None, :]
    np.testing.assert_array_equal(sample.array, expected)
    assert not sample.array.flags.writeable  # the values cannot drift from the moments
    carried = Moments.of(sample)
    direct = Moments.of(SeedBatch(np.array(sample.array)))
    assert carried.count == n
    np.testing.assert_allclose(carried.mean, direct.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(carried.scatter, direct.scatter, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(carried.scatter, np.swapaxes(carried.scatter, 1, 2))


def test_batched_gaussian_moments_keep_a_spread_far_below_the_mean():
    # A chain collapsed to a spread of 1e-10 around a mean of 1e6: the values are
    # rounded at the mean's scale (spacing 1.2e-10), but the carried scatter is
    # computed from the normals and keeps the model's covariance.
    model = BatchedGaussian()
    model.mean_ = np.full((2, 2), 1e6)
    model.cov_ = np.broadcast_to(np.eye(2) * 1e-20, (2, 2, 2)).copy()
    model.n_features_in_ = 2
    n = 4000
    refit = BatchedGaussian().fit(
        model.sample(n, rng=np.random.default_rng(12)), rng=np.random.default_rng(0)
    )
    variances = np.diagonal(refit.cov_, axis1=1, axis2=2)
    # each is 1e-20 chi^2(n - 1) / n: within 5 standard errors (sqrt(2 / n) = 2.2%)
    np.testing.assert_allclose(variances, 1e-20, rtol=5 * np.sqrt(2 / n))
