"""Text metrics on small hand-made corpora where the answer is known exactly."""

import numpy as np
import pytest

from collapselab import make
from collapselab.core import DataKind, RealData, ReferenceBatch, SeedBatch
from collapselab.metrics.text import (
    distinct_n,
    entropy_of_counts,
    tokenize_corpus,
    zipf_exponent_of_counts,
)
from collapselab.models.categorical import BatchedCategorical, Categorical
from collapselab.models.ngram import NGram

RNG = np.random.default_rng(0)


def measure(metric_id, model, synthetic, reference, **params):
    return make("metric", metric_id, **params)(model, synthetic, reference, rng=RNG)


# Real training text: x once, w once, y twice, z three times.
REAL = RealData(train=["x y y", "z z z w"], test=["y z"], kind=DataKind.TEXT)


def test_types_and_rare_survival_on_text():
    model = NGram(order=1).fit(REAL.train, rng=RNG)
    output = ["X q", "q"]
    assert measure("types", model, output, REAL) == 2.0
    assert measure("rare_survival_k1", model, output, REAL) == 0.5  # x of {x, w}
    assert measure("rare_survival_k5", model, output, REAL) == 0.25  # x of {x, y, z, w}
    assert measure("rare_survival", model, output, REAL, k=2) == pytest.approx(1 / 3)
    # In the model's support: all real types are in the vocabulary of a model of REAL.
    assert measure("rare_support_k5", model, output, REAL) == 1.0
    narrow = NGram(order=1).fit(["x y"], rng=RNG)
    assert measure("rare_support_k5", narrow, output, REAL) == 0.5  # x and y of 4
    # No rare type at all: undefined.
    plain = RealData(train=["a a"], test=["a"], kind=DataKind.TEXT)
    assert np.isnan(measure("rare_survival_k1", model, output, plain))


def test_rare_mass_of_text_model():
    model = NGram(order=1).fit(["x y y", "z z z w"], rng=RNG)
    # Unigram: 7 tokens (ENDs excluded); rare k1 = {x, w}: 2/7.
    assert measure("rare_mass", model, [], REAL, k=1) == pytest.approx(2 / 7)
    assert measure("rare_mass", model, [], REAL) == pytest.approx(1.0)
    char = NGram(order=1, level="char").fit(REAL.train, rng=RNG)
    assert np.isnan(measure("rare_mass", char, [], REAL))


def test_entropy_zipf_and_distinct_exact():
    assert entropy_of_counts([2, 1, 1]) == pytest.approx(-(0.5 * np.log(0.5) + 0.5 * np.log(0.25)))
    counts = [144, 36, 16, 9]  # 144 / r^2
    assert zipf_exponent_of_counts(counts) == pytest.approx(2.0)
    assert np.isnan(zipf_exponent_of_counts([5]))
    words = ["a"] * 144 + ["b"] * 36 + ["c"] * 16 + ["d"] * 9
    model = NGram(order=1).fit(["a b"], rng=RNG)
    assert measure("zipf_exponent", model, [" ".join(words)], REAL) == pytest.approx(2.0)
    assert measure("entropy", model, ["a a b c"], REAL) == pytest.approx(
        entropy_of_counts([2, 1, 1])
    )
    corpus = tokenize_corpus(["a b a b"])
    assert distinct_n(corpus, 1) == 0.5
    assert distinct_n(corpus, 2) == pytest.approx(2 / 3)
    assert distinct_n(corpus, 3) == 1.0
    # n-grams never cross documents.
    assert distinct_n(tokenize_corpus(["a b", "a b"]), 2) == 0.5
    assert np.isnan(distinct_n(tokenize_corpus(["a", "b"]), 2))
    assert measure("distinct_2", model, ["a b a b"], REAL) == pytest.approx(2 / 3)
    assert measure("distinct_4", model, ["a b c d e"], REAL) == 1.0


def test_perplexity_and_coverage_of_text_model():
    model = NGram(order=1).fit(["a b a c", "a b"], rng=RNG)
    test = RealData(train=[], test=["a b a c", "a zebra"], kind=DataKind.TEXT)
    # Tokens: 1, 2/3, 1/2, 1/3, 1 | 1, 0 (zebra), 0 (END after unseen UNK context).
    p = np.array([1, 2 / 3, 0.5, 1 / 3, 1, 1, 0, 0])
    # Every token is charged: the two the model cannot emit cost ln(1 / floor).
    floored = np.log(p + 1e-6)
    assert measure("perplexity_real", model, [], test) == pytest.approx(np.exp(-floored.mean()))
    assert measure("perplexity_real", model, [], test, floor=1e-3) == pytest.approx(
        np.exp(-np.log(p + 1e-3).mean())
    )
    # The diagnostic leaves them out.
    covered = np.log(p[p > 0])
    assert measure("perplexity_covered", model, [], test) == pytest.approx(np.exp(-covered.mean()))
    assert measure("coverage_real", model, [], test) == pytest.approx(6 / 8)
    smooth = NGram(order=1, smoothing="kneser-ney").fit(["a b a c", "a b"], rng=RNG)
    assert measure("coverage_real", smooth, [], test) == 1.0


def _categorical_reference():
    return RealData(
        train=np.array([0, 0, 1, 2, 3, 3, 3]),
        test=np.array([0, 1, 2, 3]),
        kind=DataKind.TOKENS,
        truth={"probs": np.full(4, 0.25)},
    )


def test_categorical_metrics_exact():
    ref = _categorical_reference()
    model = Categorical(vocabulary_size=4).fit(np.array([0, 0, 1, 2]), rng=RNG)  # .5 .25 .25 0
    output = np.array([0, 0, 1])
    assert measure("support", model, output, ref) == 3.0
    assert measure("heterozygosity", model, output, ref) == pytest.approx(1 - 0.375)
    assert measure("tv_real", model, output, ref) == pytest.approx(0.25)
    assert measure("kl_real", model, output, ref) == pytest.approx(0.5 * np.log(2))
    assert measure("entropy", model, output, ref) == pytest.approx(
        -(0.5 * np.log(0.5) + 0.5 * np.log(0.25))
    )
    assert measure("types", model, output, ref) == 2.0
    # Real train counts: 0: 2, 1: 1, 2: 1, 3: 3 -> rare k1 = {1, 2}.
    assert measure("rare_survival_k1", model, output, ref) == 0.5
    assert measure("rare_support_k1", model, output, ref) == 1.0
    assert measure("rare_mass", model, output, ref, k=1) == pytest.approx(0.5)
    # Test ids 0..3; id 3 has probability 0: charged at the floor, coverage 3/4.
    floored = np.log(np.array([0.5, 0.25, 0.25, 0.0]) + 1e-6)
    assert measure("perplexity_real", model, output, ref) == pytest.approx(np.exp(-floored.mean()))
    covered = np.log([0.5, 0.25, 0.25])
    assert measure("perplexity_covered", model, output, ref) == pytest.approx(
        np.exp(-covered.mean())
    )
    assert measure("coverage_real", model, output, ref) == 0.75
    # The truth decides the real distribution; without it, the real training frequencies.
    empirical = RealData(train=ref.train, test=ref.test, kind=DataKind.TOKENS)
    q = np.array([2, 1, 1, 3]) / 7
    assert measure("tv_real", model, output, empirical) == pytest.approx(
        0.5 * np.abs(model.probs_ - q).sum()
    )


def test_batched_metrics_equal_per_seed_values():
    rng = np.random.default_rng(1)
    probs = np.arange(1, 31, dtype=float) ** -1.2
    probs /= probs.sum()
    refs = [
        RealData(
            train=rng.choice(30, size=60, p=probs),
            test=rng.choice(30, size=40, p=probs),
            kind=DataKind.TOKENS,
            truth={"probs": probs},
        )
        for _ in range(4)
    ]
    train = SeedBatch(np.stack([rng.choice(30, size=50, p=probs) for _ in range(4)]))
    model = BatchedCategorical().fit(train, rng=rng)
    output = model.sample(50, rng=rng)
    batch = ReferenceBatch(refs)
    for metric_id in [
        "types",
        "support",
        "heterozygosity",
        "entropy",
        "tv_real",
        "kl_real",
        "rare_survival_k1",
        "rare_survival_k5",
        "rare_support_k5",
        "rare_mass",
        "perplexity_real",
        "perplexity_covered",
        "coverage_real",
    ]:
        metric = make("metric", metric_id)
        values = metric.batched(model, output, batch, rng=rng)
        assert values is not None, metric_id
        expected = [metric(model.unbatch(s), output.array[s], refs[s], rng=rng) for s in range(4)]
        np.testing.assert_allclose(values, expected, err_msg=metric_id)


def _last_medians(config, path):
    import collapselab as cl

    frame = cl.run(config, path, report=False).metrics()
    sim = frame[(frame["source"] == "simulation")]
    last = sim[sim["generation"] == sim["generation"].max()]
    return last.groupby(["run_id", "metric"])["value"].median()


def test_perplexity_never_prefers_the_collapsed_chain(tmp_path):
    from collapselab.experiment import load_config

    # ngram-shakespeare, small: replace loses coverage (and types) faster than
    # accumulate; the covered-token perplexity used to call it the better fit.
    text = load_config(
        {
            "name": "shakespeare",
            "data": {"id": "shakespeare", "params": {"unit": "paragraph", "test_fraction": 0.02}},
            "model": {"id": "ngram", "params": {"order": 2}},
            "samples_per_generation": 300,
            "generations": 3,
            "seeds": 2,
            "metrics": ["perplexity_real", "perplexity_covered", "coverage_real", "types"],
            "arms": [{"name": "replace"}, {"name": "accumulate", "regime": {"id": "accumulate"}}],
        }
    )
    # zipf-tails with top-p 0.9: replace keeps a handful of types.
    tokens = load_config(
        {
            "name": "zipf",
            "data": {"id": "zipf", "params": {"exponent": 1.1, "vocabulary": 5000}},
            "model": {"id": "categorical"},
            "samples_per_generation": 5000,
            "generations": 6,
            "seeds": 4,
            "decoding": {"top_p": 0.9},
            "metrics": ["perplexity_real", "perplexity_covered", "coverage_real", "types"],
            "arms": [{"name": "replace"}, {"name": "accumulate", "regime": {"id": "accumulate"}}],
        }
    )
    for config in (text, tokens):
        last = _last_medians(config, tmp_path / config.name)
        # the collapsed arm: fewer types, less coverage ...
        assert last["replace", "types"] < last["accumulate", "types"]
        assert last["replace", "coverage_real"] < last["accumulate", "coverage_real"]
        # ... and a worse perplexity (the diagnostic still says the opposite)
        assert last["replace", "perplexity_real"] > last["accumulate", "perplexity_real"]
        assert last["replace", "perplexity_covered"] < last["accumulate", "perplexity_covered"]
