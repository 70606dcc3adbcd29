"""Categorical drift (Wright–Fisher) against simulation: within 4 standard errors.

Generation t is fit number t + 1: generation 0 fits n0 real draws, so under replace
E[H_t] = H (1 - 1/n0)(1 - 1/n)^t.
"""

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed
from collapselab.decoding import Decoding
from collapselab.theory import (
    Setting,
    categorical_accumulate,
    categorical_expected_lost,
    categorical_expected_support,
    categorical_replace,
)
from collapselab.theory import expected as theory_expected

V, BETA = 12, 1.0


def _spec(regime: str, n0: int, n: int, generations: int, metrics=("heterozygosity",)):
    return ChainSpec(
        data=make("data", "zipf", exponent=BETA, vocabulary=V, n_test=10),
        model=make("model", "categorical"),
        regime=make("regime", regime),
        metrics={m: make("metric", m) for m in metrics},
        samples_per_generation=n,
        generations=generations,
        real_samples=n0,
        root_seed=11,
    )


def _within(values: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    assert np.all(np.abs(mean - expected) <= 4 * se), (mean, expected, se)
    return mean, se


def _probs():
    return make("data", "zipf", exponent=BETA, vocabulary=V).probs()


def test_heterozygosity_replace_batched():
    n0, n, g, seeds = 15, 10, 12, 3000
    state = run_batched(_spec("replace", n0, n, g), seeds)
    values = np.stack(state.values["heterozygosity"], axis=1)
    expected = categorical_replace(probs=_probs(), n0=n0, n=n, generations=g)
    _within(values, expected)
    assert expected[-1] < 0.5 * expected[0]  # the chain really drifts over this range


def test_heterozygosity_replace_per_seed_path():
    n0, n, g, seeds = 10, 10, 6, 400
    spec = _spec("replace", n0, n, g)
    values = np.array([run_seed(spec, s).values["heterozygosity"] for s in range(seeds)])
    _within(values, categorical_replace(probs=_probs(), n0=n0, n=n, generations=g))


def test_heterozygosity_accumulate():
    n0, n, g, seeds = 10, 10, 10, 2000
    state = run_batched(_spec("accumulate", n0, n, g), seeds)
    values = np.stack(state.values["heterozygosity"], axis=1)
    expected = categorical_accumulate(probs=_probs(), n0=n0, n=n, generations=g)
    _within(values, expected)
    # Accumulating keeps diversity: far above the replace curve by the end.
    assert expected[-1] > categorical_replace(probs=_probs(), n0=n0, n=n, generations=g)[-1] + 0.1


def test_support_of_the_real_sample_and_one_generation_of_loss():
    p = _probs()
    rng = np.random.default_rng(0)
    m, reps = 8, 20000
    draws = rng.choice(V, size=(reps, m), p=p)
    present = np.zeros((reps, V), dtype=bool)
    np.put_along_axis(present, draws, True, axis=1)
    support = present.sum(axis=1)
    expected = categorical_expected_support(probs=p, m=m)
    assert abs(support.mean() - expected) <= 4 * support.std(ddof=1) / np.sqrt(reps)
    lost = V - support
    expected_lost = categorical_expected_lost(probs=p, n=m)
    assert abs(lost.mean() - expected_lost) <= 4 * lost.std(ddof=1) / np.sqrt(reps)
    assert abs(expected + expected_lost - V) < 1e-9  # every type is either kept or lost


def test_lost_types_never_return():
    spec = _spec("replace", 12, 12, 15)
    model = spec.model
    rng = np.random.default_rng(3)
    for s in range(50):
        data = spec.data.load(n=12, rng=np.random.default_rng(s)).train
        support = None
        for _ in range(15):
            fitted = model.clone().fit(data, rng=rng)
            now = set(np.flatnonzero(fitted.probs_))
            if support is not None:
                assert now <= support  # absorbing: nothing outside the last support comes back
            support = now
            data = fitted.sample(12, rng=rng)


def test_rare_mass_is_a_martingale_under_replace():
    # E[p_t(A)] = p_0(A) for any fixed set A: tail loss shows in the support, not in the
    # expected mass, until truncation (top-p) removes the tail outright.
    spec = _spec("replace", 40, 40, 8, metrics=("rare_mass", "support"))
    state = run_batched(spec, 2000)
    mass = np.stack(state.values["rare_mass"], axis=1)
    drift = mass[:, -1] - mass[:, 0]
    assert abs(drift.mean()) <= 4 * drift.std(ddof=1) / np.sqrt(len(drift))
    support = np.stack(state.values["support"], axis=1)
    assert support.mean(axis=0)[-1] < support.mean(axis=0)[0]


def test_truncation_speeds_up_tail_loss():
    spec = _spec("replace", 200, 200, 6, metrics=("support",))
    plain = np.stack(run_batched(spec, 200).values["support"], axis=1)
    spec.decoding = Decoding(top_p=0.9)
    cut = np.stack(run_batched(spec, 200).values["support"], axis=1)
    assert cut[:, -1].mean() < 0.8 * plain[:, -1].mean()


def test_expected_curves_for_runs():
    truth = {"probs": _probs()}

    def expected(regime="replace", model=None, **changes):
        setting = {
            "model": model or make("model", "categorical"),
            "regime": make("regime", regime),
            "truth": truth,
            "n0": 10,
            "n": 10,
            "generations": 5,
            **changes,
        }
        return theory_expected(Setting(**setting))

    curves = expected().curves
    np.testing.assert_allclose(
        curves["heterozygosity"], categorical_replace(probs=_probs(), n0=10, n=10, generations=5)
    )
    assert curves["support"][0] == categorical_expected_support(probs=_probs(), m=10)
    assert np.isnan(curves["support"][1:]).all()
    assert "heterozygosity" in expected("accumulate").curves
    # fresh has its own closed form of heterozygosity (fixed and new real parts)
    assert set(expected("fresh").curves) == {"heterozygosity", "support"}
    # Other regimes: generation 0 still fits the real draws, and only its support is known.
    web = expected("web")
    assert set(web.curves) == {"support"}
    assert "web" in web.why_not("heterozygosity")
    # No closed form with smoothing, truncation or curators; each says why.
    smooth = expected(model=make("model", "categorical", smoothing=1.0))
    assert smooth.curves == {} and "smoothing" in smooth.why_not("heterozygosity")
    cut = expected(decoding=Decoding(top_p=0.9))
    assert cut.curves == {} and "top_p" in cut.why_not("support")
    assert expected(curators=("verifier",)).curves == {}
    assert expected(truth={}).curves == {}
