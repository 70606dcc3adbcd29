"""Phase diagrams: a metric at the last generation over two grid axes of a sweep.

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
    from ..core import Direction, Quantity
    from ..experiment.storage import read_metrics, read_yaml_mapping
    from ..experiment.sweep import load_sweep
    from .curves import is_binary
    from .runs import declared_metrics

    directory = Path(sweep_dir)
    manifest = load_sweep(directory)
    axes = {a["key"]: a["values"] for a in manifest["axes"]}
    for flag, key in (("--x", x), ("--y", y)):
        if key not in axes:
            raise CollapseLabError(
                f"{flag} {key!r} is not a grid axis of this sweep; axes: {', '.join(axes)}"
            )
    if x == y:
        raise CollapseLabError("--x and --y must be different grid axes")
    fix = dict(fix or {})
    for key in fix:
        if key not in axes or key in (x, y):
            raise CollapseLabError(f"--fix {key!r} is not one of the other grid axes")
    others = [k for k in axes if k not in (x, y) and k not in fix]
    for key in others:
        if len(axes[key]) > 1:
            raise CollapseLabError(
                f"grid axis {key!r} also varies; pick one value with --fix {key}=VALUE"
            )
    values = np.full((len(axes[y]), len(axes[x])), np.nan)
    first = np.full_like(values, np.nan)  # generation 0: trained on real data
    direction = Direction.NEUTRAL
    fractions = False  # some cell is a fraction of seeds (a 0/1 metric)
    arms_seen: set[str] = set()
    for point in manifest["points"]:
        if any(point["values"].get(k) != v for k, v in fix.items()):
            continue
        arm_names = list(point["arms"])
        arms_seen.update(arm_names)
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
        if declared is not None and declared.direction != Direction.NEUTRAL:
            direction = declared.direction
        binary = is_binary([frame], metric) or (
            declared is not None and declared.quantity == Quantity.COLLAPSED
        )
        fractions |= binary

        def cell(rows: Any, binary: bool = binary) -> float:
            value = rows["value"].to_numpy()
            return float(np.mean(value) if binary else np.median(value))

        i = axes[y].index(point["values"][y])
        j = axes[x].index(point["values"][x])
        values[i, j] = cell(sim[sim["generation"] == sim["generation"].max()])
        first[i, j] = cell(sim[sim["generation"] == 0])
    if np.isnan(values).all():
        raise ResultsError(f"no results for the chosen cells in {str(directory)!r}")
    finite = values[np.isfinite(values)]
    if threshold is None:
        if fractions:
            threshold = 0.5
        else:
            threshold = float((finite.min() + finite.max()) / 2) if finite.size else 0.0
    if direction in (Direction.HIGHER, Direction.LOWER):
        falls = direction == Direction.HIGHER
        why = f"{metric}: {direction} is healthier (declared)"
    else:
        start = float(np.nanmedian(first)) if np.isfinite(first).any() else threshold
        falls = start >= threshold
        why = f"{metric}: away from generation 0 ({start:.3g}); no healthy direction declared"
    with np.errstate(invalid="ignore"):
        collapsed = values < threshold if falls else values >= threshold
    return Phase(
        x, y, list(axes[x]), list(axes[y]), metric, values, threshold, collapsed, falls, why
    )


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


def cmd_phase(args: argparse.Namespace) -> int:
    phase = phase_grid(
        args.sweep_dir,
        args.x,
        args.y,
        args.metric,
        arm=args.arm,
        fix=_parse_fix(args.fix),
        threshold=args.threshold,
    )
    out = Path(args.out) if args.out else Path(args.sweep_dir) / f"phase-{args.metric}.png"
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CollapseLabError(f"--out {str(out)!r}: use a .png, .svg or .pdf file")
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


def _finite(text: str) -> float:
    """``--threshold``: a finite number (NaN compares false with everything)."""
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return value


_finite.__name__ = "finite number"  # argparse names the type in its one-line error


def add_parser(sub: Any) -> None:
    """Add ``collapselab phase`` to the CLI's subcommands."""
    p = sub.add_parser("phase", help="heat map of a metric over two grid axes of a sweep")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR")
    p.add_argument("--x", required=True, metavar="KEY", help="grid axis across")
    p.add_argument("--y", required=True, metavar="KEY", help="grid axis up")
    p.add_argument("--metric", required=True, metavar="ID", help="metric at the last generation")
    p.add_argument("--arm", help="which arm, when the runs have several")
    p.add_argument(
        "--fix", action="append", metavar="KEY=VALUE", help="fix another varying grid axis"
    )
    p.add_argument("--threshold", type=_finite, help="metric value where collapse sets in")
    p.add_argument("--out", help="figure file (default SWEEP_DIR/phase-<metric>.png)")
    p.set_defaults(func=cmd_phase)
