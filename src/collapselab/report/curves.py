"""Metric curves: each metric against generation, one panel per metric, one line per series.

A line is the median over seeds; its band is the central 95% of seeds, or their range
(minimum to maximum) with fewer than :data:`~.summary.CENTRAL_BAND_SEEDS` seeds, and
the legend says which. Where closed-form theory exists, its expected value is a wide
pale line beside the simulation *mean* (points with 95% confidence intervals at a few
generations): theory predicts means, and under ``replace`` the mean and median of the
variance part by orders of magnitude. 0/1 metrics (``collapsed``) show the fraction of
seeds with a 95% Wilson interval instead. Rows of source ``chance`` (what a model that
learned nothing scores) are a grey horizontal line.

What the panels promise, and tests check:

* every line is on its axis: a log axis spans every median, mean and theory value
  (up to :data:`MAX_DECADES` decades; a line beyond is marked clipped, with its
  range, under the panels); bands extend at most :data:`BAND_DECADES` decades past
  the lines and say so where they are cut;
* a log axis only where it helps: the lines span more than :data:`LOG_SPAN` and,
  below :data:`LINEAR_SPAN_MAX`, the line that moves most changes by a factor per
  generation rather than by a step (a linear growth stays linear);
* with at most :data:`FEW_GENERATIONS` generations (a teacher and its student) a line
  between two points would invent a trend: bars (mean over seeds with a 95% interval,
  each seed a dot) instead;
* axis labels and the healthy direction (``↑ healthier``) come from the metrics'
  declarations (:class:`~.runs.Declared`); statistics that are not metrics are labelled
  by their id;
* the legend fits in its figure, and no two series share a colour and line style
  (:func:`~.style.looks`).
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..core import Quantity
from .runs import Group, Series
from .style import LINESTYLES, Look, legend_columns, looks, pyplot
from .summary import band_levels, band_name, seed_quantiles

#: Lines whose positive values span more than this factor may get a log axis.
LOG_SPAN = 30.0
#: Lines spanning more than this factor always get a log axis: a linear one would
#: flatten every line but the largest onto zero.
LINEAR_SPAN_MAX = 1000.0
#: A log axis shows at most this many decades below the largest line value.
MAX_DECADES = 12
#: Bands may run this many decades past the lines before the axis cuts them.
BAND_DECADES = 1.5
#: At most this many generations: bars, not lines.
FEW_GENERATIONS = 2
#: Hatches of bars, in the order of :data:`~.style.LINESTYLES` (the second factor).
HATCHES = ["", "///", "...", "xxx"]
CHANCE_COLOUR = "#555555"


@contextmanager
def quiet_all_nan() -> Iterator[None]:
    """Silence NumPy's warnings about statistics of all-NaN columns (halted seeds)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        yield


@dataclass
class Curve:
    """One recorded series of one arm against generation."""

    generation: np.ndarray
    centre: np.ndarray  # median, or fraction of seeds for 0/1 metrics
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    seeds: int
    binary: bool
    theory_generation: np.ndarray
    theory: np.ndarray
    infinite_seeds: int  # seeds with a non-finite value at the last generation
    values: np.ndarray  # (seeds, generations)
    chance: float | None = None


def is_binary(frames: list[pd.DataFrame], metric: str) -> bool:
    """Whether ``metric`` is a 0/1 outcome in these frames: only 0 and 1, and both occur.

    Both must occur somewhere: a share that happens to stay exactly 1 in one arm is
    still a share, and its median (not a fraction of seeds) is what to draw.
    """
    parts = [
        f.loc[(f["metric"] == metric) & (f["source"] == "simulation"), "value"] for f in frames
    ]
    values = np.concatenate(parts) if parts else np.array([])
    values = values[np.isfinite(values)]
    return bool(np.all((values == 0) | (values == 1)) and 0 in values and 1 in values)


def curve(frame: pd.DataFrame, metric: str, binary: bool | None = None) -> Curve | None:
    """Median and band of seeds (or, for a 0/1 ``binary`` metric, the fraction of seeds
    with a Wilson interval) per generation; ``binary=None`` decides from ``frame``."""
    if binary is None:
        binary = is_binary([frame], metric)
    rows = frame[frame["metric"] == metric]
    sim = rows[rows["source"] == "simulation"]
    if sim.empty:
        return None
    # A (seeds, generations) grid by integer indexing: far quicker than a pivot table.
    seed_ids, seed_index = np.unique(sim["seed"].to_numpy(), return_inverse=True)
    generation, generation_index = np.unique(sim["generation"].to_numpy(), return_inverse=True)
    values = np.full((len(seed_ids), len(generation)), np.nan)
    values[seed_index, generation_index] = sim["value"].to_numpy(dtype=float)
    seeds = values.shape[0]
    with quiet_all_nan():
        mean = np.nanmean(values, axis=0)
    if binary:
        count = np.sum(np.isfinite(values), axis=0)
        low, high = wilson(mean, count)
        centre = mean
    else:
        low_level, high_level = band_levels(seeds)
        low, centre, high = seed_quantiles(values, (low_level, 0.5, high_level))
    theory = rows[rows["source"] == "theory"].sort_values("generation")
    chance = rows.loc[rows["source"] == "chance", "value"].to_numpy(dtype=float)
    return Curve(
        generation=generation,
        centre=centre,
        low=low,
        high=high,
        mean=mean,
        seeds=seeds,
        binary=binary,
        theory_generation=theory["generation"].to_numpy(dtype=int),
        theory=theory["value"].to_numpy(dtype=float),
        infinite_seeds=int(np.sum(np.isinf(values[:, -1]))),
        values=values,
        chance=float(np.median(chance)) if chance.size else None,
    )


def wilson(fraction: np.ndarray, count: np.ndarray, z: float = 1.959964) -> tuple[Any, Any]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and 1)."""
    n = np.maximum(np.asarray(count, dtype=float), 1)
    p = np.asarray(fraction, dtype=float)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def mean_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and the half-width of its 95% confidence interval.

    Student's t, so a handful of seeds gets the wide interval it deserves.
    """
    from scipy.special import stdtrit  # Student's t quantile; lighter than scipy.stats

    count = np.sum(np.isfinite(values), axis=0)
    with quiet_all_nan(), np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0)
        half = stdtrit(count - 1, 0.975) * np.nanstd(values, axis=0, ddof=1) / np.sqrt(count)
    return mean, half


# ---------------------------------------------------------------------------
# The y axis: which scale, which limits, what is cut.
# ---------------------------------------------------------------------------


def _marks(c: Curve, marks: int = 10) -> np.ndarray:
    """Indices of the generations where the mean and its interval are drawn."""
    grid = np.linspace(0, len(c.generation) - 1, min(marks, len(c.generation))).round()
    return np.unique(grid.astype(int))


def _lines(c: Curve) -> np.ndarray:
    """Every value a panel draws as a line or a point of this curve (not its band)."""
    parts = [c.centre, c.theory]
    if len(c.theory):
        parts.append(c.mean[_marks(c)])
    if c.chance is not None:
        parts.append(np.array([c.chance]))
    values = np.concatenate([np.ravel(p) for p in parts])
    return values[np.isfinite(values)]


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(y) == 0:
        return 1.0
    residual = y - np.polyval(np.polyfit(x, y, 1), x)
    return float(1 - np.sum(residual**2) / np.sum((y - y.mean()) ** 2))


def wants_log(curves: list[Curve]) -> bool:
    """A log axis for these curves (see the module docstring for the rule)."""
    values = np.concatenate([_lines(c) for c in curves]) if curves else np.array([])
    if values.size == 0 or np.any(values <= 0):
        return False
    span = values.max() / values.min()
    if span <= LOG_SPAN:
        return False
    if span >= LINEAR_SPAN_MAX:
        return True

    def own_span(c: Curve) -> float:
        y = c.centre[np.isfinite(c.centre)]
        return float(y.max() / y.min()) if y.size else 1.0

    widest = max(curves, key=own_span)
    keep = np.isfinite(widest.centre)
    t, y = widest.generation[keep].astype(float), widest.centre[keep]
    return _r2(t, np.log(y)) > _r2(t, y)


@dataclass
class LogAxis:
    """Limits of a log axis that show every line, and what they cut."""

    bottom: float
    top: float
    notes: list[str] = field(default_factory=list)


def log_axis(drawn: list[tuple[Series, Curve]]) -> LogAxis:
    """Limits spanning every line of ``drawn`` (at most :data:`MAX_DECADES`), bands cut at
    :data:`BAND_DECADES` past the lines; notes name what falls outside."""
    lines = np.concatenate([_lines(c) for _, c in drawn])
    lines = lines[lines > 0]
    low, high = float(lines.min()), float(lines.max())
    notes = []
    if high / low > 10.0**MAX_DECADES:
        low = high / 10.0**MAX_DECADES
        for s, c in drawn:
            below = np.flatnonzero(np.isfinite(c.centre) & (c.centre < low))
            if below.size:
                notes.append(
                    f"{s.label}: median below the axis ({low:.1e}) from generation "
                    f"{int(c.generation[below[0]])}, down to {np.nanmin(c.centre):.1e}"
                )
    bands = np.concatenate([np.ravel([c.low, c.high]) for _, c in drawn])
    bands = bands[np.isfinite(bands) & (bands > 0)]
    bottom = min(low, float(bands.min())) if bands.size else low
    top = max(high, float(bands.max())) if bands.size else high
    floor, ceiling = low / 10.0**BAND_DECADES, high * 10.0**BAND_DECADES
    lowest_band = min(
        (float(np.nanmin(c.low)) for _, c in drawn if np.isfinite(c.low).any()), default=low
    )
    if bottom < floor or lowest_band <= 0:
        notes.append(
            f"bands cut at {floor:.1e} (lowest band value "
            f"{'≤ 0' if lowest_band <= 0 else f'{lowest_band:.1e}'})"
        )
        bottom = floor
    if top > ceiling:
        notes.append(f"bands cut at {ceiling:.1e} (highest band value {top:.1e})")
        top = ceiling
    pad = (top / bottom) ** 0.04
    return LogAxis(bottom / pad, top * pad, notes)


# ---------------------------------------------------------------------------
# Panels.
# ---------------------------------------------------------------------------


def _mean_with_error(ax: Any, c: Curve, look: Look, axis: LogAxis | None) -> bool:
    """The simulation mean as points with 95% intervals; ``True`` if an interval was cut.

    On a log axis an interval reaching below the axis (or below zero) is cut at the
    axis and ends in a caret (``v``), never stretched to some band's minimum.
    """
    at = _marks(c)
    mean, half = mean_interval(c.values[:, at])
    x = c.generation[at]
    if c.seeds < 2:
        ax.plot(x, mean, "o", color=look.colour, markersize=3.5)
        return False
    low, high = mean - half, mean + half
    cut_low = cut_high = np.zeros(len(at), dtype=bool)
    if axis is not None:
        cut_low = ~(low > axis.bottom) & np.isfinite(half)
        cut_high = (high > axis.top) & np.isfinite(half)
        low = np.where(cut_low, axis.bottom, low)
        high = np.where(cut_high, axis.top, high)
    ax.errorbar(
        x,
        mean,
        yerr=[mean - low, high - mean],
        fmt="o",
        markersize=3.5,
        color=look.colour,
        elinewidth=1.0,
        capsize=2.5,
    )
    for cut, end, marker in ((cut_low, low, "v"), (cut_high, high, "^")):
        if cut.any():
            ax.plot(x[cut], end[cut], marker, color=look.colour, markersize=5, clip_on=False)
    return bool(cut_low.any() or cut_high.any())


def _draw_lines(
    ax: Any,
    name: str,
    drawn: list[tuple[int, Series, Curve]],
    styles: list[Look],
    notes: list[str],
) -> dict[str, bool]:
    """Median lines, bands, theory and means; what the legend must explain."""
    curves = [c for _, _, c in drawn]
    shown = {"theory": False, "cut": False}
    axis = None
    if curves and not curves[0].binary and wants_log(curves):
        ax.set_yscale("log")
        axis = log_axis([(s, c) for _, s, c in drawn])
        ax.set_ylim(axis.bottom, axis.top)
        notes.extend(f"{name}: {note}" for note in axis.notes)
    for i, s, c in drawn:
        look = styles[i]
        low, high = c.low, c.high
        if axis is not None:  # a band past the axis ends at its edge (a log axis drops ≤ 0)
            with np.errstate(invalid="ignore"):
                low = np.where(np.isnan(low), low, np.maximum(low, axis.bottom))
                high = np.where(np.isnan(high), high, np.minimum(high, axis.top))
        ax.fill_between(c.generation, low, high, color=look.colour, alpha=0.16, linewidth=0)
        if len(c.theory):
            shown["theory"] = True
            ax.plot(
                c.theory_generation,
                c.theory,
                color=look.colour,
                linewidth=4.0,
                alpha=0.35,
                solid_capstyle="butt",
            )
            shown["cut"] |= _mean_with_error(ax, c, look, axis)
        ax.plot(c.generation, c.centre, label=s.label, **look.line())
    if axis is not None:
        ax.set_ylim(axis.bottom, axis.top)  # drawing must not widen it again
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0)
    return shown


def _draw_bars(
    ax: Any, drawn: list[tuple[int, Series, Curve]], styles: list[Look], share: bool
) -> None:
    """Per generation, one bar per series: the mean over seeds (the fraction of seeds for
    0/1 metrics) with its 95% interval, cut to [0, 1] for a declared share, and each
    seed as a dot."""
    generations = sorted({int(g) for _, _, c in drawn for g in c.generation})
    m = len(drawn)
    width = 0.8 / m
    negative = any(np.nanmin(c.values) < 0 for _, _, c in drawn if np.isfinite(c.values).any())
    rng = np.random.default_rng(0)  # jitter of the seed dots only; drawn, never reported
    for j, (i, _, c) in enumerate(drawn):
        look = styles[i]
        hatch = HATCHES[LINESTYLES.index(look.linestyle)] if look.linestyle in LINESTYLES else ""
        x = np.array([generations.index(int(g)) for g in c.generation]) + (j - (m - 1) / 2) * width
        if c.binary:
            centre, low, high = c.centre, c.low, c.high
        else:
            centre, half = mean_interval(c.values)
            low, high = centre - half, centre + half
            if share:
                low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
        err = [np.nan_to_num(centre - low), np.nan_to_num(high - centre)]
        if negative:
            ax.errorbar(x, centre, yerr=err, fmt="o", color=look.colour, capsize=3)
        else:
            ax.bar(
                x,
                centre,
                width=width * 0.9,
                color=look.colour,
                alpha=0.75,
                hatch=hatch,
                edgecolor="white" if hatch else look.colour,
            )
            ax.errorbar(x, centre, yerr=err, fmt="none", ecolor="#222222", capsize=3, lw=1)
        if not c.binary:
            spread = rng.uniform(-0.25, 0.25, c.values.shape) * width
            ax.plot(
                (x + spread).ravel(),
                c.values.ravel(),
                ".",
                color="#222222",
                alpha=0.45,
                markersize=3,
            )
    ax.set_xticks(range(len(generations)), [str(g) for g in generations])
    ax.grid(False, axis="x")


def _draw_chance(ax: Any, curves: list[Curve]) -> bool:
    levels = sorted({c.chance for c in curves if c.chance is not None})
    for level in levels:
        ax.axhline(level, color=CHANCE_COLOUR, linestyle=(0, (2, 2)), linewidth=1.1)
        ax.annotate(
            f"chance {level:.3g}",
            (1, level),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
            color=CHANCE_COLOUR,
        )
    return bool(levels)


def few_generations(group: Group) -> bool:
    """Whether the group's series have so few generations that bars tell them best."""
    counts = [s.arm.frame["generation"].nunique() for s in group.series]
    return bool(counts) and max(counts) <= FEW_GENERATIONS


def metric_figure(group: Group, names: list[str] | None = None) -> tuple[Any, list[str]]:
    """One panel per recorded series (by default every metric of ``group``), every series
    of the group overlaid; the matplotlib Figure and notes on what it cuts."""
    plt = pyplot()
    names = names or group.recorded()
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    width = max(4.1 * ncols, 6.4)  # room for the legend of a single panel
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, 3.1 * nrows + 0.6), squeeze=False, layout="constrained"
    )
    styles = looks(group)
    bars = few_generations(group)
    shown = {"theory": False, "cut": False, "binary": False, "chance": False}
    notes: list[str] = []
    present: set[int] = set()
    # each series' rows split by metric once, not filtered again for every panel
    split = [dict(tuple(s.arm.frame.groupby("metric", sort=False))) for s in group.series]
    for ax, name in zip(axes.flat, names, strict=False):
        declared = group.describe(name)
        frames = {i: rows[name] for i, rows in enumerate(split) if name in rows}
        # a declared 0/1 state, or values that are 0 and 1 only (a statistic, an old run)
        binary = declared.quantity == Quantity.COLLAPSED or is_binary(list(frames.values()), name)
        every = [
            (i, s, curve(frames[i], name, binary))
            for i, s in enumerate(group.series)
            if i in frames
        ]
        drawn = [(i, s, c) for i, s, c in every if c is not None]
        present.update(i for i, _, _ in drawn)
        curves = [c for _, _, c in drawn]
        if bars:
            _draw_bars(ax, drawn, styles, declared.share)
        else:
            for key, value in _draw_lines(ax, name, drawn, styles, notes).items():
                shown[key] |= value
        if binary:
            shown["binary"] = True
            ax.set_ylim(-0.03, 1.03)
        shown["chance"] |= _draw_chance(ax, curves)
        for _, s, c in drawn:
            if c.infinite_seeds:
                notes.append(
                    f"{name}, {s.label}: {c.infinite_seeds}/{c.seeds} seeds infinite at the end"
                )
        ax.set_title(f"{name}  ({declared.hint})" if declared.hint else name)
        ax.set_xlabel("generation")
        ax.set_ylabel(
            "\n".join(
                textwrap.wrap(f"share of seeds with {name} = 1" if binary else declared.label, 42)
            )
        )
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    # the legend claims only the series some panel shows
    shown_series = [(s, styles[i]) for i, s in enumerate(group.series) if i in present]
    _legend(fig, group.title, shown_series, shown, bars)
    if notes:  # a figure-level label, so constrained layout makes room for it
        fig.supxlabel(
            "\n".join(textwrap.fill(n, int(width * 14)) for n in notes),
            fontsize=8,
            color="#555555",
        )
    return fig, notes


def _seeds(series: Series) -> int:
    sim = series.arm.frame[series.arm.frame["source"] == "simulation"]
    return int(sim["seed"].nunique())


def _legend(
    fig: Any, title: str, series: list[tuple[Series, Look]], shown: dict[str, bool], bars: bool
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for s, look in series:
        count = _seeds(s)
        label = f"{s.label} ({count} seed{'s' * (count != 1)})"
        if bars:
            hatch = (
                HATCHES[LINESTYLES.index(look.linestyle)] if look.linestyle in LINESTYLES else ""
            )
            handles.append(
                Patch(facecolor=look.colour, hatch=hatch, edgecolor="white", label=label)
            )
        else:
            handles.append(Line2D([], [], label=label, **look.line()))
    seeds = [_seeds(s) for s, _ in series]
    if bars:
        what = "bars: mean over seeds, 95% interval; dots: seeds"
    else:
        what = "lines: median over seeds"
        handles.append(Patch(color="#777777", alpha=0.3, label=f"band: {band_name(seeds)}"))
    if shown["binary"]:
        handles.append(Patch(color="#777777", alpha=0.0, label="0/1 metrics: 95% Wilson interval"))
    if shown["theory"]:
        handles.append(
            Line2D(
                [],
                [],
                color="#444444",
                marker="o",
                linestyle="none",
                markersize=4,
                label="simulation mean, 95% CI",
            )
        )
        handles.append(
            Line2D([], [], color="#444444", linewidth=4.0, alpha=0.35, label="theory (expected)")
        )
    if shown["cut"]:
        handles.append(
            Line2D(
                [],
                [],
                color="#444444",
                marker="v",
                linestyle="none",
                label="interval runs past the axis",
            )
        )
    if shown["chance"]:
        handles.append(
            Line2D([], [], color=CHANCE_COLOUR, linestyle=(0, (2, 2)), label="chance level")
        )
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=legend_columns(fig, [h.get_label() for h in handles]),
        frameon=False,
        title=f"{what}; {title}",
    )
