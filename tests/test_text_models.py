"""Categorical and n-gram models: exact estimates on hand-made corpora, sampling that
follows the model's own probabilities, generation modes, collapse without crashing."""

import numpy as np
import pytest

from collapselab import make
from collapselab.core import SeedBatch
from collapselab.decoding import Decoding
from collapselab.errors import DataError
from collapselab.models.categorical import BatchedCategorical, Categorical
from collapselab.models.ngram import BOS, END, NGram
from collapselab.tokenize import tokenize_words

RNG = np.random.default_rng(0)


# -- categorical -----------------------------------------------------------------


def test_categorical_mle_and_smoothing_exact():
    data = np.array([0, 0, 1, 2])
    model = Categorical(vocabulary_size=4).fit(data, rng=RNG)
    np.testing.assert_allclose(model.probs_, [0.5, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(model.log_prob([0, 3, 7]), [np.log(0.5), -np.inf, -np.inf])
    smooth = Categorical(vocabulary_size=4, smoothing=1.0).fit(data, rng=RNG)
    np.testing.assert_allclose(smooth.probs_, [3 / 8, 2 / 8, 2 / 8, 1 / 8])
    inferred = Categorical().fit(data, rng=RNG)
    assert len(inferred.probs_) == 3
    np.testing.assert_allclose(inferred.type_probs([2, 5, -1]), [0.25, 0, 0])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "empty"),
        ([0, -1], ">= 0"),
        ([0.5, 1.0], "integers"),
        ([[0, 1]], "1-D"),
        ([9], "outside"),
    ],
)
def test_categorical_bad_data(data, match):
    with pytest.raises(DataError, match=match):
        Categorical(vocabulary_size=5).fit(np.array(data), rng=RNG)


def test_categorical_collapsed_to_one_type_is_legal():
    model = Categorical().fit(np.zeros(10, dtype=int), rng=RNG)
    assert set(model.sample(50, rng=np.random.default_rng(1))) == {0}


def test_batched_categorical_matches_per_seed():
    data = np.random.default_rng(3).integers(0, 6, size=(5, 40))
    batched = BatchedCategorical(vocabulary_size=6, smoothing=0.5).fit(SeedBatch(data), rng=RNG)
    for s in range(5):
        single = Categorical(vocabulary_size=6, smoothing=0.5).fit(data[s], rng=RNG)
        np.testing.assert_allclose(batched.probs_[s], single.probs_)
        np.testing.assert_allclose(batched.unbatch(s).probs_, single.probs_)
    # Sampling: every seed's frequencies follow its own distribution.
    n = 20_000
    out = batched.sample(n, rng=np.random.default_rng(4)).array
    assert out.shape == (5, n)
    for s in range(5):
        freq = np.bincount(out[s], minlength=6) / n
        p = batched.probs_[s]
        assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12)


# -- n-gram: exact probabilities ----------------------------------------------------

CORPUS = ["a b a c", "a b"]  # order 1: P(b|a) = 2/3, P(c|a) = 1/3, P(a|b) = 1/2, ...


def test_ngram_mle_conditional_probabilities_exact():
    model = NGram(order=1).fit(CORPUS, rng=RNG)
    vocab = list(model.vocab_)
    p_a = model.next_token_probs(["a"])
    assert p_a[vocab.index("b")] == pytest.approx(2 / 3)
    assert p_a[vocab.index("c")] == pytest.approx(1 / 3)
    p_b = model.next_token_probs(["b"])
    assert p_b[vocab.index("a")] == pytest.approx(0.5) and p_b[END] == pytest.approx(0.5)
    # Every token of "a b a c": P(a|<s>) P(b|a) P(a|b) P(c|a) P(END|c).
    expected = np.log([1.0, 2 / 3, 0.5, 1 / 3, 1.0])
    np.testing.assert_allclose(model.token_log_probs(["a b a c"]), expected)
    np.testing.assert_allclose(
        model.log_prob(["a b a c", "a b"]), [expected.sum(), np.log(2 / 3 * 0.5)]
    )
    # Unseen words and contexts: probability 0 without smoothing.
    assert model.token_log_probs(["a zebra"])[1] == -np.inf
    assert np.all(model.next_token_probs(["zebra"]) == 0)


def test_ngram_add_k_exact():
    model = NGram(order=1, smoothing="add-k", pseudocount=0.5).fit(CORPUS, rng=RNG)
    vocab = list(model.vocab_)
    v_pred = len(vocab) - 1  # every id but BOS: END, UNK, a, b, c
    assert v_pred == 5
    p_a = model.next_token_probs(["a"])
    assert p_a[vocab.index("b")] == pytest.approx((2 + 0.5) / (3 + 0.5 * 5))
    assert p_a[vocab.index("a")] == pytest.approx(0.5 / (3 + 0.5 * 5))
    # An unseen word is scored as the unknown class: finite.
    assert np.isfinite(model.token_log_probs(["a zebra"])).all()


def test_ngram_kneser_ney_hand_computed():
    # Order 1 on "a b a c" + "a b", D = 0.5. Unigram level: continuation counts
    # N1+(. w) = number of distinct predecessors: a <- {<s>, b}: 2; b <- {a}: 1;
    # c <- {a}: 1; END <- {c, b}: 2. Total 6, 4 distinct.
    model = NGram(order=1, smoothing="kneser-ney", discount=0.5).fit(CORPUS, rng=RNG)
    vocab = list(model.vocab_)
    uniform = 1 / 5
    p1 = {w: (max(c - 0.5, 0) + 0.5 * 4 * uniform) / 6 for w, c in {"a": 2, "b": 1, "c": 1}.items()}
    # Top order, context "a": counts b: 2, c: 1 (total 3, 2 distinct).
    expected_b = (2 - 0.5 + 0.5 * 2 * p1["b"]) / 3
    assert model.next_token_probs(["a"])[vocab.index("b")] == pytest.approx(expected_b)
    # An unseen context falls back to the lower order entirely.
    assert model.next_token_probs(["zebra"])[vocab.index("a")] == pytest.approx(p1["a"])


@pytest.mark.parametrize("smoothing", ["none", "add-k", "kneser-ney"])
@pytest.mark.parametrize("level", ["word", "char"])
def test_distributions_sum_to_one(smoothing, level):
    docs = ["the cat sat on the mat", "the dog sat on a log", "a cat and a dog"]
    model = NGram(order=2, level=level, smoothing=smoothing).fit(docs, rng=RNG)
    split = tokenize_words if level == "word" else list
    for context in (
        split("the cat"),
        split("sat on"),
        ["<unk>", "x"][: 2 if level == "word" else 0],
    ):
        p = model.next_token_probs(context)
        if smoothing != "none" or p.sum() > 0:
            assert p.sum() == pytest.approx(1.0)


# -- n-gram: sampling follows the model --------------------------------------------


@pytest.mark.parametrize(
    ("smoothing", "decoding"),
    [
        ("none", None),
        ("none", Decoding(top_p=0.6)),
        ("add-k", None),
        ("kneser-ney", None),
        ("kneser-ney", Decoding(temperature=0.7, top_k=3)),
    ],
)
def test_next_token_frequencies_match_the_model(smoothing, decoding):
    docs = ["x a b", "x a c", "x a b", "x a d", "y b", "x a b"]
    model = NGram(
        order=1, smoothing=smoothing, mode="prefix", prefix_length=2, continuation_length=1
    ).fit(docs, rng=RNG)
    # Samples cycle through the training prefixes; those of document 0 continue "x a".
    n = 6000
    which = np.arange(n) % len(docs) == 0
    out = model.sample(n, rng=np.random.default_rng(5), decoding=decoding)
    nexts = [d.split()[2] for d, w in zip(out, which, strict=True) if w]
    vocab = list(model.vocab_)
    p = model.next_token_probs(["a"])
    p[END] = 0  # the length is fixed: the next token is conditioned on not ending
    p = p / p.sum()
    if decoding is not None:
        p = decoding.apply(p)
    m = len(nexts)
    freq = np.array([nexts.count(w) for w in vocab]) / m
    se = np.sqrt(p * (1 - p) / m)
    assert np.all(np.abs(freq - p) <= 4 * se + 1e-12), (freq.round(3), p.round(3))


def test_free_mode_documents_end_where_the_model_ends_them():
    # One document of nine a's: P(END | a) = 1/9, so lengths are geometric with mean 9
    # (sd sqrt(72) = 8.5). A length drawn from the training documents would always be 9.
    model = NGram(order=1).fit([" ".join(["a"] * 9)], rng=RNG)
    out = model.sample(4000, rng=np.random.default_rng(1))
    lengths = np.array([len(d.split()) for d in out])
    assert set(" ".join(out).split()) == {"a"}
    assert lengths.min() == 1 and lengths.max() > 30
    assert abs(lengths.mean() - 9) < 4 * np.sqrt(72 / len(lengths))
    assert abs(np.mean(lengths == 1) - 1 / 9) < 4 * np.sqrt((1 / 9) * (8 / 9) / len(lengths))


def _grams(model, docs):
    """Every (order+1)-gram of ``docs`` as the model pads them (BOS ... END), in order."""
    x = model._padded(docs, model.vocab_)[0]
    k = model.order + 1
    return [tuple(x[p - k + 1 : p + 1]) for p in np.flatnonzero(x != BOS)]


@pytest.mark.parametrize(("order", "level"), [(1, "word"), (2, "word"), (3, "char")])
def test_unsmoothed_free_mode_emits_only_training_ngrams(order, level):
    # Contexts seen only at a document's end ("c d", "mat") used to be continued by
    # backing off, which emits (order+1)-grams the MLE chain gives probability 0.
    real = make("data", "shakespeare").load(n=300, rng=np.random.default_rng(0))
    docs = ["a b c", "b c d", "x a b", "the cat sat on the mat", *real.train]
    model = NGram(order=order, level=level).fit(docs, rng=RNG)
    seen = set(_grams(model, docs))
    out = model.sample(600, rng=np.random.default_rng(3))
    generated = _grams(model, out)
    assert len(generated) > 5000
    assert [g for g in generated if g not in seen] == []
    # and every output scores finitely under the model that wrote it
    assert np.isfinite(model.log_prob(out)).all()


def test_complete_continues_prompts_to_the_model_end():
    docs = ["37+48=85", "1+2=3", "10+20=30"] * 3
    model = NGram(order=6, level="char").fit(docs, rng=RNG)
    greedy = {"temperature": 0.0}
    assert model.complete(["37+48=", "1+2=", "10+20="], rng=RNG, decoding=greedy) == [
        "85",
        "3",
        "30",
    ]
    cut = NGram(order=1, max_length=4).fit(["a a a a a a a a"], rng=RNG)
    assert all(len(c.split()) <= 4 for c in cut.complete(["a"] * 50, rng=RNG))


def test_pure_mle_only_emits_seen_transitions():
    docs = ["a b c a b", "b c a b c"]  # every token has a continuation other than END
    model = NGram(order=1).fit(docs, rng=RNG)
    seen = {(w[i], w[i + 1]) for d in docs for w in [d.split()] for i in range(len(w) - 1)}
    for doc in model.sample(200, rng=np.random.default_rng(2)):
        words = doc.split()
        assert {(words[i], words[i + 1]) for i in range(len(words) - 1)} <= seen


def test_prefix_mode_continues_training_prefixes():
    docs = ["one two three four five", "six seven eight nine ten"]
    model = NGram(order=1, mode="prefix", prefix_length=2, continuation_length=3).fit(docs, rng=RNG)
    out = model.sample(4, rng=np.random.default_rng(0))
    assert [d.split()[:2] for d in out] == [["one", "two"], ["six", "seven"]] * 2
    assert all(len(d.split()) == 5 for d in out)


def test_char_level_round_trip_and_alphabet():
    docs = ["abcab", "bca"]
    model = NGram(order=2, level="char").fit(docs, rng=RNG)
    out = model.sample(50, rng=np.random.default_rng(0))
    assert set("".join(out)) <= set("abc")
    assert np.isfinite(model.log_prob(docs)).all()
    assert np.isfinite(model.log_prob(out)).all()  # only transitions it has seen


def test_ngram_collapse_is_a_state_not_a_crash():
    model = NGram(order=2).fit(["a a a a"], rng=RNG)
    out = model.sample(5, rng=np.random.default_rng(0))
    assert set(" ".join(out).split()) == {"a"}
    again = NGram(order=2).fit(out, rng=RNG)
    assert again.log_prob(["b"])[0] == -np.inf
    assert again.type_probs(["a", "b"]).tolist() == [1.0, 0.0]


def test_ngram_reproducible_and_reads_its_own_output():
    docs = ["The quick brown fox.", "A lazy dog, asleep!", "Don't <unk> me"]
    model = NGram(order=2, smoothing="kneser-ney").fit(docs, rng=RNG)
    a = model.sample(20, rng=np.random.default_rng(7))
    assert a == model.sample(20, rng=np.random.default_rng(7))
    refit = NGram(order=2, smoothing="kneser-ney").fit(a, rng=RNG)
    assert set(refit.vocab_) <= set(model.vocab_)


@pytest.mark.parametrize("data", ["just a string", [], [1, 2]])
def test_ngram_bad_data(data):
    with pytest.raises(DataError):
        NGram().fit(data, rng=RNG)
