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


def _counting_reads(monkeypatch):
    """Count the reads of :attr:`DrawnBatch.array` (the values formed from the normals)."""
    from collapselab.stats import DrawnBatch

    reads = []
    formed = DrawnBatch.array.fget
    monkeypatch.setattr(DrawnBatch, "array", property(lambda b: reads.append(1) or formed(b)))
    return reads


def test_a_drawn_batch_forms_its_values_only_when_read_and_keeps_them_across_a_pickle(
    monkeypatch,
):
    # Its size, its moments and the next fit need no values; read after a pickle (a
    # checkpoint) or a deep copy, they are those of z @ root^T + mean drawn at once.
    import copy
    import pickle

    from collapselab.core import length
    from collapselab.stats import Moments

    reads = _counting_reads(monkeypatch)
    rng = np.random.default_rng(13)
    s, n, d = 70, 500, 3  # more than one block of seeds
    batch = BatchedGaussian().fit(SeedBatch(rng.normal(size=(s, 40, d)) * [1.0, 2.0, 0.5]), rng=rng)
    sample = batch.sample(n, rng=np.random.default_rng(14))
    assert (length(sample), sample.n_seeds, Moments.of(sample).count) == (n, s, n)
    refit = BatchedGaussian().fit(sample, rng=rng)
    unread = [pickle.loads(pickle.dumps(sample)), copy.deepcopy(sample)]
    assert not reads
    z = np.random.default_rng(14).standard_normal((s, n, d))
    expected = z @ np.swapaxes(np.linalg.cholesky(batch.cov_), 1, 2) + batch.mean_[:, None, :]
    for values in (sample.array, sample.array, *(u.array for u in unread)):
        np.testing.assert_array_equal(values, expected)
        assert not values.flags.writeable
    assert sample.array is sample.array  # formed once
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(sample)).array, expected)
    np.testing.assert_allclose(refit.mean_, expected.mean(axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metrics", [["variance"], ["variance", "wasserstein"]])
def test_a_batched_chain_reads_the_samples_only_for_a_metric_that_does(monkeypatch, metrics):
    # replace + variance never forms the values; with wasserstein (which reads them) the
    # chain forms them each generation, and either chain resumed from a deep-copied
    # state (a checkpoint) at any generation equals the chain that ran through.
    import copy

    from collapselab import make
    from collapselab.chain import ChainSpec, run_batched

    reads = _counting_reads(monkeypatch)
    spec = ChainSpec(
        data=make("data", "gaussian", dim=3, n_test=30),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in metrics},
        samples_per_generation=25,
        generations=5,
        real_samples=25,
    )
    saved = {}
    whole = run_batched(
        spec, 8, on_generation=lambda st: saved.setdefault(st.generation, copy.deepcopy(st))
    )
    assert len(reads) == (0 if metrics == ["variance"] else spec.generations)
    for generation in (0, 2, 3):
        resumed = run_batched(spec, 8, copy.deepcopy(saved[generation]))
        for m in metrics:
            np.testing.assert_array_equal(np.stack(resumed.values[m]), np.stack(whole.values[m]))


def test_the_batched_variance_of_one_dimension_is_the_trace_bit_for_bit():
    # the 1-D shortcut gives trace's own sums, signed zeros and non-finite values included
    from collapselab import make

    model = BatchedGaussian()
    values = [-0.0, 0.0, np.nan, np.inf, 5e-324, 3.3, 1e300]
    model.mean_ = np.zeros((len(values), 1))
    model.cov_ = np.array(values).reshape(-1, 1, 1)
    model.n_features_in_ = 1
    rng = np.random.default_rng(0)
    batched = make("metric", "variance").batched(model, None, None, rng=rng)
    traced = np.trace(model.cov_, axis1=1, axis2=2) / 1
    assert batched.tobytes() == traced.tobytes()
    per_seed = [make("metric", "variance")(model.unbatch(s), None, None, rng=rng) for s in range(7)]
    assert np.array(per_seed).tobytes() == batched.tobytes()
