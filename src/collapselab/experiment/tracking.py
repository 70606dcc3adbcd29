"""Experiment trackers (``run --tracker mlflow | wandb``): each arm a tracker run.

A :class:`Tracker` subscribes to the loop's per-generation events (it is the run's
``on_generation`` hook, see :class:`~.observers.GenerationEvent`) and logs, for each
arm and generation, every recorded series as its mean over seeds (``variance``) and
the standard error of that mean (``variance_se``), with the generation as the step.
A generation is logged once every seed has reported it (at once on the batched
path, whose events hold every seed). When the run ends, :meth:`Tracker.finish` logs
what no event carried (generations finished before a resume, seeds that halted)
from the arm's results, the arm's config as flat params (``model.params.bandwidth``)
and ``report.html`` as an artifact, and closes the runs.

* **MLflow**: the experiment is the config's name; the store is ``MLFLOW_TRACKING_URI``
  if set, else MLflow's local store in the run folder: ``OUT/mlflow.db`` (SQLite; MLflow
  3 refuses new ``./mlruns`` file stores) with artifacts in ``OUT/mlartifacts``. Browse
  it with ``mlflow ui --backend-store-uri sqlite:///OUT/mlflow.db``.
* **Weights & Biases**: the project is the config's name, the group the run folder's
  name; offline (files under ``OUT/wandb``, ``wandb sync`` uploads them) unless
  ``WANDB_MODE`` says otherwise.

The packages are extras: a missing one is refused before the run starts, with the
``pip install`` that adds it. A tracker only reads results; nothing it does changes
``metrics.parquet``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .config import Config
from .observers import GenerationEvent

#: ``--tracker`` values.
TRACKERS = ("mlflow", "wandb")
#: Suffix of the standard-error series of a metric.
SE_SUFFIX = "_se"


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config fields as one level of dotted keys; lists as JSON text."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        return {prefix[:-1]: json.dumps(data, sort_keys=True)}
    return {prefix[:-1]: "" if data is None else str(data)}


def seed_summary(values: Any) -> tuple[float, float] | None:
    """``(mean, standard error)`` over seeds of the finite ``values`` (NaN where a seed
    did not record it); the standard error is NaN with one seed; ``None`` if none."""
    array = np.asarray(values, dtype=float).reshape(-1)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return None
    se = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else math.nan
    return float(array.mean()), se


def _summaries(by_seed: Iterable[dict[str, Any]]) -> dict[str, float]:
    """One generation's series from each seed's values: the mean and ``_se`` of each."""
    rows = list(by_seed)
    names = dict.fromkeys(name for row in rows for name in row)
    out: dict[str, float] = {}
    for name in names:
        collected = [np.asarray(row.get(name, math.nan), dtype=float).reshape(-1) for row in rows]
        summary = seed_summary(np.concatenate(collected))
        if summary is None:
            continue
        out[name] = summary[0]
        if math.isfinite(summary[1]):
            out[name + SE_SUFFIX] = summary[1]
    return out


class Tracker(ABC):
    """The seed summary of each arm's generations, handed to a tracker backend.

    Subclasses open, log to and close one tracker run per arm (:meth:`_start`,
    :meth:`_log`, :meth:`_artifact`, :meth:`_end`). Use it as the ``on_generation``
    hook of :func:`~.runner.run`, then call :meth:`finish` with the run's result
    (or :meth:`abort` if the run did not end).
    """

    def __init__(self, config: Config, directory: Path) -> None:
        self.directory = Path(directory)
        self.name = config.name
        self.arms = {arm.name: arm for arm in config.arm_configs()}
        self.started: set[str] = set()
        self.logged: dict[str, set[int]] = {}
        self.pending: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}

    def __call__(self, event: GenerationEvent) -> None:
        if event.seed is None:  # batched: every seed's value at once
            self._log_generation(event.arm, event.generation, [event.values])
            return
        key = (event.arm, event.generation)
        seeds = self.pending.setdefault(key, {})
        seeds[event.seed] = event.values
        if len(seeds) == self.arms[event.arm].seeds:
            del self.pending[key]
            self._log_generation(event.arm, event.generation, seeds.values())

    def _ensure_started(self, arm: str) -> None:
        if arm not in self.started:
            config = self.arms[arm]
            params = {"arm": arm, **flatten(config.model_dump(mode="json"))}
            self._start(arm, params, {"config_hash": config.config_hash()})
            self.started.add(arm)
            self.logged[arm] = set()

    def _log_generation(self, arm: str, generation: int, rows: Iterable[dict[str, Any]]) -> None:
        self._ensure_started(arm)
        if generation in self.logged[arm]:
            return
        self.logged[arm].add(generation)
        metrics = {_key(name): value for name, value in _summaries(rows).items()}
        if metrics:
            self._log(arm, generation, metrics)

    def finish(self, result: Any) -> None:
        """Log what no event carried, the report as an artifact, and close each arm's run.

        ``result`` is the :class:`~.runner.RunResult` of the run.
        """
        self.pending.clear()
        for arm in result.arms:
            self._ensure_started(arm.name)
            frame = arm.frame[arm.frame["source"] == "simulation"]
            missing = frame[~frame["generation"].isin(self.logged[arm.name])]
            for generation, rows in missing.groupby("generation", sort=True):
                by_seed = [
                    dict(zip(part["metric"], part["value"], strict=True))
                    for _, part in rows.groupby("seed", sort=True)
                ]
                self._log_generation(arm.name, int(generation), by_seed)
            if result.report is not None and Path(result.report).is_file():
                self._artifact(arm.name, Path(result.report))
            self._end(arm.name, "FINISHED")

    def abort(self) -> None:
        """Close the runs of a run that did not end (interrupted, failed)."""
        for arm in sorted(self.started):
            self._end(arm, "KILLED")

    @abstractmethod
    def _start(self, arm: str, params: dict[str, str], tags: dict[str, str]) -> None:
        """Open the arm's tracker run with its params and tags."""

    @abstractmethod
    def _log(self, arm: str, generation: int, metrics: dict[str, float]) -> None:
        """Log one generation's seed summaries, with the generation as the step."""

    @abstractmethod
    def _artifact(self, arm: str, path: Path) -> None:
        """Attach a file to the arm's run."""

    @abstractmethod
    def _end(self, arm: str, status: str) -> None:
        """Close the arm's run with ``status`` (``FINISHED`` or ``KILLED``)."""


def _key(name: str) -> str:
    """A series name as a tracker key (letters, digits, ``_ - . / space``)."""
    return re.sub(r"[^\w\-./ ]", "_", name)


class MlflowTracker(Tracker):
    """Each arm an MLflow run of the experiment named after the config."""

    def __init__(self, config: Config, directory: Path) -> None:
        super().__init__(config, directory)
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or ""
        self.client: Any = None  # opened at the first arm, after the run's checks
        self.run_ids: dict[str, str] = {}

    def _open(self) -> Any:
        """The client, and the experiment's id (created if new)."""
        from mlflow.tracking import MlflowClient

        artifacts = None
        if not self.uri:  # MLflow's own local store, kept in the run folder
            self.directory.mkdir(parents=True, exist_ok=True)
            self.uri = "sqlite:///" + str((self.directory / "mlflow.db").resolve())
            artifacts = (self.directory / "mlartifacts").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(self.name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(self.name, artifact_location=artifacts)

    def _start(self, arm: str, params: dict[str, str], tags: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        experiment_id = self._open()
        run_tags = {
            "collapselab.arm": arm,
            "collapselab.run_dir": str(self.directory.resolve()),
            **{f"collapselab.{k}": v for k, v in tags.items()},
        }
        run = self.client.create_run(experiment_id, tags=run_tags, run_name=arm)
        self.run_ids[arm] = run.info.run_id
        items = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(
                self.run_ids[arm], params=items[i : i + MAX_PARAMS_TAGS_PER_BATCH]
            )

    def _log(self, arm: str, generation: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        stamp = int(time.time() * 1000)
        items = [Metric(k, v, stamp, generation) for k, v in metrics.items()]
        for i in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_ids[arm], metrics=items[i : i + MAX_METRICS_PER_BATCH])

    def _artifact(self, arm: str, path: Path) -> None:
        self.client.log_artifact(self.run_ids[arm], str(path))

    def _end(self, arm: str, status: str) -> None:
        self.client.set_terminated(self.run_ids[arm], status=status)


class WandbTracker(Tracker):
    """Each arm a W&B run of the project named after the config (offline by default)."""

    def __init__(self, config: Config, directory: Path) -> None:
        super().__init__(config, directory)
        self.runs: dict[str, Any] = {}

    def _start(self, arm: str, params: dict[str, str], tags: dict[str, str]) -> None:
        import wandb

        self.directory.mkdir(parents=True, exist_ok=True)
        # wandb checks the value (online, offline, disabled, shared)
        mode: Any = os.environ.get("WANDB_MODE") or "offline"
        run = wandb.init(
            project=self.name,
            group=self.directory.name,
            name=arm,
            config={**params, **tags},
            dir=str(self.directory),
            mode=mode,
            reinit="create_new",  # one run per arm, open side by side
        )
        # Generations may arrive out of order (resumed, backfilled): the x-axis is
        # the generation, not W&B's own step counter.
        run.define_metric("generation")
        run.define_metric("*", step_metric="generation")
        self.runs[arm] = run

    def _log(self, arm: str, generation: int, metrics: dict[str, float]) -> None:
        self.runs[arm].log({"generation": generation, **metrics})

    def _artifact(self, arm: str, path: Path) -> None:
        import wandb

        artifact = wandb.Artifact(f"{_key(arm).replace(' ', '_')}-report", type="report")
        artifact.add_file(str(path))
        self.runs[arm].log_artifact(artifact)

    def _end(self, arm: str, status: str) -> None:
        self.runs[arm].finish(exit_code=0 if status == "FINISHED" else 1)


def open_tracker(name: str, config: Config, directory: Path) -> Tracker:
    """The tracker ``name`` for a run of ``config`` into ``directory``; refuses an
    unknown name or a missing package (one line naming its ``pip install``)."""
    if name not in TRACKERS:
        raise ConfigError(f"--tracker must be one of {', '.join(TRACKERS)}; got {name!r}")
    try:
        __import__(name)
    except ImportError:
        raise ConfigError(
            f"--tracker {name} needs the {name!r} package: pip install 'collapselab[{name}]'"
        ) from None
    return MlflowTracker(config, directory) if name == "mlflow" else WandbTracker(config, directory)
