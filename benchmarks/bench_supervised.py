"""Speed of the batched supervised chains against the per-seed path, in the same run.

* ``linreg``: the ``gerstgrasser-linreg`` setting (T=100, d=10, replace, G=30) for S
  seeds: ``chain.run_batched`` against ``chain.run_seed`` called for every seed. The
  per-seed path is timed on a slice of the seeds and scaled (every seed costs the same).
* ``subliminal-mlp``: the teacher and the student of ``subliminal-digits`` (hidden
  128-128, same-init arm) for S seeds, batched against per-seed. The two paths give
  the same numbers, which the script checks.

Targets: per-seed / batched >= 10 for linreg and >= 1.5 for subliminal-mlp. The four
timings run interleaved, ``--repeats`` rounds (default 5); each ratio is taken within
a round and reported as min / median / max.

    python benchmarks/bench_supervised.py [--linreg-seeds 1000] [--mlp-seeds 8]
"""

from __future__ import annotations

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed
from harness import finish, interleave, parser, repeats, time_ratio


def linreg_spec() -> ChainSpec:
    return ChainSpec(
        data=make("data", "linear", n_samples=100, dim=10, noise=1.0, n_test=10),
        model=make("model", "linreg", noise=1.0),
        regime=make("regime", "replace"),
        metrics={"test_mse": make("metric", "test_mse")},
        samples_per_generation=100,
        generations=30,
        real_samples=100,
    )


def subliminal_spec(samples: int, distill_epochs: int) -> ChainSpec:
    return ChainSpec(
        data=make("data", "digits"),
        model=make(
            "model", "subliminal-mlp", hidden=[128, 128], epochs=5, distill_epochs=distill_epochs
        ),
        regime=make("regime", "replace"),
        metrics={"accuracy": make("metric", "accuracy")},
        samples_per_generation=samples,
        generations=2,
        real_samples=100,
    )


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--linreg-seeds", type=int, default=1000)
    p.add_argument("--mlp-seeds", type=int, default=8)
    p.add_argument("--mlp-samples", type=int, default=4000, help="noise images per student")
    args = p.parse_args()
    if args.quick:
        args.linreg_seeds, args.mlp_seeds, args.mlp_samples = 20, 2, 100

    linreg = linreg_spec()
    sliced = max(1, args.linreg_seeds // 20)
    mlp = subliminal_spec(samples=args.mlp_samples, distill_epochs=1 if args.quick else 5)
    run_batched(linreg, 2)  # warm-up: the registry's first use imports every component
    seconds, outputs = interleave(
        {
            "linreg_batched": lambda: run_batched(linreg, args.linreg_seeds),
            "linreg_per_seed_slice": lambda: [run_seed(linreg, s) for s in range(sliced)],
            "mlp_batched": lambda: run_batched(mlp, args.mlp_seeds),
            "mlp_per_seed": lambda: [run_seed(mlp, s) for s in range(args.mlp_seeds)],
        },
        repeats(args),
    )
    seconds["linreg_per_seed"] = [
        t * args.linreg_seeds / sliced for t in seconds.pop("linreg_per_seed_slice")
    ]
    same = all(
        np.allclose(
            np.stack(batched.values["accuracy"], axis=1),
            np.array([s.values["accuracy"] for s in per_seed]),
        )
        for batched, per_seed in zip(outputs["mlp_batched"], outputs["mlp_per_seed"], strict=True)
    )
    print(
        f"linreg: {args.linreg_seeds} seeds x 30 generations (per-seed timed on {sliced} seeds "
        f"and scaled); subliminal-mlp: {args.mlp_seeds} seeds, teacher + student on "
        f"{args.mlp_samples} noise images; batched and per-seed accuracies equal: {same}"
    )
    finish(
        "supervised",
        args,
        [
            time_ratio(
                "linreg per-seed / batched", seconds, "linreg_per_seed", "linreg_batched", ">=", 10
            ),
            time_ratio(
                "subliminal-mlp per-seed / batched",
                seconds,
                "mlp_per_seed",
                "mlp_batched",
                ">=",
                1.5,
            ),
        ],
        settings={
            "linreg_seeds": args.linreg_seeds,
            "mlp_seeds": args.mlp_seeds,
            "mlp_samples": args.mlp_samples,
        },
        seconds=seconds,
        extra={"same_results": same},
    )


if __name__ == "__main__":
    main()
