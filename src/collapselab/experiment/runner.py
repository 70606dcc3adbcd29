"""Run a config: every arm, every seed, with checkpoints, resume and theory rows.

Layout of a run directory::

    OUT/config.yaml, OUT/manifest.json          the whole config and the run's status
    OUT/<arm>/config.yaml                        the arm's resolved config
    OUT/<arm>/manifest.json                      versions, root seed, timings, status
    OUT/<arm>/metrics.parquet                    run_id, config_hash, seed, generation, metric, value, source
    OUT/<arm>/snapshots.npz                      seed 0's samples at generation 0, middle, last (and real)
    OUT/<arm>/distributions.parquet              per-item values of per-item metrics (seed, generation, metric, value)
    OUT/<arm>/checkpoints/                       while running; removed once metrics.parquet is written
    OUT/figures/*.png                            the report's figures as files
    OUT/report.html                              figures, config, manifest and summary in one file

Rerunning the same command resumes an interrupted run from its checkpoints and
ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import __version__, theory
from ..chain import ChainSpec, ChainState, load_real, run_batched, run_seed
from ..decoding import Decoding
from ..errors import ConfigError, ResultsError
from .config import Config, RunConfig, build_components, load_config
from .storage import (
    load_checkpoint,
    read_json,
    read_metrics,
    save_checkpoint,
    write_json,
    write_metrics,
    write_table,
    write_yaml,
)

if TYPE_CHECKING:
    from ..report.snapshots import SnapshotRecorder

#: Without ``checkpoint_every``, a chain checkpoints after this much work.
CHECKPOINT_SECONDS = 10.0

Hook = Callable[[str, int | None, int], None]


@dataclass
class ArmResult:
    """One arm's results."""

    name: str
    directory: Path
    config: RunConfig
    frame: pd.DataFrame
    path: str  # "batched" or "per-seed"
    elapsed: float
    resumed: bool


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


def make_spec(config: RunConfig) -> ChainSpec:
    parts = build_components(config)
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


def uses_batched_path(config: RunConfig, spec: ChainSpec) -> bool:
    stateful = type(spec.regime).stateful
    available = type(spec.model).batched_class is not None and not spec.curators and not stateful
    if config.batched == "yes" and not available:
        why = (
            "curators filter each seed differently"
            if spec.curators
            else "regime keeps per-seed state"
            if stateful
            else "it has no batched path"
        )
        raise ConfigError(
            f"config field 'batched': model {config.model.id!r} cannot run batched here ({why}); "
            "use batched: auto"
        )
    return available and config.batched != "no"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, recorded in the manifest beside ``metrics.parquet``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_digest(path: Path, expected: str | None) -> None:
    """Raise :class:`ResultsError` if ``path`` lost the digest recorded when it was written.

    Parquet notices a truncated file but not every flipped byte inside a page, so a
    completed arm is trusted only while its bytes are the ones written.
    """
    if expected is None:  # written before digests were recorded
        return
    try:
        actual = file_sha256(path)
    except OSError:
        actual = None
    if actual != expected:
        raise ResultsError(f"{str(path)!r} does not match its recorded checksum; rerun to redo it")


class _Checkpointer:
    """Decides when to save a chain's state: every k generations, or every few seconds."""

    def __init__(self, path: Path, config: RunConfig, config_hash: str) -> None:
        self.path = path
        self.every = config.checkpoint_every
        self.last_generation = config.generations - 1
        self.config_hash = config_hash
        self.last_save = time.monotonic()

    def load(self) -> ChainState | None:
        saved = load_checkpoint(self.path)
        if not isinstance(saved, dict) or saved.get("config_hash") != self.config_hash:
            return None
        return saved["state"]

    def maybe_save(self, state: ChainState) -> None:
        due = (
            state.generation == self.last_generation
            or (self.every is not None and (state.generation + 1) % self.every == 0)
            or (self.every is None and time.monotonic() - self.last_save > CHECKPOINT_SECONDS)
        )
        if due:
            save_checkpoint(self.path, {"config_hash": self.config_hash, "state": state})
            self.last_save = time.monotonic()


def _seed_job(
    spec: ChainSpec, seed: int, checkpoint: _Checkpointer, snapshots: SnapshotRecorder
) -> ChainState:
    """Run one seed in a worker process, checkpointing as it goes."""

    def after(state: ChainState) -> None:
        snapshots.observe(seed, state)  # before the checkpoint, so a resume never misses one
        checkpoint.maybe_save(state)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # workers share the cores; see run()
        state = run_seed(spec, seed, checkpoint.load(), after)
    return _results_only(state)


def _results_only(state: ChainState) -> ChainState:
    """What a finished seed leaves for the results: its values, without models or data."""
    return ChainState(
        values=state.values, distributions=state.distributions, halted_at=state.halted_at
    )


def _frame(run_id: str, config_hash: str, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy rows from ``values[metric]``, an array (seeds, generations)."""
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
            truth=load_real(spec, 0).truth,
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


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=False,
            )

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        if self.bar is None:
            return lambda n: None
        task_id = self.bar.add_task(description, total=total)
        return lambda n: self.bar.advance(task_id, n)


def run(
    config: Config | str | Path,
    out: str | Path | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    on_generation: Hook | None = None,
    report: bool = True,
    threads: int | None = 1,
) -> RunResult:
    """Run every arm of ``config`` into ``out`` (default ``runs/<name>``), resuming if possible.

    ``on_generation(arm, seed, generation)`` is called after each completed
    generation (``seed`` is ``None`` on the batched path). With ``report``, the
    run ends by writing ``report.html`` (after every result is saved; a report
    that cannot be drawn only warns). ``threads`` caps the BLAS/OpenMP thread
    pools (``None``: leave them alone). One thread is much faster for the small
    fits of a chain: on a busy 2-core machine a scikit-learn GMM fit took 7 ms
    with one thread and 170 ms with the default pools. Parallelism comes from
    ``workers`` processes across seeds instead.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _run_all(config, out, workers, overwrite, progress, on_generation, report)


def _run_all(
    config: Config | str | Path,
    out: str | Path | None,
    workers: int,
    overwrite: bool,
    progress: bool,
    on_generation: Hook | None,
    report: bool,
) -> RunResult:
    if not isinstance(config, Config):
        config = load_config(config)
    directory = Path(out) if out is not None else Path("runs") / config.name
    arms = config.arm_configs()
    manifest_path = directory / "manifest.json"
    manifest = {
        "name": config.name,
        "description": config.description,
        "arms": [arm.name for arm in arms],
        "root_seed": config.root_seed,
        "status": "running",
        "started": _now(),
        "versions": versions(),
    }
    write_json(manifest_path, manifest)
    write_yaml(directory / "config.yaml", config.model_dump(mode="json"))
    results = []
    try:
        with _Progress(progress) as bar:
            for arm in arms:
                results.append(
                    _run_arm(arm, directory / arm.name, workers, overwrite, bar, on_generation)
                )
    except KeyboardInterrupt:
        manifest.update(status="interrupted", interrupted=_now())
        write_json(manifest_path, manifest)
        raise
    except Exception as exc:
        manifest.update(status="failed", error=str(exc))
        write_json(manifest_path, manifest)
        raise
    manifest.update(status="complete", finished=_now())
    write_json(manifest_path, manifest)
    result = RunResult(directory=directory, config=config, arms=results)
    if report:
        from ..report.html import write_report_safely

        result.report = write_report_safely(
            [directory], directory / "report.html", directory / "figures"
        )
    return result


def _run_arm(
    config: RunConfig,
    directory: Path,
    workers: int,
    overwrite: bool,
    bar: _Progress,
    on_generation: Hook | None,
) -> ArmResult:
    config_hash = config.config_hash()
    manifest_path = directory / "manifest.json"
    previous = read_json(manifest_path)
    if previous is not None and previous.get("config_hash") != config_hash:
        if not overwrite:
            raise ResultsError(
                f"{str(directory)!r} holds a run of a different config (hash {previous.get('config_hash')}, "
                f"now {config_hash}); choose another --out, or pass --overwrite to replace it"
            )
        shutil.rmtree(directory)
        previous = None
    spec = make_spec(config)
    batched = uses_batched_path(config, spec)
    path = "batched" if batched else "per-seed"
    metrics_path = directory / "metrics.parquet"
    if previous is not None and previous.get("status") == "complete":
        try:
            check_digest(metrics_path, previous.get("metrics_sha256"))
            frame = read_metrics(metrics_path)
            return ArmResult(
                config.name, directory, config, frame, path, previous.get("elapsed_s", 0.0), True
            )
        except ResultsError:
            pass  # corrupt or missing results: redo them below
    write_yaml(directory / "config.yaml", config.model_dump(mode="json"))
    manifest = {
        "run_id": config.name,
        "config_hash": config_hash,
        "root_seed": config.root_seed,
        "seeds": config.seeds,
        "generations": config.generations,
        "path": path,
        "status": "running",
        "started": _now(),
        "versions": versions(),
    }
    write_json(manifest_path, manifest)
    start = time.perf_counter()
    checkpoints = directory / "checkpoints"
    from ..report.snapshots import SnapshotRecorder

    snapshots = SnapshotRecorder(
        checkpoints / "snapshots", config.generations, spec.model.kind, config_hash
    )
    advance = bar.task(config.name, config.seeds * config.generations)
    resumed = False
    if batched:
        checkpointer = _Checkpointer(checkpoints / "batch.ckpt", config, config_hash)
        state = checkpointer.load()
        resumed = state is not None
        if state is not None:
            advance(config.seeds * (state.generation + 1))

        def after(state: ChainState) -> None:
            snapshots.observe(None, state)
            checkpointer.maybe_save(state)
            advance(config.seeds)
            if on_generation is not None:
                on_generation(config.name, None, state.generation)

        state = run_batched(spec, config.seeds, state, after)
        values = {k: np.stack(v, axis=1) for k, v in state.values.items()}
        items = {
            seed: {name: [g[seed] for g in gens] for name, gens in state.distributions.items()}
            for seed in range(config.seeds)
        }
    else:
        per_seed: dict[int, ChainState] = {}
        pending = []
        for seed in range(config.seeds):
            checkpointer = _Checkpointer(checkpoints / f"seed-{seed:05d}.ckpt", config, config_hash)
            state = checkpointer.load()
            if state is not None:
                resumed = True
            if state is not None and state.generation == config.generations - 1:
                per_seed[seed] = _results_only(state)
                advance(config.generations)
            else:
                pending.append((seed, checkpointer, state))
        if workers > 1 and len(pending) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(_seed_job, spec, seed, ck, snapshots): seed
                    for seed, ck, _ in pending
                }
                for future in as_completed(futures):
                    per_seed[futures[future]] = future.result()
                    advance(config.generations)
        else:
            for seed, checkpointer, state in pending:

                def after(
                    state: ChainState, seed: int = seed, ck: _Checkpointer = checkpointer
                ) -> None:
                    snapshots.observe(seed, state)
                    ck.maybe_save(state)
                    advance(1)
                    if on_generation is not None:
                        on_generation(config.name, seed, state.generation)

                per_seed[seed] = _results_only(run_seed(spec, seed, state, after))
        # every recorded series: the metrics and any curator statistics (NaN where a
        # seed halted before a series began)
        names = dict.fromkeys(n for s in range(config.seeds) for n in per_seed[s].values)
        missing = [float("nan")] * config.generations
        values = {
            name: np.array(
                [per_seed[s].values.get(name, missing) for s in range(config.seeds)], dtype=float
            )
            for name in names
        }
        items = {seed: per_seed[seed].distributions for seed in range(config.seeds)}
        halted = {
            str(s): per_seed[s].halted_at
            for s in range(config.seeds)
            if per_seed[s].halted_at is not None
        }
        if halted:
            # by seed: the generation from which it had nothing to train on
            manifest["halted"] = halted
    frame = _frame(config.name, config_hash, values)
    theory_rows = theory_frame(config, spec, config.name, config_hash, directory)
    if theory_rows is not None:
        frame = pd.concat([frame, theory_rows], ignore_index=True)
    write_metrics(metrics_path, frame)
    if any(items.values()):
        write_table(directory / "distributions.parquet", distributions_frame(config.name, items))
    snapshots.finish(directory / "snapshots.npz", load_real(spec, 0))
    elapsed = time.perf_counter() - start
    manifest.update(
        status="complete",
        finished=_now(),
        elapsed_s=round(elapsed, 3),
        resumed=resumed,
        metrics_sha256=file_sha256(metrics_path),
    )
    write_json(manifest_path, manifest)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return ArmResult(config.name, directory, config, frame, path, elapsed, resumed)
