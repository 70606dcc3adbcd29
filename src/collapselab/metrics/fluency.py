"""Fluency of generated text, judged independently of the model that wrote it.

"Gibberish" must be measured, not read off samples, and not by the model being
judged (a collapsed model finds its own output likely). Three metrics:

* ``english_words``: the share of the generated words that are English words, i.e.
  in ``wordfreq``'s English word list (its ``top_n`` most frequent words; all of
  them, about 320,000, by default), each word weighted by its letters. Word tokens
  are those of :func:`~collapselab.data.text.tokenize_words` with a letter in them
  (numbers and punctuation are not words); a word with an apostrophe ("o'er")
  counts where it is in the list or all its parts are. Weighting by letters is what
  makes the share mean something: the list holds every 1- and 2-letter string and
  two thirds of the 3-letter ones (web text is full of fragments), so counting
  tokens would credit the short fragments of character salad, and random
  characters would score about 0.3; by letters they score near 0. A validity
  measure: one English word repeated scores 1, so read it beside ``repetition``
  and the diversity metrics.
* ``perplexity_reference``: the perplexity per character of each generated document
  under a fixed *reference model* of the real language, an interpolated Kneser–Ney
  character n-gram (:class:`~collapselab.models.ngram.NGram`) fitted once on the
  whole real corpus (the source's every document, where it is a corpus; else the
  seed's real training and test text). Text that drifts into gibberish scores higher
  than real text; text that collapses onto the most likely phrasings scores lower
  (Shumailov et al. 2024, Fig. 1b, under beam search), so the healthy value is the
  real text's own (a target, not an end). The fitted reference is kept for the
  process (a Shakespeare-sized corpus takes about 4 s to fit).
* ``repetition``: the share of each document's word ``n``-grams (4 by default) that
  repeat an earlier one in the same document, averaged over documents with at least
  one ``n``-gram (Welleck et al. 2019's seq-rep-n): degenerate loops score high.

Each metric has a pure function beside it (:func:`english_word_share`,
:func:`repetition_share`) that ``diagnose`` and notebooks can call on any corpus.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, ClassVar

import numpy as np

from ..core import (
    NONE,
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Quantity,
    RealData,
)
from ..errors import require
from ..registry import make, register
from ..tokenize import encode_documents

TEXT = frozenset({DataKind.TEXT})
_APOSTROPHES = ("'", "’")


@functools.lru_cache(maxsize=4)
def english_words(top_n: int | None = None) -> frozenset[str]:
    """``wordfreq``'s English words (its ``top_n`` most frequent; all when ``None``)."""
    wordfreq = require("wordfreq", "text", "the English word list")
    return frozenset(wordfreq.top_n_list("en", 10**9 if top_n is None else top_n))


def _is_english(word: str, vocabulary: frozenset[str]) -> bool:
    if word in vocabulary:
        return True
    parts = word.replace("’", "'").split("'")
    return len(parts) > 1 and all(p in vocabulary for p in parts if p)


def english_word_share(documents: Any, top_n: int | None = None) -> float:
    """Share of the letters of ``documents``' words that are in English words; NaN if
    there are none.

    Words are the case-folded tokens of :func:`~collapselab.data.text.tokenize_words`;
    a token's letters are its alphabetic characters (punctuation and numbers have none).
    """
    ids, types, _ = encode_documents(list(documents))
    vocabulary = english_words(top_n)
    letters = np.array([sum(c.isalpha() for c in t) for t in types], dtype=float)
    english = np.array(
        [n > 0 and _is_english(t, vocabulary) for t, n in zip(types, letters, strict=True)],
        dtype=bool,
    )
    total = letters[ids].sum() if len(ids) else 0.0
    return float(letters[ids][english[ids]].sum() / total) if total else float("nan")


def repetition_share(documents: Any, n: int = 4) -> np.ndarray:
    """Per document, the share of its word ``n``-grams that repeat an earlier one in it
    (1 - distinct / all); NaN for documents with no ``n``-gram."""
    ids, _, doc_ptr = encode_documents(list(documents))
    counts = np.maximum(np.diff(doc_ptr) - n + 1, 0)
    out = np.full(len(counts), np.nan)
    if not counts.sum():
        return out
    doc = np.repeat(np.arange(len(counts)), counts)
    starts = np.repeat(doc_ptr[:-1], counts) + (
        np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    grams = np.column_stack([doc, *(ids[starts + k] for k in range(n))])
    distinct = np.bincount(np.unique(grams, axis=0)[:, 0], minlength=len(counts))
    has = counts > 0
    out[has] = 1.0 - distinct[has] / counts[has]
    return out


@register("metric", "english_words")
class EnglishWords(Metric):
    """Share of the generated words that are English words (``wordfreq``'s list), each
    word weighted by its letters (see the module docstring for why).

    Parameters
    ----------
    top_n : int or None, default None
        Count only the ``top_n`` most frequent English words as words (``None``: the
        whole list, about 320,000 words, so archaic and rare words count too).
    """

    applies_to = TEXT
    label = "letters in English words ÷ letters in words"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.VALIDITY
    headline = 2
    share = True
    parameter_constraints: ClassVar = {"top_n": [NONE, Interval(1, None, integer=True)]}

    def __init__(self, *, top_n: int | None = None) -> None:
        self.top_n = top_n

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any, **kw: Any
    ) -> float:
        return english_word_share(synthetic, self.top_n)


@register("metric", "repetition")
class Repetition(Metric):
    """Share of each document's word ``n``-grams that repeat an earlier one in it, averaged
    over documents (seq-rep-n of Welleck et al. 2019).

    Parameters
    ----------
    n : int, default 4
    """

    applies_to = TEXT
    label = "repeated {n}-grams ÷ {n}-grams per document"
    unit = "share"
    direction = Direction.LOWER
    quantity = Quantity.DIVERSITY
    share = True
    parameter_constraints: ClassVar = {"n": [Interval(1, None, integer=True)]}

    def __init__(self, *, n: int = 4) -> None:
        self.n = n

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any, **kw: Any
    ) -> float:
        values = repetition_share(synthetic, self.n)
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else float("nan")


def _corpus(reference: RealData) -> tuple[str, ...]:
    """The whole real corpus: every document of a corpus source, else the seed's text."""
    if reference.source is not None and "documents" in reference.source.provides:
        return tuple(reference.source.documents())
    return (*reference.train, *reference.test)


def _digest(documents: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for doc in documents:
        encoded = doc.encode("utf-8", "surrogatepass")
        h.update(len(encoded).to_bytes(8, "little") + encoded)
    return h.hexdigest()


#: Fitted reference models of this process, by (corpus digest, order, discount).
_REFERENCES: dict[tuple[str, int, float], Any] = {}


def reference_model(documents: tuple[str, ...], order: int, discount: float) -> Any:
    """The Kneser–Ney character model of ``documents`` (fitted once per process)."""
    key = (_digest(documents), order, discount)
    if key not in _REFERENCES:
        if len(_REFERENCES) >= 2:  # bounded: a run has one corpus, a test session a few
            _REFERENCES.pop(next(iter(_REFERENCES)))
        # A model as the yardstick, built through the registry (metrics know no models).
        model = make(
            "model",
            "ngram",
            order=order,
            level="char",
            smoothing="kneser-ney",
            discount=discount,
            lowercase=False,
        )
        # Kneser-Ney fitting draws nothing; the generator only fills the argument.
        _REFERENCES[key] = model.fit(list(documents), rng=np.random.default_rng(0))
    return _REFERENCES[key]


@register("metric", "perplexity_reference")
class PerplexityReference(Metric):
    """Perplexity per character of each generated document under a fixed reference model
    of the real corpus (interpolated Kneser–Ney, ``order`` characters of context).

    The recorded value is the median over documents; the runner keeps every
    document's value and the report draws their histogram per generation.

    Parameters
    ----------
    order : int, default 5
        Characters of context of the reference model (a 6-gram by default).
    discount : float, default 0.75
        Kneser–Ney's absolute discount.
    """

    applies_to = TEXT
    label = "perplexity per character under a {order}-character-context model of the real corpus"
    item_label = "perplexity of a generated document under the reference model (per character)"
    unit = "per character"
    direction = Direction.TARGET
    quantity = Quantity.FIDELITY
    headline = 3
    per_item = True
    parameter_constraints: ClassVar = {
        "order": [Interval(1, 12, integer=True)],
        "discount": [Interval(0, 1, closed="neither")],
    }

    def __init__(self, *, order: int = 5, discount: float = 0.75) -> None:
        self.order = order
        self.discount = discount

    def item_values(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any, **kw: Any
    ) -> np.ndarray:
        judge = reference_model(_corpus(reference), self.order, self.discount)
        per_doc = judge.document_token_log_probs(list(synthetic))
        with np.errstate(over="ignore"):
            return np.exp(-np.array([lp.mean() for lp in per_doc]))

    def summarize(self, values: np.ndarray) -> float:
        return float(np.median(values)) if len(values) else float("nan")


__all__ = [
    "EnglishWords",
    "PerplexityReference",
    "Repetition",
    "english_word_share",
    "english_words",
    "reference_model",
    "repetition_share",
]
