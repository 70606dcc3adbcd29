"""Speed of the batched Gaussian chain against two baselines measured in the same run.

S=1000 seeds, n=100 samples per generation, G=1000 generations (1e8 normal draws):

* batched: collapselab's vectorized chain (``chain.run_batched``: fit + sample + the
  ``variance`` metric for every seed and generation);
* (a) a plain per-seed Python loop doing the same work (draw n, refit mean and
  variance, record the variance), timed on a slice of the seeds and scaled (every
  seed costs the same); ``--full-loop`` times it on all seeds;
* (b) the bare cost of drawing the same number of normal variates with NumPy.

Targets: batched / (b) <= 1.5 (within 1.5x of the RNG floor) and (a) / batched >= 10.
The three run interleaved, ``--repeats`` rounds (default 5); each ratio is taken
within a round and reported as min / median / max.

    python benchmarks/bench_gaussian_chain.py [--seeds 1000] [--n 100] [--generations 1000]
"""

from __future__ import annotations

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched
from harness import finish, interleave, parser, repeats, time_ratio


def batched_chain(seeds: int, n: int, generations: int) -> None:
    spec = ChainSpec(
        data=make("data", "gaussian", n_test=10),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={"variance": make("metric", "variance")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
    )
    run_batched(spec, seeds)


def python_loop(seeds: int, n: int, generations: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(seeds):
        mean, sd = 0.0, 1.0
        variances = []
        for _ in range(generations):
            x = rng.normal(mean, sd, n)
            mean, var = x.mean(), x.var()
            sd = np.sqrt(var)
            variances.append(var)


def bare_draws(seeds: int, n: int, generations: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(generations):
        rng.standard_normal((seeds, n))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--full-loop", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.generations = 20, 10, 5
    s, n, g = args.seeds, args.n, args.generations
    loop_seeds = s if args.full_loop else max(1, s // 20)
    batched_chain(2, 2, 2)  # warm-up: the registry's first use imports every component

    seconds, _ = interleave(
        {
            "bare_draws": lambda: bare_draws(s, n, g),
            "batched": lambda: batched_chain(s, n, g),
            "python_loop_slice": lambda: python_loop(loop_seeds, n, g),
        },
        repeats(args),
    )
    seconds["python_loop"] = [t * s / loop_seeds for t in seconds.pop("python_loop_slice")]
    print(f"S={s} seeds, n={n}, G={g}: {s * n * g:.2e} normal draws")
    if loop_seeds != s:
        print(f"((a) timed on {loop_seeds} seeds and scaled to {s})")
    finish(
        "gaussian_chain",
        args,
        [
            time_ratio("batched / bare draws", seconds, "batched", "bare_draws", "<=", 1.5),
            time_ratio("python loop / batched", seconds, "python_loop", "batched", ">=", 10),
        ],
        settings={"seeds": s, "n": n, "generations": g, "loop_seeds": loop_seeds},
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
