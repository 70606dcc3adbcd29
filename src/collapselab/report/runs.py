"""Run directories as reports see them, and how series are matched across runs.

A *series* is one arm of one run. Figures overlay series that are comparable:

* in one run, arms that measure against the same real data (same ``data`` id and
  parameters), so ``replace`` and ``accumulate`` share a panel;
* across runs of the same config name (a preset run twice with other seeds, say),
  the arms of the same name;
* across runs of different configs, again arms on the same real data;
* across the points of one sweep (:func:`sweep_points`), every arm of every point on
  the same kind of real data (its id), one panel set, colours grouped by arm.

Each series is labelled by what sets it apart: its arm name within a run, and the
config keys that differ (``seeds=50``, ``regime=accumulate``; samples per generation
read ``n=100``) across runs, and series are ordered by those values, numbers as
numbers (``n=20`` before ``n=100``). When the series of a group form a grid (regime x
curator, say), :func:`factors` names its axes, so that figures give one factor
colours and another line styles.

What a report says about a recorded series (axis label, healthy direction, headline
rank) comes only from the metric's declarations (:class:`~collapselab.core.Metric`):
each arm's metrics are built from its ``config.yaml`` through the registry (a config
is data; building a component runs no user code). Recorded series that are not
metrics (a curator's ``kept_fraction``, a regime's ``web.synthetic_share``) are
*statistics*: labelled by their id, with no healthy direction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import registry
from ..core import Direction, Metric, Quantity
from ..errors import CollapseLabError, ResultsError
from ..experiment.storage import (
    read_arm_manifest,
    read_run_manifest,
    read_stored_config,
)
from ..io import read_table
from .snapshots import Snapshots, load_snapshots
from .summary import arm_metrics

#: Config keys that never tell two series apart.
IGNORED_KEYS = ("name", "description", "checkpoint_every", "batched")
#: How a label names a config key (the notation of the papers); others by their key.
SHORT_KEYS = {"samples_per_generation": "n"}


@dataclass
class Arm:
    """One arm of a run: its resolved config, manifest, metrics and snapshots."""

    name: str
    directory: Path
    config: dict[str, Any]
    manifest: dict[str, Any]
    frame: pd.DataFrame
    snapshots: Snapshots | None
    #: Per-item values of per-item metrics (``distributions.parquet``), if any.
    distributions: pd.DataFrame | None = None
    #: The arm's metrics, built from its config, by id: the ids it configured that the
    #: registry knows now (a metric of a plugin no longer installed is missing).
    metrics: dict[str, Metric] = field(default_factory=dict)
    #: Every metric id the config lists (known or not); ``None`` for a hand-built run
    #: folder whose config lists none, where every recorded series counts as a metric.
    metric_ids: list[str] | None = None

    def is_metric(self, name: str) -> bool:
        """Whether the recorded series ``name`` is a metric (else a statistic)."""
        return self.metric_ids is None or name in self.metric_ids

    def describe(self, name: str) -> Declared:
        """What the report says about recorded series ``name`` (see :class:`Declared`)."""
        metric = self.metrics.get(name)
        if metric is None:
            return Declared(name, name, is_metric=self.is_metric(name))
        return Declared(
            name,
            metric.describe() or name,
            is_metric=True,
            direction=metric.direction,
            quantity=metric.quantity,
            headline=metric.headline,
            share=metric.share,
            per_item=metric.per_item,
        )


@dataclass(frozen=True)
class Declared:
    """A recorded series as the report shows it, from its metric's declarations.

    A series without a declaring metric (a statistic, or a metric the registry no
    longer knows) is labelled by its id and has no healthy direction.
    """

    name: str
    label: str
    is_metric: bool = False
    direction: Direction = Direction.NEUTRAL
    quantity: Quantity = Quantity.OTHER
    headline: int | None = None
    share: bool = False
    per_item: bool = False

    @property
    def hint(self) -> str:
        """``"↑ healthier"``, ``"↓ healthier"``, ``"≈ real healthiest"`` or ``""``."""
        return HINTS.get(self.direction, "")

    @property
    def arrow(self) -> str:
        """One symbol for tables: ``↑``, ``↓``, ``≈`` or ``""``."""
        return self.hint[:1]


#: What each healthy direction reads as beside a metric's name.
HINTS = {
    Direction.HIGHER: "↑ healthier",
    Direction.LOWER: "↓ healthier",
    Direction.TARGET: "≈ real healthiest",
}
#: The key of :data:`HINTS`, printed under tables that use the arrows.
ARROW_KEY = (
    "↑ higher is healthier, ↓ lower is healthier, ≈ closest to the real data's value is "
    "healthiest (declared by each metric)"
)


def declared_metrics(config: dict[str, Any]) -> tuple[dict[str, Metric], list[str] | None]:
    """The metrics an arm's resolved config lists, built through the registry, and their ids.

    A metric the registry cannot build now (a plugin not installed, a parameter since
    renamed) is left out of the first; its id stays in the second, so the report still
    treats it as a metric, labelled by its id.
    """
    specs = config.get("metrics")
    if not isinstance(specs, list):
        return {}, None
    built: dict[str, Metric] = {}
    ids = []
    for spec in specs:
        spec = {"id": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            continue
        ids.append(spec["id"])
        try:
            metric = registry.make("metric", spec["id"], **(spec.get("params") or {}))
        except (CollapseLabError, TypeError, ValueError):
            continue
        if isinstance(metric, Metric):
            built[spec["id"]] = metric
    return built, ids


@dataclass
class Run:
    """A run directory: the whole config, the run's manifest and each arm."""

    directory: Path
    name: str
    config: dict[str, Any]
    manifest: dict[str, Any]
    arms: list[Arm]
    #: The sweep folder this run is a point of, when read as one (see :func:`sweep_points`).
    sweep: Path | None = None
    #: That point's swept values, by dotted key (empty for a run read on its own).
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Series:
    """One arm of one run, as drawn: a label and where it comes from."""

    run: Run
    arm: Arm
    label: str = ""


@dataclass
class Group:
    """Series drawn together, with a title that says what they share."""

    title: str
    series: list[Series] = field(default_factory=list)
    #: Colours by arm (a sweep's points of one arm in shades of its colour).
    by_arm: bool = False

    def describe(self, name: str) -> Declared:
        """Series ``name`` as its first declaring arm describes it."""
        described = [s.arm.describe(name) for s in self.series]
        return next((d for d in described if d.label != name), described[0])

    def recorded(self, metrics: bool = True) -> list[str]:
        """The recorded series of the group's arms in first-seen order: the metrics, or
        (``metrics=False``) the statistics."""
        seen: dict[str, None] = {}
        for s in self.series:
            for name in s.arm.frame["metric"].unique():
                if s.arm.is_metric(str(name)) == metrics:
                    seen.setdefault(str(name), None)
        return list(seen)


def load(directory: str | Path) -> Run:
    """Read a run directory (or one arm's directory) for a report.

    Nothing in the folder is trusted: manifests and configs are validated against
    their schemas (:mod:`collapselab.experiment.storage`), arm names must be arm
    names (never a path out of the folder), and each ``metrics.parquet`` must still
    be the bytes whose SHA-256 its manifest recorded.

    Raises
    ------
    ResultsError
        If ``directory`` is not a run directory, a file in it fails its schema or its
        checksum, or an arm has no readable metrics (one line naming the file).
    """
    directory = Path(directory)
    manifest = read_run_manifest(directory / "manifest.json")
    if manifest is None:
        raise ResultsError(f"{str(directory)!r} is not a run directory (no manifest.json)")
    config = read_stored_config(directory / "config.yaml")
    if manifest.arms is not None:
        arm_dirs = [(name, directory / name) for name in manifest.arms]
        name = str(manifest.name or directory.name)
    else:
        arm_manifest = read_arm_manifest(directory / "manifest.json")
        name = str((arm_manifest.run_id if arm_manifest else None) or directory.name)
        arm_dirs = [(name, directory)]
    arms = []
    raw = manifest.model_dump(mode="json", exclude_none=True)
    for arm_name, arm_dir in arm_dirs:
        arm_manifest = read_arm_manifest(arm_dir / "manifest.json")
        arm_config = read_stored_config(arm_dir / "config.yaml")
        metrics, metric_ids = declared_metrics(arm_config)
        arms.append(
            Arm(
                name=arm_name,
                directory=arm_dir,
                config=arm_config,
                manifest=arm_manifest.model_dump(mode="json", exclude_none=True)
                if arm_manifest is not None
                else {},
                frame=arm_metrics(arm_dir, raw),
                snapshots=load_snapshots(arm_dir),
                distributions=read_table(arm_dir / "distributions.parquet"),
                metrics=metrics,
                metric_ids=metric_ids,
            )
        )
    return Run(directory=directory, name=name, config=config, manifest=raw, arms=arms)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys to compact JSON values; ``regime.id`` reads ``regime``.

    ``arms`` reads as the arm names, and each arm's overrides as ``arms.<name>.<key>``.
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        if key in IGNORED_KEYS and (not prefix or prefix.startswith("arms.")):
            continue
        if key == "params" and isinstance(value, dict) and not value:
            continue
        dotted = f"{prefix}{key}"
        if not prefix and key == "arms" and isinstance(value, list):
            named = [a for a in value if isinstance(a, dict) and "name" in a]
            out["arms"] = ",".join(str(a["name"]) for a in named)
            for arm in named:
                out.update(flatten(arm, f"arms.{arm['name']}."))
        elif isinstance(value, dict):
            out.update(flatten(value, f"{dotted}."))
        else:
            shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            out[dotted[: -len(".id")] if dotted.endswith(".id") else dotted] = shown
    return out


def differing_keys(configs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """For each config, ``key -> value`` over the keys whose values are not all equal."""
    flat = [flatten(c) for c in configs]
    # The run's own settings first, then its arms' overrides.
    keys = sorted({k for f in flat for k in f}, key=lambda k: (k.startswith("arms"), k))
    differ = [k for k in keys if len({f.get(k, "-") for f in flat}) > 1]
    return [{k: f.get(k, "-") for k in differ} for f in flat]


def _describe(differences: dict[str, str], limit: int = 3) -> str:
    items = [f"{SHORT_KEYS.get(k, k)}={v}" for k, v in differences.items()]
    text = ", ".join(items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _data_title(config: dict[str, Any]) -> str:
    data = config.get("data") or {}
    params = ", ".join(f"{k}={v}" for k, v in (data.get("params") or {}).items())
    return f"data: {data.get('id', '?')}" + (f" ({params})" if params else "")


def groups(runs: list[Run]) -> list[Group]:
    """The figure groups of one run, or the comparison groups of several (see module doc)."""
    sweep = len(runs) > 1 and runs[0].sweep is not None and len({r.sweep for r in runs}) == 1
    by_name = len(runs) > 1 and len({r.name for r in runs}) == 1
    out: dict[str, Group] = {}
    for run in runs:
        for arm in run.arms:
            if sweep:
                data = arm.config.get("data") or {}
                key, title = str(data.get("id")), f"data: {data.get('id', '?')}"
            elif by_name:
                key, title = arm.name, f"{arm.name}"
            else:
                key = json.dumps(arm.config.get("data"), sort_keys=True)
                title = _data_title(arm.config)
            out.setdefault(key, Group(title, by_arm=sweep)).series.append(Series(run, arm))
    for group in out.values():
        _label(group, several_runs=len(runs) > 1)
    return list(out.values())


def _natural(values: list[str]) -> list[tuple[int, float, str]]:
    """A sort key of config values that orders numbers as numbers (``20`` before ``100``)."""
    key = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            key.append((1, 0.0, value))
        else:
            key.append((0, number, ""))
    return key


def _label(group: Group, several_runs: bool) -> None:
    """Label each series by its arm (one run) or by the config keys that set it apart,
    and order them by arm (as first seen), then by those values."""
    if not several_runs:
        for s in group.series:
            s.label = s.arm.name
        return
    differences = differing_keys([s.arm.config for s in group.series])
    arm_order = list(dict.fromkeys(s.arm.name for s in group.series))
    if group.by_arm and len(arm_order) > 1:
        # the arm's name says what the arm sets: keep the keys that vary within an arm
        varying = {
            k
            for arm in arm_order
            for k in (differences[0] if differences else {})
            if len(
                {d[k] for s, d in zip(group.series, differences, strict=True) if s.arm.name == arm}
            )
            > 1
        }
        differences = [{k: v for k, v in d.items() if k in varying} for d in differences]
    ordered = sorted(
        zip(group.series, differences, strict=True),
        key=lambda pair: (arm_order.index(pair[0].arm.name), _natural(list(pair[1].values()))),
    )
    group.series = [s for s, _ in ordered]
    for s, diff in ordered:
        parts = [s.arm.name] if len(arm_order) > 1 else []
        parts.append(_describe(diff) or s.run.directory.name)
        s.label = ": ".join(parts)
    labels = [s.label for s in group.series]
    if len(set(labels)) < len(labels):  # identical configs: tell them apart by directory
        for s in group.series:
            s.label = f"{s.run.directory.name}/{s.arm.name}"


def factors(configs: list[dict[str, Any]]) -> list[list[str]]:
    """The axes of the grid that ``configs`` form: per factor, each config's level.

    Every config key whose value differs is a candidate; a key that another key
    determines (``regime`` is ``fresh`` whenever ``regime.params.source`` is set) folds
    into it, so what is left are the independent ways the configs differ, largest first
    (curators x regime in curation-shootout; regime x decoding bias in mad-loops).
    """
    differences = differing_keys(configs)
    if not differences or not differences[0]:
        return []
    columns = {k: [d[k] for d in differences] for k in differences[0]}

    def determines(a: list[str], b: list[str]) -> bool:
        seen: dict[str, str] = {}
        return all(seen.setdefault(x, y) == y for x, y in zip(a, b, strict=True))

    kept: list[list[str]] = []
    for values in sorted(columns.values(), key=lambda v: -len(set(v))):
        if not any(determines(k, values) for k in kept):
            kept.append(values)
    return kept


def run_labels(runs: list[Run]) -> list[str]:
    """A short label per run: the top-level config keys that differ, else its directory."""
    if len(runs) == 1:
        return [runs[0].name]
    differences = differing_keys([r.config for r in runs])
    return [_describe(d) or r.directory.name for r, d in zip(runs, differences, strict=True)]


def sweep_points(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run folders of a sweep's points (those that ran) with their swept values,
    ordered by those values (numbers as numbers) along the sweep's axes in turn."""
    from ..experiment.sweep import load_sweep

    manifest = load_sweep(directory)
    keys = [str(a.get("key")) for a in manifest.get("axes") or [] if isinstance(a, dict)]
    listed = [p for p in manifest["points"] if isinstance(p, dict)]
    values: list[dict[str, Any]] = [
        p["values"] if isinstance(p.get("values"), dict) else {} for p in listed
    ]
    order = sorted(
        range(len(listed)),
        key=lambda i: _natural([json.dumps(values[i].get(k)) for k in keys]),
    )
    points = [(directory / str(listed[i].get("name")), values[i]) for i in order]
    found = [(p, v) for p, v in points if (p / "manifest.json").is_file()]
    if not found:
        raise ResultsError(f"sweep {str(directory)!r} has no point that ran; run the sweep first")
    return found


def load_all(directories: list[Path]) -> list[Run]:
    """Each run directory, and each point of each sweep folder among them (see :func:`load`)."""
    runs = []
    for directory in directories:
        if (directory / "sweep.json").exists():
            for point, values in sweep_points(directory):
                run = load(point)
                run.sweep, run.values = directory, values
                runs.append(run)
        else:
            runs.append(load(directory))
    return runs
