"""The one word tokenizer, and the named variants that differ from it on purpose.

Models, metrics, ``diagnose`` and the report split text into words with
:func:`tokenize_words` (or its corpus-at-once form :func:`encode_documents`, which
gives the same tokens as ids): lower-cased words with inner apostrophes
(``don't``, ``o'er``), and every other non-space character as a token of its own, so
punctuation counts as a word and a word model can read its own output (the report's
rank-frequency plots keep only its tokens with a letter or digit, so punctuation does
not hide the curve's head). One variant exists for a stated reason and is named for it:
:func:`whitespace_words`, ``str.split()``, the unit of MinHash shingles in the ``dedup``
curator and of the per-word normalisation of a document's log-likelihood in the
scoring curators (both cheap and independent of punctuation).

A leaf module: it imports nothing of collapselab.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = [
    "UNK_WORD",
    "WORD_PATTERN",
    "concatenated_ranges",
    "document_batches",
    "encode_documents",
    "encode_documents_keyed",
    "encode_documents_spelled",
    "spellings",
    "tokenize_words",
    "whitespace_words",
]

#: Placeholder a smoothed word model emits for its unknown-word class.
UNK_WORD = "<unk>"
#: A word: letters/digits with inner apostrophes ("don't", "o'er"), or one punctuation mark.
#: The placeholder stays one token so that models can read their own output.
WORD_PATTERN = re.compile(r"<unk>|\w+(?:['’]\w+)*|[^\w\s]")


def tokenize_words(text: str, lowercase: bool = True) -> list[str]:
    """Words and punctuation marks of ``text``; joining them with spaces and tokenizing
    again gives the same tokens, so a word model can read its own output."""
    return WORD_PATTERN.findall(text.lower() if lowercase else text)


#: Joins documents so one pass tokenizes a whole corpus; it is a token of its own (a
#: non-word, non-space character) and is removed from the documents first.
_SEPARATOR = "\x00"
_APOSTROPHES = (ord("'"), ord("’"))
_UNK_CODES = tuple(ord(c) for c in UNK_WORD)
#: Odd, so invertible modulo 2**64: token hashes do not depend on the token's position.
_HASH_BASE = 0x9E3779B97F4A7C15
_HASH_CHUNK = 1 << 18


_WORD, _SPACE = 1, 2


def _char_class(c: str) -> int:
    # As ``re`` defines them: \w is str.isalnum() or "_", \s is str.isspace().
    return _WORD if c.isalnum() or c == "_" else _SPACE if c.isspace() else 0


@functools.lru_cache(maxsize=1)
def _bmp_classes() -> np.ndarray:
    """The class (word, space or other) of every code point below 0x10000."""
    return np.fromiter((_char_class(chr(c)) for c in range(0x10000)), np.uint8, count=0x10000)


def _classify(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    table = _bmp_classes()
    classes = np.take(table, codes, mode="clip")  # above 0xFFFF: the last entry, then fixed
    high = np.flatnonzero(codes > 0xFFFF)
    if len(high):  # astral code points: classify each distinct one in Python
        distinct, inverse = np.unique(codes[high], return_inverse=True)
        classes[high] = np.array([_char_class(chr(c)) for c in distinct], np.uint8)[inverse]
    return classes == _WORD, classes == _SPACE


def _word_spans(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of every token of :data:`WORD_PATTERN`, found with array operations:
    ``<unk>``; runs of word characters joined by inner apostrophes; any other
    non-space character alone."""
    n = len(codes)
    is_word, is_space = _classify(codes)
    prev_word = np.concatenate([[False], is_word[:-1]])
    next_word = np.concatenate([is_word[1:], [False]])
    apostrophe = (codes == _APOSTROPHES[0]) | (codes == _APOSTROPHES[1])
    joined = is_word | (apostrophe & prev_word & next_word)
    unk = np.zeros(n, dtype=bool)
    hit = np.ones(max(n - 4, 0), dtype=bool)
    for k, c in enumerate(_UNK_CODES):
        hit &= codes[k : k + len(hit)] == c
    unk_at = np.flatnonzero(hit)
    for k in range(len(_UNK_CODES)):
        unk[unk_at + k] = True
    run = joined & ~unk
    single = ~is_space & ~joined & ~unk
    starts = run & ~np.concatenate([[False], run[:-1]])
    starts |= single
    starts[unk_at] = True
    last = run & ~np.concatenate([run[1:], [False]])
    last |= single
    last[unk_at + len(_UNK_CODES) - 1] = True
    return np.flatnonzero(starts), np.flatnonzero(last) + 1


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``B^i`` and ``B^-i`` mod 2^64 for ``i < size``."""
    one = np.ones(1, dtype=np.uint64)
    base_inv = pow(_HASH_BASE, -1, 1 << 64)
    with np.errstate(over="ignore"):
        power = np.concatenate([one, np.cumprod(np.full(size - 1, _HASH_BASE, np.uint64))])
        inverse = np.concatenate([one, np.cumprod(np.full(size - 1, base_inv, np.uint64))])
    return power, inverse


@functools.lru_cache(maxsize=1)
def _chunk_powers() -> tuple[np.ndarray, np.ndarray]:
    """:func:`_powers` for a chunk of :func:`_span_hashes` and a token of up to
    :data:`_HASH_CHUNK` characters past its end, computed once per process."""
    return _powers(2 * _HASH_CHUNK)


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each span (equal text, equal hash), chunk by chunk to
    bound memory: sum c_i B^(i - start) mod 2^64 from prefix sums of c_i B^i."""
    out = np.empty(len(starts), dtype=np.uint64)
    cached = _chunk_powers()
    first = 0
    while first < len(starts):
        a = int(starts[first])
        stop = int(np.searchsorted(starts, a + _HASH_CHUNK, side="left"))
        stop = max(stop, first + 1)
        b = int(ends[stop - 1])
        size = b - a + 1
        if size <= len(cached[0]):
            power, inverse = cached[0][:size], cached[1][:size]
        else:  # a token longer than a chunk
            power, inverse = _powers(size)
        with np.errstate(over="ignore"):
            prefix = np.concatenate(
                [[np.uint64(0)], np.cumsum(codes[a:b].astype(np.uint64) * power[:-1])]
            )
            s, e = starts[first:stop] - a, ends[first:stop] - a
            out[first:stop] = (prefix[e] - prefix[s]) * inverse[s]
        first = stop
    return out


def encode_documents(
    documents: list[str], *, level: str = "word", lowercase: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids of a whole corpus: ``(ids, types, doc_ptr)``.

    ``ids[doc_ptr[d]:doc_ptr[d + 1]]`` are document ``d``'s tokens (the words of
    :func:`tokenize_words`, or characters) and ``types[i]`` is the token of id ``i``,
    in order of first appearance. The corpus is scanned with array operations over
    its code points and tokens are identified by a 64-bit hash (the chance that two
    of 10^5 types collide is about 10^-9), so no Python object is made per token:
    this is what makes fitting an n-gram model fast.
    """
    ids, types, doc_ptr, _ = encode_documents_keyed(documents, level=level, lowercase=lowercase)
    return ids, types, doc_ptr


def encode_documents_keyed(
    documents: list[str], *, level: str = "word", lowercase: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`encode_documents` and the 64-bit hash of each type (``keys[i]`` of
    ``types[i]``): the same word has the same key in every call, so corpora encoded in
    parts can share one vocabulary keyed by them."""
    ids, (chars, char_ptr), doc_ptr, keys = encode_documents_spelled(
        documents, level=level, lowercase=lowercase
    )
    return ids, spellings(chars, char_ptr), doc_ptr, keys


def encode_documents_spelled(
    documents: list[str], *, level: str = "word", lowercase: bool = True
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """:func:`encode_documents_keyed` with the types spelled as code points rather
    than strings: ``(ids, (chars, char_ptr), doc_ptr, keys)``, type ``i`` being
    ``chars[char_ptr[i]:char_ptr[i + 1]]`` (:func:`spellings` makes the strings). No
    Python object is made per type either: a corpus's batches, tokenized in another
    process, travel as a few arrays."""
    import pandas as pd

    lengths, parts = [], []
    for batch in document_batches(documents, _HASH_CHUNK * 4):
        # One separated text per batch of documents bounds the per-character arrays.
        text = _SEPARATOR.join(d.replace(_SEPARATOR, "") for d in batch) + _SEPARATOR
        if lowercase:
            text = text.lower()
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        if level == "word":
            starts, ends = _word_spans(codes)
            batch_keys = _span_hashes(codes, starts, ends)
        else:
            starts = np.arange(len(codes))
            ends, batch_keys = starts + 1, codes.astype(np.uint64)
        is_sep = codes[starts] == 0  # the separator is always a one-character token
        lengths.append(np.diff(np.concatenate([[-1], np.flatnonzero(is_sep)])) - 1)
        kept = ~is_sep
        # Ids per batch (one small hash table at a time), then batch ids -> corpus ids.
        local, distinct = pd.factorize(batch_keys[kept])
        first = _first_appearances(local)
        spans = starts[kept][first], ends[kept][first]
        parts.append((codes, spans, local, np.asarray(distinct, dtype=np.uint64)))
    # The batches' types in their order of first appearance, numbered in one table: the
    # corpus's order of first appearance.
    corpus_ids, keys = pd.factorize(
        np.concatenate([np.zeros(0, np.uint64), *(p[3] for p in parts)])
    )
    new = _first_appearances(corpus_ids)
    ids, chars, char_lengths = [], [], []
    offset = 0
    for codes, (starts, ends), local, distinct in parts:
        mine = new[(new >= offset) & (new < offset + len(distinct))] - offset
        span = ends[mine] - starts[mine]
        chars.append(codes[concatenated_ranges(starts[mine], span)])
        char_lengths.append(span)
        ids.append(corpus_ids[offset : offset + len(distinct)][local])
        offset += len(distinct)
    doc_ptr = np.concatenate([[0], np.cumsum(np.concatenate([[0], *lengths])[1:])])
    all_ids = np.concatenate([np.zeros(0, np.int64), *ids]).astype(np.int64)
    char_ptr = np.concatenate(
        [[0], np.cumsum(np.concatenate([np.zeros(0, np.int64), *char_lengths]))]
    )
    return (
        all_ids,
        (np.concatenate([np.zeros(0, np.uint32), *chars]), char_ptr.astype(np.int64)),
        doc_ptr.astype(np.int64),
        np.asarray(keys, dtype=np.uint64),
    )


def concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices ``starts[i], ..., starts[i] + lengths[i] - 1`` of every range in turn,
    as one array: gathers many spans of an array in one indexing."""
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())


def _first_appearances(codes: np.ndarray) -> np.ndarray:
    """Where each code of a factorization (numbered in order of first appearance)
    first appears: where a code exceeds every code before it."""
    if not len(codes):
        return np.zeros(0, np.int64)
    seen = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate([[True], codes[1:] > seen[:-1]]))


def spellings(chars: np.ndarray, char_ptr: np.ndarray) -> np.ndarray:
    """The strings (an object array) spelled by code points ``chars``, string ``i``
    being ``chars[char_ptr[i]:char_ptr[i + 1]]``."""
    text = chars.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")
    out = np.empty(len(char_ptr) - 1, dtype=object)
    bounds = char_ptr.tolist()
    out[:] = [text[a:b] for a, b in itertools.pairwise(bounds)]
    return out


def document_batches(documents: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive documents in lists of about ``size`` characters (at least one each),
    read once, in order."""
    current: list[str] = []
    chars = 0
    for doc in documents:
        current.append(doc)
        chars += len(doc) + 1
        if chars >= size:
            yield current
            current, chars = [], 0
    if current:
        yield current


def whitespace_words(text: str) -> list[str]:
    """The whitespace-separated pieces of ``text`` (``str.split()``), punctuation attached."""
    return text.split()
