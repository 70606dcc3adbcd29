"""Strong model collapse (Dohmatob, Feng, Subramonyam and Kempe 2024) on linear regression:
a fixed share p of synthetic labels from a biased w_s in the training mix. The exact
closed form for OLS on an isotropic design against simulation, within 4 standard
errors over fixed seeds, at several total sizes n and shares p."""

import numpy as np
import pytest

from collapselab import make, theory
from collapselab.chain import ChainSpec, load_real, run_batched
from collapselab.data.supervised import strong_collapse_bias


def _spec(rows, share, *, generations=1, model_noise=None, error=0.5, dim=5):
    return ChainSpec(
        data=make(
            "data",
            "linear",
            n_samples=rows,
            dim=dim,
            noise=1.0,
            synthetic_share=share,
            synthetic_error=error,
        ),
        model=make("model", "linreg", noise=model_noise),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in ("test_mse", "coef_error")},
        samples_per_generation=rows,
        generations=generations,
        real_samples=rows,
        root_seed=2,
    )


def _theory(spec):
    setting = theory.Setting(
        model=spec.model,
        regime=spec.regime,
        truth=load_real(spec, 0).truth,
        n0=spec.real_samples,
        n=spec.samples_per_generation,
        generations=spec.generations,
    )
    return theory.expected(setting)


@pytest.mark.parametrize(
    ("rows", "share"), [(12, 0.5), (20, 0.1), (40, 0.5), (200, 0.1), (200, 0.5), (1000, 0.01)]
)
def test_strong_collapse_theory_within_4_se(rows, share):
    spec = _spec(rows, share)
    values = np.stack(run_batched(spec, 3000).values["test_mse"], axis=1)[:, 0]
    curve = _theory(spec).curves["test_mse"]
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - curve[0]) < 4 * se, (values.mean(), curve[0], se)
    # and where the bias is large against the error bars, leaving it out is rejected
    bias = 0.5 * strong_collapse_bias(rows=rows, synthetic=round(share * rows), dim=5)
    if bias > 10 * se:
        assert abs(values.mean() - (curve[0] - bias)) > 4 * se


def test_bias_factor_limits():
    # d = 1: the second moment of a Beta(s/2, r/2) variable
    s, n = 3, 11
    assert strong_collapse_bias(rows=n, synthetic=s, dim=1) == pytest.approx(
        (s / 2) * (s / 2 + 1) / ((n / 2) * (n / 2 + 1))
    )
    # all rows synthetic: w_hat - w* = Delta exactly
    assert strong_collapse_bias(rows=50, synthetic=50, dim=10) == pytest.approx(1.0)
    assert strong_collapse_bias(rows=50, synthetic=0, dim=10) == 0.0
    # a fixed share: the bias tends to p^2, so the error plateaus at p^2 ||Delta||^2
    for p in (0.01, 0.1, 0.5):
        big = 10**7
        assert strong_collapse_bias(rows=big, synthetic=round(p * big), dim=10) == pytest.approx(
            p**2, rel=1e-3
        )


def test_more_data_stops_helping_at_a_fixed_share():
    """The theory's own scaling: with p = 0 the error falls as d / n; with p > 0 it
    flattens at p^2 ||Delta||^2."""

    def error(rows, share):
        bias = 0.1 * strong_collapse_bias(rows=rows, synthetic=round(share * rows), dim=10)
        return bias + 10 / (rows - 11)

    assert error(10**5, 0.0) < error(10**3, 0.0) / 50
    assert error(10**5, 0.1) > 0.9 * 0.1 * 0.1**2
    assert error(10**5, 0.1) / error(10**4, 0.1) > 0.5  # a tenfold n no longer halves it


def test_real_rows_are_the_same_for_every_share():
    a = make("data", "linear", n_samples=40, synthetic_share=0.0).load(
        n=40, rng=np.random.default_rng(4)
    )
    b = make("data", "linear", n_samples=40, synthetic_share=0.25).load(
        n=40, rng=np.random.default_rng(4)
    )
    np.testing.assert_array_equal(a.train[0], b.train[0])
    np.testing.assert_array_equal(a.train[1][10:], b.train[1][10:])
    np.testing.assert_array_equal(a.test[1], b.test[1])
    assert not np.array_equal(a.train[1][:10], b.train[1][:10])
    shift = b.truth["synthetic_coef"] - b.truth["coef"]
    assert shift @ shift == pytest.approx(0.1)
    np.testing.assert_allclose(b.train[1][:10] - a.train[1][:10], a.train[0][:10] @ shift)


def test_later_generations_keep_the_bias():
    spec = _spec(30, 0.3, generations=4, model_noise=1.0)
    grid = np.stack(run_batched(spec, 3000).values["test_mse"], axis=1)
    curve = _theory(spec).curves["test_mse"]
    se = grid.std(axis=0, ddof=1) / np.sqrt(grid.shape[0])
    assert np.all(np.abs(grid.mean(axis=0) - curve) < 4 * se)
    # with the noise estimated, the residual holds the synthetic rows' misfit: no theory
    estimated = _theory(_spec(30, 0.3, generations=4))
    assert estimated.curves == {} and "misfit" in estimated.why_not("test_mse")
    # a single fit needs none of the later generations' assumptions
    assert "test_mse" in _theory(_spec(30, 0.3)).curves
