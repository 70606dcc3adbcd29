"""Load a run directory's results and summarize them across seeds."""

from __future__ import annotations

import warnings
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
        return {arm: arm_metrics(directory / arm, manifest) for arm in manifest["arms"]}
    return {manifest["run_id"]: arm_metrics(directory)}


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
    with np.errstate(invalid="ignore"):  # the spread of infinite values is NaN, quietly
        table = grouped.agg(
            median="median",
            lo=lambda v: float(seed_quantiles(v.to_numpy(), (0.025,))[0]),
            hi=lambda v: float(seed_quantiles(v.to_numpy(), (0.975,))[0]),
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


#: Metrics that tell the collapse story best, in order; others follow in recorded order.
HEADLINE_PREFERENCE = (
    "tail_mass",
    "rare_survival_k1",
    "rare_mass",
    "variance",
    "types",
    "nll_real",
    "perplexity_real",
    "perplexity_gen0",
    "nll_bound_real",
    "latent_std",
    "test_mse",
    "coef_error",
    "valid_fraction",
    "wasserstein",
    "distinct_2",
)
#: Metrics that repeat another one (``log_variance``) or say little as a median (0/1 ones).
HEADLINE_SKIP = ("log_variance", "collapsed")


def headline_metrics(frame: pd.DataFrame, count: int = 3) -> list[tuple[str, float, float]]:
    """Up to ``count`` headline metrics of one arm: ``(metric, median at 0, median at last)``.

    Metrics in :data:`HEADLINE_PREFERENCE` come first, then any others the arm
    recorded (text and supervised metrics included), skipping :data:`HEADLINE_SKIP`.
    """
    sim = frame[frame["source"] == "simulation"]
    recorded = [str(m) for m in sim["metric"].unique()]
    ordered = [m for m in HEADLINE_PREFERENCE if m in recorded]
    ordered += [m for m in recorded if m not in ordered and m not in HEADLINE_SKIP]
    picked = ordered[:count] or recorded[:count]
    return [(metric, *headline({"arm": frame}, metric=metric)["arm"]) for metric in picked]


def format_number(x: float) -> str:
    """Three significant digits, scientific notation for small values, ``inf`` and ``nan`` spelled."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
