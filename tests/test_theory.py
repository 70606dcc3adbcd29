"""Closed forms against simulation: each within 4 standard errors over >= 2000 seeds."""

import numpy as np
import pytest

from collapselab import make, theory
from collapselab.chain import ChainSpec, run_batched, run_seed
from collapselab.decoding import Decoding

CHECK_GENERATIONS = [0, 1, 5, 14, 29]


def simulate(
    regime="replace",
    regime_params=None,
    n0=20,
    n=20,
    generations=30,
    seeds=4000,
    dim=1,
    unbiased=False,
    root_seed=0,
    bias=1.0,
):
    from collapselab.decoding import Decoding

    spec = ChainSpec(
        data=make("data", "gaussian", dim=dim, std=1.5),
        model=make("model", "gaussian", unbiased=unbiased),
        regime=make("regime", regime, **(regime_params or {})),
        metrics={m: make("metric", m) for m in ("variance", "log_variance", "mean_shift")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n0,
        root_seed=root_seed,
        decoding=None if bias == 1.0 else Decoding(bias=bias),
    )
    state = run_batched(spec, seeds)
    sims = {k: np.stack(v, axis=1) for k, v in state.values.items()}  # (seeds, generations)
    common = dict(
        n0=n0,
        n=n,
        generations=generations,
        trace=1.5**2 * dim,
        dim=dim,
        unbiased=unbiased,
        bias=bias,
    )
    return sims, common


def assert_mean_within(sim, expected, label):
    for t in CHECK_GENERATIONS:
        if t >= sim.shape[1]:
            continue
        values = sim[:, t]
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - expected[t]) < 4 * se, (
            f"{label} at generation {t}: simulation {values.mean():.5g} ± {se:.2g}, theory {expected[t]:.5g}"
        )


def test_issue_formula_for_replace_mle():
    """E[sigma_t^2] = sigma_0^2 ((n-1)/n)^t, with generation t the (t+1)-th fit."""
    curves = theory.gaussian_replace(n0=100, n=100, generations=1000, trace=1.0, dim=1)
    t = np.arange(1000)
    np.testing.assert_allclose(curves["variance"], (99 / 100) ** (t + 1))
    from scipy.special import psi

    np.testing.assert_allclose(curves["log_variance"], (t + 1) * (psi(99 / 2) + np.log(2 / 100)))


def test_replace_mle_variance_and_log_variance():
    sims, common = simulate()
    expected = theory.gaussian_replace(**common)
    assert_mean_within(sims["variance"], expected["variance"], "variance")
    assert_mean_within(sims["log_variance"], expected["log_variance"], "log_variance")
    assert_mean_within(sims["mean_shift"], expected["mean_shift"], "mean_shift")
    # Var[log sigma_t^2] = psi'((n0-1)/2) + t psi'((n-1)/2): compare sample variances
    sd = theory.gaussian_replace_log_variance_sd(n0=20, n=20, generations=30)
    for t in CHECK_GENERATIONS:
        x = sims["log_variance"][:, t]
        centered = x - x.mean()
        var = centered.var(ddof=1)
        se = np.sqrt((np.mean(centered**4) - var**2) / len(x))
        assert abs(var - sd[t] ** 2) < 4 * se, (
            f"Var log sigma^2 at {t}: {var:.4g} ± {se:.2g} vs {sd[t] ** 2:.4g}"
        )


def test_replace_unbiased_keeps_variance_and_mean_random_walks():
    sims, common = simulate(unbiased=True)
    expected = theory.gaussian_replace(**common)
    np.testing.assert_allclose(expected["variance"], 1.5**2)  # E[sigma_t^2] = sigma^2
    np.testing.assert_allclose(
        expected["mean_shift"], 1.5**2 * (1 / 20 + np.arange(30) / 20)
    )  # t sigma^2/n
    assert_mean_within(sims["variance"], expected["variance"], "variance")
    assert_mean_within(sims["mean_shift"], expected["mean_shift"], "mean_shift")


def test_replace_in_three_dimensions():
    sims, common = simulate(dim=3, seeds=2000, n0=30, n=15)
    expected = theory.gaussian_replace(**common)
    assert "log_variance" not in expected  # exact only in 1-D
    assert_mean_within(sims["variance"], expected["variance"], "variance")
    assert_mean_within(sims["mean_shift"], expected["mean_shift"], "mean_shift")


@pytest.mark.parametrize("unbiased", [False, True])
def test_accumulate(unbiased):
    sims, common = simulate(regime="accumulate", unbiased=unbiased, seeds=3000)
    expected = theory.gaussian_pool(**common)
    assert_mean_within(sims["variance"], expected["variance"], "variance")
    assert_mean_within(sims["mean_shift"], expected["mean_shift"], "mean_shift")
    # bounded away from zero: the infinite product converges
    far = theory.gaussian_pool(**{**common, "generations": 5000})["variance"]
    assert far[-1] > 0.8 * far[0]


def test_accumulate_subsample():
    sims, common = simulate(regime="accumulate-subsample", seeds=3000, n0=30, n=20)
    expected = theory.gaussian_pool(**common, budget=30)
    assert_mean_within(sims["variance"], expected["variance"], "variance")
    assert_mean_within(sims["mean_shift"], expected["mean_shift"], "mean_shift")
    replace = theory.gaussian_replace(**common)["variance"]
    accumulate = theory.gaussian_pool(**common)["variance"]
    assert replace[-1] < expected["variance"][-1] < accumulate[-1]  # in between


def test_batched_and_per_seed_paths_agree():
    spec = ChainSpec(
        data=make("data", "gaussian"),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in ("variance", "log_variance", "tail_mass")},
        samples_per_generation=20,
        generations=15,
        real_samples=20,
    )
    seeds = 1000
    batched = {k: np.stack(v, axis=1) for k, v in run_batched(spec, seeds).values.items()}
    single = {
        k: np.array([run_seed(spec, s).values[k] for s in range(seeds)])
        for k in ("variance", "log_variance")
    }
    # generation 0 fits the same real data on both paths: identical, not just close
    np.testing.assert_allclose(batched["variance"][:, 0], single["variance"][:, 0], rtol=1e-12)
    for metric in ("variance", "log_variance"):
        a, b = batched[metric][:, -1], single[metric][:, -1]
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se, (
            f"{metric}: {a.mean():.4g} vs {b.mean():.4g} (se {se:.2g})"
        )


@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_sampling_bias_lambda(regime):
    """Go MAD's lambda < 1: samples from N(mu, lambda^2 Sigma) speed up the loss of variance."""
    sims, common = simulate(regime=regime, bias=0.9, seeds=3000)
    curves = (
        theory.gaussian_replace(**common) if regime == "replace" else theory.gaussian_pool(**common)
    )
    assert_mean_within(sims["variance"], curves["variance"], "variance")
    assert_mean_within(sims["mean_shift"], curves["mean_shift"], "mean_shift")
    if regime == "replace":
        assert_mean_within(sims["log_variance"], curves["log_variance"], "log_variance")
    unbiased_sampling = (theory.gaussian_replace if regime == "replace" else theory.gaussian_pool)(
        **{**common, "bias": 1.0}
    )
    assert curves["variance"][-1] < unbiased_sampling["variance"][-1]


def _filtered_gaussian(curators):
    from collapselab.experiment import load_config

    return load_config(
        {
            "name": "filtered",
            "data": {"id": "gaussian"},
            "model": {"id": "gaussian"},
            "regime": {"id": "replace"},
            "samples_per_generation": 100,
            "generations": 12,
            "seeds": 6,
            "oversample": 2,
            "curators": curators,
            "metrics": ["variance", "log_variance", "mean_shift", "collapsed_now"],
        }
    )


def test_no_theory_rows_where_a_curator_breaks_the_derivation(tmp_path):
    import json

    import collapselab as cl

    # A likelihood filter keeps the central half of every generation: the variance falls
    # about 7-fold per generation, nowhere near the replace closed form (0.99 per step).
    filtered = cl.run(
        _filtered_gaussian([{"id": "likelihood-filter", "params": {"keep": 0.5}}]),
        tmp_path / "f",
        report=False,
    )
    frame = filtered.metrics()
    assert (frame["source"] == "theory").sum() == 0
    sim = frame[(frame["metric"] == "variance") & (frame["source"] == "simulation")]
    last = sim[sim["generation"] == 11]["value"].median()
    assert last < 1e-3 * sim[sim["generation"] == 0]["value"].median()
    notes = json.loads((tmp_path / "f" / "filtered" / "theory_notes.json").read_text())
    assert notes["closed_form"] == "gaussian-mle" and notes["written"] == []
    assert set(notes["none"]) == {"variance", "log_variance", "mean_shift"}
    assert "likelihood-filter" in notes["none"]["variance"]
    # Without the curator, the same chain has its theory rows, and says so.
    plain = cl.run(_filtered_gaussian([]), tmp_path / "p", report=False).metrics()
    written = set(plain[plain["source"] == "theory"]["metric"])
    assert written == {"variance", "log_variance", "mean_shift"}
    notes = json.loads((tmp_path / "p" / "filtered" / "theory_notes.json").read_text())
    assert notes["written"] == sorted(written) and notes["none"] == {}


def test_theory_is_keyed_by_the_declared_family():
    from collapselab.theory import QUANTITIES, Setting, expected

    base = {
        "truth": {"mean": np.zeros(2), "cov": np.eye(2)},
        "n0": 50,
        "n": 50,
        "generations": 4,
    }
    gaussian = expected(
        Setting(model=make("model", "gaussian"), regime=make("regime", "replace"), **base)
    )
    assert set(gaussian.curves) == {"variance", "mean_shift"}  # log_variance: 1-D only
    assert "1-D" in gaussian.why_not("log_variance")
    assert set(QUANTITIES["gaussian-mle"]) >= set(gaussian.curves)
    # A model of another family (a GMM, a KDE) has none, whatever the data.
    gmm = expected(Setting(model=make("model", "gmm"), regime=make("regime", "replace"), **base))
    assert gmm.curves == {} and "declares no closed form" in gmm.why_not("variance")
    web = expected(Setting(model=make("model", "gaussian"), regime=make("regime", "web"), **base))
    assert web.curves == {} and "web" in web.why_not("variance")
    biased = expected(
        Setting(
            model=make("model", "gaussian"),
            regime=make("regime", "replace"),
            decoding=Decoding(bias=0.9),
            **base,
        )
    )
    np.testing.assert_allclose(
        biased.curves["variance"],
        theory.gaussian_replace(n0=50, n=50, generations=4, trace=2.0, dim=2, bias=0.9)["variance"],
    )
