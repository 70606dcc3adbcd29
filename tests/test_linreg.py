"""Linear regression collapse: the model, its batched path, metrics and exact theory."""

import numpy as np
import pytest

from collapselab import make, theory
from collapselab.chain import ChainSpec, load_real, run_batched, run_seed
from collapselab.core import SeedBatch
from collapselab.errors import DataError, InvalidParameterError
from collapselab.models.linreg import BatchedLinearRegression, LinearRegression, design_block


def spec(regime="replace", data=None, model=None, n=100, generations=30, regime_params=None):
    data = data or {"id": "linear", "params": {"n_samples": 100, "dim": 10, "noise": 1.0}}
    model = model if model is not None else {"noise": 1.0}
    return ChainSpec(
        data=make("data", data["id"], **data.get("params", {})),
        model=make("model", "linreg", **model),
        regime=make("regime", regime, **(regime_params or {})),
        metrics={
            "test_mse": make("metric", "test_mse"),
            "coef_error": make("metric", "coef_error"),
        },
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
    )


def expected(chain_spec, **changes):
    """The theory of ``chain_spec``'s components (``changes`` replace some of them)."""
    setting = {
        "model": chain_spec.model,
        "regime": chain_spec.regime,
        "truth": load_real(chain_spec, 0).truth,
        "n0": chain_spec.real_samples,
        "n": chain_spec.samples_per_generation,
        "generations": chain_spec.generations,
        **changes,
    }
    return theory.expected(theory.Setting(**setting))


def curves(chain_spec):
    return expected(chain_spec).curves


def assert_within_4se(values, expected):
    """Every generation's mean over seeds within 4 standard errors of the closed form."""
    grid = np.stack(values, axis=1)  # (seeds, generations)
    mean = grid.mean(axis=0)
    se = grid.std(axis=0, ddof=1) / np.sqrt(grid.shape[0])
    z = (mean - expected) / se
    assert np.all(np.abs(z) < 4), (
        f"max |z| = {np.abs(z).max():.2f} at generation {np.abs(z).argmax()}"
    )


def test_closed_forms_quoted_in_the_issue():
    per_noise = 10 / (100 - 10 - 1)
    common = {"generations": 30, "per_noise": per_noise, "noise": 1.0, "model_noise": 1.0}
    replace = theory.linreg_ols(regime="replace", **common)
    accumulate = theory.linreg_ols(regime="accumulate", **common)
    assert replace[-1] == pytest.approx(3.371, abs=5e-4)  # n = 30 fits: 30 * 10/89
    assert accumulate[-1] == pytest.approx(0.181, abs=5e-4)
    assert replace[0] == accumulate[0] == pytest.approx(per_noise)
    assert np.all(accumulate < np.pi**2 / 6 * per_noise)


def test_replace_matches_theory_within_4se():
    s = spec("replace")
    state = run_batched(s, 600)
    expected = curves(s)
    for metric in ("test_mse", "coef_error"):
        assert_within_4se(state.values[metric], expected[metric])
    # Linear growth: the last generation's error is about 30 times the first's.
    assert np.mean(state.values["test_mse"][-1]) > 20 * np.mean(state.values["test_mse"][0])


def test_accumulate_matches_theory_within_4se():
    s = spec("accumulate")
    state = run_batched(s, 300)
    expected = curves(s)
    assert expected["test_mse"][-1] == pytest.approx(0.181, abs=5e-4)
    for metric in ("test_mse", "coef_error"):
        assert_within_4se(state.values[metric], expected[metric])


def test_estimated_noise_keeps_the_replace_theory():
    # sigma_hat^2 = RSS/(T-d) is unbiased and independent of the fit, so the form holds.
    s = spec("replace", model={}, generations=10)
    state = run_batched(s, 800)
    expected = curves(s)
    assert_within_4se(state.values["test_mse"], expected["test_mse"])


def test_fixed_real_design_matches_theory_within_4se():
    data = {"id": "diabetes", "params": {"noise": 0.5}}
    s = spec("replace", data=data, model={"noise": 0.5}, n=332, generations=10)
    truth = load_real(s, 0).truth
    assert truth["design_rows"] == 332
    state = run_batched(s, 400)
    expected = curves(s)
    for metric in ("test_mse", "coef_error"):
        assert_within_4se(state.values[metric], expected[metric])


def test_batched_and_per_seed_paths_agree_in_distribution():
    s = spec("accumulate", generations=8)
    seeds = 150
    batched = np.stack(run_batched(s, seeds).values["test_mse"], axis=1)
    per_seed = np.array([run_seed(s, seed).values["test_mse"] for seed in range(seeds)])
    # Generation 0 fits the same real data on both paths: identical up to rounding.
    np.testing.assert_allclose(batched[:, 0], per_seed[:, 0], rtol=1e-9)
    gap = batched.mean(axis=0) - per_seed.mean(axis=0)
    se = np.sqrt((batched.var(axis=0, ddof=1) + per_seed.var(axis=0, ddof=1)) / seeds)
    assert np.all(np.abs(gap) < 4 * se)


def test_batched_fit_equals_per_seed_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 40, 3))
    y = rng.standard_normal((5, 40))
    for params in ({}, {"alpha": 0.3}, {"alpha": 2.0, "alpha_exponent": 0.5, "noise": 0.7}):
        batched = BatchedLinearRegression(**params).fit(
            (SeedBatch(x), SeedBatch(y)), rng=np.random.default_rng(1)
        )
        for s in range(5):
            single = LinearRegression(**params).fit((x[s], y[s]), rng=np.random.default_rng(1))
            np.testing.assert_allclose(batched.coef_[s], single.coef_, rtol=1e-10)
            assert batched.noise_[s] == pytest.approx(single.noise_)
            np.testing.assert_allclose(batched.unbatch(s).coef_, single.coef_)


def test_least_squares_ridge_and_adaptive_ridge_solutions():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.standard_normal(50)
    ols = LinearRegression().fit((x, y), rng=rng)
    np.testing.assert_allclose(ols.coef_, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-10)
    residual = y - x @ ols.coef_
    assert ols.noise_ == pytest.approx(residual @ residual / (50 - 4))
    for alpha, exponent in ((0.5, 0.0), (3.0, 0.5)):
        ridge = LinearRegression(alpha=alpha, alpha_exponent=exponent).fit((x, y), rng=rng)
        lam = alpha * 50**-exponent  # per sample: ||y - Xw||^2 / T + lambda ||w||^2
        expected = np.linalg.solve(x.T @ x + lam * 50 * np.eye(4), x.T @ y)
        np.testing.assert_allclose(ridge.coef_, expected, rtol=1e-10)
        assert np.sum(ridge.coef_**2) < np.sum(ols.coef_**2)  # shrinkage


def test_adaptive_ridge_weakens_as_the_training_set_grows():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((20, 3))
    y = x @ np.ones(3) + rng.standard_normal(20)
    model = LinearRegression(alpha=5.0, alpha_exponent=1.0)
    small = model.clone().fit((x, y), rng=rng).coef_
    stacked = model.clone().fit((np.tile(x, (4, 1)), np.tile(y, 4)), rng=rng).coef_
    ols = LinearRegression().fit((x, y), rng=rng).coef_
    # Four copies of the data: lambda falls fourfold, so the fit moves toward OLS.
    assert np.linalg.norm(stacked - ols) < np.linalg.norm(small - ols)


def test_sample_relabels_the_design_it_was_fitted_on():
    real = load_real(spec(), 0)
    x, y = real.train
    model = LinearRegression(noise=1.0).fit(real.train, rng=np.random.default_rng(0))
    out_x, out_y = model.sample(100, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(out_x, x)
    # Labels: the model's predictions plus unit-variance noise.
    assert np.var(out_y - x @ model.coef_) == pytest.approx(1.0, rel=0.35)
    # Under accumulate the training design is stacked copies: the block is the design.
    stacked = (np.concatenate([x, out_x, out_x]), np.concatenate([y, out_y, out_y]))
    pooled = LinearRegression(noise=1.0).fit(stacked, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(pooled.sample(100, rng=np.random.default_rng(3))[0], x)
    # More samples than design rows cycle through the design.
    np.testing.assert_array_equal(model.sample(150, rng=np.random.default_rng(4))[0][100:], x[:50])


def test_design_block_keeps_a_real_design_with_repeated_rows():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0]])[None]
    np.testing.assert_array_equal(design_block(x), x)  # row 0 repeats, but no block does
    np.testing.assert_array_equal(design_block(np.concatenate([x, x, x], axis=1)), x)


def test_log_prob_is_the_gaussian_label_density():
    from scipy.stats import norm

    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 2))
    y = x @ np.array([0.5, 1.0]) + 0.3 * rng.standard_normal(30)
    model = LinearRegression(noise=0.09).fit((x, y), rng=rng)
    expected = norm.logpdf(y, loc=x @ model.coef_, scale=0.3)
    np.testing.assert_allclose(model.log_prob((x, y)), expected)


def test_user_errors_name_the_fix():
    with pytest.raises(DataError, match="pairs"):
        LinearRegression().fit(np.ones((5, 2)), rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="noise"):  # cannot estimate sigma^2 from T <= d
        LinearRegression().fit((np.eye(3), np.ones(3)), rng=np.random.default_rng(0))
    with pytest.raises(InvalidParameterError, match="'alpha'"):
        make("model", "linreg", alpha=-1.0)


def test_no_theory_where_no_closed_form_holds():
    s = spec(model={}, generations=5)
    ridge = expected(s, model=make("model", "linreg", alpha=0.1))
    assert ridge.curves == {} and "ridge" in ridge.why_not("test_mse")
    estimated = expected(s, regime=make("regime", "accumulate"))
    assert estimated.curves == {} and "noise estimated" in estimated.why_not("test_mse")
    assert "relabels the whole design" in expected(s, n=50).why_not("coef_error")
    assert expected(s, regime=make("regime", "fresh")).curves == {}
    curated = expected(s, curators=("dedup",))
    assert curated.curves == {} and "curators" in curated.why_not("test_mse")
    assert set(expected(s).curves) == {"test_mse", "coef_error"}


def test_metrics_against_the_truth():
    real = load_real(spec(), 0)
    model = LinearRegression().fit(real.train, rng=np.random.default_rng(0))
    gap = model.coef_ - real.truth["coef"]
    rng = np.random.default_rng(0)
    assert make("metric", "coef_error")(model, None, real, rng=rng) == pytest.approx(gap @ gap)
    # Isotropic inputs: the noise-free test error equals the coefficient error.
    assert make("metric", "test_mse")(model, None, real, rng=rng) == pytest.approx(gap @ gap)
    # ... and is what the predictions on held-out inputs miss, on average.
    x_test = real.test[0]
    empirical = np.mean((x_test @ model.coef_ - x_test @ real.truth["coef"]) ** 2)
    assert empirical == pytest.approx(gap @ gap, rel=0.15)


def test_diabetes_is_one_fixed_real_design_with_known_coefficients():
    source = make("data", "diabetes")
    a = source.load(n=0, rng=np.random.default_rng(0))
    b = source.load(n=0, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a.train[0], b.train[0])  # the design is fixed ...
    assert not np.array_equal(a.train[1], b.train[1])  # ... the label noise is not
    assert a.train[0].shape == (332, 10) and a.test[0].shape == (110, 10)
    # By default sigma^2 is the residual variance of the real least-squares fit,
    # about half the standardized target's variance (R^2 of about 0.5).
    assert 0.4 < a.truth["noise"] < 0.6
    x = a.train[0]
    expected = np.trace(np.linalg.inv(x.T @ x) @ a.truth["feature_cov"])
    assert a.truth["ols_test_error_per_noise"] == pytest.approx(expected)


def test_regression_metrics_without_known_coefficients():
    from collapselab.core import DataKind, RealData

    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 2))
    y = x @ np.array([1.0, 2.0]) + rng.standard_normal(40)
    real = RealData(train=(x[:30], y[:30]), test=(x[30:], y[30:]), kind=DataKind.SUPERVISED)
    model = LinearRegression().fit(real.train, rng=rng)
    mse = make("metric", "test_mse")(model, None, real, rng=rng)
    assert mse == pytest.approx(np.mean((x[30:] @ model.coef_ - y[30:]) ** 2))
    assert np.isnan(make("metric", "coef_error")(model, None, real, rng=rng))
