"""The one-shot ``diagnose`` of collapselab 0.x before its streaming engine, kept unchanged
as the reference the engine must reproduce where no budget is exceeded.

(Its original docstring:) ``collapselab diagnose REFERENCE CANDIDATE``: has a corpus lost the tails of another?

For a data engineer holding a candidate corpus (a model's output, or a corpus with
synthetic text mixed in) and a reference corpus of real text. Both are read like
``data: {id: text}`` (files, folders, JSONL/CSV/Parquet columns, saved datasets),
tokenized into case-folded words with one shared vocabulary, and measured with the
text metrics of :mod:`collapselab.metrics.text`:

* size: ``documents``, ``tokens``;
* tails: ``types``, ``rare_survival_k1`` and ``rare_survival_k5`` (the share of the
  reference's types seen at most once / five times that appear in the corpus),
  ``rare_mass`` (the share of the corpus's tokens that are such reference types);
* diversity: ``entropy`` (nats), ``zipf_exponent``, ``distinct_1`` .. ``distinct_4``.

Each value comes with a 95% bootstrap interval: documents are resampled with
replacement and the interval is the value ± 1.96 bootstrap standard deviations
(Efron's normal interval), clipped to the metric's range. Percentile intervals
would be wrong here: a resample repeats about a third of the documents, which
biases every count of distinct items (types, distinct-n, rare survival) and the
plug-in entropy downward, often below the whole interval. Type counts and rare
survival grow with corpus size, so ``--match-size`` subsamples the larger corpus
to the token count of the smaller one first. The report ends with the word types
and bigrams that are most frequent in the reference and absent from the candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from collapselab.errors import DataError
from collapselab.metrics.text import (
    TokenizedCorpus,
    entropy_of_probs,
    ngram_ids,
    tokenize_corpus,
    zipf_exponent_of_counts,
)

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


@dataclass
class _Side:
    """One corpus on the shared vocabulary: word ids per document and n-gram ids."""

    corpus: TokenizedCorpus
    grams: dict[int, tuple[np.ndarray, np.ndarray]]  # n -> (gram id, document) per n-gram

    @property
    def n_docs(self) -> int:
        return len(self.corpus.doc_ptr) - 1


def _split(joint: TokenizedCorpus, n_first: int) -> tuple[TokenizedCorpus, TokenizedCorpus]:
    cut = joint.doc_ptr[n_first]
    first = TokenizedCorpus(joint.ids[:cut], joint.doc_ptr[: n_first + 1], joint.types)
    second = TokenizedCorpus(joint.ids[cut:], joint.doc_ptr[n_first:] - cut, joint.types)
    return first, second


def _match_size(
    reference: list[str], candidate: list[str], rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Subsample the documents of the larger corpus to the smaller one's token count."""
    sizes = [tokenize_corpus(docs).n_tokens for docs in (reference, candidate)]
    big = int(np.argmax(sizes))
    docs = (reference, candidate)[big]
    lengths = np.diff(tokenize_corpus(docs).doc_ptr)
    order = rng.permutation(len(docs))
    count = int(np.searchsorted(np.cumsum(lengths[order]), min(sizes))) + 1
    kept = [docs[i] for i in np.sort(order[:count])]
    return (kept, candidate) if big == 0 else (reference, kept)


def _doc_matrix(values: np.ndarray, docs: np.ndarray, n_docs: int, width: int) -> Any:
    """Sparse (documents x ids) count matrix."""
    from scipy.sparse import csr_matrix

    return csr_matrix(
        (np.ones(len(values)), (docs, values)), shape=(n_docs, width), dtype=np.float64
    )


def _zipf_rows(counts: np.ndarray) -> np.ndarray:
    return np.array([zipf_exponent_of_counts(row[row > 0]) for row in counts])


def _measure(
    side: _Side,
    weights: Any,
    rare1: np.ndarray,
    rare5: np.ndarray,
    gram_widths: dict[int, int],
) -> dict[str, np.ndarray]:
    """Every metric for each row of ``weights`` (resample x documents: how many times
    each document is drawn); row 0 of the point estimate is all ones."""
    from scipy.sparse import csr_matrix

    w = csr_matrix(weights)
    corpus = side.corpus
    doc_of_token = np.repeat(np.arange(side.n_docs), np.diff(corpus.doc_ptr))
    counts = (w @ _doc_matrix(corpus.ids, doc_of_token, side.n_docs, len(corpus.types))).toarray()
    tokens = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "documents": np.asarray(w.sum(axis=1)).ravel(),
            "tokens": tokens,
            "types": (counts > 0).sum(axis=1).astype(float),
            "rare_survival_k1": (counts[:, rare1] > 0).mean(axis=1) if len(rare1) else None,
            "rare_survival_k5": (counts[:, rare5] > 0).mean(axis=1) if len(rare5) else None,
            "rare_mass": counts[:, rare5].sum(axis=1) / tokens,
            "entropy": entropy_of_probs(counts / tokens[:, None], axis=1),
            "zipf_exponent": _zipf_rows(counts),
        }
    for n in range(1, 5):
        grams, docs = side.grams[n]
        matrix = _doc_matrix(grams, docs, side.n_docs, gram_widths[n])
        product = w @ matrix
        total = np.asarray(product.sum(axis=1)).ravel()
        distinct = np.diff(product.indptr).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"distinct_{n}"] = np.where(total > 0, distinct / total, np.nan)
    nan = np.full(weights.shape[0], np.nan)
    return {k: nan if v is None else np.asarray(v, dtype=float) for k, v in out.items()}


def diagnose(
    reference: list[str],
    candidate: list[str],
    *,
    top: int = 20,
    n_bootstrap: int = 200,
    seed: int = 0,
    match_size: bool = False,
) -> dict[str, Any]:
    """Text metrics of both corpora with 95% bootstrap intervals, and what the candidate lost.

    Returns a JSON-ready mapping: ``reference`` and ``candidate`` (each
    ``{metric: {"value", "lo", "hi"}}``), ``missing_types`` and ``missing_bigrams``
    (the ``top`` most frequent in the reference and absent from the candidate,
    with their reference counts), and the settings used.
    """
    rng = np.random.default_rng(seed)
    if match_size:
        reference, candidate = _match_size(reference, candidate, rng)
    joint = tokenize_corpus([*reference, *candidate])
    ref_corpus, cand_corpus = _split(joint, len(reference))
    for name, corpus in (("reference", ref_corpus), ("candidate", cand_corpus)):
        if corpus.n_tokens == 0:
            raise DataError(f"the {name} corpus has no words")
    joint_grams = {n: ngram_ids(joint, n) for n in range(1, 5)}
    widths = {n: int(codes.max()) + 1 if len(codes) else 1 for n, (codes, _) in joint_grams.items()}
    sides = []
    for offset, corpus in ((0, ref_corpus), (len(reference), cand_corpus)):
        grams = {}
        for n, (codes, docs) in joint_grams.items():
            mine = (docs >= offset) & (docs < offset + len(corpus.doc_ptr) - 1)
            grams[n] = (codes[mine], docs[mine] - offset)
        sides.append(_Side(corpus, grams))
    ref_counts = ref_corpus.counts
    rare1 = np.flatnonzero((ref_counts >= 1) & (ref_counts <= 1))
    rare5 = np.flatnonzero((ref_counts >= 1) & (ref_counts <= 5))

    result: dict[str, Any] = {}
    for name, side in zip(("reference", "candidate"), sides, strict=True):
        point = _measure(side, np.ones((1, side.n_docs)), rare1, rare5, widths)
        draws = rng.multinomial(
            side.n_docs, np.full(side.n_docs, 1.0 / side.n_docs), size=n_bootstrap
        )
        boot = _measure(side, draws, rare1, rare5, widths)
        result[name] = {
            metric: _interval(point[metric][0], boot[metric], metric) for metric in METRICS
        }
    result["missing_types"] = _missing_types(ref_corpus, cand_corpus, top)
    result["missing_bigrams"] = _missing_bigrams(joint, sides, top)
    result["settings"] = {"bootstrap": n_bootstrap, "seed": seed, "match_size": match_size}
    sizes = [result[side]["tokens"]["value"] for side in ("reference", "candidate")]
    result["notes"] = []
    if not match_size and max(sizes) > 1.25 * min(sizes):
        result["notes"].append(
            f"the corpora differ in size ({sizes[0]:,.0f} vs {sizes[1]:,.0f} tokens): types, "
            "distinct-n and rare survival depend on size; use --match-size to compare at equal size"
        )
    return result


#: Metrics that are shares, bounded by 1; every metric is >= 0.
_FRACTIONS = {"rare_survival_k1", "rare_survival_k5", "rare_mass"} | {
    f"distinct_{n}" for n in range(1, 5)
}


def _interval(value: float, draws: np.ndarray, metric: str) -> dict[str, float | None]:
    """Efron's normal interval: value ± 1.96 bootstrap standard deviations, clipped."""
    finite = draws[np.isfinite(draws)]
    spread = 1.96 * finite.std(ddof=1) if len(finite) > 1 else np.nan
    high = 1.0 if metric in _FRACTIONS else np.inf
    lo, hi = np.clip(value - spread, 0.0, high), np.clip(value + spread, 0.0, high)
    return {"value": _clean(value), "lo": _clean(lo), "hi": _clean(hi)}


def _clean(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _missing_types(ref: TokenizedCorpus, cand: TokenizedCorpus, top: int) -> list[dict[str, Any]]:
    ref_counts, cand_counts = ref.counts, cand.counts
    missing = np.flatnonzero((ref_counts > 0) & (cand_counts == 0))
    order = missing[np.lexsort((missing, -ref_counts[missing]))][:top]
    return [{"type": str(ref.types[i]), "reference_count": int(ref_counts[i])} for i in order]


def _missing_bigrams(joint: TokenizedCorpus, sides: list[_Side], top: int) -> list[dict[str, Any]]:
    (ref_codes, _), (cand_codes, _) = sides[0].grams[2], sides[1].grams[2]
    if not len(ref_codes):
        return []
    width = int(max(ref_codes.max(), cand_codes.max() if len(cand_codes) else 0)) + 1
    ref_counts = np.bincount(ref_codes, minlength=width)
    cand_counts = np.bincount(cand_codes, minlength=width)
    missing = np.flatnonzero((ref_counts > 0) & (cand_counts == 0))
    order = missing[np.lexsort((missing, -ref_counts[missing]))][:top]
    # Words of each bigram, from one of its occurrences in the joint corpus.
    codes, _ = ngram_ids(joint, 2)
    doc = np.repeat(np.arange(len(joint.doc_ptr) - 1), np.diff(joint.doc_ptr))
    starts = np.arange(max(len(joint.ids) - 1, 0))
    starts = starts[doc[starts] == doc[np.minimum(starts + 1, len(joint.ids) - 1)]]
    first = {}
    for code, pos in zip(codes.tolist(), starts.tolist(), strict=True):
        first.setdefault(code, pos)
    out = []
    for code in order:
        pos = first[int(code)]
        words = f"{joint.types[joint.ids[pos]]} {joint.types[joint.ids[pos + 1]]}"
        out.append({"bigram": words, "reference_count": int(ref_counts[code])})
    return out
