"""Load a run directory's results and summarize them across seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ResultsError
from ..experiment.storage import read_json, read_metrics


def load_run(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Each arm's metrics frame, by arm name, from a run directory (or one arm's directory)."""
    directory = Path(directory)
    manifest = read_json(directory / "manifest.json")
    if manifest is None:
        raise ResultsError(f"{str(directory)!r} is not a run directory (no readable manifest.json)")
    if "arms" in manifest:
        return {arm: read_metrics(directory / arm / "metrics.parquet") for arm in manifest["arms"]}
    return {manifest["run_id"]: read_metrics(directory / "metrics.parquet")}


def snapshot_generations(generations: int) -> list[int]:
    """First, middle and last generation."""
    return sorted({0, (generations - 1) // 2, generations - 1})


def summarize(frame: pd.DataFrame, generations: list[int] | None = None) -> pd.DataFrame:
    """Median, 95% interval and mean over seeds per (metric, generation), with theory beside.

    Infinite values (a collapsed model's NLL) count in medians and intervals as
    infinities; the mean is then infinite too.
    """
    sim = frame[frame["source"] == "simulation"]
    if generations is None:
        generations = snapshot_generations(int(sim["generation"].max()) + 1)
    sim = sim[sim["generation"].isin(generations)]
    grouped = sim.groupby(["metric", "generation"], sort=False)["value"]
    table = grouped.agg(
        median="median",
        lo=lambda v: np.quantile(v, 0.025),
        hi=lambda v: np.quantile(v, 0.975),
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
