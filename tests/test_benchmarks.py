"""The benchmarks keep running: each once, at a tiny size (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_every_benchmark_runs_quick_and_reports_its_targets(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    names = {p.stem.removeprefix("bench_") for p in BENCHMARKS.glob("bench_*.py")}
    assert set(summary["benchmarks"]) == names
    for name, result in summary["benchmarks"].items():
        assert result["quick"] and result["rounds"] == 1, name
        assert result["ratios"], f"{name} states no target"
        for ratio in result["ratios"]:
            assert ratio["target"].split()[0] in ("<=", ">="), (name, ratio["name"])
            assert ratio["min"] <= ratio["median"] <= ratio["max"], (name, ratio["name"])
