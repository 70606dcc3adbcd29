"""Run a config: every arm, every seed, with checkpoints, resume and theory rows.

Layout of a run directory::

    OUT/config.yaml, OUT/manifest.json          the whole config and the run's status
    OUT/<arm>/config.yaml                        the arm's resolved config
    OUT/<arm>/manifest.json                      versions, root seed, timings, status
    OUT/<arm>/metrics.parquet                    run_id, config_hash, seed, generation, metric, value, source
    OUT/<arm>/snapshots.npz                      seed 0's samples (see experiment.snapshots)
    OUT/<arm>/distributions.parquet              per-item values of per-item metrics (seed, generation, metric, value)
    OUT/<arm>/generations/                       with --save-generations: each generation's output
    OUT/<arm>/checkpoints/                       while running; removed once metrics.parquet is written
    OUT/mlflow.db, OUT/mlartifacts/, OUT/wandb/  with --tracker (see experiment.tracking)
    OUT/figures/*.png                            the report's figures as files
    OUT/report.html                              figures, config, manifest and summary in one file

The ``run_id`` column (and the manifest's ``run_id``) holds the arm's name.

Each arm is validated and its components built once (by
:func:`~.config.load_config`). After every generation of every chain, on every path
(serial, a process pool, a sweep's tasks on Ray), the same observers run in order:
the snapshot recorder, the checkpoint, then (in the driving process) the progress
bar and the user's ``on_generation`` hook, which receives a :class:`GenerationEvent`.
Rerunning the same command resumes an interrupted run from its checkpoints and
ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import platform
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import theory
from .._version import __version__
from ..chain import (
    ChainSpec,
    ChainState,
    load_real,
    run_batched,
    run_seed,
    run_sufficient,
    sufficient_problem,
)
from ..core import RealData
from ..decoding import Decoding
from ..errors import ConfigError, DataError, ResultsError
from ..io import file_sha256
from ..regimes import Replace
from .config import Config, RunConfig, build_components, load_config
from .generations import FOLDER as GENERATIONS_FOLDER
from .generations import GenerationSaver, SaveGenerations
from .observers import Checkpointer, GenerationEvent, Hook, Notifier, Observers, Progress
from .resources import check_memory, check_workers, estimate, exit_with_parent
from .snapshots import SnapshotRecorder
from .storage import (
    LOCK_FILE,
    METRIC_COLUMNS,
    FolderLock,
    data_digests,
    read_arm_manifest,
    read_metrics,
    read_run_manifest,
    read_stored_config,
    write_json,
    write_metrics,
    write_table,
    write_yaml,
)

logger = logging.getLogger(__name__)


@dataclass
class ArmResult:
    """One arm's results."""

    name: str
    directory: Path
    config: RunConfig
    frame: pd.DataFrame
    #: ``"batched"`` (all seeds in one vectorized chain) or ``"per-seed"``.
    execution: str
    elapsed: float
    resumed: bool
    #: By seed: the generation from which it had nothing left to train on.
    halted: dict[int, int] = field(default_factory=dict)


@dataclass
class RunResult:
    """A run's directory, its config and each arm's results."""

    directory: Path
    config: Config
    arms: list[ArmResult]
    #: ``report.html``, or ``None`` if it was not asked for or could not be drawn.
    report: Path | None = None

    def metrics(self) -> pd.DataFrame:
        return pd.concat([a.frame for a in self.arms], ignore_index=True)


@dataclass
class Arm:
    """One arm, ready to run: its config, its chain and the path it takes."""

    config: RunConfig
    spec: ChainSpec
    batched: bool

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def execution(self) -> str:
        if self.config.batched == "sufficient":
            return "sufficient"
        return "batched" if self.batched else "per-seed"

    @functools.cached_property
    def data_files(self) -> dict[str, str]:
        """Each user data file the arm reads and the SHA-256 of its bytes."""
        try:
            return data_digests(self.spec.data.files())
        except ResultsError as exc:
            raise ConfigError(f"config field 'data' (arm {self.name!r}): {exc}") from None

    @property
    def data_digest(self) -> str:
        """One digest of :attr:`data_files` (``""`` when the data are not files)."""
        if not self.data_files:
            return ""
        blob = json.dumps(self.data_files, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def versions() -> dict[str, str]:
    import scipy
    import sklearn

    return {
        "collapselab": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def make_spec(config: RunConfig, parts: dict[str, Any] | None = None) -> ChainSpec:
    """The chain of ``config``, from its built components (built here if not given)."""
    parts = parts if parts is not None else build_components(config)
    return ChainSpec(
        data=parts["data"],
        model=parts["model"],
        regime=parts["regime"],
        metrics=parts["metrics"],
        curators=parts["curators"],
        oversample=config.oversample,
        samples_per_generation=config.samples_per_generation,
        generations=config.generations,
        real_samples=config.resolved_real_samples(),
        root_seed=config.root_seed,
        decoding=Decoding.from_config(config.decoding.model_dump())
        if config.decoding is not None
        else None,
    )


def prepare(config: Config) -> list[Arm]:
    """Every arm of ``config`` with its chain, from the components built at loading."""
    return [
        Arm(arm, spec, uses_batched_path(arm, spec))
        for arm, parts in zip(config.arm_configs(), config.components(), strict=True)
        for spec in [make_spec(arm, parts)]
    ]


def uses_batched_path(config: RunConfig, spec: ChainSpec) -> bool:
    if config.batched == "sufficient":
        problem = sufficient_problem(spec)
        if problem is None and not isinstance(spec.regime, Replace):
            problem = f"it simulates the replace chain, not regime {config.regime.id!r}"
        if problem is not None:
            raise ConfigError(f"config field 'batched': sufficient cannot run here: {problem}")
        return True
    per_seed_regime = not type(spec.regime).batched
    available = (
        type(spec.model).batched_class is not None and not spec.curators and not per_seed_regime
    )
    if config.batched == "yes" and not available:
        why = (
            "curators filter each seed differently"
            if spec.curators
            else f"regime {config.regime.id!r} runs seed by seed"
            if per_seed_regime
            else "it has no batched path"
        )
        raise ConfigError(
            f"config field 'batched': model {config.model.id!r} cannot run batched here ({why}); "
            "use batched: auto"
        )
    return available and config.batched != "no"


# ---------------------------------------------------------------------------
# One seed's chain, in whatever process this is.
# ---------------------------------------------------------------------------


@dataclass
class _SeedJob:
    """One seed of a per-seed arm: what a worker process needs (picklable)."""

    arm: str
    spec: ChainSpec
    seed: int
    checkpoint: Checkpointer
    snapshots: SnapshotRecorder
    saver: GenerationSaver | None = None


#: In a worker process of the local pool: the queue that carries events to the driver.
_worker_events: Any = None


def _init_worker(events: Any) -> None:
    global _worker_events
    _worker_events = events
    exit_with_parent()


def _run_job(
    job: _SeedJob,
    notify: Callable[[GenerationEvent], None] | None,
    state: ChainState | None = None,
    real: RealData | None = None,
) -> ChainState:
    """Run (or resume) one seed with its observers; what it leaves for the results."""
    if state is None:
        state = _resume(job.checkpoint, job.snapshots, job.seed)
    observers = Observers(job.arm, job.seed, job.checkpoint, job.snapshots, notify, job.saver)
    return _results_only(run_seed(job.spec, job.seed, state, observers, real=real))


def _resume(checkpoint: Checkpointer, snapshots: SnapshotRecorder, seed: int | None) -> Any:
    """The chain's checkpoint if it and the snapshot parts written before it are intact;
    else ``None`` (the chain starts over, to the same results)."""
    state = checkpoint.load()
    if state is not None and not snapshots.intact(seed, state):
        return None
    return state


def _pool_job(job: _SeedJob) -> ChainState:
    """:func:`_run_job` in a pool worker: one BLAS thread, events queued to the driver."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # workers share the cores; see run()
        return _run_job(job, _worker_events.put if _worker_events is not None else None)


def run_seed_task(arm: Arm, directory: Path, seed: int) -> None:
    """One seed of a per-seed arm as a sweep task: it leaves its final checkpoint (and
    snapshot parts) in ``directory``, from which :func:`run` assembles the arm."""
    _run_job(_seed_job(arm, directory, seed), None)


def _seed_job(
    arm: Arm, directory: Path, seed: int, saving: SaveGenerations | None = None
) -> _SeedJob:
    config_hash = arm.config.config_hash()
    checkpoints = directory / "checkpoints"
    return _SeedJob(
        arm.name,
        arm.spec,
        seed,
        Checkpointer(
            checkpoints / f"seed-{seed:05d}.ckpt",
            arm.config,
            config_hash,
            arm=arm.name,
            seed=seed,
            data=arm.data_digest,
        ),
        _recorder(arm, checkpoints, config_hash),
        _saver(arm, directory, saving, seed),
    )


def _saver(
    arm: Arm, directory: Path, saving: SaveGenerations | None, seed: int | None
) -> GenerationSaver | None:
    """The saver of ``--save-generations`` for a chain of ``seed`` (``None``: every seed)."""
    if saving is None or (seed is not None and not saving.wants(seed)):
        return None
    return GenerationSaver(directory / GENERATIONS_FOLDER, arm.spec.model.kind, saving)


def _recorder(arm: Arm, checkpoints: Path, config_hash: str) -> SnapshotRecorder:
    return SnapshotRecorder(
        checkpoints / "snapshots",
        arm.config.generations,
        arm.spec.model.kind,
        config_hash,
        spec=arm.spec,
    )


def _results_only(state: ChainState) -> ChainState:
    """What a finished seed leaves for the results: its values, without models or data."""
    return ChainState(
        values=state.values, distributions=state.distributions, halted_at=state.halted_at
    )


# ---------------------------------------------------------------------------
# Results as tidy frames.
# ---------------------------------------------------------------------------


def _frame(run_id: str, config_hash: str, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy rows from ``values[metric]``, an array (seeds, generations); ``run_id`` is
    the arm's name."""
    parts = []
    for metric, grid in values.items():
        seeds, generations = grid.shape
        parts.append(
            pd.DataFrame(
                {
                    "seed": np.repeat(np.arange(seeds), generations),
                    "generation": np.tile(np.arange(generations), seeds),
                    "metric": metric,
                    "value": grid.reshape(-1),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "config_hash", config_hash)
    frame.insert(0, "run_id", run_id)
    frame["source"] = "simulation"
    return frame


def distributions_frame(run_id: str, per_seed: dict[int, dict[str, list[Any]]]) -> pd.DataFrame:
    """Tidy rows (run_id, seed, generation, metric, value) of per-item metric values,
    from ``per_seed[seed][metric]``: one array per generation."""
    parts = [
        pd.DataFrame({"seed": seed, "generation": generation, "metric": metric, "value": values})
        for seed, metrics in sorted(per_seed.items())
        for metric, arrays in metrics.items()
        for generation, values in enumerate(arrays)
    ]
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "run_id", run_id)
    return frame.astype({"seed": "int64", "generation": "int64", "value": "float64"})


def theory_frame(
    config: RunConfig,
    spec: ChainSpec,
    run_id: str,
    config_hash: str,
    directory: Path | None = None,
    truth: dict[str, Any] | None = None,
) -> pd.DataFrame | None:
    """Theory rows of the metrics whose declared quantity has a closed form in this run.

    With ``directory``, ``theory_notes.json`` there records the closed-form family, the
    metrics given theory rows and, for every other metric that declares a
    ``theory_quantity``, the one sentence that says why it has none.
    """
    result = theory.expected(
        theory.Setting(
            model=spec.model,
            regime=spec.regime,
            truth=load_real(spec, 0).truth if truth is None else truth,
            n0=spec.real_samples,
            n=spec.samples_per_generation,
            generations=spec.generations,
            decoding=spec.decoding,
            curators=tuple(spec.curators),
        )
    )
    curves, missing = {}, {}
    for name, metric in spec.metrics.items():
        quantity = metric.theory_quantity
        if quantity is None:
            continue
        if quantity in result.curves:
            curves[name] = result.curves[quantity]
        else:
            missing[name] = result.why_not(quantity)
    if directory is not None:
        notes = {"closed_form": result.closed_form, "written": sorted(curves), "none": missing}
        write_json(directory / "theory_notes.json", notes)
    if not curves:
        return None
    frame = _frame(run_id, config_hash, {k: v[None, :] for k, v in curves.items()})
    frame["seed"] = -1
    frame["source"] = "theory"
    return frame


# ---------------------------------------------------------------------------
# A run, and each of its arms.
# ---------------------------------------------------------------------------


#: How a conflict with a run folder is resolved from the command line.
OVERWRITE_HINT = "choose another --out, or pass --overwrite to replace it"

#: What writes a run's report: ``reporter(run_dirs, out, figures)`` draws the run
#: folders into the HTML file ``out`` (its figures also as PNG files under ``figures``)
#: and returns ``out``, or warns and returns ``None`` if it cannot draw them, such as
#: :func:`collapselab.report.html.write_report_safely`. The caller above both layers
#: (the command line, :func:`collapselab.run`) passes it in: experiment never imports
#: report.
Reporter = Callable[[list[Path], Path, Path], Path | None]


def run(
    config: Config | str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    on_generation: Hook | None = None,
    reporter: Reporter | None = None,
    threads: int | None = 1,
    max_memory: int | str | None = "auto",
    heartbeat: float | None = None,
    save_generations: SaveGenerations | str | None = None,
    tracker: str | None = None,
) -> RunResult:
    """Run every arm of ``config`` into ``out`` (default ``runs/<name>``), resuming if possible.

    ``on_generation(event)`` is called in this process after each completed
    generation of every chain, also of those run by ``workers`` processes (a
    :class:`GenerationEvent`: arm, seed or ``None`` on the batched path, generation
    and that generation's values). With a ``reporter`` (a :data:`Reporter`), the run
    ends by writing ``report.html`` with it (after every result is saved; a report that
    cannot be drawn only warns), also when it resumes a complete run that has none.
    ``threads`` caps the BLAS/OpenMP thread pools (``None``: leave them
    alone). One thread is much faster for the small fits of a chain: on a busy
    2-core machine a scikit-learn GMM fit took 7 ms with one thread and 170 ms with
    the default pools. Parallelism comes from ``workers`` processes across seeds
    instead. ``progress`` draws a progress bar on the terminal; ``heartbeat`` (seconds)
    logs a plain line per arm that often instead (``logging``, level INFO, logger
    ``collapselab.experiment.observers``), for logs that are files (a SLURM job's).

    Before anything is written, everything that can refuse the run does: the config,
    ``workers`` (at most a few per CPU), the memory estimate against ``max_memory``
    (``"auto"``: what the machine has; a number of bytes; ``None`` or ``"off"``: no
    check; see :mod:`~.resources`), seed 0's real data of every arm, the folder's lock
    (one run per folder) and every conflict with what the folder holds (another
    config's arms, arms this config lacks, changed data files, a sweep). A run whose
    arms are all complete writes nothing. ``save_generations`` also writes what each
    generation produced under ``<arm>/generations/`` (see :mod:`~.generations`): a
    :class:`~.generations.SaveGenerations`, or ``"all"`` or seeds like ``"0,1"``; it
    changes no result. ``tracker`` (``"mlflow"`` or ``"wandb"``) logs each arm as a
    tracker run (see :mod:`~.tracking`). SIGTERM ends a run as Ctrl-C does: the
    manifest says ``interrupted`` and the same command resumes it.
    """
    from threadpoolctl import threadpool_limits

    if not isinstance(config, Config):
        config = load_config(config)
    if isinstance(save_generations, str):
        save_generations = SaveGenerations.parse(save_generations)
    bar = Progress(progress, heartbeat)  # checks heartbeat before anything runs
    logger = None
    if tracker is not None:
        from .tracking import open_tracker

        logger = open_tracker(tracker, config, run_directory(out, config.name))
        on_generation = _both(logger, on_generation)
    try:
        with threadpool_limits(limits=threads), _terminate_as_interrupt():
            result = _run_all(
                config,
                out,
                workers,
                overwrite,
                bar,
                on_generation,
                reporter,
                max_memory,
                save_generations,
            )
    except BaseException:
        if logger is not None:
            logger.abort()
        raise
    if logger is not None:
        logger.finish(result)
    return result


def _both(first: Hook, second: Hook | None) -> Hook:
    """One hook that calls ``first`` (the tracker), then ``second`` (the user's)."""
    if second is None:
        return first

    def hook(event: GenerationEvent) -> None:
        first(event)
        second(event)

    return hook


class FolderConflict(ResultsError):
    """What a run folder holds conflicts with the run: ``problem``, then how to resolve it."""

    def __init__(self, problem: str, hint: str = "") -> None:
        hint = hint or OVERWRITE_HINT
        super().__init__(f"{problem}; {hint}")
        self.problem = problem


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so it ends as an interrupt does."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_directory(out: str | Path | None, name: str) -> Path:
    """The run folder: ``out``, or ``runs/<name>``. An empty ``out`` and the current
    folder are refused (a run writes ``config.yaml`` and ``manifest.json`` there)."""
    if out is None:
        return Path("runs") / name
    if not str(out).strip():
        raise ResultsError("--out is empty; name a folder for the run (e.g. runs/NAME)")
    directory = Path(out)
    if directory.resolve() == Path.cwd().resolve():
        raise ResultsError(
            f"--out {str(out)!r} is the current folder; name a folder for the run (e.g. runs/NAME)"
        )
    return directory


def _run_all(
    config: Config | str | Path,
    out: str | Path | None,
    workers: int,
    overwrite: bool,
    progress: Progress,
    on_generation: Hook | None,
    reporter: Reporter | None,
    max_memory: int | str | None,
    saving: SaveGenerations | None,
) -> RunResult:
    if not isinstance(config, Config):
        config = load_config(config)
    directory = run_directory(out, config.name)
    arms = prepare(config)
    for arm in arms if saving is not None else []:
        saving.check(arm.config.seeds, arm.name, arm.spec.model.kind)
    check_workers(workers)
    check_memory(estimate(config, [arm.batched for arm in arms], workers), max_memory)
    _check_folder(directory, arms)
    with FolderLock(directory) as lock:
        plans = _plan(directory, config, arms, overwrite)
        done = [p.result for p in plans.arms if p.result is not None]
        if saving is not None:
            _warn_not_saved(plans)
        if plans.nothing_to_do and len(done) == len(arms):
            result = RunResult(directory=directory, config=config, arms=done)
            if reporter is not None and not (directory / "report.html").exists():
                lock.claim()
                result.report = _write_report(directory, reporter)
            elif reporter is not None:
                result.report = directory / "report.html"
            return result
        real = preflight([plan.arm for plan in plans.arms if plan.result is None])
        lock.claim()
        for stale in plans.remove:
            shutil.rmtree(stale, ignore_errors=True)
        return _write_run(
            directory, config, plans, real, workers, progress, on_generation, reporter, saving
        )


def _warn_not_saved(plans: _RunPlan) -> None:
    """Complete arms are read back, not rerun: their generations cannot be saved now."""
    import warnings

    for plan in plans.arms:
        if plan.result is not None and not (plan.result.directory / GENERATIONS_FOLDER).is_dir():
            warnings.warn(
                f"arm {plan.arm.name!r} is complete, so --save-generations saved nothing for "
                "it; run it into a new --out to save its generations",
                UserWarning,
                stacklevel=4,
            )


def _write_run(
    directory: Path,
    config: Config,
    plans: _RunPlan,
    real: dict[str, RealData],
    workers: int,
    progress: Progress,
    on_generation: Hook | None,
    reporter: Reporter | None,
    saving: SaveGenerations | None = None,
) -> RunResult:
    manifest_path = directory / "manifest.json"
    manifest = {
        "name": config.name,
        "description": config.description,
        "arms": [plan.arm.name for plan in plans.arms],
        "root_seed": config.root_seed,
        "status": "running",
        "started": _now(),
        "versions": versions(),
    }
    write_json(manifest_path, manifest)
    write_yaml(directory / "config.yaml", config.model_dump(mode="json"))
    results = []
    try:
        with progress as bar:
            for plan in plans.arms:
                if plan.result is not None:
                    results.append(plan.result)
                    continue
                notifier = _notifier(plan.arm, bar, on_generation)
                results.append(
                    run_arm(
                        plan.arm,
                        directory / plan.arm.name,
                        workers,
                        overwrite=plan.replace,
                        notifier=notifier,
                        real_0=real.pop(plan.arm.name, None),
                        saving=saving,
                    )
                )
    except KeyboardInterrupt:
        manifest.update(status="interrupted", interrupted=_now())
        write_json(manifest_path, manifest)
        raise
    except Exception as exc:
        manifest.update(status="failed", error=str(exc))
        try:
            write_json(manifest_path, manifest)
        except ResultsError:
            pass  # the disk that failed the run may fail this too; the first error matters
        raise
    manifest.update(status="complete", finished=_now())
    write_json(manifest_path, manifest)
    result = RunResult(directory=directory, config=config, arms=results)
    if reporter is not None:
        result.report = _write_report(directory, reporter)
    return result


def _write_report(directory: Path, reporter: Reporter) -> Path | None:
    return reporter([directory], directory / "report.html", directory / "figures")


def preflight(arms: list[Arm]) -> dict[str, RealData]:
    """Seed 0's real data of each arm to run, loaded before anything is written: a
    missing file, a corpus too small to split or unreadable data is a config error
    here, not a failed run."""
    real = {}
    for arm in arms:
        try:
            real[arm.name] = load_real(arm.spec, 0)
        except DataError as exc:
            raise ConfigError(f"config field 'data' (arm {arm.name!r}): {exc}") from None
    return real


def check_run_folder(directory: Path, config: Config, arms: list[Arm]) -> None:
    """Refuse, without writing, what :func:`run` would refuse about ``directory``: a
    file, a sweep's folder, a folder of other files, another config's or other data's
    arms, arms this config lacks (a sweep checks its points with it first)."""
    _check_folder(directory, arms)
    if directory.is_dir():
        _plan(directory, config, arms, overwrite=False)


def _check_folder(directory: Path, arms: list[Arm]) -> None:
    """Refuse an output that is not a folder, a sweep's folder, or a folder of other
    files (a run writes ``config.yaml`` and ``manifest.json`` at its top)."""
    if directory.exists() and not directory.is_dir():
        raise ResultsError(f"cannot write {str(directory)!r}: it is a file; name a folder")
    if not directory.is_dir():
        return
    if (directory / "sweep.json").exists():
        raise FolderConflict(
            f"{str(directory)!r} is a sweep's folder (it holds sweep.json): a run there would "
            "mix with the sweep",
            f"choose another --out (e.g. {directory!s}-run)",
        )
    if (directory / "manifest.json").exists():
        return
    ours = {arm.name for arm in arms} | {LOCK_FILE}
    others = sorted(
        p.name for p in directory.iterdir() if p.name not in ours and not p.name.endswith(".tmp")
    )
    if others:
        raise FolderConflict(
            f"{str(directory)!r} holds files that are not a collapselab run (e.g. {others[0]!r})",
            "choose a new or empty folder for --out",
        )


@dataclass
class _ArmPlan:
    arm: Arm
    #: The arm's results when its folder holds them complete, intact, of this config and data.
    result: ArmResult | None = None
    #: ``--overwrite`` replaces what the arm's folder holds (another config's run).
    replace: bool = False


@dataclass
class _RunPlan:
    arms: list[_ArmPlan]
    #: Folders of arms the folder's run had and this config does not (with ``--overwrite``).
    remove: list[Path] = field(default_factory=list)
    #: Every arm complete, and the folder's manifest and config say so already.
    nothing_to_do: bool = False


def _plan(directory: Path, config: Config, arms: list[Arm], overwrite: bool) -> _RunPlan:
    """What the run will do with each arm, checked against the folder before any write:
    every conflict is refused here (or, with ``overwrite``, scheduled for replacing)."""
    try:
        previous = read_run_manifest(directory / "manifest.json")
    except ResultsError:
        if not overwrite:
            raise
        previous = None
    plans = [_ArmPlan(arm, *_arm_status(arm, directory / arm.name, overwrite)) for arm in arms]
    names = {arm.name for arm in arms}
    dropped = [a for a in (previous.arms or []) if a not in names] if previous else []
    dropped = [a for a in dropped if (directory / a).exists()]
    if dropped and not overwrite:
        raise FolderConflict(
            f"{str(directory)!r} holds arm {dropped[0]!r}, which this config does not have",
            "run the config that has it, choose another --out, or pass --overwrite to drop it",
        )
    complete = all(p.result is not None for p in plans)
    same = (
        previous is not None
        and previous.status == "complete"
        and previous.arms == [arm.name for arm in arms]
        and read_stored_config(directory / "config.yaml") == config.model_dump(mode="json")
    )
    return _RunPlan(plans, [directory / a for a in dropped], nothing_to_do=complete and same)


def _arm_status(arm: Arm, directory: Path, overwrite: bool) -> tuple[ArmResult | None, bool]:
    """``(results if complete, whether to replace the folder)``; refuses (without
    ``overwrite``) a folder of another config, of other data, or damaged."""
    config_hash = arm.config.config_hash()
    try:
        previous = read_arm_manifest(directory / "manifest.json")
    except ResultsError as exc:
        if overwrite:
            return None, True
        raise FolderConflict(str(exc).split("; the file was")[0]) from None
    if previous is None:
        return None, False
    if previous.config_hash not in (None, config_hash):
        if overwrite:
            return None, True
        raise FolderConflict(
            f"{str(directory)!r} holds a run of a different config (hash "
            f"{previous.config_hash}, now {config_hash})"
        )
    if previous.data_files and previous.data_files != arm.data_files:
        if overwrite:
            return None, True
        changed = sorted(
            set(previous.data_files) ^ set(arm.data_files)
            | {k for k in previous.data_files if arm.data_files.get(k) != previous.data_files[k]}
        )
        raise FolderConflict(
            f"{str(directory)!r} was run on other data: {changed[0]!r} changed since",
            "pass --overwrite to redo it with the data as they are now, or restore them",
        )
    if previous.status != "complete":
        return None, False
    try:
        frame = read_metrics(directory / "metrics.parquet", previous.metrics_sha256)
    except ResultsError:
        return None, False  # corrupt or missing results: redo them
    halted = {int(s): g for s, g in previous.halted.items()}
    elapsed = previous.elapsed_s or 0.0
    result = ArmResult(arm.name, directory, arm.config, frame, arm.execution, elapsed, True, halted)
    return result, False


def run_arm(
    arm: Arm,
    directory: Path,
    workers: int = 1,
    overwrite: bool = False,
    notifier: Notifier | None = None,
    real_0: RealData | None = None,
    saving: SaveGenerations | None = None,
) -> ArmResult:
    """Run (or resume, or read back when complete) one arm into ``directory``.

    Refuses (without ``overwrite``) a folder that holds another config's run or a run
    of other data, before writing anything.
    """
    config_hash = arm.config.config_hash()
    done, replace = _arm_status(arm, directory, overwrite)
    if done is not None:
        logger.debug("%s: already complete in %s, read back", arm.name, directory)
        return done
    if replace:
        shutil.rmtree(directory, ignore_errors=True)
    real_0 = real_0 if real_0 is not None else load_real(arm.spec, 0)
    write_yaml(directory / "config.yaml", arm.config.model_dump(mode="json"))
    manifest: dict[str, Any] = {
        "run_id": arm.name,
        "config_hash": config_hash,
        "root_seed": arm.config.root_seed,
        "seeds": arm.config.seeds,
        "generations": arm.config.generations,
        "path": arm.execution,
        "status": "running",
        "started": _now(),
        "versions": versions(),
    }
    if arm.data_files:
        manifest["data_files"] = arm.data_files
    write_json(directory / "manifest.json", manifest)
    start = time.perf_counter()
    logger.debug(
        "%s: %d seeds x %d generations (%s path) -> %s",
        arm.name,
        arm.config.seeds,
        arm.config.generations,
        arm.execution,
        directory,
    )
    notifier = notifier or _notifier(arm, Progress(False), None)
    try:
        if arm.batched:
            values, items, halted, resumed = _run_batched_arm(
                arm, directory, notifier, real_0, saving
            )
        else:
            values, items, halted, resumed = _run_per_seed_arm(
                arm, directory, workers, notifier, real_0, saving
            )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the arm's manifest says so too
        manifest.update(status="interrupted", interrupted=_now())
        write_json(directory / "manifest.json", manifest)
        raise
    saver = _saver(arm, directory, saving, None)
    if saver is not None:
        saver.finish()
    if halted:
        manifest["halted"] = {str(s): g for s, g in halted.items()}  # by seed
    frame = _write_results(arm, directory, config_hash, values, items, real_0)
    elapsed = time.perf_counter() - start
    manifest.update(
        status="complete",
        finished=_now(),
        elapsed_s=round(elapsed, 3),
        resumed=resumed,
        metrics_sha256=file_sha256(directory / "metrics.parquet"),
    )
    write_json(directory / "manifest.json", manifest)
    shutil.rmtree(directory / "checkpoints", ignore_errors=True)
    logger.debug(
        "%s: complete in %.1f s%s",
        arm.name,
        elapsed,
        " (resumed from checkpoints)" if resumed else "",
    )
    return ArmResult(
        arm.name, directory, arm.config, frame, arm.execution, elapsed, resumed, halted
    )


def _notifier(arm: Arm, progress: Progress, hook: Hook | None) -> Notifier:
    seeds, generations = arm.config.seeds, arm.config.generations
    return Notifier(arm.name, seeds, generations, arm.batched, progress, hook)


def _run_batched_arm(
    arm: Arm,
    directory: Path,
    notifier: Notifier,
    real_0: RealData,
    saving: SaveGenerations | None = None,
) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list[Any]]], dict[int, int], bool]:
    """Every seed in one vectorized chain."""
    config_hash = arm.config.config_hash()
    checkpoints = directory / "checkpoints"
    checkpoint = Checkpointer(
        checkpoints / "batch.ckpt", arm.config, config_hash, arm=arm.name, data=arm.data_digest
    )
    recorder = _recorder(arm, checkpoints, config_hash)
    state = _resume(checkpoint, recorder, None)
    resumed = state is not None
    if state is not None:
        notifier.resumed(None, state.generation + 1)
    saver = _saver(arm, directory, saving, None)
    observers = Observers(arm.name, None, checkpoint, recorder, notifier, saver)
    run = run_sufficient if arm.config.batched == "sufficient" else run_batched
    state = run(arm.spec, arm.config.seeds, state, observers, real_0=real_0)
    values = {k: np.stack(v, axis=1) for k, v in state.values.items()}
    items = {
        seed: {name: [g[seed] for g in gens] for name, gens in state.distributions.items()}
        for seed in range(arm.config.seeds)
    }
    return values, items, {}, resumed


def _run_per_seed_arm(
    arm: Arm,
    directory: Path,
    workers: int,
    notifier: Notifier,
    real_0: RealData,
    saving: SaveGenerations | None = None,
) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list[Any]]], dict[int, int], bool]:
    """Seed by seed, here or in a pool of ``workers`` processes."""
    seeds, generations = arm.config.seeds, arm.config.generations
    per_seed: dict[int, ChainState] = {}
    pending: list[tuple[_SeedJob, ChainState | None]] = []
    resumed = False
    for seed in range(seeds):
        job = _seed_job(arm, directory, seed, saving)
        state = _resume(job.checkpoint, job.snapshots, seed)
        if state is not None:
            resumed = True
            notifier.resumed(seed, state.generation + 1)
        if state is not None and state.generation == generations - 1:
            per_seed[seed] = _results_only(state)
        else:
            pending.append((job, state))
    if workers > 1 and len(pending) > 1:
        per_seed.update(_run_pool([job for job, _ in pending], workers, notifier))
    else:
        for job, state in pending:
            real = real_0 if job.seed == 0 else None
            per_seed[job.seed] = _run_job(job, notifier, state, real)
    # every recorded series: the metrics and any curator statistics (NaN where a
    # seed halted before a series began)
    names = dict.fromkeys(n for s in range(seeds) for n in per_seed[s].values)
    missing = [float("nan")] * generations
    values = {
        name: np.array([per_seed[s].values.get(name, missing) for s in range(seeds)], dtype=float)
        for name in names
    }
    items = {seed: per_seed[seed].distributions for seed in range(seeds)}
    halted = {s: g for s in range(seeds) if (g := per_seed[s].halted_at) is not None}
    return values, items, halted, resumed


def _run_pool(jobs: list[_SeedJob], workers: int, notifier: Notifier) -> dict[int, ChainState]:
    """Seeds across a process pool (never more processes than seeds); their events
    come back through a queue and are handed to ``notifier`` here as they arrive.
    Workers exit when this process dies (:func:`~.resources.exit_with_parent`); on an
    interrupt they are stopped at once instead of finishing their seeds."""
    events = multiprocessing.get_context().Queue()
    out: dict[int, ChainState] = {}

    def drain() -> None:
        while True:
            try:
                notifier(events.get_nowait())
            except queue.Empty:
                return

    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), initializer=_init_worker, initargs=(events,)
    )
    try:
        futures: dict[Future[ChainState], int] = {
            pool.submit(_pool_job, job): job.seed for job in jobs
        }
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for future in finished:
                out[futures[future]] = future.result()
        time.sleep(0.05)  # the queue's feeder thread may still be flushing
        drain()
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return out


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (an interrupt, a failure)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def chance_frame(
    arm: Arm, config_hash: str, real_0: RealData, generations: list[int]
) -> pd.DataFrame | None:
    """Rows of source ``chance`` (seed -1, each recorded generation) for each metric
    that declares a chance level on seed 0's real data (:meth:`Metric.chance`)."""
    rows = []
    for name, metric in arm.spec.metrics.items():
        level = metric.chance(real_0)
        if level is None:
            continue
        for generation in generations:
            rows.append((arm.name, config_hash, -1, int(generation), name, level, "chance"))
    if not rows:
        return None
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def _write_results(
    arm: Arm,
    directory: Path,
    config_hash: str,
    values: dict[str, np.ndarray],
    items: dict[int, dict[str, list[Any]]],
    real_0: RealData,
) -> pd.DataFrame:
    """``metrics.parquet`` (with theory rows), ``distributions.parquet`` and
    ``snapshots.npz``; the metrics frame."""
    frame = _frame(arm.name, config_hash, values)
    theory_rows = theory_frame(
        arm.config, arm.spec, arm.name, config_hash, directory, truth=real_0.truth
    )
    if theory_rows is not None:
        frame = pd.concat([frame, theory_rows], ignore_index=True)
    chance_rows = chance_frame(arm, config_hash, real_0, sorted(set(frame["generation"])))
    if chance_rows is not None:
        frame = pd.concat([frame, chance_rows], ignore_index=True)
    write_metrics(directory / "metrics.parquet", frame)
    if any(items.values()):
        write_table(directory / "distributions.parquet", distributions_frame(arm.name, items))
    _recorder(arm, directory / "checkpoints", config_hash).finish(
        directory / "snapshots.npz", real_0
    )
    return frame
