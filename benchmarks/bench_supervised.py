"""Speed of the batched supervised chains against the per-seed path, in the same run.

* ``linreg``: the ``gerstgrasser-linreg`` setting (T=100, d=10, replace, G=30) for S
  seeds: ``chain.run_batched`` against ``chain.run_seed`` called for every seed. The
  per-seed path is timed on a slice of the seeds and scaled.
* ``subliminal-mlp``: the teacher and the student of ``subliminal-digits`` (hidden
  128-128, same-init arm) for S seeds, batched against per-seed. The two paths give
  identical numbers, which the script checks.

Each timing is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--linreg-seeds", type=int, default=1000)
    parser.add_argument("--mlp-seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    spec = linreg_spec()
    batched, _ = best_of(args.repeats, lambda: run_batched(spec, args.linreg_seeds))
    sliced = max(1, args.linreg_seeds // 20)
    loop, _ = best_of(args.repeats, lambda: [run_seed(spec, s) for s in range(sliced)])
    loop *= args.linreg_seeds / sliced
    print(f"linreg, {args.linreg_seeds} seeds x 30 generations")
    print(f"  batched   {batched:8.2f} s")
    print(f"  per-seed  {loop:8.2f} s  (scaled from {sliced} seeds)  -> {loop / batched:.1f}x")

    spec = subliminal_spec(samples=4000, distill_epochs=5)
    batched, state = best_of(args.repeats, lambda: run_batched(spec, args.mlp_seeds))
    loop, states = best_of(args.repeats, lambda: [run_seed(spec, s) for s in range(args.mlp_seeds)])
    same = np.allclose(
        np.stack(state.values["accuracy"], axis=1),
        np.array([s.values["accuracy"] for s in states]),
    )
    print(f"subliminal-mlp, {args.mlp_seeds} seeds (teacher + student on 4000 noise images)")
    print(f"  batched   {batched:8.2f} s")
    print(f"  per-seed  {loop:8.2f} s  -> {loop / batched:.1f}x; identical results: {same}")


if __name__ == "__main__":
    main()
