"""Speed of the batched Gaussian chain against two baselines measured in the same run.

S=1000 seeds, n=100 samples per generation, G=1000 generations (1e8 normal draws):

* batched: collapselab's vectorized chain (``chain.run_batched``, fit + sample +
  the ``variance`` metric for every seed and generation);
* (a) a plain per-seed Python loop doing the same work (draw n, refit mean and
  variance, record the variance);
* (b) the bare cost of drawing the same number of normal variates with NumPy.

Targets: batched within 1.5x of (b), and at least 10x faster than (a). Each timing
is the best of ``--repeats`` runs. (a) is timed on a slice of the seeds and scaled,
so the script stays short; pass ``--full-loop`` to time it on all seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-loop", action="store_true")
    args = parser.parse_args()
    s, n, g = args.seeds, args.n, args.generations
    loop_seeds = s if args.full_loop else max(1, s // 20)

    bare = best_of(args.repeats, lambda: bare_draws(s, n, g))
    batched = best_of(args.repeats, lambda: batched_chain(s, n, g))
    loop = best_of(1, lambda: python_loop(loop_seeds, n, g)) * s / loop_seeds

    print(f"S={s} seeds, n={n}, G={g}: {s * n * g:.2e} normal draws")
    print(f"  (b) bare NumPy normal draws   {bare:8.3f} s")
    print(
        f"  batched collapselab chain     {batched:8.3f} s   {batched / bare:5.2f}x (b)   target <= 1.5x"
    )
    print(
        f"  (a) per-seed Python loop      {loop:8.3f} s   batched is {loop / batched:5.1f}x faster   target >= 10x"
    )
    if loop_seeds != s:
        print(f"      ((a) timed on {loop_seeds} seeds and scaled to {s})")


if __name__ == "__main__":
    main()
