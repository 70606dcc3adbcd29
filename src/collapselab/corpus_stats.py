"""Streaming statistics of text corpora: the engine of ``collapselab diagnose``.

One pass over each corpus, in batches of documents, keeps only what the statistics
need, so memory is bounded by the vocabulary and by fixed budgets (:class:`Budget`),
not by the size of the corpus or by the number of bootstrap resamples:

* the vocabulary (word types in order of first appearance over both corpora, as one
  joint tokenization numbers them) and each corpus's type counts;
* the *units* the bootstrap resamples, each with its type counts (a sparse
  unit x type table): units are documents while that table fits its budget; beyond
  it, neighbouring units are merged two by two into blocks of consecutive documents,
  as often as needed (a block bootstrap);
* for 2-, 3- and 4-grams, the distinct n-grams of each unit, for the n-grams whose
  hash falls below a threshold (a coordinated sample, as a bottom-k sketch keeps):
  all of them while they fit the budget, else the threshold is lowered to keep a
  uniform sample of the distinct n-grams;
* the reference's bigram counts (exact up to a budget of distinct bigrams, then a
  Misra-Gries summary), for the frequent bigrams a candidate lost;
* the gzip size of a uniform sample of the documents (all of a small corpus), and a
  fixed random sample of documents for self-BLEU.

The documents are read once, as an iterable (a JSONL file streamed line by line), so
memory never holds the corpus. Large corpora are tokenized in a second process while
the first counts, and each batch's 3- and 4-grams are added in a thread while the main
thread goes on (numpy's sorts release the GIL).

Exactness. Where no budget is exceeded every count is exact: the point values equal
those of a one-shot computation over the whole corpora. N-grams are identified by
64-bit hashes of their word ids (bigrams exactly, by the pair of ids); two distinct
n-grams share a hash with probability about 2^-64 per pair. Beyond a budget, what
changes is stated in the result: a block bootstrap resamples blocks of documents
(intervals can only widen where neighbouring documents are alike); a sampled
distinct-n-gram count is the sample's count divided by the sampling rate, with
relative standard error ``sqrt((1 - rate) / kept)`` (about 0.1% with the default
budget, which keeps half a million to two million n-grams); a Misra-Gries bigram
count is low by at most ``bigrams / (budget + 1)``.

Two bootstraps (:func:`bootstrap`), both over multinomial resamples of the units
drawn in chunks of rows (the same stream as one ``Generator.multinomial`` call):

* ``exact`` recomputes every metric from each resample's full type and n-gram
  counts; its cost grows as resamples x (vocabulary + non-zero pairs), so it serves
  small corpora, where it gives the same intervals as earlier versions, bit for bit;
* ``fast`` costs resamples x units plus one pass over the pairs: sums over units
  (documents, tokens, rare mass) are exact; a type or n-gram seen in one unit only is
  present in a resample exactly when that unit is drawn (counted per unit, exactly);
  one seen in at least :data:`ALWAYS_PRESENT` units is counted present (it is absent
  with probability below e^-40); those in between are checked one by one, on a
  uniform sample of at most :data:`CHECKED` of them; entropy is exact for types seen
  in one unit and first order (the delta method) in the counts of the others; the
  Zipf exponent is first order in every count, its ranks held fixed.
  ``tests/test_corpus_stats.py`` holds its intervals to the exact ones.
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import itertools
import math
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError
from .io import format_bytes, memory_budget, trim_heap
from .metrics.text import entropy_of_probs, zipf_exponent_of_counts
from .tokenize import (
    concatenated_ranges,
    document_batches,
    encode_documents_spelled,
    spellings,
    tokenize_words,
)

#: Characters per batch of documents: bounds the tokenizer's per-character arrays.
BATCH_CHARS = 1 << 22
#: Corpora of more characters than this are tokenized in a second process.
PARALLEL_CHARS = 2 * BATCH_CHARS
#: Bootstrap resamples computed at once: bounds the dense (resamples x types) counts.
RESAMPLE_CHUNK = 8
#: Orders of the distinct-n statistics; n = 1 comes from the type counts.
ORDERS = (2, 3, 4)
#: Documents sampled per corpus for self-BLEU.
SELF_BLEU_DOCUMENTS = 100
#: gzip level of the compression ratio: ``gzip.compress``'s default, as Shaib et al. use.
GZIP_LEVEL = 9
#: Characters of text compressed per corpus: all of a smaller corpus, else the
#: documents of smallest priority (a hash of their index) that reach it, a uniform
#: sample (the ratio is a density: a sample estimates it).
GZIP_CHARS = 1 << 21
#: The fast bootstrap counts an item seen in this many units as present in every resample.
ALWAYS_PRESENT = 40
#: The fast bootstrap checks at most this many items one by one (a uniform sample).
CHECKED = 1 << 16
#: Bytes of memory a word type takes over a run of ``diagnose`` (its string, its place in
#: the vocabulary, its counts and table rows on both sides), which bounds the vocabulary.
TYPE_BYTES = 512
#: Bootstrap work (resamples x (types + pairs)) up to which ``auto`` takes ``exact``.
EXACT_WORK = 2 * 10**8
_MAX64 = np.uint64(2**64 - 1)
#: Arrival numbers of n-grams (int32) beyond which the table's are renumbered.
_ARRIVALS = 2**31 - 1


@dataclass(frozen=True)
class Budget:
    """Sizes beyond which exact structures give way to blocks, samples and summaries.

    Within them every count is exact: documents stay the bootstrap's units up to about
    100 MB of ordinary text, and distinct-n is exact up to about 2 million distinct
    (n-gram, document) pairs per order (about 10 MB of ordinary text; beyond, a
    uniform sample of the distinct n-grams of about a million pairs, whose relative
    standard error the result states: about 0.1-0.2%). The defaults hold a pair of
    corpora's statistics in well under 1 GB, whatever their size.
    """

    #: (unit, type, count) triples, 16 bytes each.
    type_pairs: int = 1 << 24
    #: (unit, n-gram) pairs kept per order, 16 bytes each during a pass (8 after it,
    #: and 8 per distinct n-gram): consolidating them costs time in proportion, so this
    #: budget is small.
    gram_pairs: int = 1 << 21
    #: Distinct reference bigrams counted exactly (Misra-Gries beyond).
    bigrams: int = 1 << 22


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijective, well-mixed 64-bit hash of each value."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _unmix(h: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_mix`: each xorshift and odd multiplication undone in turn."""
    z = np.asarray(h, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(31)) ^ (z >> np.uint64(62))
        z = z * np.uint64(pow(0x94D049BB133111EB, -1, 1 << 64))
        z = z ^ (z >> np.uint64(27)) ^ (z >> np.uint64(54))
        z = z * np.uint64(pow(0xBF58476D1CE4E5B9, -1, 1 << 64))
        z = z ^ (z >> np.uint64(30)) ^ (z >> np.uint64(60))
    return z - np.uint64(0x9E3779B97F4A7C15)


def _sorted_stably(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``order = np.argsort(values, kind="stable")`` and ``values[order]``, for 64-bit
    values whose high bits are spread (hashes) or that are small, about twice as fast:
    each value's high bits and its position are sorted as one word (numpy's plain sort
    of words is faster than any argsort), and the rare runs of equal high bits and
    different values are then sorted by value and position."""
    values = np.asarray(values, dtype=np.uint64)
    n = len(values)
    bits = max(n - 1, 1).bit_length()
    if bits > 40:
        order = np.argsort(values, kind="stable")
        return order, values[order]
    shift = np.uint64(bits)
    position = np.arange(n, dtype=np.uint64)
    exact = n == 0 or int(values.max()) < 1 << (64 - bits)
    high = values << shift if exact else (values >> shift) << shift
    packed = np.sort(high | position)
    order = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    if exact:
        return order, packed >> shift
    in_order = values[order]
    wrong = np.flatnonzero(in_order[1:] < in_order[:-1])
    if len(wrong):  # within runs of equal high bits only: sort those runs again
        run = np.cumsum(np.concatenate([[0], (packed[1:] >> shift) != (packed[:-1] >> shift)]))
        redo = np.flatnonzero(np.isin(run, run[wrong]))
        order[redo] = order[redo][np.lexsort((order[redo], in_order[redo]))]
        in_order[redo] = values[order[redo]]
    return order, in_order


def _runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Start of every run of equal values in a sorted array."""
    if not len(sorted_keys):
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))


def _sum_by_key(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` (sorted) and the sum of ``counts`` of each (sorting: cheaper
    than a hash table for millions of random 64-bit keys)."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = _runs(keys)
    return keys[starts], np.add.reduceat(counts[order], starts) if len(starts) else counts[:0]


def _merge(where: np.ndarray, *columns: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """Each ``(table, values)`` of ``columns`` (aligned arrays) with ``values`` inserted
    before the positions ``where`` (non-decreasing, as :func:`numpy.searchsorted` gives
    for sorted values): :func:`numpy.insert` without its sort of the positions, which
    are placed once for every column."""
    size = len(columns[0][0]) + len(where)
    at = where + np.arange(len(where))
    rest = np.ones(size, dtype=bool)
    rest[at] = False
    out = []
    for table, values in columns:
        merged = np.empty(size, table.dtype)
        merged[at] = values
        merged[rest] = table
        out.append(merged)
    return out


def _count_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` (sorted) and how often each occurs."""
    keys = np.sort(keys)
    starts = _runs(keys)
    return keys[starts], np.diff(np.append(starts, len(keys)))


# ---------------------------------------------------------------------------
# Tokenizing batches (in this process or a second one)
# ---------------------------------------------------------------------------


def batches(documents: Iterable[str], chars: int | None = None) -> Iterator[list[str]]:
    """Consecutive documents in lists of about ``chars`` characters (at least one each;
    by default :data:`BATCH_CHARS`)."""
    return document_batches(documents, BATCH_CHARS if chars is None else chars)


@dataclass
class _Encoded:
    """A tokenized batch: word ids local to it, its types' 64-bit keys and spellings
    (code points, type ``i`` being ``chars[char_ptr[i]:char_ptr[i + 1]]``), words per
    document."""

    ids: np.ndarray
    keys: np.ndarray
    chars: np.ndarray
    char_ptr: np.ndarray
    lengths: np.ndarray
    documents: list[str]


def _encode(documents: list[str]) -> _Encoded:
    ids, (chars, char_ptr), ptr, keys = encode_documents_spelled(documents)
    # the narrowest integers that hold the code points: less to send between processes
    narrow = np.min_scalar_type(int(chars.max())) if len(chars) else np.dtype(np.uint8)
    return _Encoded(ids.astype(np.int32), keys, chars.astype(narrow), char_ptr, np.diff(ptr), [])


class TokenizerPool:
    """A second process that tokenizes batches: started on first use (forked, while the
    caller is still small when it is started before the first pass) and shared by every
    pass that is given it; closed on leaving a ``with`` block."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, batch: list[str]) -> Future[_Encoded]:
        if self._pool is None:
            # fork: a spawned worker would re-import the caller's __main__ (a script
            # without a main guard would run again)
            context = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool.submit(_encode, batch)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> TokenizerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encoded_batches(
    documents: Iterable[str], *, parallel: bool | None = None, pool: TokenizerPool | None = None
) -> Iterator[_Encoded]:
    """Every batch of ``documents`` (read once, in order) tokenized, in order; in a second
    process (``pool``, else one of its own) for a large corpus (``parallel=None``: more
    than :data:`PARALLEL_CHARS` characters, which are read ahead to know), two batches
    ahead of the caller."""
    chunks = batches(documents)
    head: list[list[str]] = []
    chars = 0
    for batch in chunks:
        head.append(batch)
        chars += sum(len(d) for d in batch)
        if chars > PARALLEL_CHARS:
            break
    # without fork the batches are tokenized here (see TokenizerPool)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if not can_fork or parallel is False or (parallel is None and chars <= PARALLEL_CHARS):
        for batch in itertools.chain(head, chunks):
            encoded = _encode(batch)
            encoded.documents = batch
            yield encoded
        return
    with contextlib.ExitStack() as stack:
        tokenizer = pool if pool is not None else stack.enter_context(TokenizerPool())
        ahead: list[tuple[list[str], Future[_Encoded]]] = []
        for batch in itertools.chain(head, chunks):
            ahead.append((batch, tokenizer.submit(batch)))
            if len(ahead) > 2:
                done_batch, future = ahead.pop(0)
                encoded = future.result()
                encoded.documents = done_batch
                yield encoded
        for done_batch, future in ahead:
            encoded = future.result()
            encoded.documents = done_batch
            yield encoded


class Vocabulary:
    """Word types of every corpus seen so far, numbered in order of first appearance and
    found by the tokenizer's 64-bit keys (sorted, with their ids): a batch is looked up
    with array operations, and its new types' spellings are kept as code points (the
    strings are made by :meth:`words`)."""

    def __init__(self) -> None:
        self._size = 0
        #: Code points of the types' spellings and their lengths, in order, one array per batch.
        self._chars: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._keys = np.zeros(0, np.uint64)  # sorted
        self._ids = np.zeros(0, np.int64)  # the id of each of _keys
        budget = memory_budget()
        #: Most types held: a streamed corpus is bounded only by its vocabulary.
        self.limit = None if budget is None else max(budget // TYPE_BYTES, 1)

    def __len__(self) -> int:
        return self._size

    def global_ids(self, batch: _Encoded) -> np.ndarray:
        """The batch's word ids in this vocabulary (new types appended in order)."""
        keys = batch.keys
        mapping = np.full(len(keys), -1, np.int64)
        if len(self._keys):
            order = np.argsort(keys)  # sorted needles: a cache-friendly search
            at = np.minimum(np.searchsorted(self._keys, keys[order]), len(self._keys) - 1)
            known = self._keys[at] == keys[order]
            mapping[order[known]] = self._ids[at[known]]
        new = np.flatnonzero(mapping < 0)  # in order of first appearance in the batch
        if self.limit is not None and self._size + len(new) > self.limit:
            raise DataError(
                f"the corpora hold more than {self.limit:,} distinct words, whose statistics "
                f"need more than the {format_bytes(self.limit * TYPE_BYTES)} this process "
                "can allocate (split the corpus, or pass --max-memory if you know better)"
            )
        if len(new):
            mapping[new] = np.arange(self._size, self._size + len(new))
            self._size += len(new)
            start, span = batch.char_ptr[new], np.diff(batch.char_ptr)[new]
            self._chars.append(batch.chars[concatenated_ranges(start, span)])
            self._lengths.append(span)
            added = np.argsort(keys[new])
            where = np.searchsorted(self._keys, keys[new][added])
            self._keys = np.insert(self._keys, where, keys[new][added])
            self._ids = np.insert(self._ids, where, mapping[new][added])
        return mapping[batch.ids]

    def words(self) -> np.ndarray:
        """Every type's string, by id (an object array)."""
        chars = np.concatenate([np.zeros(0, np.uint8), *self._chars])
        lengths = np.concatenate([np.zeros(0, np.int64), *self._lengths])
        return spellings(chars, np.concatenate([[0], np.cumsum(lengths)]))


# ---------------------------------------------------------------------------
# What a pass keeps
# ---------------------------------------------------------------------------


@dataclass
class _Grams:
    """The sampled n-grams of one order, per unit: the n-grams whose mixed key is below
    ``threshold`` (all of them until the budget is exceeded).

    N-grams are held by their mixed key (:func:`_mix`, a bijection: the same n-grams,
    already spread for sorting and for the threshold). During a pass the table is one
    (mixed key, unit) pair per distinct n-gram of a unit, sorted by mixed key then unit,
    with the arrival of each pair (its n-gram's position among those added): a batch is
    sorted alone and merged in, since every unit it holds comes at or after the
    table's. :meth:`freeze` turns it into ``distinct`` keys (in order of first
    appearance) and ``codes``/``units`` pairs sorted by code then unit.
    """

    threshold: np.uint64 = _MAX64
    pending_keys: list[np.ndarray] = field(default_factory=list)
    pending_units: list[np.ndarray] = field(default_factory=list)
    pending: int = 0
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    units: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    _keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    _units: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    _arrival: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    _arrived: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.threshold != _MAX64)

    @property
    def rate(self) -> float:
        """The share of all distinct n-grams kept (1 when none was dropped)."""
        return 1.0 if not self.sampled else float(self.threshold) / 2.0**64

    def add(self, keys: np.ndarray, units: np.ndarray, budget: int) -> None:
        """Every n-gram of a batch with its unit (repeats are dropped when consolidating,
        once the pairs exceed the budget and at least a quarter of it is new: each
        consolidation sorts the pairs it adds and copies the table once)."""
        keys = _mix(keys)
        if self.sampled:
            inside = keys < self.threshold
            keys, units = keys[inside], units[inside]
        self.pending_keys.append(keys)
        self.pending_units.append(units.astype(np.int32))
        self.pending += len(keys)
        if self.pending + len(self._keys) > budget and self.pending >= budget // 4:
            self.consolidate(budget)

    def consolidate(self, budget: int | None, shift: int = 0) -> None:
        """One pair per distinct (n-gram, unit) (units first merged by ``shift``), then,
        over ``budget`` pairs, the threshold lowered until half the budget is kept: a
        uniform sample of the distinct n-grams, whatever their order of arrival."""
        keys, units = self._take_pending()
        if self._arrived + len(keys) > _ARRIVALS:  # renumbered in order: int32 suffices
            ranks = np.empty(len(self._arrival), np.int32)
            ranks[np.argsort(self._arrival)] = np.arange(len(self._arrival), dtype=np.int32)
            self._arrival, self._arrived = ranks, len(ranks)
        arrival = np.arange(self._arrived, self._arrived + len(keys), dtype=np.int32)
        self._arrived += len(keys)
        # stable: a batch's pairs of one n-gram stay in arrival order, so by unit
        order, keys = _sorted_stably(keys)
        units, arrival = units[order], arrival[order]
        # after the table's pairs of the same n-gram: theirs are the earlier units
        where = np.searchsorted(self._keys, keys, side="right")
        keys, units, arrival = _merge(
            where, (self._keys, keys), (self._units, units), (self._arrival, arrival)
        )
        units >>= shift
        new = np.ones(len(keys), dtype=bool)
        new[1:] = (keys[1:] != keys[:-1]) | (units[1:] != units[:-1])
        self._keys, self._units, self._arrival = keys[new], units[new], arrival[new]
        if budget is not None and len(self._keys) > budget:
            self._cut(budget)

    def _take_pending(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys and units of the batches not yet consolidated (then forgotten)."""
        keys = np.concatenate([np.zeros(0, np.uint64), *self.pending_keys])
        units = np.concatenate([np.zeros(0, np.int32), *self.pending_units])
        self.pending_keys, self.pending_units, self.pending = [], [], 0
        return keys, units

    def _cut(self, budget: int) -> None:
        starts = _runs(self._keys)
        mixed = self._keys[starts]
        pairs_per_gram = np.diff(np.append(starts, len(self._keys)))
        self.threshold = _lowered(mixed, pairs_per_gram, budget, self.threshold)
        kept = np.repeat(mixed < self.threshold, pairs_per_gram)
        self._keys, self._units, self._arrival = (
            self._keys[kept],
            self._units[kept],
            self._arrival[kept],
        )

    def freeze(self, budget: int | None) -> None:
        """Consolidate (see :meth:`consolidate`) and turn the table into ``distinct``,
        ``codes`` and ``units`` (see the class docstring)."""
        if not len(self._keys) and (budget is None or self.pending <= budget):
            self._freeze_pending()
            return
        self.consolidate(budget)
        starts = _runs(self._keys)
        lengths = np.diff(np.append(starts, len(self._keys)))
        by_arrival, _ = _sorted_stably(self._arrival[starts])  # a run's first pair is its earliest
        # the runs (each sorted by unit) in that order
        lengths, starts = lengths[by_arrival], starts[by_arrival]
        self.units = self._units[concatenated_ranges(starts, lengths)]
        self.codes = np.repeat(np.arange(len(starts), dtype=np.int32), lengths)
        self.distinct = _unmix(self._keys[starts])
        # new empty arrays: a slice [:0] would keep the whole table alive
        self._keys, self._units = np.zeros(0, np.uint64), np.zeros(0, np.int32)
        self._arrival = np.zeros(0, np.int32)

    def _freeze_pending(self) -> None:
        # Nothing consolidated yet, and within the budget: number the n-grams as they
        # come (a hash table) and sort their pairs once, rather than by key first.
        import pandas as pd

        keys, units = self._take_pending()
        codes, distinct = pd.factorize(keys)
        pair = np.sort((codes.astype(np.int64) << 32) | units.astype(np.int64))
        pair = pair[_runs(pair)]
        codes, units = (pair >> 32).astype(np.int32), (pair & 0xFFFFFFFF).astype(np.int32)
        self.distinct, self.codes, self.units = (
            _unmix(np.asarray(distinct, np.uint64)),
            codes,
            units,
        )


def _lowered(
    mixed: np.ndarray, pairs_per_gram: np.ndarray, budget: int, threshold: np.uint64
) -> np.uint64:
    """The threshold below which the n-grams of smallest hash (``mixed``, distinct) hold
    at most half the budget of pairs (``threshold`` if all of them do)."""
    # Every n-gram has a pair, so the threshold is among the budget // 2 + 1 smallest.
    half = budget // 2
    m = min(half + 1, len(mixed))
    order = np.argpartition(mixed, m - 1)[:m]
    # The j smallest hold between j and j + extra pairs, so the first j = half - extra
    # fit whatever their order: only the n-grams after them are sorted (those that
    # appear in more than one unit are few, except for bigrams).
    extra = int(pairs_per_gram[order].sum()) - m
    first = min(max(half - extra, 0), m)
    below = 0
    if 0 < first < m:
        split = np.argpartition(mixed[order], first - 1)
        below = int(pairs_per_gram[order[split[:first]]].sum())
        order = order[split[first:]]
    elif first == m:
        below, order = int(pairs_per_gram[order].sum()), order[:0]
    else:
        first = 0
    order = order[np.argsort(mixed[order])]
    keep = int(np.searchsorted(below + np.cumsum(pairs_per_gram[order]), half, side="right"))
    return mixed[order[keep]] if keep < len(order) else threshold


@dataclass
class CorpusStats:
    """What one pass over a corpus keeps (see the module docstring)."""

    n_documents: int = 0
    #: Documents per unit are ``2 ** shift`` (the last unit may hold fewer).
    shift: int = 0
    type_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unit_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unit_documents: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: (unit, type, count) triples: one per pair.
    pair_units: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pair_types: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    pair_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    grams: dict[int, _Grams] = field(default_factory=lambda: {n: _Grams() for n in ORDERS})
    #: n-grams inside documents, per unit (all of them, sampled or not).
    unit_grams: dict[int, np.ndarray] = field(
        default_factory=lambda: {n: np.zeros(0, np.int64) for n in ORDERS}
    )
    #: UTF-8 bytes of the compressed text and of its gzip form (see :data:`GZIP_CHARS`).
    raw_bytes: int = 0
    gzip_bytes: int = 0
    #: (-priority, index, document) of the documents sampled for self-BLEU (a heap).
    bleu_sample: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def n_units(self) -> int:
        return len(self.unit_tokens)

    @property
    def n_tokens(self) -> int:
        return int(self.type_counts.sum())


class BigramCounts:
    """Counts of exact bigram keys (``id1 << 32 | id2``), sorted by key: exact up to
    ``capacity`` distinct bigrams, then a Misra-Gries summary (each count low by at
    most ``error``, itself at most total / (capacity + 1))."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.keys = np.zeros(0, np.uint64)
        self.counts = np.zeros(0, np.int64)
        self.error = 0
        self._pending: list[np.ndarray] = []
        self._size = 0

    def add(self, keys: np.ndarray) -> None:
        self._pending.append(keys)
        self._size += len(keys)
        if self._size > 2 * self.capacity:
            self.consolidate()

    def consolidate(self) -> None:
        new_keys, new_counts = _count_keys(np.concatenate([np.zeros(0, np.uint64), *self._pending]))
        self._pending, self._size = [], 0
        # both sorted: the known keys' counts are added, the others merged in
        where = np.searchsorted(self.keys, new_keys)
        known = np.zeros(len(new_keys), dtype=bool)
        if len(self.keys):
            known = self.keys[np.minimum(where, len(self.keys) - 1)] == new_keys
        total = self.counts.copy()
        total[where[known]] += new_counts[known]
        keys, total = _merge(
            where[~known], (self.keys, new_keys[~known]), (total, new_counts[~known])
        )
        if len(keys) > self.capacity:
            cut = int(np.partition(total, len(total) - self.capacity - 1)[-self.capacity - 1])
            total = total - cut
            self.error += cut
            keys, total = keys[total > 0], total[total > 0]
        self.keys, self.counts = keys, total


class _TypePairs:
    """The (unit, type, count) triples of a pass, one per (unit, type) pair, in chunks
    (one per batch), each sorted by unit then type.

    Units are runs of consecutive documents, so a chunk shares at most its first unit
    with the chunk before: that unit's triples are merged as the chunk arrives, and the
    chunks, joined, are the table sorted by unit then type. Merging units two by two
    goes chunk by chunk, so no step needs memory beyond the table and one chunk.
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0

    def add(self, units: np.ndarray, types: np.ndarray, counts: np.ndarray) -> None:
        """A batch's triples, sorted by (unit, type), its units from the table's last on."""
        if not len(units):
            return
        if self.chunks:
            last_units, last_types, last_counts = self.chunks[-1]
            first = units[0]
            if last_units[-1] == first:  # a unit in both: one triple per type
                i = int(np.searchsorted(last_units, first))
                j = int(np.searchsorted(units, first, side="right"))
                merged, total = _sum_by_key(
                    np.concatenate([last_types[i:], types[:j]]),
                    np.concatenate([last_counts[i:], counts[:j]]),
                )
                self.size -= len(last_units) - i
                if i:
                    self.chunks[-1] = (last_units[:i], last_types[:i], last_counts[:i])
                else:
                    self.chunks.pop()
                units = np.concatenate([np.full(len(merged), first, np.int32), units[j:]])
                types = np.concatenate([merged.astype(np.int32), types[j:]])
                counts = np.concatenate([total, counts[j:]])
        self.chunks.append((units, types, counts))
        self.size += len(units)

    def halve(self) -> None:
        """Units 2k and 2k+1 become unit k."""
        old, self.chunks, self.size = self.chunks[::-1], [], 0
        while old:  # oldest first, each released once merged
            units, types, counts = old.pop()
            key, total = _sum_by_key(((units.astype(np.int64) >> 1) << 32) | types, counts)
            self.add((key >> 32).astype(np.int32), (key & 0xFFFFFFFF).astype(np.int32), total)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole table: units, types and counts (the chunks are released)."""
        chunks, self.chunks = self.chunks, []
        units = np.concatenate([np.zeros(0, np.int32), *(c[0] for c in chunks)])
        types = np.concatenate([np.zeros(0, np.int32), *(c[1] for c in chunks)])
        counts = np.concatenate([np.zeros(0, np.int64), *(c[2] for c in chunks)])
        return units, types, counts


class CorpusPass:
    """One streaming pass over a corpus: :meth:`feed` tokenized batches, then :meth:`finish`."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        budget: Budget,
        *,
        bigrams: BigramCounts | None = None,
        watch_bigrams: np.ndarray | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.budget = budget
        self.stats = CorpusStats()
        self.bigrams = bigrams
        #: Sorted bigram keys whose presence in this corpus is recorded (``present``).
        self.watch_bigrams = watch_bigrams
        self.present = (
            np.zeros(len(watch_bigrams), dtype=bool) if watch_bigrams is not None else None
        )
        self._type_pairs = _TypePairs()
        #: (priority, index, document) of the documents kept for gzip, and their characters
        self._gzip_sample: list[tuple[int, int, str]] = []
        self._gzip_chars = 0
        self._gzip_threshold = 2**64
        #: The thread adding orders above 2, and its work on the last batch.
        self._thread: ThreadPoolExecutor | None = None
        self._higher: Future[None] | None = None

    def feed(self, batch: _Encoded) -> None:
        """Add the next tokenized batch of documents (in corpus order)."""
        st = self.stats
        ids = self.vocabulary.global_ids(batch)
        first_doc = st.n_documents
        st.n_documents += len(batch.lengths)
        self._sample_for_bleu(batch.documents, first_doc)
        self._sample_for_gzip(batch.documents, first_doc)
        doc = np.repeat(np.arange(first_doc, st.n_documents), batch.lengths)
        unit = doc >> st.shift
        st.type_counts = _add_counts(
            st.type_counts, np.bincount(ids, minlength=len(self.vocabulary))
        )
        n_units = ((st.n_documents - 1) >> st.shift) + 1
        doc_units = np.arange(first_doc, st.n_documents) >> st.shift
        st.unit_documents = _add_counts(
            st.unit_documents, np.bincount(doc_units, minlength=n_units)
        )
        st.unit_tokens = _add_counts(st.unit_tokens, np.bincount(unit, minlength=n_units))
        self._add_type_pairs(unit, ids)
        self._add_grams(ids, doc, unit, n_units)
        while self._type_pairs.size > self.budget.type_pairs:
            self._merge_units()

    def _sample_for_bleu(self, documents: list[str], first: int) -> None:
        # The documents with the smallest hashes of their index: a fixed random sample.
        index = np.arange(first, first + len(documents), dtype=np.uint64)
        priorities = _mix(index ^ np.uint64(0xB1E)).tolist()
        heap = self.stats.bleu_sample
        if len(heap) == SELF_BLEU_DOCUMENTS:
            worst = -heap[0][0]
            candidates = [i for i, p in enumerate(priorities) if p < worst]
        else:
            candidates = list(range(len(documents)))
        for offset in candidates:
            item = (-priorities[offset], first + offset, documents[offset])
            if len(heap) < SELF_BLEU_DOCUMENTS:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)

    def _sample_for_gzip(self, documents: list[str], first: int) -> None:
        # The documents of smallest priority (a hash of their index) that reach
        # GZIP_CHARS: a uniform sample, the same whatever the batches; pruned to it
        # whenever twice that is held.
        index = np.arange(first, first + len(documents), dtype=np.uint64)
        priorities = _mix(index ^ np.uint64(0x6219))
        chosen = np.arange(len(documents))
        if self._gzip_threshold < 2**64:
            chosen = np.flatnonzero(priorities < np.uint64(self._gzip_threshold))
        for offset, priority in zip(chosen.tolist(), priorities[chosen].tolist(), strict=True):
            self._gzip_sample.append((priority, first + offset, documents[offset]))
            self._gzip_chars += len(documents[offset]) + 1
        if self._gzip_chars > 2 * GZIP_CHARS:
            self._prune_gzip()

    def _prune_gzip(self) -> None:
        if self._gzip_chars <= GZIP_CHARS:
            return
        self._gzip_sample.sort()
        chars = 0
        for keep, (priority, _, doc) in enumerate(self._gzip_sample):
            if chars >= GZIP_CHARS:
                self._gzip_threshold = priority
                del self._gzip_sample[keep:]
                break
            chars += len(doc) + 1
        self._gzip_chars = chars

    def _add_type_pairs(self, unit: np.ndarray, ids: np.ndarray) -> None:
        if not len(ids):
            return
        base = int(unit[0])
        width = len(self.vocabulary)
        key, count = _count_keys((unit - base) * width + ids)
        units = (key // width + base).astype(np.int32)
        self._type_pairs.add(units, (key % width).astype(np.int32), count)

    def _add_grams(self, ids: np.ndarray, doc: np.ndarray, unit: np.ndarray, n_units: int) -> None:
        # Orders 3 and 4 go to a thread (their sorts and hashes release the GIL) while
        # this one goes on with order 2 and the next batch; each order's state is its
        # own and is joined before anything else reads it, so results do not change.
        self._join()
        token = ids.astype(np.uint64)
        key = (token[:-1] << np.uint64(32)) | token[1:]
        gram_keys = self._add_order(2, key, doc, unit, n_units)
        if gram_keys is not None:
            if self.bigrams is not None:
                self.bigrams.add(gram_keys)
            if self.watch_bigrams is not None and self.present is not None:
                self._watch(gram_keys)
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1)
        self._higher = self._thread.submit(self._add_higher, token, key, doc, unit, n_units)

    def _add_higher(
        self, token: np.ndarray, key: np.ndarray, doc: np.ndarray, unit: np.ndarray, n_units: int
    ) -> None:
        for n in ORDERS[1:]:
            m = max(len(token) - n + 1, 0)
            key = _mix(key[:m] ^ _mix(token[n - 1 :] + np.uint64(n)))
            self._add_order(n, key, doc, unit, n_units)

    def _add_order(
        self, n: int, key: np.ndarray, doc: np.ndarray, unit: np.ndarray, n_units: int
    ) -> np.ndarray | None:
        """Add the n-grams of a batch (``key``: one per position, across documents too)
        and return those inside documents (``None`` if the batch has none)."""
        st = self.stats
        m = len(doc) - n + 1
        if m <= 0:
            st.unit_grams[n] = _add_counts(st.unit_grams[n], np.zeros(n_units, np.int64))
            return None
        inside = doc[:m] == doc[n - 1 :]
        gram_keys, gram_units = key[inside], unit[:m][inside]
        st.unit_grams[n] = _add_counts(st.unit_grams[n], np.bincount(gram_units, minlength=n_units))
        st.grams[n].add(gram_keys, gram_units, self.budget.gram_pairs)
        return gram_keys

    def _join(self) -> None:
        """Wait for the orders above 2 of the last batch (and raise what they raised)."""
        if self._higher is not None:
            higher, self._higher = self._higher, None
            higher.result()

    def close(self) -> None:
        """Join and stop the thread of the higher orders."""
        try:
            self._join()
        finally:
            if self._thread is not None:
                self._thread.shutdown()
                self._thread = None

    def _watch(self, keys: np.ndarray) -> None:
        watched = self.watch_bigrams
        if watched is None or self.present is None or not len(watched):
            return
        keys = np.sort(keys)  # sorted needles: a cache-friendly search
        at = np.minimum(np.searchsorted(watched, keys), len(watched) - 1)
        self.present[at[watched[at] == keys]] = True

    def _merge_units(self) -> None:
        """Merge units two by two (units 2k and 2k+1 become unit k)."""
        self._join()
        st = self.stats
        st.shift += 1
        self._type_pairs.halve()
        st.unit_tokens = _halve(st.unit_tokens)
        st.unit_documents = _halve(st.unit_documents)
        for n in ORDERS:
            st.unit_grams[n] = _halve(st.unit_grams[n])
            st.grams[n].consolidate(None, shift=1)

    def finish(self) -> CorpusStats:
        self.close()
        st = self.stats
        st.pair_units, st.pair_types, st.pair_counts = self._type_pairs.arrays()
        self._prune_gzip()
        sample = sorted(self._gzip_sample, key=lambda item: item[1])  # in corpus order
        text = " ".join(doc for _, _, doc in sample).encode("utf-8", errors="surrogatepass")
        self._gzip_sample = []
        # numpy's sorts and zlib release the GIL: the orders consolidate side by side,
        # and the bigram counts here meanwhile (each structure is its own)
        with ThreadPoolExecutor(max_workers=2) as pool:
            compressed = pool.submit(gzip.compress, text, GZIP_LEVEL, mtime=0)
            frozen = [pool.submit(st.grams[n].freeze, self.budget.gram_pairs) for n in ORDERS]
            if self.bigrams is not None:
                self.bigrams.consolidate()
            for future in frozen:
                future.result()
            st.raw_bytes, st.gzip_bytes = len(text), len(compressed.result())
        trim_heap()  # what the pass freed goes back to the system, not to a peak later
        return self.stats


def _add_counts(total: np.ndarray, more: np.ndarray) -> np.ndarray:
    """``total + more`` for count vectors of possibly different lengths."""
    if len(total) < len(more):
        total = np.concatenate([total, np.zeros(len(more) - len(total), total.dtype)])
    total[: len(more)] += more
    return total


def _halve(counts: np.ndarray) -> np.ndarray:
    if len(counts) % 2:
        counts = np.concatenate([counts, [0]])
    return counts.reshape(-1, 2).sum(axis=1)


def measure_pass(
    documents: Iterable[str],
    vocabulary: Vocabulary,
    budget: Budget,
    *,
    bigrams: BigramCounts | None = None,
    watch_bigrams: np.ndarray | None = None,
    parallel: bool | None = None,
    pool: TokenizerPool | None = None,
) -> tuple[CorpusStats, np.ndarray | None]:
    """One pass over ``documents`` (any iterable, read once): its statistics, and which
    ``watch_bigrams`` it holds (``parallel`` and ``pool``: see :func:`encoded_batches`)."""
    run = CorpusPass(vocabulary, budget, bigrams=bigrams, watch_bigrams=watch_bigrams)
    try:
        for batch in encoded_batches(documents, parallel=parallel, pool=pool):
            run.feed(batch)
    finally:
        run.close()
    return run.finish(), run.present


# ---------------------------------------------------------------------------
# Metrics of resamples
# ---------------------------------------------------------------------------

#: The metrics of one corpus, in the order they are reported.
METRICS = (
    "documents",
    "tokens",
    "types",
    "rare_survival_k1",
    "rare_survival_k5",
    "rare_mass",
    "entropy",
    "zipf_exponent",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "distinct_4",
)


def _zipf_rows(counts: np.ndarray) -> np.ndarray:
    return np.array([zipf_exponent_of_counts(row[row > 0]) for row in counts])


class Resampler:
    """The metrics of weighted resamples of one corpus's units: ``measure(weights)``
    with one row of weights (how often each unit is drawn) per resample."""

    def __init__(
        self,
        stats: CorpusStats,
        width: int,
        rare1: np.ndarray,
        rare5: np.ndarray,
        *,
        release: bool = False,
    ) -> None:
        """``release``: the tables replace ``stats``'s pair arrays, which are emptied."""
        from scipy.sparse import csr_matrix

        self.stats = stats
        self.width = width
        self.rare1, self.rare5 = rare1, rare5
        k = stats.n_units
        # (types x units): a resample's counts are this matrix times its weights. The
        # pairs are sorted by unit, then type: the (units x types) table as they are.
        indptr = np.concatenate([[0], np.cumsum(np.bincount(stats.pair_units, minlength=k))])
        by_unit = csr_matrix(
            (stats.pair_counts.astype(np.float64), stats.pair_types, indptr), shape=(k, width)
        )
        if release:
            stats.pair_units, stats.pair_types, stats.pair_counts = (
                np.zeros(0, np.int32),
                np.zeros(0, np.int32),
                np.zeros(0, np.int64),
            )
        self.type_table = by_unit.T.tocsr()
        del by_unit
        self.gram_tables = {}
        for n, g in stats.grams.items():
            shape = (len(g.distinct), k)
            self.gram_tables[n] = csr_matrix((np.ones(len(g.codes)), (g.codes, g.units)), shape)
            if release:
                g.codes, g.units = np.zeros(0, np.int32), np.zeros(0, np.int32)

    def work(self, n_bootstrap: int) -> int:
        """The cost of the exact bootstrap: resamples x (types + pairs)."""
        pairs = self.type_table.nnz + sum(t.nnz for t in self.gram_tables.values())
        return n_bootstrap * (self.width + pairs)

    def measure(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of ``weights`` (resamples x units), exactly."""
        w = np.asarray(weights, dtype=np.float64)
        counts = np.ascontiguousarray((self.type_table @ w.T).T)
        tokens = counts.sum(axis=1)
        rare1, rare5 = self.rare1, self.rare5
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {
                "documents": w @ self.stats.unit_documents.astype(np.float64),
                "tokens": tokens,
                "types": (counts > 0).sum(axis=1).astype(float),
                "rare_survival_k1": (counts[:, rare1] > 0).mean(axis=1) if len(rare1) else None,
                "rare_survival_k5": (counts[:, rare5] > 0).mean(axis=1) if len(rare5) else None,
                "rare_mass": counts[:, rare5].sum(axis=1) / tokens,
                "entropy": entropy_of_probs(counts / tokens[:, None], axis=1),
                "zipf_exponent": _zipf_rows(counts),
                "distinct_1": np.where(tokens > 0, (counts > 0).sum(axis=1) / tokens, np.nan),
            }
            present = (w > 0).astype(np.float64).T
            for n in ORDERS:
                total = w @ self.stats.unit_grams[n].astype(np.float64)
                distinct = ((self.gram_tables[n] @ present) > 0).sum(axis=0).astype(float)
                distinct /= self.stats.grams[n].rate
                out[f"distinct_{n}"] = np.where(total > 0, distinct / total, np.nan)
        nan = np.full(len(w), np.nan)
        return {k: nan if v is None else np.asarray(v, dtype=float) for k, v in out.items()}

    def linearized(self) -> _Linearized:
        return _Linearized(self)


class _Presence:
    """How many items of a set (rows of an items x units table) a resample holds:
    exactly for items of one unit, always for items of many, checked for the rest."""

    def __init__(self, table: Any, scale: float = 1.0) -> None:
        df = np.diff(table.indptr)
        single = df == 1
        units = table.indices[table.indptr[:-1][single]]
        self.single = np.bincount(units, minlength=table.shape[1]).astype(np.float64)
        self.always = float((df >= ALWAYS_PRESENT).sum())
        middle = np.flatnonzero((df > 1) & (df < ALWAYS_PRESENT))
        self.factor = scale
        if len(middle) > CHECKED:
            keep = np.argsort(_mix(middle.astype(np.uint64)))[:CHECKED]
            self.factor = scale * len(middle) / CHECKED
            middle = np.sort(middle[keep])
        self.middle = table[middle]

    def __call__(self, drawn: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Items held by each resample, from ``drawn`` (units x resamples, 1 if drawn)
        and the same as ``bits`` (one word per unit, bit r set when resample r drew it)."""
        checked = self._checked(bits)[: drawn.shape[1]]
        return (self.single @ drawn + self.always + self.factor * checked) * 1.0

    def _checked(self, bits: np.ndarray) -> np.ndarray:
        """How many of the checked items each resample holds: an item is held when any
        of its units is drawn, the OR of their words, for 64 resamples at once."""
        if not self.middle.shape[0]:
            return np.zeros(64)
        held = np.bitwise_or.reduceat(bits[self.middle.indices], self.middle.indptr[:-1])
        return np.unpackbits(held.view(np.uint8), bitorder="little").reshape(-1, 64).sum(axis=0)


class _Linearized:
    """The ``fast`` bootstrap's metrics (see the module docstring)."""

    def __init__(self, r: Resampler) -> None:
        st = r.stats
        self.r = r
        table = r.type_table  # types x units
        counts = np.asarray(table.sum(axis=1)).ravel()
        self.units_of_tokens = st.unit_tokens.astype(np.float64)
        # Per-unit sums over pairs are products with the (units x types) table: no
        # per-pair temporaries (each unit's terms are added in type order either way).
        by_unit = table.T
        rare5_mask = np.zeros(r.width)
        rare5_mask[r.rare5] = 1.0
        self.unit_rare5 = by_unit @ rare5_mask
        self.types = _Presence(table)
        self.rare = {
            k: (_Presence(table[ids]), len(ids)) for k, ids in ((1, r.rare1), (5, r.rare5))
        }
        self.grams = {n: _Presence(t, 1.0 / st.grams[n].rate) for n, t in r.gram_tables.items()}
        # Entropy: S = sum c log c, exact for the types of one unit, first order for the rest.
        df = np.diff(table.indptr)
        single = df == 1
        # types of one unit, grouped by (unit, count): sum c log c exactly per resample
        one = table[np.flatnonzero(single)]  # one pair per row
        top = int(one.data.max()) + 1 if one.nnz else 1
        group, self.single_multiplicity = _count_keys(
            one.indices.astype(np.int64) * top + one.data.astype(np.int64)
        )
        self.single_units, self.single_counts = group // top, (group % top).astype(np.float64)
        with np.errstate(divide="ignore"):
            slope = np.where(counts > 0, np.log(np.where(counts > 0, counts, 1.0)) + 1.0, 0.0)
        self.psi_entropy = by_unit @ np.where(single, 0.0, slope)
        self.many_s = float(np.sum(_xlogx(counts[~single & (counts > 0)])))
        # Zipf: beta = -slope of log count on log rank (types with count > 0), ranks fixed.
        present = np.flatnonzero(counts > 0)
        c = counts[present]
        order = np.argsort(-c, kind="stable")
        x = np.log(np.arange(1, len(c) + 1, dtype=float))
        # tied counts share the mean log rank of their block
        sorted_c = c[order]
        starts = _runs(sorted_c)
        sizes = np.diff(np.append(starts, len(sorted_c)))
        block_x = np.add.reduceat(x, starts) / sizes if len(starts) else x
        x_of = np.empty(len(c))
        x_of[order] = np.repeat(block_x, sizes)
        sxx = float(((x - x.mean()) ** 2).sum())
        derivative = np.zeros(r.width)
        if len(c) >= 2 and sxx > 0:
            derivative[present] = -(x_of - x.mean()) / (sxx * c)
        self.psi_zipf = by_unit @ derivative

    def measure(self, weights: np.ndarray, point: dict[str, float]) -> dict[str, np.ndarray]:
        st = self.r.stats
        w = np.asarray(weights, dtype=np.float64)
        drawn = (w > 0).astype(np.float64).T
        bits = _pack(w > 0)
        tokens = w @ self.units_of_tokens
        types = self.types(drawn, bits)
        out: dict[str, Any] = {
            "documents": w @ st.unit_documents.astype(np.float64),
            "tokens": tokens,
            "types": types,
            "distinct_1": types / tokens,
            "rare_mass": (w @ self.unit_rare5) / tokens,
        }
        for k, (presence, size) in self.rare.items():
            out[f"rare_survival_k{k}"] = presence(drawn, bits) / size if size else None
        for n, presence in self.grams.items():
            total = w @ st.unit_grams[n].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                held = presence(drawn, bits)
                out[f"distinct_{n}"] = np.where(total > 0, held / total, np.nan)
        single_s = _xlogx(self.single_counts[None, :] * w[:, self.single_units]) @ (
            self.single_multiplicity.astype(np.float64)
        )
        s = single_s + self.many_s + (w - 1.0) @ self.psi_entropy
        with np.errstate(invalid="ignore", divide="ignore"):
            out["entropy"] = np.log(tokens) - s / tokens
        out["zipf_exponent"] = point["zipf_exponent"] + (w - 1.0) @ self.psi_zipf
        nan = np.full(len(w), np.nan)
        return {k: nan if v is None else np.asarray(v, dtype=float) for k, v in out.items()}


def _pack(drawn: np.ndarray) -> np.ndarray:
    """One 64-bit word per unit from ``drawn`` (at most 64 resamples x units, bool):
    bit r is set when resample r drew the unit."""
    padded = np.zeros((64, drawn.shape[1]), dtype=bool)
    padded[: len(drawn)] = drawn
    packed = np.packbits(np.ascontiguousarray(padded.T), axis=1, bitorder="little")
    return packed.view(np.uint64).ravel()


def _xlogx(c: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c > 0, c * np.log(np.where(c > 0, c, 1.0)), 0.0)


def bootstrap(
    resampler: Resampler,
    n_bootstrap: int,
    rng: np.random.Generator,
    *,
    method: str = "auto",
    point: dict[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Every metric of ``n_bootstrap`` multinomial resamples of the units, drawn from
    ``rng`` in chunks of rows (the same stream as one ``multinomial`` call), and the
    method used: ``exact``, ``fast``, or ``auto`` (exact while its work is within
    :data:`EXACT_WORK`). ``point`` (the metrics of the corpus itself) anchors the
    fast bootstrap's first-order terms."""
    if method == "auto":
        method = "exact" if resampler.work(n_bootstrap) <= EXACT_WORK else "fast"
    measure: Callable[[np.ndarray], dict[str, np.ndarray]]
    if method == "exact":
        measure = resampler.measure
    else:
        fast = resampler.linearized()
        ones = np.ones((1, resampler.stats.n_units))
        anchor = point or {k: float(v[0]) for k, v in resampler.measure(ones).items()}
        measure = lambda w: fast.measure(w, anchor)  # noqa: E731
    k = resampler.stats.n_units
    probs = np.full(k, 1.0 / k)
    chunk = RESAMPLE_CHUNK if method == "exact" else 64
    sizes = [min(chunk, n_bootstrap - done) for done in range(0, n_bootstrap, chunk)]
    parts: list[dict[str, np.ndarray]] = []
    # The next chunk is drawn in a thread while this one is measured (multinomial
    # releases the GIL): the draws are made one after another from ``rng``, in order, so
    # the stream is the same.
    with ThreadPoolExecutor(max_workers=1) as drawer:
        drawing = drawer.submit(rng.multinomial, k, probs, size=sizes[0])
        for following in [*sizes[1:], 0]:
            weights = drawing.result()
            if following:
                drawing = drawer.submit(rng.multinomial, k, probs, size=following)
            parts.append(measure(weights))
    return {m: np.concatenate([p[m] for p in parts]) for m in METRICS}, method


# ---------------------------------------------------------------------------
# Self-BLEU
# ---------------------------------------------------------------------------


def self_bleu(documents: list[str], max_n: int = 4) -> float:
    """Self-BLEU (Zhu et al. 2018): the mean BLEU-``max_n`` of each document against all
    the others as references (uniform weights, brevity penalty from the closest
    reference length, NLTK's smoothing ``method1`` for empty precisions). Higher
    means more alike: 1 for identical documents. NaN with fewer than 2 documents."""
    from collections import Counter

    tokens = [tokenize_words(d) for d in documents]
    if len(tokens) < 2:
        return float("nan")
    counts = [
        [Counter(tuple(t[i : i + n]) for i in range(len(t) - n + 1)) for n in range(1, max_n + 1)]
        for t in tokens
    ]
    # For each n-gram, its two largest counts over documents (and who holds the largest),
    # so the clip count over "every other document" is one lookup.
    best: list[dict[tuple[str, ...], tuple[int, int, int]]] = [{} for _ in range(max_n)]
    for d, per_n in enumerate(counts):
        for n, counter in enumerate(per_n):
            table = best[n]
            for gram, c in counter.items():
                first, holder, second = table.get(gram, (0, -1, 0))
                if c > first:
                    table[gram] = (c, d, first)
                elif c > second:
                    table[gram] = (first, holder, c)
    lengths = np.array([len(t) for t in tokens])
    scores = []
    for d, per_n in enumerate(counts):
        length = lengths[d]
        if length == 0:
            continue
        log_precision = 0.0
        for n, counter in enumerate(per_n):
            total = sum(counter.values())
            if total == 0:
                log_precision = -math.inf
                break
            matched = 0
            for gram, c in counter.items():
                first, holder, second = best[n][gram]
                matched += min(c, second if holder == d else first)
            log_precision += math.log((matched or 0.1) / total) / max_n  # method1: epsilon 0.1
        others = np.delete(lengths, d)
        closest = int(others[np.lexsort((others, np.abs(others - length)))][0])
        brevity = 1.0 if length > closest else math.exp(1 - closest / length)
        scores.append(brevity * math.exp(log_precision))
    return float(np.mean(scores)) if scores else float("nan")


def bleu_documents(stats: CorpusStats) -> list[str]:
    """The documents sampled for self-BLEU, in corpus order."""
    return [doc for _, _, doc in sorted(stats.bleu_sample, key=lambda item: item[1])]
