"""The fresh regime's closed forms against simulation (4 standard errors, fixed seeds),
and the fixed points and thresholds that answer "how much real data is enough"."""

import numpy as np
import pytest
from scipy.stats import chi2

from collapselab import make, theory
from collapselab.chain import ChainSpec, run_batched
from collapselab.theory import Setting, expected


def _within(values: np.ndarray, curve: np.ndarray, label: str) -> None:
    mean = values.mean(axis=0)
    se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    bad = np.abs(mean - curve) > 4 * se
    assert not bad.any(), f"{label}: {mean[bad]} vs theory {curve[bad]} (s.e. {se[bad]})"


def _gaussian_chain(source, real_fraction, *, n0=30, n=20, generations=25, seeds=3000, bias=1.0):
    from collapselab.decoding import Decoding

    spec = ChainSpec(
        data=make("data", "gaussian", dim=2, std=1.5),
        model=make("model", "gaussian"),
        regime=make("regime", "fresh", real_fraction=real_fraction, source=source),
        metrics={m: make("metric", m) for m in ("variance", "mean_shift")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n0,
        root_seed=3,
        decoding=None if bias == 1.0 else Decoding(bias=bias),
    )
    state = run_batched(spec, seeds)
    sims = {k: np.stack(v, axis=1) for k, v in state.values.items()}
    curves = theory.gaussian_fresh(
        n0=n0,
        n=n,
        generations=generations,
        trace=2 * 1.5**2,
        dim=2,
        real_fraction=real_fraction,
        source=source,
        bias=bias,
    )
    return sims, curves


@pytest.mark.parametrize(
    ("source", "real_fraction", "bias"),
    [("fixed", 0.2, 1.0), ("fixed", 0.05, 0.9), ("new", 0.2, 1.0), ("resample", 0.3, 1.0)],
)
def test_gaussian_fresh_matches_simulation(source, real_fraction, bias):
    sims, curves = _gaussian_chain(source, real_fraction, bias=bias)
    for quantity in ("variance", "mean_shift"):
        _within(sims[quantity][:, [0, 1, 3, 10, 24]], curves[quantity][[0, 1, 3, 10, 24]], quantity)


def test_gaussian_fresh_without_real_part_is_replace():
    common = {"n0": 40, "n": 25, "generations": 12, "trace": 3.0, "dim": 3, "bias": 0.95}
    fresh = theory.gaussian_fresh(**common, real_fraction=0.0, source="fixed")
    replace = theory.gaussian_replace(**common)
    np.testing.assert_allclose(fresh["variance"], replace["variance"])
    np.testing.assert_allclose(fresh["mean_shift"], replace["mean_shift"])


def test_gaussian_fixed_point_closed_form_and_threshold():
    # the MLE and the fixed source: (n_r - 1) / (n_r + n_s / (n + n_s))
    for n, real in [(50, 2), (50, 5), (200, 20)]:
        closed = (real - 1) / (real + (n - real) / (2 * n - real))
        assert theory.gaussian_fresh_fixed_point(n=n, real=real) == pytest.approx(closed)
        long = theory.gaussian_fresh(
            n0=n, n=n, generations=3000, trace=1.0, dim=1, real_fraction=real / n
        )
        assert long["variance"][-1] == pytest.approx(closed, rel=1e-9)
    assert theory.gaussian_fresh_fixed_point(n=50, real=1) == 0.0  # SS of one sample is 0
    assert theory.gaussian_fresh_fixed_point(n=50, real=0) == 0.0  # replace, MLE
    assert theory.gaussian_fresh_fixed_point(n=50, real=0, unbiased=True) == 1.0
    assert theory.gaussian_fresh_threshold(n=50, tolerance=0.1) == 2 / 50
    # a tolerance above the two-sample level needs more real samples
    assert theory.gaussian_fresh_threshold(n=50, tolerance=0.5) == 3 / 50
    # under a sampling bias lambda < 1 the real part must hold more of the variance
    assert theory.gaussian_fresh_threshold(n=50, tolerance=0.5, bias=0.8) > 3 / 50
    # without a real part every chain collapses, even where the expectation does not
    assert theory.gaussian_fresh_threshold(n=50, tolerance=0.5, unbiased=True) > 0


def test_protected_share_bounds_the_share_of_seeds_that_never_collapse():
    from collapselab.chain import load_real

    n, real, tolerance, generations, seeds = 50, 6, 0.1, 60, 1500
    share = theory.gaussian_fresh_protected_share(n=n, real=real, tolerance=tolerance)
    assert share == pytest.approx(chi2.sf(tolerance * n, real - 1))
    spec = ChainSpec(
        data=make("data", "gaussian"),
        model=make("model", "gaussian"),
        regime=make("regime", "fresh", real_fraction=real / n, source="fixed"),
        metrics={"variance": make("metric", "variance")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
        root_seed=5,
    )
    variance = np.stack(run_batched(spec, seeds).values["variance"], axis=1)
    # seed by seed, every fit after generation 0 keeps the real part's scatter
    for s in range(20):
        kept = load_real(spec, s).train[:real, 0]
        floor = np.sum((kept - kept.mean()) ** 2) / n
        assert variance[s, 1:].min() >= floor * (1 - 1e-12)
    never = np.mean(variance.min(axis=1) >= tolerance)
    # so at least the protected share never collapses (checked with its binomial error)
    assert never >= share - 4 * np.sqrt(share * (1 - share) / seeds)


def _categorical_chain(source, real_fraction, *, n0=40, n=30, generations=30, seeds=3000):
    spec = ChainSpec(
        data=make("data", "zipf", exponent=1.0, vocabulary=12, n_test=10),
        model=make("model", "categorical"),
        regime=make("regime", "fresh", real_fraction=real_fraction, source=source),
        metrics={m: make("metric", m) for m in ("heterozygosity", "support")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n0,
        root_seed=7,
    )
    state = run_batched(spec, seeds)
    return {k: np.stack(v, axis=1) for k, v in state.values.items()}


@pytest.mark.parametrize(("source", "real_fraction"), [("fixed", 0.1), ("new", 0.2)])
def test_categorical_fresh_heterozygosity(source, real_fraction):
    probs = make("data", "zipf", exponent=1.0, vocabulary=12).probs()
    sims = _categorical_chain(source, real_fraction)
    curve = theory.categorical_fresh(
        probs=probs, n0=40, n=30, generations=30, real_fraction=real_fraction, source=source
    )
    _within(sims["heterozygosity"][:, [0, 1, 5, 29]], curve[[0, 1, 5, 29]], "heterozygosity")


def test_categorical_fixed_point_support_and_threshold():
    probs = make("data", "zipf", exponent=1.0, vocabulary=12).probs()
    n, real = 30, 3
    limit = theory.categorical_fresh_fixed_point(probs=probs, n=n, real=real)
    long = theory.categorical_fresh(
        probs=probs, n0=n, n=n, generations=4000, real_fraction=real / n, source="fixed"
    )
    assert long[-1] == pytest.approx(limit["heterozygosity"], rel=1e-9)
    # the support tends to the types of the kept real draws: after many generations the
    # simulated support is the types of the first n_r real draws of each seed
    sims = _categorical_chain("fixed", real / n, n0=n, n=n, generations=400, seeds=2000)
    final = sims["support"][:, -1]
    se = final.std(ddof=1) / np.sqrt(len(final))
    assert abs(final.mean() - limit["support"]) < 4 * se + 1e-9
    # thresholds: the smallest share whose limit keeps half of generation 0's types
    share = theory.categorical_fresh_threshold(probs=probs, n=n, tolerance=0.5)
    count = round(share * n)
    half = 0.5 * theory.categorical_expected_support(probs=probs, m=n)
    assert theory.categorical_expected_support(probs=probs, m=count) >= half
    assert theory.categorical_expected_support(probs=probs, m=count - 1) < half
    hetero = theory.categorical_fresh_threshold(
        probs=probs, n=n, tolerance=0.9, quantity="heterozygosity"
    )
    count = round(hetero * n)
    target = 0.9 * (1 - probs @ probs) * (1 - 1 / n)
    limit = theory.categorical_fresh_fixed_point
    assert limit(probs=probs, n=n, real=count)["heterozygosity"] >= target
    assert limit(probs=probs, n=n, real=count - 1)["heterozygosity"] < target


def test_fresh_theory_rows_are_registered():
    base = {"n0": 30, "n": 20, "generations": 5}
    gaussian = expected(
        Setting(
            model=make("model", "gaussian"),
            regime=make("regime", "fresh", real_fraction=0.2, source="new"),
            truth={"mean": np.zeros(1), "cov": np.eye(1)},
            **base,
        )
    )
    assert set(gaussian.curves) == {"variance", "mean_shift"}
    assert "fresh" in gaussian.why_not("log_variance")
    probs = make("data", "zipf", exponent=1.0, vocabulary=12).probs()
    for source, has in [("fixed", True), ("new", True), ("resample", False)]:
        categorical = expected(
            Setting(
                model=make("model", "categorical"),
                regime=make("regime", "fresh", real_fraction=0.2, source=source),
                truth={"probs": probs},
                **base,
            )
        )
        assert ("heterozygosity" in categorical.curves) == has


def test_thresholds_bracket_the_share_at_which_chains_stop_collapsing():
    """n = 20, tolerance 0.1: below 2/n every seed collapses in a long chain; at the
    protected threshold at most half do (within the binomial error)."""
    n, tolerance, seeds = 20, 0.1, 800
    low = theory.gaussian_fresh_threshold(n=n, tolerance=tolerance)
    high = theory.gaussian_fresh_protected_threshold(n=n, tolerance=tolerance)
    assert (low, high) == (2 / n, 4 / n)

    def ever_collapsed(real_fraction):
        spec = ChainSpec(
            data=make("data", "gaussian"),
            model=make("model", "gaussian"),
            regime=make("regime", "fresh", real_fraction=real_fraction, source="fixed"),
            metrics={"collapsed": make("metric", "collapsed", tolerance=tolerance)},
            samples_per_generation=n,
            generations=300,
            real_samples=n,
            root_seed=9,
        )
        return run_batched(spec, seeds).values["collapsed"][-1].mean()

    assert ever_collapsed(1 / n) == 1.0  # one real sample holds no variance
    at_high = ever_collapsed(high)
    assert at_high <= 0.5 + 4 * np.sqrt(0.25 / seeds)
    assert ever_collapsed(low) > at_high  # in between, the share falls
