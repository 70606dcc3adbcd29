"""The curators of the debate's experiments on data where their output is known:
choice by reward (Bradley–Terry), correction by an expert, specialisation by topic."""

import itertools

import numpy as np
import pytest
from scipy.stats import chi2

from collapselab import make
from collapselab.core import DataKind, RealData
from collapselab.curation.correct import calculator
from collapselab.curation.reward import bradley_terry_choice
from collapselab.errors import ConfigError, InvalidParameterError
from collapselab.scores import on_topic, reward


def _points(values):
    return np.asarray(values, dtype=float).reshape(-1, 1)


def _reference(**truth):
    return RealData(
        train=_points([0.0, 1.0]), test=_points([0.0]), kind=DataKind.CONTINUOUS, truth=truth
    )


def _choice_law(p, rewards, k, beta):
    """The exact law of the kept item: enumerate every K-tuple of candidates."""
    law = np.zeros(len(p))
    for tuple_ in itertools.product(range(len(p)), repeat=k):
        weight = np.prod(p[list(tuple_)])
        scores = np.exp(beta * rewards[list(tuple_)])
        for position, value in enumerate(tuple_):
            law[value] += weight * scores[position] / scores.sum()
    return law


def test_kept_distribution_is_the_bradley_terry_choice_law():
    """A discrete model over {0, 1, 2, 3}: the kept values follow the choice law
    (chi-square test at level 0.001 over 40,000 choices, fixed seeds)."""
    p = np.array([0.4, 0.3, 0.2, 0.1])
    values = np.arange(4.0)
    k, beta, groups = 3, 0.8, 40_000
    draws = np.random.default_rng(0).choice(4, size=k * groups, p=p)
    items = _points(values[draws])
    curator = make(
        "curator",
        "reward-choice",
        candidates=k,
        strength=beta,
        reward={"kind": "distance", "target": 3.0},
    )
    out = curator(items, reference=_reference(), rng=np.random.default_rng(1), provenance=None)
    assert len(out.index) == groups  # one per group of K
    assert np.all(out.index // k == np.arange(groups))
    observed = np.bincount(out.kept[:, 0].astype(int), minlength=4)
    law = _choice_law(p, -np.abs(values - 3.0), k, beta)
    statistic = np.sum((observed - groups * law) ** 2 / (groups * law))
    assert chi2.sf(statistic, df=3) > 1e-3, (observed / groups, law)
    # the choice moves mass toward the reward (the test can tell the two laws apart)
    assert law[3] > 2 * p[3] and observed[3] / groups > 2 * p[3]
    assert out.stats["kept_reward"] > out.stats["mean_reward"]


def test_choice_edge_cases():
    rng = np.random.default_rng(0)
    rewards = np.array([0.0, 5.0, -np.inf, 1.0, -np.inf, -np.inf, 2.0])
    # a large strength takes the best of each group; the last group (one item) is kept
    chosen = bradley_terry_choice(rewards, 3, 50.0, rng)
    np.testing.assert_array_equal(chosen, [1, 3, 6])
    # strength 0 is a uniform choice; a group all -inf too
    picks = np.array(
        [bradley_terry_choice(np.array([-np.inf, -np.inf]), 2, 1.0, rng)[0] for _ in range(2000)]
    )
    assert 0.45 < picks.mean() < 0.55
    # one candidate: everything is kept
    np.testing.assert_array_equal(bradley_terry_choice(rewards, 1, 1.0, rng), np.arange(7))


def test_rewards_declared_as_data():
    ref = _reference()
    x = _points([[0.0], [3.0]]).reshape(2, 1)
    np.testing.assert_allclose(reward({"kind": "distance", "target": 1.0}, x, ref), [-1.0, -2.0])
    with pytest.raises(ConfigError, match="exact check"):
        reward({"kind": "task"}, ["1+1=2"], ref)
    with pytest.raises(InvalidParameterError, match="reward"):
        make("curator", "reward-choice", reward={"kind": "code", "target": "exec"})
    with pytest.raises(InvalidParameterError, match="exactly the keys"):
        make("metric", "reward", reward={"kind": "distance"})
    task = make("data", "arithmetic").load(n=10, rng=np.random.default_rng(0))
    scored = reward({"kind": "task"}, ["1+1=2", "1+1=3"], task)
    np.testing.assert_array_equal(scored, [1.0, 0.0])


def test_calculator_corrector_makes_every_kept_statement_valid():
    task = make("data", "arithmetic").load(n=10, rng=np.random.default_rng(0))
    items = ["12+30=42", "12+30=41", "7-9=3", "garbage", "5+5=", "99+1=100extra"]
    out = make("curator", "correct", strength=1.0)(
        items, reference=task, rng=np.random.default_rng(0), provenance=None
    )
    assert out.kept == ["12+30=42", "12+30=42", "7-9=-2", "5+5=10", "99+1=100"]
    np.testing.assert_array_equal(out.index, [0, 1, 2, 4, 5])  # the unreadable one dropped
    assert make("metric", "valid_fraction")(None, out.kept, task, rng=None) == 1.0
    assert out.stats["unreadable_share"] == pytest.approx(1 / 6)
    assert out.stats["changed_share"] == pytest.approx(4 / 6)
    # strength 0 leaves everything as it was
    untouched = make("curator", "correct", strength=0.0)(
        items, reference=task, rng=np.random.default_rng(0), provenance=None
    )
    assert untouched.kept == items
    # strength gamma corrects about that share
    many = ["1+1=3"] * 4000
    half = make("curator", "correct", strength=0.25)(
        many, reference=task, rng=np.random.default_rng(2), provenance=None
    )
    assert abs(np.mean([s == "1+1=2" for s in half.kept]) - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 4000)
    assert calculator("  3 + 4 =9") == "3+4=7"


def test_langevin_corrector_moves_points_toward_the_true_density():
    truth = {"mean": np.array([1.0, -1.0]), "cov": np.diag([1.0, 0.5])}
    ref = _reference(**truth)
    x = np.random.default_rng(0).normal(size=(4000, 2)) * 0.2 + [4.0, 3.0]  # far off
    corrector = make(
        "curator", "correct", expert="langevin", strength=1.0, steps=200, step_size=0.05
    )
    out = corrector(x, reference=ref, rng=np.random.default_rng(1), provenance=None)
    kept = out.kept
    se = np.sqrt(np.diag(truth["cov"]) / len(kept))
    assert np.all(np.abs(kept.mean(axis=0) - truth["mean"]) < 4 * se + 0.02)
    # the unadjusted algorithm's stationary variance of each coordinate, s^2 / (1 - eps / (4 s^2))
    stationary = np.diag(truth["cov"]) / (1 - 0.05 / (4 * np.diag(truth["cov"])))
    np.testing.assert_allclose(kept.var(axis=0), stationary, rtol=0.1)
    with pytest.raises(ConfigError, match="Gaussian truth"):
        corrector(x, reference=_reference(), rng=np.random.default_rng(1), provenance=None)
    # half the points corrected, the other half untouched
    some = make("curator", "correct", expert="langevin", strength=0.5)(
        x, reference=ref, rng=np.random.default_rng(3), provenance=None
    )
    unchanged = np.all(some.kept == x, axis=1)
    assert abs(unchanged.mean() - 0.5) < 0.05


def test_topic_filter_keeps_the_documents_on_the_topic():
    docs = ["my love is fair", "the ship sails", "LOVE, love and love", "a lovely day", "war"]
    np.testing.assert_array_equal(on_topic(docs, ["love", "lovely"]), [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(on_topic(docs, ["love"], min_count=2), [0, 0, 1, 0, 0])
    out = make("curator", "topic-filter", keywords=["love", "lovely"])(
        docs, reference=None, rng=None, provenance=None
    )
    assert out.kept == [docs[0], docs[2], docs[3]]
    assert out.stats["on_topic_share"] == pytest.approx(0.6)
    with pytest.raises(InvalidParameterError, match="single words"):
        make("curator", "topic-filter", keywords=["two words"])
    with pytest.raises(InvalidParameterError, match="keywords"):
        make("metric", "perplexity_topic", keywords=[])


def test_topic_perplexity_splits_the_test_documents():
    from collapselab.metrics.topic import _example

    real = _example()
    model = make("model", "ngram", order=1, level="word").fit(
        real.train, rng=np.random.default_rng(0)
    )
    inside = make("metric", "perplexity_topic", keywords=["love"], side="in")
    outside = make("metric", "perplexity_topic", keywords=["love"], side="out")
    everything = make("metric", "perplexity_real")
    values = np.array([m(model, None, real, rng=None) for m in (inside, outside, everything)])
    # per-token perplexities: the whole split's log-perplexity is the token-weighted mean
    tokens = [
        model.token_log_probs([d for d in real.test if ("love" in d) == side]).size
        for side in (True, False)
    ]
    assert tokens[0] > 0 and tokens[1] > 0
    np.testing.assert_allclose(
        np.log(values[2]), np.dot(tokens, np.log(values[:2])) / sum(tokens), rtol=1e-12
    )
    nowhere = make("metric", "perplexity_topic", keywords=["zebra"], side="in")
    assert np.isnan(nowhere(model, None, real, rng=None))
