"""Speed and memory of ``collapselab diagnose`` on JSONL corpora of about 1 KB documents.

The benchmark writes a reference and a candidate of each size (1, 10 and 100 MB by
default; ``--sizes``) to a temporary folder: words drawn from a Zipf(1.1) law over a
vocabulary of 2 million synthetic words (the reference) and, for the candidate, the
same law truncated to its 20,000 most frequent words (a corpus that lost its tail),
with a full stop every 15 words or so. Nothing is committed or downloaded.

Each round runs, in its own process, the whole command (reading both files, the
streaming pass over each, 200 bootstrap resamples, the report as JSON) at every size,
interleaved over ``--repeats`` rounds (default 5), and records its wall time and
peak resident memory. It reports:

* throughput: megabytes of input (both corpora) per second, against the target
  >= 20 MB/s, at each size (at 1 MB most of the time is the exact bootstrap, which
  small corpora get so that their intervals stay those of earlier versions);
* peak RSS at each size, and the line through (size, time) and (size, RSS) of the
  two largest sizes extrapolated to 1 GB against 1 GB (target: a few minutes, < 2 GB;
  the memory line overstates it once the budgets are reached, beyond about 100 MB:
  ``--sizes 1000`` measures it);
* at the smallest size, the speed-up over the one-shot implementation this engine
  replaced (tests/diagnose_reference.py), whose results it reproduces.

    python benchmarks/bench_diagnose.py [--sizes 1 10 100]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness import Ratio, finish, parser, repeats

HERE = Path(__file__).resolve().parent
RUN = """
import contextlib, io, json, resource, sys, time
sys.path.insert(0, {tests!r})
from collapselab.cli import build_parser, main
from collapselab.data.user import read_documents
build_parser()  # the subcommands' imports
import pandas, scipy.sparse  # imported on first use by the pass: imports, not work
from diagnose_reference import diagnose
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()  # reading and measuring, not Python's start or the imports
if {old}:
    diagnose(read_documents({ref!r}), read_documents({cand!r}))
else:
    with contextlib.redirect_stdout(io.StringIO()):
        main(["diagnose", {ref!r}, {cand!r}, "--json"])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "peak_rss_mb": peak, "imports_rss_mb": imported}}))
"""


def lexicon(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` made-up words, letters drawn by their English frequency order."""
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    lengths = np.clip(rng.poisson(4, size=size) + 1, 1, 12)
    chars = letters[np.minimum(rng.geometric(0.2, size=int(lengths.sum())) - 1, 25)]
    words = np.split(chars, np.cumsum(lengths)[:-1])
    return np.array(["".join(w) for w in words], dtype=object)


def write_corpus(path: Path, megabytes: float, words: np.ndarray, rng: np.random.Generator) -> None:
    """JSONL documents of about 1 KB, words drawn from Zipf(1.1) over ``words``."""
    vocabulary = len(words)
    cdf = np.cumsum(np.arange(1, vocabulary + 1, dtype=float) ** -1.1)
    cdf /= cdf[-1]
    target = int(megabytes * 1e6)
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            ids = np.searchsorted(cdf, rng.random(170 * 1000), side="right")
            tokens = words[np.minimum(ids, vocabulary - 1)]
            tokens[rng.random(len(tokens)) < 1 / 15] += "."
            for doc in np.split(tokens, 1000):
                line = json.dumps({"text": " ".join(doc)}) + "\n"
                out.write(line)
                written += len(line)
                if written >= target:
                    break


def run_once(ref: Path, cand: Path, old: bool = False) -> dict[str, float]:
    code = RUN.format(tests=str(HERE.parent / "tests"), ref=str(ref), cand=str(cand), old=old)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sizes", type=float, nargs="+", default=[1, 10, 100], help="MB per corpus")
    args = p.parse_args()
    sizes = [0.05] if args.quick else sorted(args.sizes)
    rng = np.random.default_rng(0)
    # --quick (a run, not a claim) writes 50 KB a side: a smaller lexicon is plenty
    words = lexicon(50_000 if args.quick else 2_000_000, rng)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for size in sizes:
            ref, cand = Path(tmp) / f"ref-{size:g}.jsonl", Path(tmp) / f"cand-{size:g}.jsonl"
            write_corpus(ref, size, words, rng)
            write_corpus(cand, size, words[:20_000], rng)
            files[size] = (ref, cand, (ref.stat().st_size + cand.stat().st_size) / 1e6)
        runs: dict[str, list[dict[str, float]]] = {f"{s:g}MB": [] for s in sizes}
        runs["old_smallest"] = []
        names = list(runs)
        for r in range(repeats(args)):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                size = sizes[0] if name == "old_smallest" else float(name[:-2])
                ref, cand, _ = files[size]
                runs[name].append(run_once(ref, cand, old=name == "old_smallest"))
    seconds = {name: [x["seconds"] for x in xs] for name, xs in runs.items()}
    rss = {name: [x["peak_rss_mb"] for x in xs] for name, xs in runs.items()}
    ratios = [
        Ratio(
            f"throughput at {s:g} MB per corpus",
            [files[s][2] / t for t in seconds[f"{s:g}MB"]],
            ">=",
            20,
            "MB/s",
        )
        for s in sizes
    ]
    ratios.append(
        Ratio(
            f"one-shot implementation / streaming engine at {sizes[0]:g} MB",
            [
                a / b
                for a, b in zip(seconds["old_smallest"], seconds[f"{sizes[0]:g}MB"], strict=True)
            ],
            ">=",
            2,
        )
    )
    extra: dict[str, object] = {
        "input_mb": {f"{s:g}MB": files[s][2] for s in sizes},
        "peak_rss_mb": {name: max(v) for name, v in rss.items()},
        "rss_after_imports_mb": max(x["imports_rss_mb"] for xs in runs.values() for x in xs),
    }
    for name in runs:
        print(
            f"  {name}: median {np.median(seconds[name]):.2f} s, peak RSS {max(rss[name]):.0f} MB"
        )
    if len(sizes) >= 2:
        (a, b) = sizes[-2:]
        ta, tb = (float(np.median(seconds[f"{s:g}MB"])) for s in (a, b))
        ma, mb = (max(rss[f"{s:g}MB"]) for s in (a, b))
        slope_t, slope_m = (tb - ta) / (b - a), (mb - ma) / (b - a)
        at_1gb = {"seconds": tb + slope_t * (1000 - b), "peak_rss_mb": mb + slope_m * (1000 - b)}
        extra["extrapolated_1GB_vs_1GB"] = at_1gb
        print(
            f"  extrapolated to 1 GB vs 1 GB (slope of the two largest sizes): "
            f"{at_1gb['seconds']:.0f} s, peak RSS {at_1gb['peak_rss_mb']:.0f} MB"
        )
    finish(
        "diagnose",
        args,
        ratios,
        settings={"sizes_mb_per_corpus": sizes, "bootstrap": 200, "document_bytes": 1000},
        seconds=seconds,
        extra=extra,
    )


if __name__ == "__main__":
    main()
