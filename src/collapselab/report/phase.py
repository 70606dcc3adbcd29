"""Phase diagrams: a metric at the last generation over two grid axes of a sweep, or
the fraction of seeds collapsed along one.

Each cell is one grid point (one arm): the median over seeds of the metric at the
last generation (the mean for a 0/1 metric such as ``collapsed``, which is then the
fraction of seeds collapsed). The collapse-onset boundary is drawn along the cell
edges that separate cells on either side of a threshold: by default 0.5 for a 0/1
metric, otherwise the midpoint of the cells' range (given in the title);
``--threshold`` sets it.

Which side of the threshold is collapse comes from the metric's declared healthy
direction (:attr:`~collapselab.core.Metric.direction`): below it for a metric where
higher is healthier, above it where lower is. A metric without one (a target value,
a diagnostic) collapses *away from generation 0*, which trained on real data: the
side opposite the median of the cells' generation-0 values.

With one axis (no ``--y``), :func:`phase_curve` counts, at each grid value, the seeds
past the threshold on the collapsed side at the last generation: a fraction with a
95% Wilson interval. The onset is where that fraction crosses one half, interpolated
linearly between neighbouring grid values; its interval is where the Wilson band's
edges cross one half, interpolated alike (open on a side where an edge never crosses
within the grid). This answers "how much real data is enough at n=50":
``phase SWEEP --x regime.params.real_fraction --fix samples_per_generation=50
--metric collapsed``.
"""

from __future__ import annotations

import argparse
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CollapseLabError, ResultsError
from ..io import atomic_write, load_yaml


@dataclass
class Phase:
    """The grid of one metric over two axes, and where collapse sets in."""

    x_key: str
    y_key: str
    x_values: list[Any]
    y_values: list[Any]
    metric: str
    values: np.ndarray  # (len(y_values), len(x_values)); NaN where a point has no result
    threshold: float
    collapsed: np.ndarray  # bool, same shape: the cell is past the threshold
    falls: bool = False  # collapse is below the threshold (else at or above it)
    why: str = ""  # how the collapsed side was chosen

    def frame(self) -> pd.DataFrame:
        rows = [
            {
                self.x_key: x,
                self.y_key: y,
                self.metric: self.values[i, j],
                "collapsed": bool(self.collapsed[i, j]),
            }
            for i, y in enumerate(self.y_values)
            for j, x in enumerate(self.x_values)
        ]
        return pd.DataFrame(rows)


def _parse_fix(items: list[str] | None) -> dict[str, Any]:
    fixed = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CollapseLabError(f"--fix {item!r}: expected KEY=VALUE")
        fixed[key.strip()] = load_yaml(raw)
    return fixed


@dataclass
class _Cell:
    """One grid point's rows of the metric (simulation only), and what they declare."""

    values: dict[str, Any]
    sim: pd.DataFrame
    direction: Any
    binary: bool


def _read_cells(
    directory: Path,
    manifest: dict[str, Any],
    used: list[str],
    metric: str,
    arm: str | None,
    fix: dict[str, Any],
) -> list[_Cell]:
    """The cells of the grid points that ``fix`` selects, after checking that no axis
    but ``used`` (and the fixed ones) varies."""
    from ..core import Direction, Quantity
    from ..experiment.storage import read_metrics, read_yaml_mapping
    from .curves import is_binary
    from .runs import declared_metrics

    axes = {a["key"]: a["values"] for a in manifest["axes"]}
    for key in fix:
        if key not in axes or key in used:
            raise CollapseLabError(f"--fix {key!r} is not one of the other grid axes")
    others = [k for k in axes if k not in used and k not in fix]
    for key in others:
        if len(axes[key]) > 1:
            raise CollapseLabError(
                f"grid axis {key!r} also varies; pick one value with --fix {key}=VALUE"
            )
    cells = []
    for point in manifest["points"]:
        if any(point["values"].get(k) != v for k, v in fix.items()):
            continue
        arm_names = list(point["arms"])
        chosen = arm or (arm_names[0] if len(arm_names) == 1 else None)
        if chosen is None:
            raise CollapseLabError(
                f"the sweep's runs have arms ({', '.join(arm_names)}); pick one with --arm"
            )
        if chosen not in arm_names:
            raise CollapseLabError(f"--arm {chosen!r} is not an arm; arms: {', '.join(arm_names)}")
        path = directory / point["name"] / chosen  # every arm has its own folder
        frame = read_metrics(path / "metrics.parquet")
        sim = frame[(frame["source"] == "simulation") & (frame["metric"] == metric)]
        if sim.empty:
            known = sorted(frame["metric"].unique())
            raise CollapseLabError(
                f"--metric {metric!r} was not recorded in {str(path)!r}; recorded: {', '.join(known)}"
            )
        declared = declared_metrics(read_yaml_mapping(path / "config.yaml"))[0].get(metric)
        direction = declared.direction if declared is not None else Direction.NEUTRAL
        binary = is_binary([frame], metric) or (
            declared is not None and declared.quantity == Quantity.COLLAPSED
        )
        cells.append(_Cell(point["values"], sim, direction, binary))
    return cells


def _axes(manifest: dict[str, Any], flags: list[tuple[str, str]]) -> dict[str, list[Any]]:
    axes = {a["key"]: a["values"] for a in manifest["axes"]}
    for flag, key in flags:
        if key not in axes:
            raise CollapseLabError(
                f"{flag} {key!r} is not a grid axis of this sweep; axes: {', '.join(axes)}"
            )
    return axes


def _cell_value(rows: pd.DataFrame, binary: bool) -> float:
    value = rows["value"].to_numpy()
    return float(np.mean(value) if binary else np.median(value))


def _collapsed_side(
    cells: list[_Cell], metric: str, values: np.ndarray, first: np.ndarray, threshold: float | None
) -> tuple[float, bool, str]:
    """The threshold (default: 0.5 for a 0/1 metric, else the midpoint of the cells'
    range), whether collapse is below it, and why (see the module's docstring)."""
    from ..core import Direction

    finite = values[np.isfinite(values)]
    if threshold is None:
        if any(c.binary for c in cells):
            threshold = 0.5
        else:
            threshold = float((finite.min() + finite.max()) / 2) if finite.size else 0.0
    directions = [c.direction for c in cells if c.direction != Direction.NEUTRAL]
    direction = directions[-1] if directions else Direction.NEUTRAL
    if direction in (Direction.HIGHER, Direction.LOWER):
        return (
            threshold,
            direction == Direction.HIGHER,
            f"{metric}: {direction} is healthier (declared)",
        )
    start = float(np.nanmedian(first)) if np.isfinite(first).any() else threshold
    why = f"{metric}: away from generation 0 ({start:.3g}); no healthy direction declared"
    return threshold, start >= threshold, why


def phase_grid(
    sweep_dir: str | Path,
    x: str,
    y: str,
    metric: str,
    *,
    arm: str | None = None,
    fix: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> Phase:
    """Read a sweep's results into a :class:`Phase` of ``metric`` over ``x`` and ``y``."""
    from ..experiment.sweep import load_sweep

    directory = Path(sweep_dir)
    manifest = load_sweep(directory)
    axes = _axes(manifest, [("--x", x), ("--y", y)])
    if x == y:
        raise CollapseLabError("--x and --y must be different grid axes")
    cells = _read_cells(directory, manifest, [x, y], metric, arm, dict(fix or {}))
    values = np.full((len(axes[y]), len(axes[x])), np.nan)
    first = np.full_like(values, np.nan)  # generation 0: trained on real data
    for cell in cells:
        sim = cell.sim
        i = axes[y].index(cell.values[y])
        j = axes[x].index(cell.values[x])
        values[i, j] = _cell_value(sim[sim["generation"] == sim["generation"].max()], cell.binary)
        first[i, j] = _cell_value(sim[sim["generation"] == 0], cell.binary)
    if np.isnan(values).all():
        raise ResultsError(f"no results for the chosen cells in {str(directory)!r}")
    threshold, falls, why = _collapsed_side(cells, metric, values, first, threshold)
    with np.errstate(invalid="ignore"):
        collapsed = values < threshold if falls else values >= threshold
    return Phase(
        x, y, list(axes[x]), list(axes[y]), metric, values, threshold, collapsed, falls, why
    )


#: The collapsed fraction at which a 1-D phase curve's onset is read.
ONSET_FRACTION = 0.5


@dataclass
class PhaseCurve:
    """The fraction of seeds collapsed at the last generation along one grid axis.

    A seed is collapsed when its value is past ``threshold`` on the collapsed side (as
    for the heat map's cells). ``fraction`` has 95% Wilson intervals (``low``,
    ``high``); :meth:`onset` reads where it crosses :data:`ONSET_FRACTION`.
    """

    key: str
    x_values: list[Any]
    metric: str
    collapsed: np.ndarray  # seeds collapsed at each x
    seeds: np.ndarray  # seeds with a value at each x (a halted seed's NaN is not one)
    threshold: float
    falls: bool
    why: str

    @property
    def fraction(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seeds > 0, self.collapsed / np.maximum(self.seeds, 1), np.nan)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        from .curves import wilson

        low, high = wilson(self.fraction, self.seeds)
        missing = self.seeds == 0
        return np.where(missing, np.nan, low), np.where(missing, np.nan, high)

    def numeric(self) -> bool:
        return all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.x_values)

    def onset(self) -> tuple[float | None, float | None, float | None]:
        """``(x, low, high)``: where the collapsed fraction crosses one half, by linear
        interpolation between neighbouring grid values, and the interval where the
        95% Wilson band crosses it (its lower and upper edge, each interpolated alike).
        ``None`` where a curve does not cross within the grid (or ``x`` is not numeric)."""
        if not self.numeric():
            return None, None, None
        x = np.asarray(self.x_values, dtype=float)
        low, high = self.interval()
        centre = crossing(x, self.fraction, ONSET_FRACTION)
        edges = [crossing(x, low, ONSET_FRACTION), crossing(x, high, ONSET_FRACTION)]
        known = sorted(e for e in edges if e is not None)
        if len(known) == 2:
            return centre, known[0], known[1]
        # one edge never crosses within the grid: the interval is open on that side;
        # where the fraction falls along x, the band's lower edge crosses first
        finite = self.fraction[np.isfinite(self.fraction)]
        decreasing = finite.size > 0 and finite[0] > finite[-1]
        lower, upper = edges if decreasing else edges[::-1]
        return centre, lower, upper

    def frame(self) -> pd.DataFrame:
        low, high = self.interval()
        return pd.DataFrame(
            {
                self.key: self.x_values,
                "seeds": self.seeds,
                "collapsed": self.collapsed,
                "fraction": self.fraction,
                "low": low,
                "high": high,
            }
        )


def crossing(x: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """The first ``x`` where ``y`` reaches ``level``, interpolated linearly between the
    neighbouring finite points (``None`` if it never does)."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    for i in range(len(x)):
        if y[i] == level:
            return float(x[i])
        if i + 1 < len(x) and (y[i] - level) * (y[i + 1] - level) < 0:
            return float(x[i] + (level - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def phase_curve(
    sweep_dir: str | Path,
    x: str,
    metric: str,
    *,
    arm: str | None = None,
    fix: dict[str, Any] | None = None,
    threshold: float | None = None,
) -> PhaseCurve:
    """Read a sweep's results into a :class:`PhaseCurve` of ``metric`` along ``x``
    (every other varying axis fixed with ``fix``)."""
    from ..experiment.sweep import load_sweep

    directory = Path(sweep_dir)
    manifest = load_sweep(directory)
    axes = _axes(manifest, [("--x", x)])
    cells = _read_cells(directory, manifest, [x], metric, arm, dict(fix or {}))
    order = list(axes[x])
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in order):
        order = sorted(order)
    values = np.full(len(order), np.nan)
    first = np.full_like(values, np.nan)
    last: dict[int, np.ndarray] = {}
    for cell in cells:
        j = order.index(cell.values[x])
        sim = cell.sim
        rows = sim[sim["generation"] == sim["generation"].max()]
        values[j] = _cell_value(rows, cell.binary)
        first[j] = _cell_value(sim[sim["generation"] == 0], cell.binary)
        last[j] = rows["value"].to_numpy(dtype=float)
    if not last:
        raise ResultsError(f"no results for the chosen points in {str(directory)!r}")
    threshold, falls, why = _collapsed_side(cells, metric, values, first, threshold)
    collapsed = np.zeros(len(order), dtype=int)
    seeds = np.zeros(len(order), dtype=int)
    for j, per_seed in last.items():
        per_seed = per_seed[np.isfinite(per_seed)]
        seeds[j] = per_seed.size
        collapsed[j] = int(np.sum(per_seed < threshold if falls else per_seed >= threshold))
    return PhaseCurve(x, order, metric, collapsed, seeds, threshold, falls, why)


def boundary_segments(collapsed: np.ndarray) -> list[tuple[tuple[float, float], ...]]:
    """Cell edges (in cell coordinates) between collapsed and healthy neighbours."""
    rows, cols = collapsed.shape
    segments = []
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols and collapsed[i, j] != collapsed[i, j + 1]:
                segments.append(((j + 0.5, i - 0.5), (j + 0.5, i + 0.5)))
            if i + 1 < rows and collapsed[i, j] != collapsed[i + 1, j]:
                segments.append(((j - 0.5, i + 0.5), (j + 0.5, i + 0.5)))
    return segments


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def draw_phase(phase: Phase, out: str | Path) -> Path:
    """Draw the heat map with the onset boundary; writes ``out`` (png, svg or pdf)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = phase.values.shape
    fig, ax = plt.subplots(figsize=(1.1 * cols + 2.5, 0.8 * rows + 1.8))
    cmap = "viridis" if phase.falls else "viridis_r"  # collapse is dark either way
    image = ax.imshow(np.ma.masked_invalid(phase.values), origin="lower", cmap=cmap, aspect="auto")
    fig.colorbar(image, ax=ax, label=f"{phase.metric} at the last generation")
    for i in range(rows):
        for j in range(cols):
            v = phase.values[i, j]
            if math.isnan(v):
                continue
            # dark text on the light end of the colour map, light text on the dark end
            light = sum(image.cmap(image.norm(v))[:3]) > 1.8
            color = "black" if light else "white"
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, color=color)
    for (x0, y0), (x1, y1) in boundary_segments(phase.collapsed):
        ax.plot([x0, x1], [y0, y1], color="red", linewidth=2.5)
    ax.set_xticks(range(cols), [_label(v) for v in phase.x_values])
    ax.set_yticks(range(rows), [_label(v) for v in phase.y_values])
    ax.set_xlabel(phase.x_key)
    ax.set_ylabel(phase.y_key)
    side = "below" if phase.falls else "at or above"
    ax.set_title(
        f"collapse onset (red): {phase.metric} = {phase.threshold:.3g}; collapsed {side}\n"
        f"({phase.why})",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(out)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def draw_curve(curve: PhaseCurve, out: str | Path) -> Path:
    """Draw the collapsed fraction along one axis with its Wilson intervals and the
    interpolated onset with its interval; writes ``out`` (png, svg or pdf)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    numeric = curve.numeric()
    x = np.asarray(curve.x_values, dtype=float) if numeric else np.arange(len(curve.x_values))
    low, high = curve.interval()
    fraction = curve.fraction
    ax.fill_between(x, low, high, color="C0", alpha=0.2, linewidth=0, label="95% Wilson interval")
    ax.plot(x, fraction, "o-", color="C0", label="fraction of seeds collapsed")
    ax.axhline(ONSET_FRACTION, color="grey", linestyle=":", linewidth=1)
    onset, onset_low, onset_high = curve.onset()
    title = f"collapsed: {curve.metric} {'below' if curve.falls else 'at or above'} "
    title += f"{curve.threshold:.3g} at the last generation ({curve.why})"
    if onset is not None:
        left = onset_low if onset_low is not None else x.min()
        right = onset_high if onset_high is not None else x.max()
        ax.axvspan(left, right, color="red", alpha=0.12, linewidth=0, label="onset interval")
        ax.axvline(onset, color="red", linewidth=2, label=f"onset {onset:.3g}")
    if not numeric:
        ax.set_xticks(x, [_label(v) for v in curve.x_values])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(curve.key)
    ax.set_ylabel("fraction of seeds collapsed")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(out)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path


def onset_text(curve: PhaseCurve) -> str:
    """The onset in words: ``x = 0.07 (95% interval 0.04 to 0.12)``, or why there is none."""
    onset, low, high = curve.onset()
    if not curve.numeric():
        return f"no onset: {curve.key}'s values are not numbers"
    if onset is None:
        finite = curve.fraction[np.isfinite(curve.fraction)]
        side = "above" if finite.size and finite.min() > ONSET_FRACTION else "below"
        return f"no onset within the grid: the collapsed fraction stays {side} one half"
    left = f"{low:.3g}" if low is not None else f"below {_label(min(curve.x_values))}"
    right = f"{high:.3g}" if high is not None else f"above {_label(max(curve.x_values))}"
    return (
        f"onset (half the seeds collapsed): {curve.key} = {onset:.3g} "
        f"(95% interval {left} to {right})"
    )


def cmd_phase(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(args.sweep_dir) / f"phase-{args.metric}.png"
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CollapseLabError(f"--out {str(out)!r}: use a .png, .svg or .pdf file")
    if args.y is None:
        return _print_curve(args, out)
    phase = phase_grid(
        args.sweep_dir,
        args.x,
        args.y,
        args.metric,
        arm=args.arm,
        fix=_parse_fix(args.fix),
        threshold=args.threshold,
    )
    draw_phase(phase, out)
    atomic_write(out.with_suffix(".csv"), phase.frame().to_csv(index=False).encode())
    width = max(len(_label(v)) for v in phase.y_values)
    print(f"{phase.metric} at the last generation ({phase.y_key} down, {phase.x_key} across);")
    side = "below" if phase.falls else "at or above"
    print(f"* marks collapse ({phase.metric} {side} {phase.threshold:.3g}; {phase.why})")
    print(" " * width + "  " + "  ".join(f"{_label(v):>9s}" for v in phase.x_values))
    for i in reversed(range(len(phase.y_values))):
        cells = [
            f"{phase.values[i, j]:>8.3g}{'*' if phase.collapsed[i, j] else ' '}"
            for j in range(len(phase.x_values))
        ]
        print(f"{_label(phase.y_values[i]):>{width}s}  " + "  ".join(cells))
    print(f"figure: {out}")
    return 0


def _print_curve(args: argparse.Namespace, out: Path) -> int:
    """``phase`` with one axis: the collapsed fraction along it, and its onset."""
    curve = phase_curve(
        args.sweep_dir,
        args.x,
        args.metric,
        arm=args.arm,
        fix=_parse_fix(args.fix),
        threshold=args.threshold,
    )
    draw_curve(curve, out)
    atomic_write(out.with_suffix(".csv"), curve.frame().to_csv(index=False).encode())
    side = "below" if curve.falls else "at or above"
    print(
        f"fraction of seeds collapsed at the last generation ({curve.metric} {side} "
        f"{curve.threshold:.3g}; {curve.why}), with 95% Wilson intervals:"
    )
    width = max(len(curve.key), *(len(_label(v)) for v in curve.x_values))
    low, high = curve.interval()
    print(f"  {curve.key:>{width}s}  collapsed  fraction  95% interval")
    for j, value in enumerate(curve.x_values):
        count = f"{curve.collapsed[j]}/{curve.seeds[j]}"
        print(
            f"  {_label(value):>{width}s}  {count:>9s}  {curve.fraction[j]:>8.3f}  "
            f"[{low[j]:.3f}, {high[j]:.3f}]"
        )
    print(onset_text(curve))
    print(f"figure: {out}")
    return 0


def _finite(text: str) -> float:
    """``--threshold``: a finite number (NaN compares false with everything)."""
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return value


_finite.__name__ = "finite number"  # argparse names the type in its one-line error


def add_parser(sub: Any) -> None:
    """Add ``collapselab phase`` to the CLI's subcommands."""
    p = sub.add_parser(
        "phase",
        help="heat map of a metric over two grid axes of a sweep, or (without --y) the "
        "fraction of seeds collapsed along one axis and where it crosses one half",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--x", required=True, metavar="KEY", help="grid axis across")
    p.add_argument(
        "--y",
        metavar="KEY",
        help="grid axis up (omit it for a 1-D curve of the collapsed fraction along --x)",
    )
    p.add_argument("--metric", required=True, metavar="ID", help="metric at the last generation")
    p.add_argument("--arm", help="which arm, when the runs have several")
    p.add_argument(
        "--fix", action="append", metavar="KEY=VALUE", help="fix another varying grid axis"
    )
    p.add_argument("--threshold", type=_finite, help="metric value where collapse sets in")
    p.add_argument("--out", help="figure file (default SWEEP_DIR/phase-<metric>.png)")
    p.set_defaults(func=cmd_phase)
