"""The benchmarks keep running: each once, at a tiny size (no timing is asserted).

One test per ``bench_*.py``, each through ``run_all.py --only``, so the summary path
(``make bench``) is what runs, and the benchmarks spread over the suite's workers.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NAMES = sorted(p.stem.removeprefix("bench_") for p in BENCHMARKS.glob("bench_*.py"))


def test_every_benchmark_script_has_a_test_here():
    # The parametrization below is the glob itself; this guards against an empty glob
    # (a moved folder would otherwise test nothing and pass).
    assert len(NAMES) >= 10 and "gaussian_chain" in NAMES


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_benchmark_runs_quick_and_reports_its_targets(tmp_path, name):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run_all.py"),
            "--quick",
            "--only",
            name,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert set(summary["benchmarks"]) == {name}
    result = summary["benchmarks"][name]
    assert result["quick"] and result["rounds"] == 1, name
    assert result["ratios"], f"{name} states no target"
    for ratio in result["ratios"]:
        assert ratio["target"].split()[0] in ("<=", ">="), (name, ratio["name"])
        assert ratio["min"] <= ratio["median"] <= ratio["max"], (name, ratio["name"])
