"""Speed of the batched Gaussian chain in d = 10 against the RNG floor and a per-seed loop.

S=1000 seeds, n=100 samples of dimension d=10 per generation, G=100 fits (1e8 normal
draws), measured in the same run:

* batched: collapselab's vectorized chain (``chain.run_batched``: fit the mean and
  covariance, sample, and the ``variance`` metric for every seed and generation);
* (a) a per-seed loop in the style of Kazdan et al.'s code (draw n with
  ``Generator.multivariate_normal``, refit mean and covariance, record the variance),
  timed on a slice of the seeds and scaled (every seed costs the same);
* (b) the bare cost of drawing the same number of normal variates with NumPy.

Targets: batched / (b) <= 1.5 (within 1.5x of the RNG floor) and (a) / batched >= 10.
The three run interleaved, ``--repeats`` rounds (default 5); each ratio is taken
within a round and reported as min / median / max.

Where the batched chain's time goes beyond the draws (1.2-1.3x them timed alone,
1.4-1.5x on a loaded machine): per block of seeds, the Gram matrix Z^T Z and the
mean of the normals, from which the next fit's moments come (``stats.DrawnBatch``;
about 1.5 ms a generation), then the moments' 10 x 10 products (0.6 ms) and the next
generation's Cholesky factors (0.5 ms); each seed's real data is loaded once. The
samples themselves, z R^T + mean, are formed only when something reads them;
nothing here does (the ``replace`` regime and the ``variance`` metric read the
moments and the model), which spares 2.5 ms and an 8 MB array a generation. The
loop costs about 12x the bare draws here, so (a) / batched >= 10 needs batched
within 1.2x of them: the Gram matrix and the Cholesky factors alone leave about that.

    python benchmarks/bench_gaussian_d10.py [--seeds 1000] [--n 100] [--generations 100]
"""

from __future__ import annotations

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched
from harness import finish, interleave, parser, repeats, time_ratio


def batched_chain(seeds: int, n: int, generations: int, dim: int) -> None:
    spec = ChainSpec(
        data=make("data", "gaussian", dim=dim, n_test=10),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={"variance": make("metric", "variance")},
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
    )
    run_batched(spec, seeds)


def per_seed_loop(seeds: int, n: int, generations: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(seeds):
        mean, cov = np.zeros(dim), np.eye(dim)
        variances = []
        for _ in range(generations):
            x = rng.multivariate_normal(mean, cov, size=n)
            mean, cov = x.mean(axis=0), np.cov(x, rowvar=False, bias=True)
            variances.append(np.trace(cov) / dim)


def bare_draws(seeds: int, n: int, generations: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(generations):
        rng.standard_normal((seeds, n, dim))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--dim", type=int, default=10)
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.generations = 20, 20, 3
    s, n, g, d = args.seeds, args.n, args.generations, args.dim
    loop_seeds = max(1, s // 20)
    batched_chain(2, 20, 2, d)  # warm-up: the registry's first use imports every component

    seconds, _ = interleave(
        {
            "bare_draws": lambda: bare_draws(s, n, g, d),
            "batched": lambda: batched_chain(s, n, g, d),
            "per_seed_loop_slice": lambda: per_seed_loop(loop_seeds, n, g, d),
        },
        repeats(args),
    )
    seconds["per_seed_loop"] = [t * s / loop_seeds for t in seconds.pop("per_seed_loop_slice")]
    print(f"S={s} seeds, n={n}, d={d}, G={g}: {s * n * d * g:.2e} normal draws")
    print(f"((a) timed on {loop_seeds} seeds and scaled to {s})")
    finish(
        "gaussian_d10",
        args,
        [
            time_ratio("batched / bare draws", seconds, "batched", "bare_draws", "<=", 1.5),
            time_ratio("per-seed loop / batched", seconds, "per_seed_loop", "batched", ">=", 10),
        ],
        settings={"seeds": s, "n": n, "dim": d, "generations": g, "loop_seeds": loop_seeds},
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
