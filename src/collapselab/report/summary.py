"""Load a run directory's results, summarize them across seeds, and print them."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core import Metric
from ..errors import ResultsError
from ..experiment.storage import read_json, read_metrics

#: Columns of a table printed into a pipe or a file: wide enough that rich never wraps
#: a metric's name (a table is as wide as its cells need, never padded to this).
UNWRAPPED_WIDTH = 10_000


def stdout_console() -> Any:
    """A ``rich`` console for stdout that wraps tables at the terminal's width, and never
    when stdout is not a terminal (a pipe, a file, a job's log): names stay whole there."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=UNWRAPPED_WIDTH)


def load_run(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Each arm's metrics frame, by arm name, from a run directory (or one arm's
    directory), read and checked as :func:`collapselab.report.runs.load` does."""
    from .runs import load

    return {arm.name: arm.frame for arm in load(directory).arms}


def arm_metrics(arm_dir: Path, run_manifest: dict | None = None) -> pd.DataFrame:
    """One arm's metrics; an arm that failed or has not finished says so in one line
    (``run_manifest``, the whole run's, tells why an arm stopped while running)."""
    path = arm_dir / "metrics.parquet"
    if not path.exists():
        manifest = read_json(arm_dir / "manifest.json")
        if not isinstance(manifest, dict):
            manifest = {}
        if manifest.get("status") == "running" and isinstance(run_manifest, dict):
            manifest = {
                **manifest,
                **{k: v for k, v in run_manifest.items() if k in ("status", "error")},
            }
        status = manifest.get("status")
        if status == "failed":
            raise ResultsError(
                f"{str(arm_dir)!r} failed ({manifest.get('error', 'no error recorded')}): fix the "
                "config and rerun it (--overwrite replaces the failed run)"
            )
        if status in ("running", "interrupted"):
            raise ResultsError(
                f"{str(arm_dir)!r} has not finished (status {status}): rerun the same command "
                "to resume it"
            )
    return read_metrics(path)


def snapshot_generations(generations: int) -> list[int]:
    """First, middle and last generation."""
    return sorted({0, (generations - 1) // 2, generations - 1})


def seed_quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles over axis 0 (seeds), ignoring NaN, with infinities kept as infinities.

    NumPy interpolates between two infinite order statistics as ``inf - inf``,
    which is NaN; clipping to a huge finite value first and mapping results
    beyond it back to infinity gives the limit instead.

    Parameters
    ----------
    values : ndarray
        Values with seeds along axis 0.
    qs : tuple of float
        Quantile levels in [0, 1].

    Returns
    -------
    ndarray
        ``len(qs)`` quantiles stacked along a new axis 0.
    """
    big = np.finfo(float).max / 4
    clipped = np.clip(np.asarray(values, dtype=float), -big, big)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        out = np.asarray(np.nanquantile(clipped, qs, axis=0))
    out[out > 1e300] = np.inf
    out[out < -1e300] = -np.inf
    return out


#: From this many seeds the band holds the central 95% of seeds; with fewer, the 2.5%
#: and 97.5% quantiles fall between the two most extreme seeds, so the band is their range.
CENTRAL_BAND_SEEDS = 40


def band_levels(seeds: int) -> tuple[float, float]:
    """The quantile levels of the band over ``seeds`` seeds: (0.025, 0.975), or (0, 1)
    (minimum and maximum) with fewer than :data:`CENTRAL_BAND_SEEDS`."""
    return (0.025, 0.975) if seeds >= CENTRAL_BAND_SEEDS else (0.0, 1.0)


def band_name(seeds: list[int] | int) -> str:
    """What the band over these seed counts is, in words."""
    counts = {seeds} if isinstance(seeds, int) else set(seeds)
    central = {n >= CENTRAL_BAND_SEEDS for n in counts}
    if central == {True}:
        return "central 95% of seeds"
    if central == {False}:
        return "min–max over seeds"
    return f"min–max over seeds (central 95% with {CENTRAL_BAND_SEEDS} seeds or more)"


def summarize(frame: pd.DataFrame, generations: list[int] | None = None) -> pd.DataFrame:
    """Median, band and mean over seeds per (metric, generation), with theory beside.

    The band (``lo``, ``hi``) is the central 95% of seeds, or their range with fewer
    than :data:`CENTRAL_BAND_SEEDS` (see :func:`band_levels`). Infinite values (a
    collapsed model's NLL) count in medians and bands as infinities; the mean is then
    infinite too.
    """
    sim = frame[frame["source"] == "simulation"]
    low, high = band_levels(int(sim["seed"].nunique()))
    if generations is None:
        generations = snapshot_generations(int(sim["generation"].max()) + 1)
    sim = sim[sim["generation"].isin(generations)]
    grouped = sim.groupby(["metric", "generation"], sort=False)["value"]
    with np.errstate(invalid="ignore"):  # the spread of infinite values is NaN, quietly
        table = grouped.agg(
            median="median",
            lo=lambda v: float(seed_quantiles(v.to_numpy(), (low,))[0]),
            hi=lambda v: float(seed_quantiles(v.to_numpy(), (high,))[0]),
            mean="mean",
            sem=lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan,
            seeds="count",
        ).reset_index()
    theory = frame[(frame["source"] == "theory") & frame["generation"].isin(generations)]
    theory = theory[["metric", "generation", "value"]].rename(columns={"value": "theory"})
    return table.merge(theory, on=["metric", "generation"], how="left")


def headline(
    frames: dict[str, pd.DataFrame], metric: str = "tail_mass"
) -> dict[str, tuple[float, float]]:
    """Median of ``metric`` at the first and last generation, per arm (where recorded)."""
    out = {}
    for arm, frame in frames.items():
        sim = frame[(frame["source"] == "simulation") & (frame["metric"] == metric)]
        if sim.empty:
            continue
        last = sim["generation"].max()
        out[arm] = (
            float(sim[sim["generation"] == 0]["value"].median()),
            float(sim[sim["generation"] == last]["value"].median()),
        )
    return out


def headline_metrics(
    frame: pd.DataFrame, metrics: Mapping[str, Metric], count: int = 3
) -> list[tuple[str, float, float]]:
    """Up to ``count`` headline metrics of one arm: ``(metric, median at 0, median at last)``.

    The arm's ``metrics`` (by recorded id) that declare a :attr:`~collapselab.core.Metric.headline`
    rank come first, lowest rank first; if none of them declares one, the first
    ``count`` metrics in the order recorded. Statistics (series that are not metrics)
    are never headlines.
    """
    sim = frame[frame["source"] == "simulation"]
    recorded = [str(m) for m in sim["metric"].unique()]
    ranked = sorted(
        (metrics[m].headline, i, m)
        for i, m in enumerate(recorded)
        if m in metrics and metrics[m].headline is not None
    )
    picked = [m for _, _, m in ranked][:count]
    if not picked:
        picked = [m for m in recorded if m in metrics][:count] or recorded[:count]
    return [(metric, *headline({"arm": frame}, metric=metric)["arm"]) for metric in picked]


def format_number(x: float) -> str:
    """Three significant digits, scientific notation for small values, ``inf`` and ``nan`` spelled."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
