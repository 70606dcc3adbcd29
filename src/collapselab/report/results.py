"""A run or a sweep folder as a notebook reads it: :func:`collapselab.load`.

``collapselab.load(directory)`` gives a :class:`Results`: the folder's config and
manifest, its metrics as one tidy frame (an ``arm`` column and, for a sweep, a
``point`` column and one column per swept key), the theory rows on request, a
matplotlib figure per metric with every series overlaid, the verdict of each
definition of collapse, and a summary that Jupyter shows as HTML.

Reading is read-only and runs nothing from the folder: every file goes through the
validated readers of :mod:`collapselab.experiment.storage` (as :func:`.runs.load`
reads a run), and a sweep's point names must be point names, never a path out of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from ..errors import ResultsError
from ..experiment.storage import (
    NAME_PATTERN,
    RESERVED_NAMES,
    read_run_manifest,
    read_stored_config,
)
from .runs import Group, Run, Series
from .runs import load as load_run

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .verdict import Verdict

#: The columns :meth:`Results.metrics` puts first (a sweep's axes follow ``point``).
ARM = "arm"
POINT = "point"


@dataclass
class Point:
    """One run of the results: a sweep's point (its name and swept values) or the run."""

    name: str
    values: dict[str, Any]
    run: Run


class Results:
    """The results of a run folder or a sweep folder, read once (see :func:`load`).

    Attributes
    ----------
    directory : Path
        The folder read.
    sweep : bool
        Whether it is a sweep (``sweep.json``) rather than one run.
    config : dict
        The run's ``config.yaml`` (a sweep's: its base config, before the grid).
    manifest : dict
        The run's ``manifest.json`` (a sweep's: ``sweep.json``, with its axes and points).
    axes : list of str
        The swept keys, in grid order (empty for a run).
    points : list of Point
        Every point with results (one for a run).
    missing : list of str
        Points of the sweep's grid without complete results (not run yet, running,
        interrupted or failed): left out of everything else.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sweep: bool,
        config: dict[str, Any],
        manifest: dict[str, Any],
        axes: list[str],
        points: list[Point],
        missing: list[str] | None = None,
    ) -> None:
        self.directory = directory
        self.sweep = sweep
        self.config = config
        self.manifest = manifest
        self.axes = axes
        self.points = points
        self.missing = list(missing or [])

    @property
    def name(self) -> str:
        """The run's name (a sweep's: its base config's)."""
        return str(self.manifest.get("name") or self.directory.name)

    @property
    def arms(self) -> list[str]:
        """The arm names, in the order first met."""
        return list(dict.fromkeys(arm.name for p in self.points for arm in p.run.arms))

    def _frame(self, sources: tuple[str, ...] | None) -> pd.DataFrame:
        frames = []
        for point in self.points:
            for arm in point.run.arms:
                frame = arm.frame
                if sources is not None:
                    frame = frame[frame["source"].isin(sources)]
                frame = frame.copy()
                frame.insert(0, ARM, arm.name)
                if self.sweep:
                    for key in reversed(self.axes):
                        frame.insert(0, key, [point.values.get(key)] * len(frame))
                    frame.insert(0, POINT, point.name)
                frames.append(frame)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def metrics(self, theory: bool = False) -> pd.DataFrame:
        """Every recorded value, one row per (point, arm, seed, generation, metric).

        Parameters
        ----------
        theory : bool
            Also the closed-form theory rows (``source == "theory"``, ``seed == -1``)
            where the run wrote them; by default the simulation rows only.

        Returns
        -------
        pandas.DataFrame
            The columns of ``metrics.parquet`` (``run_id, config_hash, seed,
            generation, metric, value, source``) after ``arm`` and, for a sweep,
            ``point`` and one column per swept key holding the point's value.
        """
        return self._frame(None if theory else ("simulation",))

    def theory(self) -> pd.DataFrame:
        """The closed-form theory rows only (empty where no theory applies), with the
        columns of :meth:`metrics`."""
        return self._frame(("theory",))

    def recorded(self) -> list[str]:
        """Every recorded series (metrics, then curators' and regimes' statistics)."""
        group = self._group(None)
        return group.recorded() + group.recorded(metrics=False)

    def _label(self, point: Point, arm: str, several_arms: bool) -> str:
        if not self.sweep:
            return arm
        short = [key.rsplit(".", 1)[-1] for key in self.axes]
        keys = short if len(set(short)) == len(short) else self.axes
        text = ", ".join(
            f"{shown}={point.values.get(key)}" for shown, key in zip(keys, self.axes, strict=True)
        )
        return f"{text} / {arm}" if several_arms else text

    def _group(self, arms: list[str] | None) -> Group:
        if arms is not None:
            unknown = [a for a in arms if a not in self.arms]
            if unknown:
                raise ResultsError(
                    f"arm {unknown[0]!r} is not an arm of {self.name!r}; arms: {', '.join(self.arms)}"
                )
        chosen = arms if arms is not None else self.arms
        several = len(chosen) > 1
        title = f"sweep {self.name}" if self.sweep else self.name
        group = Group(title)
        for point in self.points:
            for arm in point.run.arms:
                if arm.name in chosen:
                    label = self._label(point, arm.name, several)
                    group.series.append(Series(point.run, arm, label))
        return group

    def plot(
        self, metric: str | list[str] | None = None, *, arms: list[str] | None = None
    ) -> Figure:
        """Each metric against generation, every series (arm, sweep point) overlaid.

        Drawn as the report draws its curves (:func:`.curves.metric_figure`): the median
        over seeds with its band, theory beside the simulation mean where it exists,
        bars for two generations, labels and healthy directions from the metrics'
        declarations.

        Parameters
        ----------
        metric : str or list of str, optional
            The recorded series to draw, one panel each; by default every metric.
        arms : list of str, optional
            Only these arms (by default every arm).

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ResultsError
            If a metric is not recorded, or an arm is not an arm of these results.
        """
        from .curves import metric_figure
        from .style import style

        group = self._group(arms)
        if not group.series:
            raise ResultsError(f"{self.name!r} holds no results to plot")
        recorded = group.recorded() + group.recorded(metrics=False)
        names = [metric] if isinstance(metric, str) else list(metric or group.recorded())
        for name in names:
            if name not in recorded:
                raise ResultsError(
                    f"metric {name!r} is not recorded in {self.name!r}; recorded: "
                    f"{', '.join(recorded)}"
                )
        with style() as plt:
            fig, _ = metric_figure(group, names)
            # pyplot lets go of it: a notebook shows the returned figure once, not twice
            plt.close(fig)
        return cast("Figure", fig)  # metric_figure's is plt.subplots' (untyped) figure

    def verdict(self, **kwargs: Any) -> Verdict:
        """Which definitions of collapse each arm meets (a :class:`.verdict.Verdict`);
        ``kwargs`` as :func:`collapselab.verdict` takes them (``baseline``, thresholds)."""
        from .verdict import verdict

        return verdict(self.directory, **kwargs)

    def _labels(self) -> list[str]:
        return [p.name if self.sweep else p.run.name for p in self.points]

    def _repr_html_(self) -> str:
        from .html import _headline_html, _summary_html, esc

        what = "sweep" if self.sweep else "run"
        status = self.manifest.get("status", "unknown")
        facts = [f"status {status}", f"{len(self.arms)} arm{'s' * (len(self.arms) != 1)}"]
        if self.sweep:
            facts.insert(0, f"{len(self.points)} points over {', '.join(self.axes)}")
        if self.missing:
            facts.append(f"{len(self.missing)} points without complete results")
        parts = [
            f"<h4>collapselab {what} {esc(self.name)}</h4>",
            f"<p><code>{esc(self.directory)}</code>: {esc('; '.join(facts))}</p>",
        ]
        if self.points:
            parts.append(_headline_html([p.run for p in self.points], self._labels()))
        if not self.sweep:
            parts += [_summary_html(p.run, arm) for p in self.points for arm in p.run.arms]
        parts.append(
            "<p><code>.metrics()</code>, <code>.theory()</code>, <code>.plot(metric)</code>, "
            "<code>.verdict()</code></p>"
        )
        return "<div class='collapselab-results'>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        if self.sweep:
            return (
                f"Results(sweep {self.name!r}: {len(self.points)} points over "
                f"{', '.join(self.axes)}, arms {', '.join(self.arms)}; {str(self.directory)!r})"
            )
        return f"Results(run {self.name!r}: arms {', '.join(self.arms)}; {str(self.directory)!r})"


def _sweep_points(directory: Path) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """``sweep.json``'s mapping, its axis keys and its points, each checked: a point is
    a name that is one safe path component and a mapping of values."""
    from ..experiment.sweep import MANIFEST, load_sweep

    manifest = load_sweep(directory)
    path = directory / MANIFEST
    damaged = "the file was edited or damaged"
    axes = manifest.get("axes")
    if not isinstance(axes, list) or not all(
        isinstance(a, dict) and isinstance(a.get("key"), str) for a in axes
    ):
        raise ResultsError(f"{str(path)!r}: field 'axes' is not a list of grid axes; {damaged}")
    points = manifest["points"]
    if not isinstance(points, list):
        raise ResultsError(f"{str(path)!r}: field 'points' is not a list; {damaged}")
    for i, point in enumerate(points):
        name = point.get("name") if isinstance(point, dict) else None
        if (
            not isinstance(name, str)
            or not re.match(NAME_PATTERN, name)
            or name.lower() in RESERVED_NAMES
            or not isinstance(point.get("values"), dict)
        ):
            raise ResultsError(f"{str(path)!r}: field 'points.{i}' is not a grid point; {damaged}")
    return manifest, [str(a["key"]) for a in axes], points


def load(directory: str | os.PathLike[str]) -> Results:
    """Read a run folder (or one arm's) or a sweep folder for analysis.

    Parameters
    ----------
    directory : str or path
        What ``collapselab run`` or ``collapselab sweep`` wrote (``results:`` in their
        output; ``RunResult.directory``, ``SweepResult.directory``).

    Returns
    -------
    Results

    Raises
    ------
    ResultsError
        If ``directory`` is neither a run nor a sweep, a file in it fails its schema
        or its checksum, or an arm has not finished (one line naming the file).

    Examples
    --------
    >>> import collapselab as cl
    >>> results = cl.load("runs/quickstart")  # doctest: +SKIP
    >>> results.metrics().query("metric == 'variance'")  # doctest: +SKIP
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ResultsError(
            f"{str(directory)!r} is not a folder; give a run or sweep folder "
            "(the 'results:' line of collapselab run or sweep)"
        )
    if not (directory / "sweep.json").is_file():
        if not (directory / "manifest.json").is_file():
            raise ResultsError(
                f"{str(directory)!r} is neither a run folder (manifest.json) nor a sweep "
                "folder (sweep.json)"
            )
        run = load_run(directory)
        return Results(
            directory,
            sweep=False,
            config=run.config,
            manifest=run.manifest,
            axes=[],
            points=[Point(run.name, {}, run)],
        )
    manifest, axes, listed = _sweep_points(directory)
    points, missing = [], []
    for point in listed:
        point_dir = directory / point["name"]
        top = read_run_manifest(point_dir / "manifest.json")
        if top is None or top.status != "complete":
            missing.append(point["name"])
            continue
        points.append(Point(point["name"], dict(point["values"]), load_run(point_dir)))
    return Results(
        directory,
        sweep=True,
        config=read_stored_config(directory / "config.yaml"),
        manifest=manifest,
        axes=axes,
        points=points,
        missing=missing,
    )
