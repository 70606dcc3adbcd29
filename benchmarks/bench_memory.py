"""Peak memory of a long ``accumulate`` chain: pooled moments against the full pool.

Each measurement runs in a fresh process and reports its peak resident set size
(``ru_maxrss``). The baseline is the same chain with the Gaussian told it cannot fit
from moments, so the chain keeps every generation's samples, as it did before
pooling. Growth is the peak RSS of a G-generation run above the G=10 run of the same
mode, as a share of the pool's size at G (seeds x n x G x 8 bytes).

Targets: the pooled chain's growth is at most 0.1 of the pool (memory does not grow
with the generations), and the full pool's growth at least 0.5 of it (the baseline
does hold the pool, so the measurement can see it). The four runs (two modes, G=10
and G) are interleaved, ``--repeats`` rounds (default 5); shares are taken within a
round and reported as min / median / max.

    .venv/bin/python benchmarks/bench_memory.py [--seeds 20] [--n 200] [--generations 1000]
"""

from __future__ import annotations

import json
import subprocess
import sys

from harness import Ratio, finish, interleave, parser, repeats

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
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--n", type=int, default=200, help="samples per generation")
    p.add_argument("--generations", type=int, default=1000)
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.generations = 2, 10, 20
    g = args.generations
    pool_mib = args.seeds * args.n * g * 8 / 2**20
    runs = {
        f"{mode}_{generations}": (
            lambda m=mode, gens=generations: measure(m, gens, args.seeds, args.n)
        )
        for mode in ("pooled", "full")
        for generations in (10, g)
    }
    seconds, outputs = interleave(runs, repeats(args))
    print(
        f"accumulate, 1-D Gaussian, batched: {args.seeds} seeds x {args.n} samples/generation; "
        f"the full pool at G={g} holds {pool_mib:.1f} MiB"
    )
    growth = {
        mode: [
            (big["peak_mib"] - small["peak_mib"]) / pool_mib
            for small, big in zip(outputs[f"{mode}_10"], outputs[f"{mode}_{g}"], strict=True)
        ]
        for mode in ("pooled", "full")
    }
    finish(
        "memory",
        args,
        [
            Ratio(f"pooled growth G=10 -> {g} / pool size", growth["pooled"], "<=", 0.1, unit=""),
            Ratio(f"full-pool growth G=10 -> {g} / pool size", growth["full"], ">=", 0.5, unit=""),
        ],
        settings={"seeds": args.seeds, "n": args.n, "generations": g, "pool_mib": pool_mib},
        seconds=seconds,
        extra={"peak_mib": {k: [o["peak_mib"] for o in v] for k, v in outputs.items()}},
    )


if __name__ == "__main__":
    main()
