"""The rules every benchmark here follows, written once.

* It states its target: a ratio against a baseline measured in the same run, with a
  bound (``batched / bare draws <= 1.5``).
* It compares equal work: both sides do the same computation on the same input.
* It runs at least five interleaved repetitions (round r runs every candidate once,
  in an order rotated by r, so load that drifts during the run falls on all sides
  alike) and reports each ratio as min / median / max over the rounds, a ratio being
  taken within one round.
* ``--quick`` runs every candidate once at a tiny size, so a test can keep the script
  from rotting; its numbers mean nothing.
* ``--json-out PATH`` writes the result, which ``run_all.py`` gathers into one summary.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_REPEATS = 5


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every benchmark takes."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=MIN_REPEATS,
        help=f"interleaved repetitions (default and minimum for a claim: {MIN_REPEATS})",
    )
    p.add_argument("--quick", action="store_true", help="once, at a tiny size (for tests)")
    p.add_argument("--json-out", type=Path, help="also write the result as JSON here")
    return p


def repeats(args: argparse.Namespace) -> int:
    """The number of rounds: one in ``--quick`` mode, else ``--repeats`` (at least 1)."""
    return 1 if args.quick else max(1, args.repeats)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call of ``fn``, and what it returned.

    The garbage of whatever ran before is collected first, outside the timing: otherwise
    a short candidate run right after a long one paid for the long one's collection (the
    60 ms sufficient-statistic chain took 80-90 ms in the rounds that followed the 1.2 s
    sampling chain). The collector stays on while ``fn`` runs, so ``fn`` pays for its own.
    """
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleave(
    candidates: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Run every candidate once per round, in an order rotated each round.

    Returns the wall seconds and the return values of each candidate, round by round.
    """
    names = list(candidates)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            s, out = timed(candidates[name])
            seconds[name].append(s)
            outputs[name].append(out)
    return seconds, outputs


@dataclass
class Ratio:
    """One ratio per round, with the bound it should meet (``op`` is ``<=`` or ``>=``)."""

    name: str
    values: Sequence[float]
    op: str
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def as_dict(self) -> dict[str, Any]:
        values = [float(v) for v in self.values]
        median = statistics.median(values)
        return {
            "name": self.name,
            "target": f"{self.op} {self.bound:g}",
            "unit": self.unit,
            "rounds": len(values),
            "min": min(values),
            "median": median,
            "max": max(values),
            "values": values,
            "median_meets_target": self.met(median),
            "rounds_meeting_target": sum(self.met(v) for v in values),
        }


def per_round(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """``numerator[r] / denominator[r]`` for every round ``r``."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def time_ratio(
    name: str,
    seconds: dict[str, list[float]],
    numerator: str,
    denominator: str,
    op: str,
    bound: float,
) -> Ratio:
    """The ratio of two candidates' times, round by round, against ``op bound``."""
    return Ratio(name, per_round(seconds[numerator], seconds[denominator]), op, bound)


def finish(
    name: str,
    args: argparse.Namespace,
    ratios: list[Ratio],
    *,
    settings: dict[str, Any],
    seconds: dict[str, list[float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print every ratio as min / median / max against its target; write the JSON."""
    result = {
        "benchmark": name,
        "quick": bool(args.quick),
        "rounds": repeats(args),
        "settings": settings,
        "seconds": seconds or {},
        "ratios": [r.as_dict() for r in ratios],
        **(extra or {}),
    }
    print(f"{name}: {repeats(args)} interleaved round(s)" + (" (--quick)" if args.quick else ""))
    for r in result["ratios"]:
        verdict = "meets" if r["median_meets_target"] else "misses"
        print(
            f"  {r['name']}: min {r['min']:.3g} / median {r['median']:.3g} / max {r['max']:.3g}"
            f" {r['unit']}   target {r['target']}: median {verdict} it"
            f" ({r['rounds_meeting_target']} of {r['rounds']} rounds meet it)"
        )
    if repeats(args) < MIN_REPEATS:
        print(f"  (fewer than {MIN_REPEATS} rounds: not a claim)")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return result
