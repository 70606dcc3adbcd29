"""Speed-up of a 32-run sweep: serial, a 2-worker process pool, and a 2-CPU Ray cluster.

All three run the same sweep into fresh folders and must give bit-identical
``metrics.parquet`` files. The Ray cluster is started once before timing (as a cluster
a user connects to would be) and its start-up is reported separately; the time of its
workers' first imports falls in the first round.

Targets: serial / pool >= 1.5 and serial / Ray >= 1.3 with 2 CPUs. The backends run
interleaved, ``--repeats`` rounds (default 5); each ratio is taken within a round and
reported as min / median / max. ``--quick`` skips Ray (its tests cover it).

    .venv/bin/python benchmarks/bench_sweep.py [--generations 150] [--seeds 100] [--no-ray]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from harness import finish, interleave, parser, repeats, time_ratio

GRID = [
    "samples_per_generation=20,50,100,200",
    "regime.params.real_fraction=0,0.01,0.02,0.05,0.1,0.2,0.3,0.5",
]


def base_config(generations: int, seeds: int) -> dict:
    return {
        "name": "bench",
        "data": {"id": "gaussian", "params": {"dim": 1}},
        "model": {"id": "gaussian"},
        "regime": {"id": "fresh", "params": {"real_fraction": 0.0}},
        "samples_per_generation": 50,
        "generations": generations,
        "seeds": seeds,
        "metrics": ["variance", "tail_mass", "wasserstein", "collapsed"],
    }


def files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("metrics.parquet"))
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--generations", type=int, default=150)
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    args = p.parse_args()
    if args.quick:
        args.generations, args.seeds, args.no_ray = 3, 2, True

    from collapselab.experiment.backends import pin_threads
    from collapselab.experiment.sweep import plan_sweep, run_sweep

    pin_threads()  # the serial baseline gets the same one-thread BLAS as the workers
    config = base_config(args.generations, args.seeds)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    print(f"sweep of 32 runs: {args.seeds} seeds x {args.generations} generations each")
    print(f"CPUs visible: {os.cpu_count()}; results under {root} (removed at the end)")
    counter = iter(range(10**6))

    def sweep_into(label: str, **options) -> Path:
        out = f"{label}-{next(counter)}"
        sweep = plan_sweep(config, GRID, root=root, out=out)
        assert len(sweep.points) == 32
        run_sweep(sweep, **options)
        return root / out

    backends = {
        "serial": lambda: sweep_into("serial", workers=1),
        "pool": lambda: sweep_into("pool", workers=2),
    }
    ray = None
    if not args.no_ray:
        import ray

        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"(Ray cluster start-up: {time.perf_counter() - start:.2f} s, not counted)")
        backends["ray"] = lambda: sweep_into("ray", backend="ray", workers=2, granularity="run")
    try:
        seconds, outputs = interleave(backends, repeats(args))
    finally:
        if ray is not None:
            ray.shutdown()
    reference = files(outputs["serial"][0])
    for name, folders in outputs.items():
        for folder in folders:
            assert files(folder) == reference, f"{name} results differ from serial"
    shutil.rmtree(root)
    print("every backend gave bit-identical metrics.parquet files in every round")
    ratios = [time_ratio("serial / pool (2 workers)", seconds, "serial", "pool", ">=", 1.5)]
    if "ray" in seconds:
        ratios.append(time_ratio("serial / Ray (2 CPUs)", seconds, "serial", "ray", ">=", 1.3))
    finish(
        "sweep",
        args,
        ratios,
        settings={"runs": 32, "seeds": args.seeds, "generations": args.generations},
        seconds=seconds,
    )


if __name__ == "__main__":
    main()
