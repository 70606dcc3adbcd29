"""The tokenize leaf: the one word tokenizer and its named variant."""

from hypothesis import given, settings
from hypothesis import strategies as st

from collapselab.tokenize import tokenize_words, whitespace_words


def test_the_variants_differ_from_the_word_tokenizer_as_documented():
    text = "Don't panic: 'tis O'er!  a\tb"
    assert tokenize_words(text) == ["don't", "panic", ":", "'", "tis", "o'er", "!", "a", "b"]
    assert whitespace_words(text) == ["Don't", "panic:", "'tis", "O'er!", "a", "b"]


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_the_variants_are_the_expressions_they_replaced(text):
    # Refactors keep results bit-identical: dedup and the scoring curators split on
    # whitespace.
    assert whitespace_words(text) == text.split()


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_a_word_model_reads_its_own_output(text):
    tokens = tokenize_words(text)
    assert tokenize_words(" ".join(tokens)) == tokens


def test_concatenated_ranges_are_the_ranges_one_after_another():
    import numpy as np

    from collapselab.tokenize import concatenated_ranges

    starts, lengths = np.array([5, 0, 9, 3]), np.array([2, 3, 0, 1])
    expected = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
    assert concatenated_ranges(starts, lengths).tolist() == expected.tolist() == [5, 6, 0, 1, 2, 3]
