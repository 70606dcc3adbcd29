"""The exact sufficient-statistic chain (``batched: sufficient``) is equal in
distribution to the sampling chain and to the closed forms.

Two-sample Kolmogorov-Smirnov tests compare the last generation's values over 2,000
seeds of each path; the seeds are fixed, so each p-value is a fixed number, and the
threshold is p > 0.01 (a correct path fails it for 1 in 100 choices of seeds). Means
are compared with the closed forms of :mod:`collapselab.theory` within four standard
errors of the mean over seeds.
"""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from collapselab import make, theory
from collapselab.chain import ChainSpec, run_batched, run_sufficient, sufficient_problem
from collapselab.errors import ConfigError

SEEDS = 2000


def _spec(data, model, metrics, n, generations, decoding=None, root_seed=0):
    return ChainSpec(
        data=data,
        model=model,
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in metrics},
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
        decoding=decoding,
        root_seed=root_seed,
    )


def _last(state, metric):
    return np.asarray(state.values[metric][-1], dtype=float)


@pytest.mark.parametrize(
    ("dim", "n", "unbiased"), [(1, 10, False), (1, 4, True), (3, 6, False), (3, 3, False)]
)
def test_gaussian_sufficient_chain_matches_sampling_and_theory(dim, n, unbiased):
    # n = 3 in 3-D: a scatter of rank 2 (a singular Wishart), so the fit collapses a direction
    generations = 6
    spec = _spec(
        make("data", "gaussian", dim=dim, n_test=10),
        make("model", "gaussian", unbiased=unbiased),
        ["variance", "mean_shift"],
        n,
        generations,
    )
    fast = run_sufficient(spec, SEEDS)
    slow = run_batched(_spec(**{**_kwargs(spec), "root_seed": 1}), SEEDS)
    for metric in ("variance", "mean_shift"):
        assert ks_2samp(_last(fast, metric), _last(slow, metric)).pvalue > 0.01, metric
    expected = theory.gaussian_replace(
        n0=n, n=n, generations=generations, trace=float(dim), dim=dim, unbiased=unbiased
    )
    for metric in ("variance", "mean_shift"):
        values = np.stack(fast.values[metric])  # (generations, seeds)
        se = values.std(axis=1, ddof=1) / np.sqrt(SEEDS)
        np.testing.assert_array_less(np.abs(values.mean(axis=1) - expected[metric]), 4 * se + 1e-12)


def test_a_gaussian_sufficient_refit_keeps_the_cholesky_factor_of_its_covariance():
    # The refit's root is the old root times Bartlett's factor (both lower triangular),
    # so no generation factors its covariance again; below d degrees of freedom the
    # scatter is singular and no square root is kept.
    model = make("model", "gaussian")
    spec = _spec(make("data", "gaussian", dim=4, n_test=10), model, ["variance"], 12, 3)
    state = run_sufficient(spec, 50)
    root = state.model.cov_root_
    np.testing.assert_array_equal(root, np.tril(root))
    np.testing.assert_allclose(root, np.linalg.cholesky(state.model.cov_), rtol=1e-10, atol=1e-12)
    assert state.model.sufficient_refit(3, rng=np.random.default_rng(0)).cov_root_ is None


def _kwargs(spec):
    return {
        "data": spec.data,
        "model": spec.model,
        "metrics": list(spec.metrics),
        "n": spec.samples_per_generation,
        "generations": spec.generations,
        "decoding": spec.decoding,
    }


def test_gaussian_sufficient_log_variance_has_the_closed_form_spread():
    n, generations = 20, 8
    spec = _spec(
        make("data", "gaussian", n_test=10),
        make("model", "gaussian"),
        ["log_variance"],
        n,
        generations,
    )
    values = np.stack(run_sufficient(spec, SEEDS).values["log_variance"])
    sd = theory.gaussian_replace_log_variance_sd(n0=n, n=n, generations=generations)
    # the standard deviation over 2,000 seeds is within 6% of the truth (4 standard errors)
    np.testing.assert_allclose(values.std(axis=1, ddof=1), sd, rtol=4 / np.sqrt(2 * SEEDS))


@pytest.mark.parametrize("dim", [1, 2])
def test_gaussian_sufficient_chain_with_a_sampling_bias(dim):
    decoding = {"bias": 0.8}
    from collapselab.decoding import Decoding

    resolved = Decoding.from_config(decoding)
    n, generations = 10, 5
    spec = _spec(
        make("data", "gaussian", dim=dim, n_test=10),
        make("model", "gaussian"),
        ["variance"],
        n,
        generations,
        decoding=resolved,
    )
    fast = run_sufficient(spec, SEEDS)
    slow = run_batched(_spec(**{**_kwargs(spec), "root_seed": 1}), SEEDS)
    assert ks_2samp(_last(fast, "variance"), _last(slow, "variance")).pvalue > 0.01
    expected = theory.gaussian_replace(
        n0=n, n=n, generations=generations, trace=float(dim), dim=dim, bias=0.8
    )["variance"]
    values = np.stack(fast.values["variance"])
    se = values.std(axis=1, ddof=1) / np.sqrt(SEEDS)
    np.testing.assert_array_less(np.abs(values.mean(axis=1) - expected), 4 * se)


@pytest.mark.parametrize("vocabulary_size", [None, 6])
def test_categorical_sufficient_chain_matches_sampling_and_theory(vocabulary_size):
    n, generations = 12, 6
    data = make("data", "zipf", vocabulary=6, exponent=1.0, n_test=10)
    spec = _spec(
        data,
        make("model", "categorical", vocabulary_size=vocabulary_size),
        ["heterozygosity", "support", "kl_real"],
        n,
        generations,
    )
    fast = run_sufficient(spec, SEEDS)
    slow = run_batched(_spec(**{**_kwargs(spec), "root_seed": 1}), SEEDS)
    for metric in ("heterozygosity", "support", "kl_real"):
        a, b = _last(fast, metric), _last(slow, metric)
        assert ks_2samp(a[np.isfinite(a)], b[np.isfinite(b)]).pvalue > 0.01, metric
    expected = theory.categorical_replace(probs=data.probs(), n0=n, n=n, generations=generations)
    values = np.stack(fast.values["heterozygosity"])
    se = values.std(axis=1, ddof=1) / np.sqrt(SEEDS)
    np.testing.assert_array_less(np.abs(values.mean(axis=1) - expected), 4 * se)


def test_categorical_sufficient_chain_with_top_p():
    from collapselab.decoding import Decoding

    n, generations = 30, 4
    spec = _spec(
        make("data", "zipf", vocabulary=20, n_test=10),
        make("model", "categorical"),
        ["heterozygosity", "support"],
        n,
        generations,
        decoding=Decoding.from_config({"top_p": 0.8}),
    )
    fast = run_sufficient(spec, SEEDS)
    slow = run_batched(_spec(**{**_kwargs(spec), "root_seed": 1}), SEEDS)
    for metric in ("heterozygosity", "support"):
        assert ks_2samp(_last(fast, metric), _last(slow, metric)).pvalue > 0.01, metric


def test_the_sufficient_path_refuses_what_it_cannot_run():
    gaussian = make("data", "gaussian", n_test=10)
    reads_output = _spec(gaussian, make("model", "gaussian"), ["wasserstein"], 10, 2)
    assert "metric 'wasserstein' reads the generated items" in sufficient_problem(reads_output)
    with pytest.raises(ConfigError, match="wasserstein"):
        run_sufficient(reads_output, 3)
    kde = _spec(gaussian, make("model", "kde"), ["variance"], 10, 2)
    assert "has no exact sufficient-statistic refit" in sufficient_problem(kde)
    # entropy is computed from the model only where the model has probabilities
    text = _spec(make("data", "zipf", n_test=10), make("model", "categorical"), ["entropy"], 10, 2)
    assert sufficient_problem(text) is None


def test_a_config_runs_the_sufficient_path_and_refuses_other_regimes(tmp_path):
    from collapselab.experiment import load_config, run

    base = {
        "name": "sufficient",
        "data": "gaussian",
        "model": "gaussian",
        "samples_per_generation": 20,
        "generations": 4,
        "seeds": 5,
        "metrics": ["variance"],
        "batched": "sufficient",
    }
    result = run(load_config(base), out=tmp_path / "run")
    assert result.arms[0].execution == "sufficient"
    assert result.metrics()["value"].notna().all()
    with pytest.raises(ConfigError, match=r"config field 'batched'.*regime 'accumulate'"):
        run(load_config({**base, "regime": "accumulate"}), out=tmp_path / "other")
    with pytest.raises(ConfigError, match=r"config field 'batched'.*metric 'wasserstein'"):
        run(load_config({**base, "metrics": ["wasserstein"]}), out=tmp_path / "third")


def _model_only_metrics():
    from collapselab.registry import list_ids

    for metric_id in list_ids("metric"):
        metric = make("metric", metric_id)
        if metric.model_only is not None:
            yield metric_id


@pytest.mark.parametrize("metric_id", list(_model_only_metrics()))
def test_a_metric_declared_model_only_never_reads_the_output(metric_id):
    # The declaration the sufficient path trusts: the value is the same with the
    # output and with None in its place, for a model that has the declared capabilities.
    from collapselab.core import DataKind

    metric = make("metric", metric_id)
    if DataKind.CONTINUOUS in metric.applies_to:
        data, model = make("data", "gaussian", dim=2, n_test=50), make("model", "gaussian")
    else:
        data, model = make("data", "zipf", vocabulary=30, n_test=50), make("model", "categorical")
    assert metric.model_only <= type(model).provides
    real = data.load(n=60, rng=np.random.default_rng(0))
    model.fit(real.train, rng=np.random.default_rng(1))
    output = model.sample(60, rng=np.random.default_rng(2))
    with_output = metric(model, output, real, rng=np.random.default_rng(3))
    without = metric(model, None, real, rng=np.random.default_rng(3))
    np.testing.assert_equal(without, with_output)


def test_a_resumed_sufficient_chain_equals_an_uninterrupted_one(monkeypatch):
    # Its streams are seeded in bulk, a block of generations at a time; a resume at any
    # generation (inside the first block of 4, at a block's end, in the second) draws
    # the same as the chain that ran through.
    import copy

    from collapselab import chain

    monkeypatch.setattr(chain, "_STREAM_BLOCK", 4)
    spec = _spec(make("data", "gaussian", n_test=10), make("model", "gaussian"), ["variance"], 5, 9)
    saved = {}
    whole = run_sufficient(
        spec, 30, on_generation=lambda s: saved.setdefault(s.generation, copy.deepcopy(s))
    )
    for generation in (2, 3, 6):
        resumed = run_sufficient(spec, 30, copy.deepcopy(saved[generation]))
        np.testing.assert_array_equal(
            np.stack(resumed.values["variance"]), np.stack(whole.values["variance"])
        )
