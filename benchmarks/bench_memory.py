"""Peak memory of a long ``accumulate`` chain: pooled moments against the full pool.

Each measurement runs in a fresh process and reports its peak resident set size
(``ru_maxrss``). The baseline is the same chain with the Gaussian told it cannot fit
from moments, so the chain keeps every generation's samples, as it did before
pooling. Growth is the peak RSS above the G=10 run of the same mode.

    .venv/bin/python benchmarks/bench_memory.py [--seeds 20] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import collapselab.models.gaussian as g
from collapselab.chain import run_batched
from collapselab.experiment import load_config
from collapselab.experiment.runner import make_spec
mode, generations, seeds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if mode == "full":
    g.Gaussian.fits_moments = False
config = load_config({
    "name": "mem", "data": {"id": "gaussian", "params": {"dim": 1}},
    "model": {"id": "gaussian"}, "regime": {"id": "accumulate"},
    "samples_per_generation": n, "generations": generations, "seeds": seeds,
    "metrics": ["variance"],
})
start = time.perf_counter()
state = run_batched(make_spec(config), seeds)
elapsed = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mib": peak_mib, "seconds": elapsed, "variance": float(state.values["variance"][-1].mean())}))
"""


def measure(mode: str, generations: int, seeds: int, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(generations), str(seeds), str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--n", type=int, default=200, help="samples per generation")
    args = parser.parse_args()
    pool_mib = args.seeds * args.n * 8 / 2**20
    print(f"accumulate, 1-D Gaussian, batched: {args.seeds} seeds x {args.n} samples/generation")
    print(f"(the full pool grows by {pool_mib:.3f} MiB per generation)")
    print(f"{'mode':>8s} {'G':>6s} {'peak RSS MiB':>13s} {'growth MiB':>11s} {'seconds':>8s}")
    growth: dict[str, dict[int, float]] = {}
    for mode in ("pooled", "full"):
        base = None
        for generations in (10, 100, 1000):
            result = measure(mode, generations, args.seeds, args.n)
            base = result["peak_mib"] if base is None else base
            grown = result["peak_mib"] - base
            growth.setdefault(mode, {})[generations] = grown
            print(
                f"{mode:>8s} {generations:6d} {result['peak_mib']:13.1f} {grown:11.1f} "
                f"{result['seconds']:8.2f}"
            )
    pooled, full = growth["pooled"], growth["full"]
    print(
        f"growth G=10 -> 1000: pooled {pooled[1000]:.1f} MiB, full pool {full[1000]:.1f} MiB "
        f"(linear would be {pool_mib * 990:.1f} MiB per copy of the pool)"
    )


if __name__ == "__main__":
    main()
