"""Fluency metrics (english_words, perplexity_reference, repetition), judged without the model."""

import numpy as np
import pytest

from collapselab import make
from collapselab.core import DataKind, Direction, RealData
from collapselab.metrics.fluency import english_word_share, repetition_share
from collapselab.testing import example_data

pytest.importorskip("wordfreq")

DICTIONARY = ["The quick brown fox jumps over the lazy dog, and then it sleeps."]


def random_characters(n_docs, seed=0):
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;!?"))
    return ["".join(rng.choice(alphabet, 64)) for _ in range(n_docs)]


def test_english_word_share_is_one_on_a_dictionary_sentence_and_near_zero_on_noise():
    assert english_word_share(DICTIONARY) == 1.0
    assert english_word_share(["O'er the hills, thou art", "I 2 3 ..."]) == 1.0
    assert english_word_share(random_characters(100)) < 0.1
    assert np.isnan(english_word_share(["1 2 3 , ."]))  # no word: undefined
    # letters weigh: one long non-word outweighs two short words
    assert english_word_share(["a qwzxkvbnmjh i"]) == pytest.approx(2 / 13)


def test_repetition_share_per_document():
    values = repetition_share(["a b c d a b c d", "a b c", "w x y z w"])
    # 5 four-grams with 4 distinct; none in a 3-word document; 2 distinct of 2
    np.testing.assert_allclose(values, [0.2, np.nan, 0.0])


def test_metrics_declare_what_they_measure():
    words, ppl, rep = (
        make("metric", m) for m in ("english_words", "perplexity_reference", "repetition")
    )
    assert words.direction is Direction.HIGHER and words.share
    assert rep.direction is Direction.LOWER and rep.share and "4-grams" in rep.describe()
    # too likely (beam search) and too unlikely (gibberish) are both away from real text
    assert ppl.direction is Direction.TARGET and ppl.per_item and "5-character" in ppl.describe()


def test_reference_perplexity_is_low_on_real_text_and_high_on_noise():
    real = example_data(DataKind.TEXT)
    metric = make("metric", "perplexity_reference", order=3)
    rng = np.random.default_rng(0)
    on_real = metric.item_values(None, real.test, real, rng=rng)
    on_noise = metric.item_values(None, random_characters(20), real, rng=rng)
    assert np.all(np.isfinite(on_real)) and np.all(on_real > 1)
    assert np.median(on_noise) > 5 * np.median(on_real)
    # the reference depends on the real corpus only, never on the model judged
    other = RealData(train=real.train, test=real.test, kind=real.kind)
    np.testing.assert_array_equal(
        metric.item_values("any model", real.test, other, rng=rng), on_real
    )
