"""Speed of the exact sufficient-statistic chain (``batched: sufficient``) against the
batched sampling chain, on the same work: S=1000 seeds, n=100 samples per generation,
G=1000 fits of a 1-D Gaussian with the ``variance`` metric; the same at d = 10 (G=100);
a Bernoulli (``zipf`` over 2 ids) and a categorical model over 100 Zipf types with
``heterozygosity`` (G=1000).

The sufficient path draws each generation's mean and scatter (or counts) from their
exact law instead of n samples, so its cost does not grow with n; the two paths are
equal in distribution (tests/test_sufficient.py), so the comparison is of equal work.

Targets: sampling / sufficient >= 20 (>= 2 for 100 categories, whose counts cost as
much to draw as the samples). Interleaved ``--repeats`` rounds (default 5); min /
median / max.

Where the sufficient path's time goes (profiled at the default sizes): both paths
first load every seed's real data in one call of the source's ``load_seeds``
(streams seeded in bulk, each seed's values drawn from its own stream, one transform
for all; about 10 us a seed, most of it building each seed's ``RealData`` and its
deferred test sample: a sixth of the 1-D Gaussian's sufficient path, a quarter
before ``load_seeds``); then, per generation, the 1-D Gaussian draws S normals and
S gammas (about 30 us of the 45-50 us a generation costs; the refit's arithmetic
over S values takes about 10 us, seeding the generation's stream 2-3 us, the metric
and its recording 3-5 us); at d = 10, Bartlett's factor and the mean cost
d (d + 3) / 2 = 65 variates per seed against the sampling path's n d = 1000, which
bounds the ratio near 15 before any overhead; a Bernoulli's counts are S binomial
draws (about 160 ns each) against 100 categorical draws per seed when sampling.

    python benchmarks/bench_sufficient.py [--seeds 1000] [--n 100] [--generations 1000]
        [--case gaussian_1d ...]
"""

from __future__ import annotations

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_sufficient
from harness import finish, interleave, parser, repeats, time_ratio

CASES = {  # name: (data, model, metric, generations divisor)
    "gaussian_1d": (("gaussian", {}), "gaussian", "variance", 1),
    "gaussian_d10": (("gaussian", {"dim": 10}), "gaussian", "variance", 10),
    "bernoulli": (("zipf", {"vocabulary": 2}), "categorical", "heterozygosity", 1),
    "categorical_v100": (("zipf", {"vocabulary": 100}), "categorical", "heterozygosity", 1),
}
#: The bound each case is held to: a categorical model's counts over V types cost V
#: binomial draws per seed, about as much as sampling n = 100 ids when V = 100.
BOUNDS = {"gaussian_1d": 20, "gaussian_d10": 20, "bernoulli": 20, "categorical_v100": 2}


def spec(case: str, n: int, generations: int) -> ChainSpec:
    (data, params), model, metric, divisor = CASES[case]
    return ChainSpec(
        data=make("data", data, n_test=10, **params),
        model=make("model", model),
        regime=make("regime", "replace"),
        metrics={metric: make("metric", metric)},
        samples_per_generation=n,
        generations=max(1, generations // divisor),
        real_samples=n,
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument(
        "--case", action="append", choices=tuple(CASES), help="only this case (repeatable)"
    )
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.generations = 20, 20, 10
    s, n, g = args.seeds, args.n, args.generations
    cases = tuple(args.case or CASES)
    candidates = {}
    for case in cases:
        chain = spec(case, n, g)
        run_sufficient(spec(case, n, 2), 2)  # warm-up: imports
        candidates[f"{case}_sampling"] = lambda c=chain: run_batched(c, s)
        candidates[f"{case}_sufficient"] = lambda c=chain: run_sufficient(c, s)
    seconds, _ = interleave(candidates, repeats(args))
    print(f"S={s} seeds, n={n}, G={g} (G={g // 10} at d=10)")
    finish(
        "sufficient",
        args,
        [
            time_ratio(
                f"{case}: sampling / sufficient",
                seconds,
                f"{case}_sampling",
                f"{case}_sufficient",
                ">=",
                BOUNDS[case],
            )
            for case in cases
        ],
        settings={"seeds": s, "n": n, "generations": g},
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
