"""Figures of a run, or of several runs compared: matplotlib, Agg backend, print quality.

Two kinds of figure:

* **metric curves**: each metric against generation, one panel per metric, one
  line per series (arm, or arm of a run in a comparison): the median over seeds
  with the band holding the central 95% of seeds. Where closed-form theory
  exists, its expected value is dashed beside the simulation *mean* (dotted):
  theory predicts means, and under ``replace`` the mean and median of the
  variance part by orders of magnitude. 0/1 metrics (``collapsed``) show the
  fraction of seeds with a 95% Wilson interval instead. A panel whose positive
  values span more than :data:`LOG_SPAN` is drawn on a log scale.
* **snapshots**: seed 0's samples at generation 0, the middle and the last
  generation against the real held-out data, by data kind: histograms (1-D),
  scatter plots (2-D; first two principal components of the real data beyond),
  rank-frequency on log-log axes (text, tokens), image grids, ``y`` against the
  first feature (supervised pairs), and sample texts side by side.
* **distributions**: for per-item metrics (``perplexity_gen0``), the histogram of
  the per-item values at every generation, all seeds pooled, one colour per
  generation (Shumailov et al. 2024, Fig. 1b).

Every builder returns a :class:`Figure` item, or a note saying why a panel is
missing; nothing here raises for a data kind it does not know.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..core import DataKind
from ..errors import ResultsError
from ..tokenize import alphanumeric_words
from .runs import Arm, Group, Run, groups
from .snapshots import Snapshots
from .summary import seed_quantiles

#: A panel whose positive values span more than this factor gets a log scale.
LOG_SPAN = 30.0
#: Central interval of seeds drawn as the band.
BAND = (0.025, 0.975)
#: A log axis shows at most this many decades below the largest value.
MAX_DECADES = 8
FORMATS = ("png", "svg", "pdf")

#: Axis labels with units, for metrics whose meaning is known.
METRIC_LABELS = {
    "variance": "variance σ² (data units²)",
    "log_variance": "log σ²",
    "mean_shift": "‖μ − μ_real‖² (data units²)",
    "logdet_ratio": "log det Σ − log det Σ_real",
    "nll_real": "NLL of real test data (nats per sample)",
    "wasserstein": "Wasserstein-1 distance (data units)",
    "tail_mass": "tail mass ÷ real tail mass",
    "perplexity_real": "perplexity of real test text (per token)",
    "coverage_real": "share of real test tokens with p > 0",
    "perplexity_gen0": "median perplexity of the output under gen. 0",
    "types": "distinct types in the output",
    "rare_survival_k1": "share of real hapaxes still in the output",
    "rare_survival_k5": "share of real rare types (≤ 5) in the output",
    "rare_mass": "probability of the real rare types",
    "entropy": "entropy (nats)",
    "zipf_exponent": "Zipf exponent β",
    "kl_real": "KL(p_t ‖ p_real) (nats)",
    "tv_real": "total variation to real",
    "test_mse": "noise-free test MSE",
    "coef_error": "‖w_t − w*‖²",
    "accuracy": "accuracy on real test data",
    "valid_fraction": "share of valid outputs",
    "nll_bound_real": "−ELBO of real test images (nats per image)",
    "latent_std": "std of latent means (own encoder)",
    "latent_std_0": "std of latent means (generation-0 encoder)",
    "pixel_variance": "pixel variance across output",
    "prdc_precision": "precision (share of output near real)",
    "prdc_recall": "recall (share of real near output)",
    "prdc_density": "density (real k-NN balls per output ÷ k)",
    "prdc_coverage": "coverage (share of real with output nearby)",
}

#: Axis labels of per-item values (one item each, not a summary).
ITEM_LABELS = {"perplexity_gen0": "perplexity of a generated document under generation 0"}

RC = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "pdf.fonttype": 42,  # TrueType: text stays text in PDF and editable in SVG
    "svg.fonttype": "none",
}
#: Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
#: Generations in snapshots, oldest to newest: light to dark.
GENERATION_COLOURS = ["#E69F00", "#D55E00", "#7B1F00"]
REAL_COLOUR = "#9a9a9a"


@dataclass
class Figure:
    """A drawn figure (``figure``) or the reason one is missing (``note``).

    ``key`` is a file-name stem, unique within a report; ``section`` is
    ``"metrics"``, ``"distributions"``, ``"snapshots"`` or ``"texts"``.
    """

    key: str
    title: str
    section: str
    figure: Any = None
    note: str = ""
    caption: str = ""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display, ever: figures go to files
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def style() -> Iterator[Any]:
    """Readable publication defaults for every figure drawn inside."""
    plt = _pyplot()
    from cycler import cycler

    rc = {**RC, "axes.prop_cycle": cycler(color=PALETTE)}
    with plt.rc_context(rc):
        yield plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "figure"


# ---------------------------------------------------------------------------
# Statistics over seeds.
# ---------------------------------------------------------------------------


@contextmanager
def _quiet_all_nan() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0", RuntimeWarning)
        yield


@dataclass
class Curve:
    """One metric of one series against generation."""

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


def is_binary(frames: list[pd.DataFrame], metric: str) -> bool:
    """Whether ``metric`` is a 0/1 outcome in these frames: only 0 and 1, and both occur.

    Both must occur somewhere: a share that happens to stay exactly 1 in one arm is
    still a share, and its median (not a fraction of seeds) is what to draw.
    """
    values = np.concatenate(
        [f.loc[(f["metric"] == metric) & (f["source"] == "simulation"), "value"] for f in frames]
    )
    values = values[np.isfinite(values)]
    return bool(np.all((values == 0) | (values == 1)) and 0 in values and 1 in values)


def curve(frame: pd.DataFrame, metric: str, binary: bool | None = None) -> Curve | None:
    """Median and central 95% of seeds (or, for a 0/1 ``binary`` metric, the fraction of
    seeds with a Wilson interval) per generation; ``binary=None`` decides from ``frame``."""
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
    with _quiet_all_nan():
        mean = np.nanmean(values, axis=0)
    if binary:
        count = np.sum(np.isfinite(values), axis=0)
        low, high = wilson(mean, count)
        centre = mean
    else:
        low, centre, high = seed_quantiles(values, (BAND[0], 0.5, BAND[1]))
    theory = rows[rows["source"] == "theory"].sort_values("generation")
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
    )


def wilson(fraction: np.ndarray, count: np.ndarray, z: float = 1.959964) -> tuple[Any, Any]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and 1)."""
    n = np.maximum(np.asarray(count, dtype=float), 1)
    p = np.asarray(fraction, dtype=float)
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


# ---------------------------------------------------------------------------
# Metric curves.
# ---------------------------------------------------------------------------


def _metrics_of(group: Group) -> list[str]:
    seen: dict[str, None] = {}
    for s in group.series:
        for metric in s.arm.frame["metric"].unique():
            seen.setdefault(str(metric), None)
    return list(seen)


def _wants_log(curves: list[Curve]) -> bool:
    parts = []
    for c in curves:
        parts += [c.centre, c.low, c.high, c.theory]
        if len(c.theory):
            parts.append(c.mean)
    values = np.concatenate([np.ravel(p) for p in parts]) if parts else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0 or np.any(values <= 0):
        return False
    return bool(values.max() / values.min() > LOG_SPAN)


def _cap_decades(ax: Any, curves: list[Curve]) -> None:
    """Show at most :data:`MAX_DECADES` below the top of the data: a band reaching 1e-30
    (a Gaussian's exact tail mass after collapse) would squash every line into a corner.
    The band then runs off the bottom of the axis, which says "smaller still"."""
    values = np.concatenate([np.ravel(v) for c in curves for v in (c.centre, c.low, c.high)])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > 10.0**MAX_DECADES:
        ax.set_ylim(bottom=values.max() / 10.0**MAX_DECADES)


def metric_figure(group: Group, metrics: list[str] | None = None) -> Any:
    """One panel per metric, every series of ``group`` overlaid; a matplotlib Figure."""
    plt = _pyplot()
    metrics = metrics or _metrics_of(group)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.1 * ncols, 3.1 * nrows + 0.5), squeeze=False, layout="constrained"
    )
    any_theory = False
    notes = []
    for ax, metric in zip(axes.flat, metrics, strict=False):
        binary = is_binary([s.arm.frame for s in group.series], metric)
        drawn = [(i, s, curve(s.arm.frame, metric, binary)) for i, s in enumerate(group.series)]
        drawn = [(i, s, c) for i, s, c in drawn if c is not None]
        curves = [c for _, _, c in drawn]
        if curves and _wants_log(curves):
            ax.set_yscale("log")  # before drawing, so error bars know the scale
        for i, s, c in drawn:
            colour = PALETTE[i % len(PALETTE)]
            ax.fill_between(c.generation, c.low, c.high, color=colour, alpha=0.18, linewidth=0)
            ax.plot(c.generation, c.centre, color=colour, label=s.label)
            if len(c.theory):
                any_theory = True
                ax.plot(c.theory_generation, c.theory, color=colour, linestyle="--", linewidth=1.2)
                _mean_with_error(ax, c, colour)
            if c.infinite_seeds:
                notes.append(f"{s.label}: {c.infinite_seeds}/{c.seeds} seeds infinite at the end")
        if curves and curves[0].binary:
            ax.set_ylim(-0.03, 1.03)
        if ax.get_yscale() == "log":
            _cap_decades(ax, curves)
        ax.set_title(metric)
        ax.set_xlabel("generation")
        ax.set_ylabel(
            f"fraction of seeds with {metric} = 1" if binary else METRIC_LABELS.get(metric, metric)
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    _legend(fig, group, any_theory)
    if notes:  # a figure-level label, so constrained layout makes room for it
        fig.supxlabel("; ".join(notes), fontsize=8, color="#555555")
    return fig


def _mean_with_error(ax: Any, c: Curve, colour: str, marks: int = 8) -> None:
    """The simulation mean (dotted), with its 95% confidence interval at a few generations.

    Theory predicts means, so this is the line to hold it against; the error bars
    say whether a gap is larger than the seeds can resolve. The interval uses
    Student's t, so a handful of seeds gets the wide bars it deserves.
    """
    from scipy.special import stdtrit  # Student's t quantile; lighter than scipy.stats

    ax.plot(c.generation, c.mean, color=colour, linestyle=":", linewidth=1.2)
    if c.seeds < 2:
        return
    grid = np.linspace(0, len(c.generation) - 1, min(marks, len(c.generation))).round()
    at = np.unique(grid.astype(int))
    values = c.values[:, at]
    count = np.sum(np.isfinite(values), axis=0)
    with _quiet_all_nan(), np.errstate(invalid="ignore", divide="ignore"):
        half = stdtrit(count - 1, 0.975) * np.nanstd(values, axis=0, ddof=1) / np.sqrt(count)
    mean = c.mean[at]
    low = mean - half
    if ax.get_yscale() == "log":
        # A log axis cannot show a bar below zero; cut it where the band of seeds ends.
        floor = c.low[np.isfinite(c.low) & (c.low > 0)]
        low = np.maximum(low, floor.min() if floor.size else mean / 100)
    ax.errorbar(
        c.generation[at],
        mean,
        yerr=[mean - low, half],
        fmt="none",
        ecolor=colour,
        elinewidth=1.0,
        capsize=2.5,
    )


def _seeds(series: Any) -> int:
    sim = series.arm.frame[series.arm.frame["source"] == "simulation"]
    return int(sim["seed"].nunique())


def _legend(fig: Any, group: Group, any_theory: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=PALETTE[i % len(PALETTE)], label=f"{s.label} ({_seeds(s)} seeds)")
        for i, s in enumerate(group.series)
    ]
    handles.append(Patch(color="#777777", alpha=0.3, label="central 95% of seeds"))
    if any_theory:
        handles.append(
            Line2D([], [], color="#444444", linestyle=":", label="simulation mean, 95% CI")
        )
        handles.append(Line2D([], [], color="#444444", linestyle="--", label="theory (expected)"))
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=min(len(handles), 3),
        frameon=False,
        title="median over seeds; " + group.title,
    )


# ---------------------------------------------------------------------------
# Snapshots, by data kind.
# ---------------------------------------------------------------------------


def _generation_label(generation: int) -> str:
    return f"generation {generation}"


def _continuous(snap: Snapshots, title: str) -> Any:
    real = None if snap.real is None else np.asarray(snap.real, dtype=float)
    outputs = {g: np.asarray(x, dtype=float) for g, x in snap.outputs.items()}
    dims = {x.reshape(len(x), -1).shape[1] for x in outputs.values()}
    if len(dims) != 1:
        raise ValueError(f"outputs of different dimensions {sorted(dims)}")
    if dims == {1}:
        return _histograms(real, outputs, title)
    return _scatters(real, outputs, title)


def _shared_bins(pooled: np.ndarray, real: np.ndarray | None) -> np.ndarray:
    """One set of bins for every histogram: Freedman–Diaconis width on the real data
    (the largest sample), spanning everything drawn, 20 to 80 bins."""
    low, high = float(pooled.min()), float(pooled.max())
    if high <= low:
        return np.linspace(low - 0.5, high + 0.5, 21)
    basis = real[np.isfinite(real)] if real is not None and real.size > 1 else pooled
    width = np.diff(np.histogram_bin_edges(basis, bins="fd")[:2])[0]
    count = int(np.clip(np.ceil((high - low) / width) if width > 0 else 40, 20, 80))
    return np.linspace(low, high, count + 1)


def _histograms(real: np.ndarray | None, outputs: dict[int, np.ndarray], title: str) -> Any:
    plt = _pyplot()
    everything = [x.ravel() for x in outputs.values()] + (
        [real.ravel()] if real is not None else []
    )
    pooled = np.concatenate(everything)
    pooled = pooled[np.isfinite(pooled)]
    bins = _shared_bins(pooled, None if real is None else real.ravel())
    fig, (ax, ax_log) = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
    for axis in (ax, ax_log):
        if real is not None:
            axis.hist(real.ravel(), bins=bins, density=True, color=REAL_COLOUR, alpha=0.5)
        for colour, x in zip(GENERATION_COLOURS, outputs.values(), strict=False):
            axis.hist(x.ravel(), bins=bins, density=True, histtype="step", color=colour, lw=1.6)
        if real is not None:
            for q in np.quantile(real.ravel(), [0.01, 0.99]):
                axis.axvline(q, color="#333333", linestyle=":", linewidth=1)
        axis.set_xlabel("x (data units)")
    ax.set_ylabel("density")
    ax.set_title("linear scale")
    ax_log.set_yscale("log")
    ax_log.set_ylabel("density (log scale)")
    ax_log.set_title("log scale: the tails")
    _snapshot_legend(fig, real is not None, outputs, title, tails=real is not None)
    return fig


def _snapshot_legend(
    fig: Any, has_real: bool, outputs: dict[int, Any], title: str, tails: bool = False
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    if has_real:
        handles.append(Patch(color=REAL_COLOUR, alpha=0.6, label="real (held-out)"))
    handles += [
        Line2D([], [], color=c, label=_generation_label(g))
        for c, g in zip(GENERATION_COLOURS, outputs, strict=False)
    ]
    if tails:
        handles.append(
            Line2D([], [], color="#333333", linestyle=":", label="real 1% and 99% quantiles")
        )
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=min(len(handles), 5),
        frameon=False,
        title=title,
    )


def _project(real: np.ndarray | None, outputs: dict[int, np.ndarray]) -> tuple[Any, Any, str]:
    """2-D views: the data itself, or its first two principal components (of the real data)."""
    flat = {g: x.reshape(len(x), -1) for g, x in outputs.items()}
    d = next(iter(flat.values())).shape[1]
    real2 = None if real is None else real.reshape(len(real), -1)
    if d == 2:
        return real2, flat, "x₁"
    basis_source = real2 if real2 is not None else np.concatenate(list(flat.values()))
    centre = basis_source.mean(axis=0)
    _, _, vt = np.linalg.svd(basis_source - centre, full_matrices=False)
    basis = vt[:2].T

    def project(x: np.ndarray) -> np.ndarray:
        return (x - centre) @ basis

    return (
        None if real2 is None else project(real2),
        {g: project(x) for g, x in flat.items()},
        "principal component",
    )


def _scatters(real: np.ndarray | None, outputs: dict[int, np.ndarray], title: str) -> Any:
    plt = _pyplot()
    real2, flat, axis_name = _project(real, outputs)
    panels = ([("real (held-out)", real2, REAL_COLOUR)] if real2 is not None else []) + [
        (_generation_label(g), x, c)
        for (g, x), c in zip(flat.items(), GENERATION_COLOURS, strict=False)
    ]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(2.9 * len(panels), 3.0),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, points, colour) in zip(axes[0], panels, strict=True):
        if real2 is not None and points is not real2:
            ax.scatter(real2[:, 0], real2[:, 1], s=4, color=REAL_COLOUR, alpha=0.35, lw=0)
        ax.scatter(points[:, 0], points[:, 1], s=6, color=colour, alpha=0.8, lw=0)
        ax.set_title(f"{name} (n={len(points)})")
        ax.set_xlabel(f"{axis_name} 1" if axis_name != "x₁" else "x₁")
        ax.set_aspect("equal", adjustable="box")
    axes[0][0].set_ylabel(f"{axis_name} 2" if axis_name != "x₁" else "x₂")
    fig.suptitle(title + ("" if axis_name == "x₁" else " (projected on the real data's PCs)"))
    return fig


def _counts(data: Any, kind: DataKind | str) -> Counter:
    if kind == DataKind.TEXT:
        return Counter(w for doc in data for w in alphanumeric_words(doc))
    if isinstance(data, np.ndarray):
        return Counter(np.ravel(data).tolist())
    return Counter(int(t) for seq in data for t in np.ravel(seq))


def _rank_frequency(snap: Snapshots, title: str) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0), layout="constrained")
    unit = "word" if snap.kind == DataKind.TEXT else "token"
    sets = ([("real (held-out)", snap.real, REAL_COLOUR)] if snap.real is not None else []) + [
        (_generation_label(g), x, c)
        for (g, x), c in zip(snap.outputs.items(), GENERATION_COLOURS, strict=False)
    ]
    for name, data, colour in sets:
        counts = np.array(sorted(_counts(data, snap.kind).values(), reverse=True), dtype=float)
        if counts.size == 0:
            continue
        rank = np.arange(1, counts.size + 1)
        width = 3.0 if colour == REAL_COLOUR else 1.6
        label = f"{name}: {counts.size:,} {unit} types"
        ax.loglog(rank, counts / counts.sum(), color=colour, lw=width, label=label)
    ax.set_xlabel(f"rank of {unit} (by frequency)")
    ax.set_ylabel("relative frequency")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def _images(snap: Snapshots, title: str, per_row: int = 8) -> Any:
    plt = _pyplot()
    rows = ([("real", np.asarray(snap.real))] if snap.real is not None else []) + [
        (f"gen {g}", np.asarray(x)) for g, x in snap.outputs.items()
    ]
    reference = rows[0][1]
    lo, hi = float(np.nanmin(reference)), float(np.nanmax(reference))
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.1 * per_row, 1.2 * len(rows)), squeeze=False
    )
    for r, (name, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.spines[:].set_visible(False)  # a frame would read as a pixel row
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            else:
                ax.set_visible(False)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def _supervised(snap: Snapshots, title: str) -> Any:
    plt = _pyplot()

    def xy(pair: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = pair
        x = np.asarray(x, dtype=float)
        return x.reshape(len(x), -1)[:, 0], np.asarray(y, dtype=float).reshape(len(x), -1)[:, 0]

    real = None if snap.real is None else xy(snap.real)
    panels = ([("real (held-out)", real, REAL_COLOUR)] if real is not None else []) + [
        (_generation_label(g), xy(p), c)
        for (g, p), c in zip(snap.outputs.items(), GENERATION_COLOURS, strict=False)
    ]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(2.9 * len(panels), 3.2),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, (x, y), colour) in zip(axes[0], panels, strict=True):
        if real is not None and colour != REAL_COLOUR:
            ax.scatter(*real, s=4, color=REAL_COLOUR, alpha=0.35, lw=0)
        ax.scatter(x, y, s=6, color=colour, alpha=0.8, lw=0)
        ax.set_title(f"{name} (n={len(x)})")
        ax.set_xlabel("first feature x₁")
    axes[0][0].set_ylabel("target y")
    fig.suptitle(title)
    return fig


def snapshot_figure(arm: Arm) -> Any:
    """The distribution snapshot of ``arm`` by its data kind.

    Raises
    ------
    ResultsError
        If the arm has no snapshots or its kind has no snapshot view.
    """
    snap = arm.snapshots
    if snap is None or not snap.outputs:
        raise ResultsError("no snapshots were saved for this arm (a run from before snapshots?)")
    title = f"{arm.name}: samples of seed {snap.seed}" + (
        " (first samples of each snapshot)" if snap.truncated else ""
    )
    if snap.kind == DataKind.CONTINUOUS:
        return _continuous(snap, title)
    if snap.kind in (DataKind.TEXT, DataKind.TOKENS):
        return _rank_frequency(snap, title)
    if snap.kind == DataKind.IMAGES:
        return _images(snap, title)
    if snap.kind == DataKind.SUPERVISED:
        return _supervised(snap, title)
    raise ResultsError(f"no snapshot view for data kind {str(snap.kind)!r} yet")


def sample_texts(arm: Arm, per_generation: int = 3, chars: int = 280) -> dict[str, list[str]]:
    """A few documents per generation (and real), shortened; empty unless the arm is text."""
    snap = arm.snapshots
    if snap is None or snap.kind != DataKind.TEXT:
        return {}
    columns = {"real (held-out)": snap.real} if snap.real is not None else {}
    columns.update({_generation_label(g): docs for g, docs in snap.outputs.items()})
    return {
        name: [_shorten(doc, chars) for doc in list(docs)[:per_generation]]
        for name, docs in columns.items()
    }


def _shorten(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def sample_text_figure(arm: Arm) -> Any:
    """Sample texts side by side, one column per generation (for export; HTML uses a table)."""
    plt = _pyplot()
    columns = sample_texts(arm)
    if not columns:
        raise ResultsError("no text snapshots for this arm")
    bodies = {
        name: "\n\n".join(textwrap.fill(doc, 38) for doc in docs) for name, docs in columns.items()
    }
    lines = max(body.count("\n") + 1 for body in bodies.values())
    fig, axes = plt.subplots(
        1,
        len(columns),
        figsize=(3.2 * len(columns), 0.7 + 0.15 * lines),  # 8-point text: ~0.15 in per line
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, body) in zip(axes[0], bodies.items(), strict=True):
        ax.axis("off")
        ax.set_title(name)
        # parse_math=False: a "$" in a corpus is a dollar sign, not TeX.
        ax.text(0.02, 1, body, va="top", ha="left", fontsize=8, family="serif", parse_math=False)
    fig.suptitle(f"{arm.name}: sample texts of seed {arm.snapshots.seed}")
    return fig


# ---------------------------------------------------------------------------
# Every figure of a report.
# ---------------------------------------------------------------------------


def _guarded(item: Figure, draw: Any) -> Figure:
    """Draw, or keep a note of why not: one bad panel never costs the whole report."""
    try:
        item.figure = draw()
    except ResultsError as exc:
        item.note = str(exc)
    except Exception as exc:  # a plotting failure must not lose the rest of the report
        item.note = f"could not draw ({type(exc).__name__}: {exc})"
    return item


def distribution_figure(arm: Arm) -> Any:
    """Histograms of each per-item metric's values, one step line per generation."""
    frame = arm.distributions
    if frame is None or frame.empty:
        raise ResultsError("no per-item values recorded")
    plt = _pyplot()
    metrics = list(dict.fromkeys(frame["metric"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.2 * len(metrics), 3.6), layout="constrained", squeeze=False
    )
    generations = sorted(frame["generation"].unique())
    cmap = plt.get_cmap("viridis")
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = frame[frame["metric"] == metric]
        values = rows["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if not len(finite):
            ax.set_axis_off()
            ax.set_title(f"{metric}: no finite values")
            continue
        low, high = np.quantile(finite, [0.001, 0.999])
        log = low > 0 and high / low > 10
        # about sqrt(items per generation) bins: fewer items, coarser and steadier bars
        count = int(np.clip(np.sqrt(len(finite) / len(generations)), 10, 60)) + 1
        spread = (low, high) if log else (low, max(high, low + 1e-12))
        bins = np.geomspace(*spread, count) if log else np.linspace(*spread, count)
        for i, g in enumerate(generations):
            every = rows.loc[rows["generation"] == g, "value"].to_numpy(dtype=float)
            x = every[np.isfinite(every) & (every >= bins[0]) & (every <= bins[-1])]
            if not len(x):
                continue  # nothing of this generation on the axis
            colour = cmap(i / max(1, len(generations) - 1) * 0.9)
            ax.hist(
                x,
                bins=bins,
                density=True,
                histtype="step",
                lw=1.6,
                color=colour,
                label=f"generation {g} (median {np.median(every):.3g})",
            )
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(ITEM_LABELS.get(metric, metric))
        ax.set_ylabel("density")
        outside = np.mean((finite < low) | (finite > high))
        note = f"; {outside:.1%} of items outside the axis" if outside > 0 else ""
        seeds = rows["seed"].nunique()
        ax.set_title(f"{metric}: {seeds} seed{'s' * (seeds != 1)} pooled{note}", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{arm.name}: per-item values by generation")
    return fig


def build_figures(runs: list[Run]) -> list[Figure]:
    """Metric figures per group, then snapshots and sample texts per arm (see module doc).

    The caller closes the figures (:func:`close`), inside :func:`style` to keep
    fonts consistent.
    """
    items = []
    used: set[str] = set()

    def key(*parts: str) -> str:
        stem = _slug("-".join(parts))
        out, i = stem, 2
        while out in used:
            out, i = f"{stem}-{i}", i + 1
        used.add(out)
        return out

    for group in groups(runs):
        names = ", ".join(s.label for s in group.series)
        items.append(
            _guarded(
                Figure(
                    key("metrics", group.title),
                    f"Metrics: {names}",
                    "metrics",
                    caption=f"{group.title}. Lines are medians over seeds, bands hold the "
                    "central 95% of seeds; where theory exists, dashed lines are its "
                    "expected values and dotted lines the simulation means, with 95% "
                    "confidence intervals at a few generations.",
                ),
                lambda group=group: metric_figure(group),
            )
        )
    several = len(runs) > 1
    for run in runs:
        for arm in run.arms:
            prefix = f"{run.directory.name}/{arm.name}" if several else arm.name
            items.append(
                _guarded(
                    Figure(key("snapshots", prefix), f"Samples: {prefix}", "snapshots"),
                    lambda arm=arm: snapshot_figure(arm),
                )
            )
            if arm.distributions is not None and not arm.distributions.empty:
                items.append(
                    _guarded(
                        Figure(
                            key("distributions", prefix),
                            f"Distributions: {prefix}",
                            "distributions",
                            caption="Histogram of each item's value at every generation, "
                            "all seeds pooled.",
                        ),
                        lambda arm=arm: distribution_figure(arm),
                    )
                )
            if arm.snapshots is not None and arm.snapshots.kind == DataKind.TEXT:
                items.append(
                    _guarded(
                        Figure(key("texts", prefix), f"Sample texts: {prefix}", "texts"),
                        lambda arm=arm: sample_text_figure(arm),
                    )
                )
    return items


def close(items: list[Figure]) -> None:
    """Free every drawn figure."""
    plt = _pyplot()
    for item in items:
        if item.figure is not None:
            plt.close(item.figure)
            item.figure = None


def check_formats(formats: tuple[str, ...]) -> None:
    """Raise :class:`ResultsError` for a figure format other than png, svg or pdf."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ResultsError(f"unknown figure format {unknown[0]!r}; choose from {list(FORMATS)}")


def export(
    runs: list[Run], folder: str | Path, formats: tuple[str, ...] = ("png",), dpi: int = 300
) -> list[Path]:
    """Write every figure of ``runs`` to ``folder`` in each of ``formats``; the paths written.

    Raises
    ------
    ResultsError
        For an unknown format or a folder that cannot be written.
    """
    check_formats(formats)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create {str(folder)!r}: {exc.strerror or exc}") from None
    written = []
    with style():
        items = build_figures(runs)
        try:
            for item in items:
                if item.figure is None:
                    continue
                for fmt in formats:
                    path = folder / f"{item.key}.{fmt}"
                    item.figure.savefig(path, format=fmt, dpi=dpi)
                    written.append(path)
        finally:
            close(items)
    return written
