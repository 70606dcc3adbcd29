"""Metrics of discrete and text models: tails, diversity and fit to the real data.

The loss that matters to users of text models is the loss of rare words and rare
phrasings. Word types are the case-folded tokens of
:func:`collapselab.tokenize.tokenize_words`; token data (``TOKENS``) uses its ids.
"Rare" real types are those seen at most ``k`` times in the seed's real training
data. Metrics that need a model capability declare it in ``requires`` (method
names), so the conformance checks pick a model that has it:

* ``token_log_probs(data)``: per-token log-probabilities (perplexity, coverage);
* ``type_probs(types)``: the model's unigram probability of given types (rare mass,
  rare types in the support);
* ``probabilities()``: the full distribution of a categorical model.

Perplexities charge every real token: a token the model gives probability 0 is
scored at a declared floor (see ``perplexity_real``), so losing coverage always
costs. Variants are parameters: ``distinct_2`` is ``distinct`` with ``n=2``,
``rare_survival_k5`` is ``rare_survival`` with ``k=5`` (see :func:`register_variant`).

The pure functions (entropy of counts, Zipf fit, distinct-n) also serve
``collapselab diagnose``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..core import (
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Quantity,
    RealData,
    ReferenceBatch,
    SeedBatch,
)
from ..errors import ConfigError
from ..registry import register
from ..tokenize import encode_documents

TOKENS = frozenset({DataKind.TOKENS})
TEXT = frozenset({DataKind.TEXT})
DISCRETE = frozenset({DataKind.TOKENS, DataKind.TEXT})


# ---------------------------------------------------------------------------
# Tokenized corpora and pure statistics
# ---------------------------------------------------------------------------


@dataclass
class TokenizedCorpus:
    """Documents as word ids: ``ids[doc_ptr[d]:doc_ptr[d+1]]`` is document ``d``."""

    ids: np.ndarray
    doc_ptr: np.ndarray
    types: np.ndarray  # id -> word (object array)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.ids, minlength=len(self.types))

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


def tokenize_corpus(documents: Any) -> TokenizedCorpus:
    """Case-folded word ids of every document."""
    ids, types, doc_ptr = encode_documents(list(documents))
    return TokenizedCorpus(ids, doc_ptr, types)


class _LastResult:
    """Computes ``fn(*args)`` once for the metrics of a generation.

    Every metric of a generation receives the same objects (the output, the model,
    the reference), so one slot keyed by identity suffices; it holds references to
    no more than one generation's objects, so identities cannot be reused meanwhile.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.args: tuple[Any, ...] = ()
        self.value: Any = None

    def __call__(self, *args: Any) -> Any:
        same = len(args) == len(self.args) and all(
            a is b for a, b in zip(args, self.args, strict=False)
        )
        if not same:
            self.value = self.fn(*args)
            self.args = args
        return self.value


_output_corpus = _LastResult(tokenize_corpus)
_test_log_probs = _LastResult(lambda model, test: model.token_log_probs(test))


def entropy_of_counts(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of the empirical distribution ``counts / sum``."""
    c = np.asarray(counts, dtype=float)
    c = c[c > 0]
    if c.sum() == 0:
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def entropy_of_probs(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy (nats) of distributions along ``axis``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis)


def zipf_exponent_of_counts(counts: np.ndarray, min_count: int = 1) -> float:
    """β of Zipf's law ``f(r) ∝ r^-β``: minus the least-squares slope of log frequency
    on log rank, over the types seen at least ``min_count`` times (NaN with < 2 types)."""
    c = np.sort(np.asarray(counts, dtype=float))[::-1]
    ranks = np.arange(1, len(c) + 1, dtype=float)
    keep = c >= max(min_count, 1)
    if keep.sum() < 2:
        return float("nan")
    slope = np.polyfit(np.log(ranks[keep]), np.log(c[keep]), 1)[0]
    return float(-slope)


def ngram_ids(corpus: TokenizedCorpus, n: int) -> tuple[np.ndarray, np.ndarray]:
    """An id per word n-gram (equal n-grams, equal ids) and its document, for every
    n-gram that lies inside one document."""
    ids, ptr = corpus.ids, corpus.doc_ptr
    doc = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    starts = np.arange(max(len(ids) - n + 1, 0))
    valid = (
        starts[doc[starts] == doc[np.minimum(starts + n - 1, len(ids) - 1)]] if n > 1 else starts
    )
    code = np.zeros(len(valid), dtype=np.int64)
    v = max(len(corpus.types), 1)
    for k in range(n):
        _, code = np.unique(code * v + ids[valid + k], return_inverse=True)
        code = code.reshape(-1)
    return code, doc[valid]


def distinct_n(corpus: TokenizedCorpus, n: int) -> float:
    """Distinct word n-grams divided by all n-grams (Li et al. 2016); NaN without any."""
    code, _ = ngram_ids(corpus, n)
    if len(code) == 0:
        return float("nan")
    return float(len(np.unique(code)) / len(code))


# ---------------------------------------------------------------------------
# Reference statistics (computed once per seed)
# ---------------------------------------------------------------------------


def real_distribution(ref: RealData) -> np.ndarray:
    """The real distribution over token ids: the truth if known, else training frequencies."""

    def compute(r: RealData) -> np.ndarray:
        if "probs" in r.truth:
            return np.asarray(r.truth["probs"], dtype=float)
        counts = np.bincount(np.asarray(r.train, dtype=np.int64))
        return counts / counts.sum()

    return ref.cached("real_distribution", compute)


def rare_types(ref: RealData, k: int) -> np.ndarray:
    """Types seen between 1 and ``k`` times in the real training data (ids or words)."""

    def compute(r: RealData) -> np.ndarray:
        if r.kind == DataKind.TOKENS:
            counts = np.bincount(np.asarray(r.train, dtype=np.int64))
            return np.flatnonzero((counts >= 1) & (counts <= k))
        corpus = tokenize_corpus(r.train)
        counts = corpus.counts
        return corpus.types[(counts >= 1) & (counts <= k)]

    return ref.cached(f"rare_types_{k}", compute)


def output_types(synthetic: Any) -> np.ndarray:
    """Distinct types of an output: ids for token data, case-folded words for text."""
    if isinstance(synthetic, np.ndarray):
        return np.unique(synthetic)
    return _output_corpus(synthetic).types


def output_counts(synthetic: Any) -> np.ndarray:
    if isinstance(synthetic, np.ndarray):
        return np.unique(synthetic, return_counts=True)[1]
    return _output_corpus(synthetic).counts


def _rare_mask(ref: RealData, k: int, width: int) -> np.ndarray:
    mask = np.zeros(width, dtype=bool)
    ids = rare_types(ref, k)
    mask[ids[ids < width]] = True
    return mask


def _pad(a: np.ndarray, width: int) -> np.ndarray:
    """Zero-pad the last axis of ``a`` to ``width``."""
    extra = width - a.shape[-1]
    return a if extra <= 0 else np.concatenate([a, np.zeros((*a.shape[:-1], extra))], axis=-1)


def _token_batch_ready(references: ReferenceBatch) -> bool:
    # Stacking per-seed vectors needs one width: a known truth fixes it.
    return "probs" in references.items[0].truth


# ---------------------------------------------------------------------------
# Fit to the real data
# ---------------------------------------------------------------------------


#: The declared floor of the perplexities: every token is scored at p + FLOOR, so a real
#: test token the model gives probability 0 costs ln(1 / FLOOR) = 13.8 nats.
FLOOR = 1e-6


def floored(logp: np.ndarray, floor: float) -> np.ndarray:
    """ln(p + floor) of log-probabilities ``logp`` (``-inf`` for p = 0 gives ln floor)."""
    return np.logaddexp(logp, np.log(floor))


@register("metric", "perplexity_real")
class PerplexityReal(Metric):
    """Perplexity of the held-out real test data under model t, charging every token.

    exp(-mean ln(p + floor)) over every test token (and each document's end), where p is
    the model's probability of the token and ``floor`` a declared unknown-token
    probability (default 1e-6): a token the model cannot emit (an unsmoothed model's
    unseen word or context, a type a categorical chain has lost) costs ln(1/floor) =
    13.8 nats instead of being left out. p + floor increases with p, so no model gains
    by giving a real token probability 0, and the floor is the same for every model,
    generation and arm: a chain that loses coverage always pays for it. (The scored
    values sum to at most 1 + floor V over a vocabulary of V tokens: the floor flatters
    no model by more than ln(1 + floor V), 0.005 nats for V = 5000.) For an
    unsmoothed model whose coverage c is low, ln perplexity is about
    c H_covered + (1 - c) ln(1/floor): mostly a measure of coverage. Smoothed models
    give every token p > 0 and the floor hardly moves them. The covered tokens' own
    perplexity, which rewards a collapsing model, is the diagnostic
    ``perplexity_covered``.
    """

    model_only = frozenset()

    applies_to = DISCRETE
    requires: ClassVar[tuple[str, ...]] = ("token_log_probs",)
    parameter_constraints: ClassVar = {"floor": [Interval(0, 1, closed="neither")]}
    label = "perplexity of real test tokens, floor {floor:g} (per token)"
    unit = "per token"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 8

    def __init__(self, *, floor: float = FLOOR) -> None:
        self.floor = floor

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        logp = floored(_test_log_probs(model, reference.test), self.floor)
        return float(np.exp(-logp.mean()))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        logp = floored(_batched_test_log_probs(model, references), self.floor)
        return np.exp(-logp.mean(1))


@register("metric", "perplexity_covered")
class PerplexityCovered(Metric):
    """Diagnostic: perplexity of only those real test tokens model t gives p > 0.

    exp(mean negative log-probability) over the covered tokens; ``inf`` when none is
    covered. It is not a fit to the real data: the tokens a collapsing model loses
    leave the average, so it *falls* as the model collapses (ngram-shakespeare:
    replace 12.6 against accumulate 15.3 while their coverage is 0.068 against
    0.178). Read it only beside ``coverage_real``; ``perplexity_real`` is the loss.
    """

    model_only = frozenset()

    applies_to = DISCRETE
    requires: ClassVar[tuple[str, ...]] = ("token_log_probs",)
    label = "perplexity of the covered real test tokens only (diagnostic)"
    unit = "per token"
    direction = Direction.NEUTRAL  # it rewards collapse: no healthy end
    quantity = Quantity.OTHER

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        logp = _test_log_probs(model, reference.test)
        covered = np.isfinite(logp)
        if not covered.any():
            return float("inf")
        return float(np.exp(-logp[covered].mean()))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        logp = _batched_test_log_probs(model, references)
        covered = np.isfinite(logp)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(covered, logp, 0.0).sum(1) / covered.sum(1)
        return np.where(covered.any(1), np.exp(-mean), np.inf)


@register("metric", "perplexity_gen0")
class PerplexityGen0(Metric):
    """Perplexity of each document model t generated, under generation 0's model.

    Per document: exp(-mean ln(p_0 + floor)) over its tokens and its end, where p_0 is
    the probability under the model fitted to the real training data (Shumailov et al.
    2024, Fig. 1b: later generations write text the first model finds more likely,
    plus a long tail it finds unlikely) and ``floor`` the declared unknown-token
    probability of ``perplexity_real``: a token generation 0 could not emit counts at
    its full cost. The recorded value is the median over documents; the runner keeps
    every document's value and the report draws their histogram per generation. It
    has no healthy end on its own: falling is the mode seeking of a collapsing chain,
    rising its drift into text the real data never had; read it beside
    ``perplexity_real``.
    """

    applies_to = TEXT
    requires: ClassVar[tuple[str, ...]] = ("document_token_log_probs",)
    parameter_constraints: ClassVar = {"floor": [Interval(0, 1, closed="neither")]}
    uses_model_0 = True
    per_item = True
    label = "median perplexity of the output under generation 0 (per token)"
    item_label = "perplexity of a generated document under generation 0 (per token)"
    unit = "per token"
    direction = Direction.NEUTRAL
    quantity = Quantity.GEN0_LIKELIHOOD
    headline = 9

    def __init__(self, *, floor: float = FLOOR) -> None:
        self.floor = floor

    def item_values(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: Any,
        model_0: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        yardstick = model if model_0 is None else model_0
        per_doc = yardstick.document_token_log_probs(synthetic)
        mean = np.array([floored(lp, self.floor).mean() for lp in per_doc])
        return np.exp(-mean)

    def summarize(self, values: np.ndarray) -> float:
        return float(np.median(values))


@register("metric", "coverage_real")
class CoverageReal(Metric):
    """Share of the held-out real test tokens to which model t gives a non-zero probability."""

    model_only = frozenset()

    applies_to = DISCRETE
    requires: ClassVar[tuple[str, ...]] = ("token_log_probs",)
    label = "share of real test tokens with p > 0"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.TAILS
    share = True
    headline = 100

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(np.isfinite(_test_log_probs(model, reference.test)).mean())

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        return np.isfinite(_batched_test_log_probs(model, references)).mean(1)


def _batched_test_log_probs(model: Any, references: ReferenceBatch) -> np.ndarray:
    test = references.stacked("test_ids", lambda r: np.asarray(r.test, dtype=np.int64))
    probs = model.probabilities()
    inside = test < probs.shape[1]
    p = np.take_along_axis(probs, np.where(inside, test, 0), axis=1)
    with np.errstate(divide="ignore"):
        return np.where(inside, np.log(p), -np.inf)


# ---------------------------------------------------------------------------
# Tails
# ---------------------------------------------------------------------------


@register("metric", "types")
class Types(Metric):
    """Vocabulary size of model t's output: distinct word types (or token ids)."""

    applies_to = DISCRETE
    label = "distinct types in the output"
    unit = "types"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    headline = 6

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(len(output_types(synthetic)))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        ordered = np.sort(synthetic.array, axis=1)
        return (np.diff(ordered, axis=1) != 0).sum(axis=1) + 1.0


@register("metric", "rare_survival")
class RareSurvival(Metric):
    """Share of the real rare types (seen 1..k times in the real training data) still
    present in model t's output. NaN when the real data has no such type.

    Registered with ``k`` fixed as ``rare_survival_k1`` (the real hapaxes) and
    ``rare_survival_k5``."""

    applies_to = DISCRETE
    parameter_constraints: ClassVar = {"k": [Interval(1, None, integer=True)]}
    label = "share of real types seen ≤ {k} times still in the output"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.TAILS
    share = True
    headline = 2

    def __init__(self, *, k: int = 1) -> None:
        self.k = k

    def _present(self, model: Any, synthetic: Any, rare: np.ndarray) -> np.ndarray:
        if isinstance(synthetic, np.ndarray):
            return np.isin(rare, output_types(synthetic))
        present = set(output_types(synthetic).tolist())  # np.isin on strings is quadratic-ish
        return np.fromiter((w in present for w in rare.tolist()), dtype=bool, count=len(rare))

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        rare = rare_types(reference, self.k)
        if len(rare) == 0:
            return float("nan")
        return float(self._present(model, synthetic, rare).mean())

    def _present_batched(self, model: Any, synthetic: SeedBatch, width: int) -> np.ndarray:
        s = synthetic.array.shape[0]
        ids = synthetic.array
        inside = ids < width
        flat = (np.where(inside, ids, 0) + np.arange(s)[:, None] * width)[inside]
        return np.bincount(flat, minlength=s * width).reshape(s, width) > 0

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        if not _token_batch_ready(references):
            return None
        width = len(real_distribution(references.items[0]))
        rare = references.stacked(f"rare_mask_{self.k}", lambda r: _rare_mask(r, self.k, width))
        present = self._present_batched(model, synthetic, width)
        with np.errstate(invalid="ignore"):
            return (present & rare).sum(1) / rare.sum(1)


@register("metric", "rare_support")
class RareSupport(RareSurvival):
    """Share of the real rare types (seen 1..k times) to which model t still gives a
    non-zero probability: the types it can still emit.

    Registered with ``k`` fixed as ``rare_support_k1`` and ``rare_support_k5``."""

    model_only = frozenset()

    requires: ClassVar[tuple[str, ...]] = ("type_probs",)
    label = "share of real types seen ≤ {k} times still in the model's support"
    headline = 100

    def _present(self, model: Any, synthetic: Any, rare: np.ndarray) -> np.ndarray:
        return model.type_probs(rare) > 0

    def _present_batched(self, model: Any, synthetic: SeedBatch, width: int) -> np.ndarray:
        return _pad(model.probabilities(), width)[:, :width] > 0


@register("metric", "rare_mass")
class RareMass(Metric):
    """Probability model t gives to the real rare types (seen 1..k times in the real
    training data), from its unigram distribution. NaN for character models.

    Not a headline: under an unbiased resampling chain (``replace`` without decoding)
    the probability of any fixed set of types is a martingale, so its mean over seeds
    stays at generation 0's value while the rare types themselves are lost (zipf-tails
    under replace: 0.32 -> 0.31 while ``rare_survival_k5`` falls 0.72 -> 0.31); the mass
    moves onto the rare types that happen to survive. It falls only where something
    other than drift removes the tail (top-p decoding, a filter): read the loss of rare
    types from ``rare_survival`` and ``rare_support``.
    """

    model_only = frozenset()

    applies_to = DISCRETE
    requires: ClassVar[tuple[str, ...]] = ("type_probs",)
    label = "probability of the real types seen ≤ {k} times"
    unit = "probability"
    direction = Direction.TARGET  # the real rare types' own share of the text
    quantity = Quantity.TAILS
    share = True
    parameter_constraints: ClassVar = {"k": [Interval(1, None, integer=True)]}

    def __init__(self, *, k: int = 5) -> None:
        self.k = k

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(np.sum(model.type_probs(rare_types(reference, self.k))))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        if not _token_batch_ready(references):
            return None
        probs = model.probabilities()
        width = max(len(real_distribution(references.items[0])), probs.shape[1])
        rare = references.stacked(
            f"rare_mask_{self.k}_{width}", lambda r: _rare_mask(r, self.k, width)
        )
        return (_pad(probs, width) * rare).sum(1)


# ---------------------------------------------------------------------------
# Diversity
# ---------------------------------------------------------------------------


@register("metric", "entropy")
class Entropy(Metric):
    """Shannon entropy (nats): of model t's distribution where it has one in closed
    form (a categorical model), else of the word frequencies of its output."""

    model_only = frozenset({"probabilities"})

    applies_to = DISCRETE
    label = "entropy (nats)"
    unit = "nats"
    # The real entropy: collapse lowers it, a temperature above 1 raises it past the real one.
    direction = Direction.TARGET
    quantity = Quantity.DIVERSITY
    headline = 100

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        if "probabilities" in model.provides:
            return float(entropy_of_probs(model.probabilities()))
        return entropy_of_counts(output_counts(synthetic))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        return entropy_of_probs(model.probabilities(), axis=1)


@register("metric", "zipf_exponent")
class ZipfExponent(Metric):
    """β fitted on the rank–frequency curve of model t's output (least squares on
    log–log, types seen at least ``min_count`` times). NaN with fewer than 2 types."""

    applies_to = DISCRETE
    parameter_constraints: ClassVar = {"min_count": [Interval(1, None, integer=True)]}
    label = "Zipf exponent β of the output (types seen ≥ {min_count} times)"
    direction = Direction.TARGET  # the real text's β; a lost tail steepens it
    quantity = Quantity.OTHER
    headline = 100

    def __init__(self, *, min_count: int = 1) -> None:
        self.min_count = min_count

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return zipf_exponent_of_counts(output_counts(synthetic), self.min_count)


@register("metric", "distinct")
class DistinctN(Metric):
    """Distinct word n-grams over all n-grams of model t's output (inside documents).

    Registered with ``n`` fixed as ``distinct_1`` .. ``distinct_4``."""

    applies_to = TEXT
    parameter_constraints: ClassVar = {"n": [Interval(1, None, integer=True)]}
    label = "distinct {n}-grams ÷ all {n}-grams of the output"
    unit = "share"
    # Collapse lowers it; a model that strings random words together raises it past the real text.
    direction = Direction.TARGET
    quantity = Quantity.DIVERSITY
    share = True
    headline = 15

    def __init__(self, *, n: int = 1) -> None:
        self.n = n

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return distinct_n(_output_corpus(synthetic), self.n)


def register_variant(id: str, cls: type[Metric], **fixed: Any) -> None:
    """Register ``cls`` with the parameters ``fixed`` under ``id`` (``distinct_2`` is
    ``distinct`` with n = 2): a partial application, and a config that sets a fixed
    parameter is refused rather than silently measuring something else."""

    def factory(**params: Any) -> Metric:
        clash = sorted(set(params) & set(fixed))
        if clash:
            name = clash[0]
            raise ConfigError(
                f"metric {id!r} is metric {cls.registry_id!r} with {name}={fixed[name]!r}; "
                f"for {name}={params[name]!r} use metric {cls.registry_id!r} with "
                f"params {{{name}: {params[name]!r}}}"
            )
        return cls(**fixed, **params)

    settings = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    factory.__name__ = factory.__qualname__ = id
    factory.__doc__ = f"Metric {cls.registry_id!r} with {settings}."
    register("metric", id)(factory)


for _n in (1, 2, 3, 4):
    register_variant(f"distinct_{_n}", DistinctN, n=_n)
for _k in (1, 5):
    register_variant(f"rare_survival_k{_k}", RareSurvival, k=_k)
    register_variant(f"rare_support_k{_k}", RareSupport, k=_k)


# ---------------------------------------------------------------------------
# Categorical models
# ---------------------------------------------------------------------------


@register("metric", "support")
class Support(Metric):
    """Number of token ids to which model t gives a non-zero probability."""

    model_only = frozenset()

    applies_to = TOKENS
    requires: ClassVar[tuple[str, ...]] = ("probabilities",)
    label = "token ids with p > 0"
    unit = "types"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    headline = 100
    theory_quantity = "support"

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(np.count_nonzero(model.probabilities()))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        return np.count_nonzero(model.probabilities(), axis=1).astype(float)


@register("metric", "heterozygosity")
class Heterozygosity(Metric):
    """1 - Σ p_k² of model t: the chance two draws differ (Wright–Fisher's H)."""

    model_only = frozenset()

    applies_to = TOKENS
    requires: ClassVar[tuple[str, ...]] = ("probabilities",)
    label = "heterozygosity 1 − Σ p²"
    unit = "probability"
    direction = Direction.TARGET  # the real distribution's own H
    quantity = Quantity.DIVERSITY
    share = True
    headline = 100
    theory_quantity = "heterozygosity"

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        p = model.probabilities()
        return float(1.0 - np.dot(p, p))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        p = model.probabilities()
        return 1.0 - np.einsum("sv,sv->s", p, p)


@register("metric", "tv_real")
class TVReal(Metric):
    """Total variation ½ Σ |p_t - p_real| between model t and the real distribution."""

    model_only = frozenset()

    applies_to = TOKENS
    requires: ClassVar[tuple[str, ...]] = ("probabilities",)
    label = "total variation to the real distribution"
    unit = "probability"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    share = True
    headline = 100

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        p, q = _aligned(model.probabilities(), real_distribution(reference))
        return float(0.5 * np.abs(p - q).sum())

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        if not _token_batch_ready(references):
            return None
        p, q = _aligned(model.probabilities(), references.stacked("real", real_distribution))
        return 0.5 * np.abs(p - q).sum(axis=1)


@register("metric", "kl_real")
class KLReal(Metric):
    """KL(p_t ‖ p_real) in nats: finite while the model stays inside the real support
    (inf if it puts mass where the real distribution has none)."""

    model_only = frozenset()

    applies_to = TOKENS
    requires: ClassVar[tuple[str, ...]] = ("probabilities",)
    label = "KL(p_t ‖ p_real) (nats)"
    unit = "nats"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    headline = 100

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        p, q = _aligned(model.probabilities(), real_distribution(reference))
        return float(_kl(p, q))

    def batched(
        self, model: Any, synthetic: SeedBatch, references: ReferenceBatch, *, rng: Any
    ) -> np.ndarray | None:
        if not _token_batch_ready(references):
            return None
        p, q = _aligned(model.probabilities(), references.stacked("real", real_distribution))
        return _kl(p, q)


def _aligned(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = max(p.shape[-1], q.shape[-1])
    return _pad(np.asarray(p, dtype=float), width), _pad(np.asarray(q, dtype=float), width)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / q), 0.0)
    return terms.sum(axis=-1)
