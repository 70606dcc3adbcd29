"""``collapselab diagnose REFERENCE CANDIDATE``: has a corpus lost the tails of another?

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

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data.user import UNITS, read_documents
from .errors import CollapseLabError, DataError
from .metrics.text import (
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
    _check_bootstrap_memory(n_bootstrap, sides)
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


def _check_bootstrap_memory(n_bootstrap: int, sides: list[_Side]) -> None:
    """Refuse, before drawing, a bootstrap whose resample matrices cannot fit: each side
    holds (resamples x documents) draws and (resamples x types) dense counts, a few
    times over."""
    from .io import format_bytes, memory_budget

    need = max(4 * 8 * n_bootstrap * (side.n_docs + len(side.corpus.types)) for side in sides)
    budget = memory_budget()
    if budget is not None and need > budget:
        raise DataError(
            f"--bootstrap {n_bootstrap}: the resamples need about {format_bytes(need)} of "
            f"memory, more than the {format_bytes(budget)} this process can allocate; use "
            "fewer (200 is plenty for a 95% interval), or --max-memory if you know better"
        )


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


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """Register ``diagnose`` on the CLI's subcommands."""
    p = sub.add_parser(
        "diagnose",
        help="has a candidate corpus lost the tails (rare words, rare phrasings) of a reference?",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument(
        "reference", help="real text: a file, folder, .jsonl/.csv/.parquet or saved dataset"
    )
    p.add_argument("candidate", help="the corpus to check, in any of the same forms")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--column", default="text", help="text column of tables and datasets")
    p.add_argument("--unit", default="document", choices=UNITS, help="what one document is")
    p.add_argument("--encoding", default="utf-8", help="encoding of text files")
    p.add_argument("--top", type=int, default=20, help="missing types and bigrams to list")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument(
        "--match-size",
        action="store_true",
        help="subsample the larger corpus to the smaller one's token count first",
    )
    p.set_defaults(func=cmd_diagnose)


def diagnose_corpora(
    reference: str | Path | Sequence[str],
    candidate: str | Path | Sequence[str],
    *,
    column: str = "text",
    unit: str = "document",
    encoding: str = "utf-8",
    top: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    match_size: bool = False,
) -> dict[str, Any]:
    """``collapselab diagnose`` from Python: the same arguments, the result of ``--json``.

    Parameters
    ----------
    reference, candidate : str, Path or sequence of str
        Each corpus: a path read as the command reads it (a text file, a folder,
        ``.jsonl``/``.csv``/``.parquet`` or a saved dataset), or its documents.
    column, unit, encoding : str
        How files are read (``--column``, ``--unit``, ``--encoding``); see
        :func:`collapselab.data.user.read_documents`.
    top, bootstrap, seed, match_size
        As ``--top``, ``--bootstrap``, ``--seed`` and ``--match-size``.

    Returns
    -------
    dict
        As :func:`diagnose` returns, with each side's ``path`` where it was read from one.

    Raises
    ------
    CollapseLabError
        On a setting out of range, or a corpus that cannot be read or has no words.
    """
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 1:
        raise CollapseLabError(f"--bootstrap must be >= 1 (a whole number); got {bootstrap!r}")
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise CollapseLabError(f"--top must be >= 0 (a whole number); got {top!r}")
    sides = {}
    for name, source in (("reference", reference), ("candidate", candidate)):
        if isinstance(source, str | Path):
            sides[name] = read_documents(source, column=column, unit=unit, encoding=encoding)
        elif isinstance(source, Sequence) and all(isinstance(doc, str) for doc in source):
            sides[name] = list(source)
        else:
            raise CollapseLabError(f"the {name} corpus must be a path or a list of documents")
    result = diagnose(
        sides["reference"],
        sides["candidate"],
        top=top,
        n_bootstrap=bootstrap,
        seed=seed,
        match_size=match_size,
    )
    for name, source in (("reference", reference), ("candidate", candidate)):
        if isinstance(source, str | Path):
            result[name]["path"] = str(source)
    return result


def cmd_diagnose(args: argparse.Namespace) -> int:
    result = diagnose_corpora(
        args.reference,
        args.candidate,
        column=args.column,
        unit=args.unit,
        encoding=args.encoding,
        top=args.top,
        bootstrap=args.bootstrap,
        seed=args.seed,
        match_size=args.match_size,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


def _fmt(x: float | None, metric: str) -> str:
    if x is None:
        return "n/a"
    if metric in ("documents", "tokens", "types"):
        return f"{x:,.0f}"
    return f"{x:.3f}"


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="reference vs candidate (95% bootstrap intervals)", title_justify="left")
    table.add_column("metric")
    for side in ("reference", "candidate"):
        table.add_column(side, justify="right")
        table.add_column("95% interval", justify="right")
    for metric in METRICS:
        cells = [metric]
        for side in ("reference", "candidate"):
            m = result[side][metric]
            cells += [
                _fmt(m["value"], metric),
                f"[{_fmt(m['lo'], metric)}, {_fmt(m['hi'], metric)}]",
            ]
        table.add_row(*cells)
    console.print(table)
    for note in result["notes"]:
        console.print(f"note: {note}")
    for key, label in (("missing_types", "type"), ("missing_bigrams", "bigram")):
        items = result[key]
        if not items:
            console.print(f"No frequent reference {label}s are missing from the candidate.")
            continue
        shown = ", ".join(f"{item[label]} ({item['reference_count']})" for item in items)
        console.print(f"Frequent in the reference, missing from the candidate ({label}s): {shown}")
