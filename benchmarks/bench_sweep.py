"""Speed-up of a 32-run sweep: serial, a 2-worker process pool, and a 2-CPU Ray cluster.

All three run the same sweep into fresh folders and must give bit-identical
``metrics.parquet`` files. The Ray cluster is started before timing (as a cluster
a user connects to would be) and its start-up is reported separately; the time of
its workers' first imports is included.

    .venv/bin/python benchmarks/bench_sweep.py [--generations 150] [--seeds 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurement")
    args = parser.parse_args()

    from collapselab.experiment.backends import pin_threads
    from collapselab.experiment.sweep import plan_sweep, run_sweep

    pin_threads()  # the serial baseline gets the same one-thread BLAS as the workers
    config = base_config(args.generations, args.seeds)
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    print(f"sweep of 32 runs: {args.seeds} seeds x {args.generations} generations each")
    print(f"CPUs visible: {os.cpu_count()}; results under {root}")

    def timed(label: str, **options) -> float:
        sweep = plan_sweep(config, GRID, root=root, out=label)
        assert len(sweep.points) == 32
        start = time.perf_counter()
        run_sweep(sweep, **options)
        return time.perf_counter() - start

    serial = timed("serial", workers=1)
    print(f"serial:                  {serial:7.2f} s")
    pool = timed("pool", workers=2)
    print(f"process pool, 2 workers: {pool:7.2f} s   speed-up {serial / pool:.2f}x")
    assert files(root / "pool") == files(root / "serial"), "pool results differ from serial"
    if not args.no_ray:
        import ray

        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"(Ray cluster start-up: {time.perf_counter() - start:.2f} s, not counted)")
        try:
            on_ray = timed("ray", backend="ray", workers=2, granularity="run")
        finally:
            ray.shutdown()
        print(f"Ray, 2 CPUs:             {on_ray:7.2f} s   speed-up {serial / on_ray:.2f}x")
        assert files(root / "ray") == files(root / "serial"), "Ray results differ from serial"
    print("all backends gave bit-identical metrics.parquet files")


if __name__ == "__main__":
    main()
