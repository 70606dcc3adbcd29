"""A sweep's metrics against its numeric axis: the scaling picture (test error against n).

For a sweep folder with an axis of at least three numbers (``data.params.n_samples``,
``samples_per_generation``, ``regime.params.real_fraction``...), each metric at the
last generation is drawn against that axis: one line per arm (and per value of any
other axis), the mean over seeds with its 95% t interval, and the closed form dashed
where the points carry theory rows. Axes are logarithmic where every value is
positive and they span more than a decade, so a power law is a straight line and a
plateau is flat: Dohmatob et al.'s strong model collapse, or definition 8 of the
verdicts (scaling breaks), read at a glance.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .runs import Run
from .style import PALETTE, pyplot

#: Point markers of the lines, one per pass through the palette.
SHAPES = ["o", "s", "^", "D", "v", "P"]


@dataclass
class Line:
    """One arm (and other-axis setting) across the swept values."""

    label: str
    x: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    theory_x: list[float] = field(default_factory=list)
    theory: list[float] = field(default_factory=list)


def numeric_axis(runs: list[Run]) -> str | None:
    """The first swept key with at least three distinct finite numbers, else None."""
    if len(runs) < 3 or any(r.sweep is None for r in runs):
        return None
    values = [r.values for r in runs]
    for key in values[0]:
        numbers = {v.get(key) for v in values}
        if len(numbers) >= 3 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            for x in numbers
        ):
            return key
    return None


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (math.nan,) * 3
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def lines(runs: list[Run], axis: str, metric: str) -> list[Line]:
    """Each arm's (and other-axis setting's) line of ``metric`` at the last generation."""
    found: dict[str, Line] = {}
    for run in runs:
        values = run.values
        x = float(values[axis])
        others = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in values.items() if k != axis)
        for arm in run.arms:
            frame = arm.frame[arm.frame["metric"] == metric]
            sim = frame[frame["source"] == "simulation"]
            if sim.empty:
                continue
            last = int(sim["generation"].max())
            label = arm.name + (f" ({others})" if others else "")
            line = found.setdefault(label, Line(label))
            mean, low, high = _interval(sim[sim["generation"] == last]["value"].to_numpy(float))
            line.x.append(x)
            line.mean.append(mean)
            line.low.append(low)
            line.high.append(high)
            theory = frame[(frame["source"] == "theory") & (frame["generation"] == last)]
            if not theory.empty:
                line.theory_x.append(x)
                line.theory.append(float(theory["value"].iloc[0]))
    for line in found.values():
        order = np.argsort(line.x)
        for name in ("x", "mean", "low", "high"):
            setattr(line, name, [getattr(line, name)[i] for i in order])
        t_order = np.argsort(line.theory_x)
        line.theory_x = [line.theory_x[i] for i in t_order]
        line.theory = [line.theory[i] for i in t_order]
    return list(found.values())


def _log(values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) > 10 * min(finite)


def scaling_metrics(runs: list[Run]) -> list[str]:
    """The metrics (not statistics) recorded by the runs, in first-seen order."""
    seen: dict[str, None] = {}
    for run in runs:
        for arm in run.arms:
            for name in arm.frame["metric"].unique():
                if arm.is_metric(str(name)):
                    seen.setdefault(str(name), None)
    return list(seen)


def scaling_figure(runs: list[Run], axis: str) -> tuple[Any, list[str]]:
    """One panel per metric: its last-generation value against ``axis``, per arm."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    metrics = scaling_metrics(runs)
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    notes: list[str] = []
    legend: dict[str, Any] = {}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        drawn = lines(runs, axis, metric)
        declared = runs[0].arms[0].describe(metric)
        for i, line in enumerate(drawn):
            # beyond the palette a colour comes back with another marker: no two alike
            colour = PALETTE[i % len(PALETTE)]
            marker = SHAPES[(i // len(PALETTE)) % len(SHAPES)]
            errors = np.array([np.subtract(line.mean, line.low), np.subtract(line.high, line.mean)])
            handle = ax.errorbar(
                line.x, line.mean, yerr=errors, color=colour, marker=marker, ms=3, capsize=2
            )
            legend.setdefault(line.label, handle)
            if line.theory:
                ax.plot(line.theory_x, line.theory, color=colour, linestyle="--", alpha=0.7)
                legend.setdefault(
                    "theory (expected), dashed", Line2D([], [], color="grey", linestyle="--")
                )
        xs = [x for line in drawn for x in line.x]
        ys = [y for line in drawn for y in (*line.mean, *line.theory)]
        if _log(xs):
            ax.set_xscale("log")
        if _log(ys):
            ax.set_yscale("log")
            if any(v <= 0 for line in drawn for v in line.low if math.isfinite(v)):
                notes.append(f"{metric}: intervals reaching 0 or below are cut at the axis")
        ax.set_title(f"{metric}  ({declared.hint})" if declared.hint else metric, fontsize=9)
        ax.set_xlabel(axis)
        ax.set_ylabel(textwrap.fill(declared.label, 40), fontsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=min(4, len(legend)))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig, sorted(set(notes))
