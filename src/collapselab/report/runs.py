"""Run directories as reports see them, and how series are matched across runs.

A *series* is one arm of one run. Figures overlay series that are comparable:

* in one run, arms that measure against the same real data (same ``data`` id and
  parameters), so ``replace`` and ``accumulate`` share a panel;
* across runs of the same config name (a preset run twice with other seeds, say),
  the arms of the same name;
* across runs of different configs, again arms on the same real data.

Each series is labelled by what sets it apart: its arm name within a run, and the
config keys that differ (``seeds=50``, ``regime=accumulate``) across runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ResultsError
from ..io import read_json, read_table, read_yaml_mapping
from .snapshots import Snapshots, load_snapshots
from .summary import arm_metrics

#: Config keys that never tell two series apart.
IGNORED_KEYS = ("name", "description", "checkpoint_every", "batched")


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


@dataclass
class Run:
    """A run directory: the whole config, the run's manifest and each arm."""

    directory: Path
    name: str
    config: dict[str, Any]
    manifest: dict[str, Any]
    arms: list[Arm]


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


def load(directory: str | Path) -> Run:
    """Read a run directory (or one arm's directory) for a report.

    Raises
    ------
    ResultsError
        If ``directory`` is not a run directory or an arm has no readable metrics.
    """
    directory = Path(directory)
    manifest = read_json(directory / "manifest.json")
    if not isinstance(manifest, dict):
        raise ResultsError(f"{str(directory)!r} is not a run directory (no readable manifest.json)")
    config = read_yaml_mapping(directory / "config.yaml")
    if "arms" in manifest:
        arm_dirs = [(name, directory / name) for name in manifest["arms"]]
        name = str(manifest.get("name", directory.name))
    else:
        name = str(manifest.get("run_id", directory.name))
        arm_dirs = [(name, directory)]
    arms = []
    for arm_name, arm_dir in arm_dirs:
        arm_manifest = read_json(arm_dir / "manifest.json")
        arms.append(
            Arm(
                name=arm_name,
                directory=arm_dir,
                config=read_yaml_mapping(arm_dir / "config.yaml"),
                manifest=arm_manifest if isinstance(arm_manifest, dict) else {},
                frame=arm_metrics(arm_dir, manifest),
                snapshots=load_snapshots(arm_dir),
                distributions=read_table(arm_dir / "distributions.parquet"),
            )
        )
    return Run(directory=directory, name=name, config=config, manifest=manifest, arms=arms)


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
    items = [f"{k}={v}" for k, v in differences.items()]
    text = ", ".join(items[:limit])
    return text + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _data_title(config: dict[str, Any]) -> str:
    data = config.get("data") or {}
    params = ", ".join(f"{k}={v}" for k, v in (data.get("params") or {}).items())
    return f"data: {data.get('id', '?')}" + (f" ({params})" if params else "")


def groups(runs: list[Run]) -> list[Group]:
    """The figure groups of one run, or the comparison groups of several (see module doc)."""
    by_name = len(runs) > 1 and len({r.name for r in runs}) == 1
    out: dict[str, Group] = {}
    for run in runs:
        for arm in run.arms:
            if by_name:
                key, title = arm.name, f"{arm.name}"
            else:
                key = json.dumps(arm.config.get("data"), sort_keys=True)
                title = _data_title(arm.config)
            out.setdefault(key, Group(title)).series.append(Series(run, arm))
    for group in out.values():
        _label(group, several_runs=len(runs) > 1)
    return list(out.values())


def _label(group: Group, several_runs: bool) -> None:
    """Label each series by its arm (one run) or by the config keys that set it apart."""
    if not several_runs:
        for s in group.series:
            s.label = s.arm.name
        return
    differences = differing_keys([s.arm.config for s in group.series])
    names = {s.arm.name for s in group.series}
    for s, diff in zip(group.series, differences, strict=True):
        parts = [s.arm.name] if len(names) > 1 else []
        described = _describe(diff)
        parts.append(described or s.run.directory.name)
        s.label = ": ".join(parts)
    labels = [s.label for s in group.series]
    if len(set(labels)) < len(labels):  # identical configs: tell them apart by directory
        for s in group.series:
            s.label = f"{s.run.directory.name}/{s.arm.name}"


def run_labels(runs: list[Run]) -> list[str]:
    """A short label per run: the top-level config keys that differ, else its directory."""
    if len(runs) == 1:
        return [runs[0].name]
    differences = differing_keys([r.config for r in runs])
    return [_describe(d) or r.directory.name for r, d in zip(runs, differences, strict=True)]
