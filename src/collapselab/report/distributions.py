"""Per-item distributions: for metrics that measure each generated item
(:attr:`~collapselab.core.Metric.per_item`, such as ``perplexity_gen0``), the histogram
of the items' values at every generation, all seeds pooled, one colour per generation
(Shumailov et al. 2024, Fig. 1b)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ResultsError
from .runs import Arm
from .style import pyplot


def distribution_figure(arm: Arm) -> Any:
    """Histograms of each per-item metric's values, one step line per generation.

    Raises
    ------
    ResultsError
        If the arm recorded no per-item values.
    """
    frame = arm.distributions
    if frame is None or frame.empty:
        raise ResultsError("no per-item values recorded")
    plt = pyplot()
    metrics = list(dict.fromkeys(frame["metric"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.6 * len(metrics), 3.8), layout="constrained", squeeze=False
    )
    generations = sorted(frame["generation"].unique())
    cmap = plt.get_cmap("viridis")
    for ax, metric in zip(axes[0], metrics, strict=True):
        declared = arm.describe(metric)
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
        labels = []
        for i, g in enumerate(generations):
            every = rows.loc[rows["generation"] == g, "value"].to_numpy(dtype=float)
            x = every[np.isfinite(every) & (every >= bins[0]) & (every <= bins[-1])]
            if not len(x):
                continue  # nothing of this generation on the axis
            colour = cmap(i / max(1, len(generations) - 1) * 0.9)
            labels.append(f"generation {g} (median {np.median(every):.3g})")
            ax.hist(
                x, bins=bins, density=True, histtype="step", lw=1.6, color=colour, label=labels[-1]
            )
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(f"{declared.label}: one value per generated item")
        ax.set_ylabel("density")
        outside = np.mean((finite < low) | (finite > high))
        note = f"; {outside:.1%} of items outside the axis" if outside > 0 else ""
        seeds = rows["seed"].nunique()
        hint = f" ({declared.hint})" if declared.hint else ""
        ax.set_title(f"{metric}{hint}: {seeds} seed{'s' * (seeds != 1)} pooled{note}", fontsize=9)
        ax.legend(fontsize=7, frameon=False, ncols=2 if len(labels) > 5 else 1)
    fig.suptitle(f"{arm.name}: per-item values by generation")
    return fig
