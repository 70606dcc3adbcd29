"""Speed of a small discrete chain (a Bernoulli: ``zipf`` with ``vocabulary: 2``).

S=1000 seeds, n=100 draws per generation, G=100 fits of a categorical model, with the
metrics ``heterozygosity``, ``types`` and ``entropy`` (none reads the real test
sample), measured in the same run:

* lazy: collapselab's batched chain, which draws a seed's held-out test sample
  (``n_test`` 10,000) only if a metric reads it;
* eager: the same chain with a data source that draws every seed's test sample at
  load, as every ground truth did before;
* (a) a per-seed Python loop in the style of the papers' code (draw n Bernoulli
  variates, refit p, record 2p(1-p), the types left and the entropy), timed on a
  slice of the seeds and scaled.

Targets: (a) / lazy >= 2 (the chain is at least twice as fast as the peer loop) and
eager / lazy >= 1.3 (the test draws no metric uses were a large share of the time).

    python benchmarks/bench_bernoulli.py [--seeds 1000] [--n 100] [--generations 100]
"""

from __future__ import annotations

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched
from collapselab.data.text import ZipfTruth
from harness import finish, interleave, parser, repeats, time_ratio

METRICS = ("heterozygosity", "types", "entropy")


class EagerZipf(ZipfTruth):
    """``zipf`` as it was: the test sample drawn at load, whether or not it is read."""

    def load_seeds(self, *, n, rngs):  # the chain loads every seed at once
        reals = super().load_seeds(n=n, rngs=rngs)
        for real in reals:
            real.test  # noqa: B018 (reading it draws it)
        return reals


def chain(data: ZipfTruth, seeds: int, n: int, generations: int) -> None:
    spec = ChainSpec(
        data=data,
        model=make("model", "categorical"),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in METRICS},
        samples_per_generation=n,
        generations=generations,
        real_samples=n,
    )
    run_batched(spec, seeds)


def peer_loop(seeds: int, n: int, generations: int) -> None:
    rng = np.random.default_rng(0)
    for _ in range(seeds):
        p = 1 / (1 + 2**-1.1)  # zipf(1.1) over two ids: the first id's probability
        for _ in range(generations):
            x = rng.random(n) < p
            p = x.mean()
            heterozygosity = 2 * p * (1 - p)
            types = int(0 < p) + int(p < 1)
            q = np.array([p, 1 - p])
            entropy = -np.sum(q[q > 0] * np.log(q[q > 0]))
            del heterozygosity, types, entropy


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--generations", type=int, default=100)
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.generations = 20, 20, 3
    s, n, g = args.seeds, args.n, args.generations
    loop_seeds = max(1, s // 10)
    chain(ZipfTruth(vocabulary=2), 2, 2, 2)  # warm-up: imports every component
    seconds, _ = interleave(
        {
            "lazy": lambda: chain(ZipfTruth(vocabulary=2), s, n, g),
            "eager": lambda: chain(EagerZipf(vocabulary=2), s, n, g),
            "peer_loop_slice": lambda: peer_loop(loop_seeds, n, g),
        },
        repeats(args),
    )
    seconds["peer_loop"] = [t * s / loop_seeds for t in seconds.pop("peer_loop_slice")]
    print(f"S={s} seeds, n={n}, G={g}, n_test=10000 ((a) timed on {loop_seeds} seeds, scaled)")
    finish(
        "bernoulli",
        args,
        [
            time_ratio("peer loop / lazy", seconds, "peer_loop", "lazy", ">=", 2),
            time_ratio("eager test sample / lazy", seconds, "eager", "lazy", ">=", 1.3),
        ],
        settings={"seeds": s, "n": n, "generations": g, "n_test": 10000, "metrics": METRICS},
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
