"""Run every benchmark in this folder and write one JSON summary (``make bench``).

Each ``bench_*.py`` runs in its own process with ``--json-out``; the summary holds
their results (every ratio as min / median / max against its target) with the
commit, the machine and its load when the run started, so a regression is visible
across commits. A benchmark that fails is recorded with its error and the others
still run; the exit code is then 1.

    python benchmarks/run_all.py [--out build/bench.json] [--quick] [--only gaussian_chain]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """Every benchmark script, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("build/bench.json"))
    p.add_argument("--quick", action="store_true", help="each benchmark once, at a tiny size")
    p.add_argument("--only", action="append", help="run only bench_NAME.py (repeatable)")
    args = p.parse_args()
    scripts = [s for s in benchmarks() if not args.only or s.stem[6:] in args.only]
    import numpy

    summary = {
        "commit": _commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "benchmarks": {},
    }
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            name = script.stem.removeprefix("bench_")
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(script), "--json-out", str(out)]
            print(f"== {script.name}", flush=True)
            start = time.perf_counter()
            proc = subprocess.run(command + (["--quick"] if args.quick else []))
            elapsed = time.perf_counter() - start
            if proc.returncode != 0 or not out.exists():
                failed.append(name)
                summary["benchmarks"][name] = {"error": f"exit code {proc.returncode}"}
                continue
            summary["benchmarks"][name] = json.loads(out.read_text()) | {"wall_s": elapsed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nsummary ({'--quick: not a claim' if args.quick else 'min / median / max'}):")
    for name, result in summary["benchmarks"].items():
        for r in result.get("ratios", []):
            mark = "ok  " if r["median_meets_target"] else "MISS"
            print(
                f"  {mark} {name}: {r['name']}: {r['min']:.3g} / {r['median']:.3g} / "
                f"{r['max']:.3g} {r['unit']} (target {r['target']})"
            )
        if "error" in result:
            print(f"  FAIL {name}: {result['error']}")
    print(f"written to {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
