"""collapselab: simulate, measure and mitigate model collapse.

The Python API takes the arguments of the command line (``collapselab run``,
``sweep``, ``diagnose``, ``verdict``) and reads results back with :func:`load`:

>>> import collapselab as cl
>>> cl.run("quickstart", seeds=4, generations=10)  # doctest: +SKIP
>>> results = cl.load("runs/quickstart")  # doctest: +SKIP
>>> results.plot("variance")  # doctest: +SKIP

A config can be given as a :class:`~collapselab.experiment.config.Config`, a mapping of
its fields, a preset name or the path of a YAML file
(:func:`~collapselab.experiment.config.config_data`). Every error a user can cause is
a :class:`~collapselab.errors.CollapseLabError` with one line naming what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .registry import list_ids, make, register

if TYPE_CHECKING:
    from .experiment.config import ConfigSource
    from .experiment.observers import Hook
    from .experiment.runner import RunResult
    from .experiment.sweep import SweepResult
    from .report.results import Results
    from .report.verdict import Verdict

#: ``--set`` overrides: ``["regime.id=accumulate"]`` or ``{"regime.id": "accumulate"}``.
Overrides = Iterable[str] | Mapping[str, Any] | None


def run(
    config: ConfigSource,
    out: str | Path | None = None,
    *,
    seeds: int | None = None,
    generations: int | None = None,
    overrides: Overrides = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    on_generation: Hook | None = None,
    report: bool = True,
    threads: int | None = 1,
    max_memory: int | str | None = "auto",
    heartbeat: float | None = None,
    tracker: str | None = None,
    save_generations: str | None = None,
) -> RunResult:
    """Run every arm of a config, as ``collapselab run`` does, resuming where possible.

    Parameters
    ----------
    config : Config, mapping, str or Path
        A loaded config, a mapping of its fields, a preset name or a YAML file.
    out : str or Path, optional
        The run folder (``--out``; default ``runs/<name>``).
    seeds, generations : int, optional
        ``--seeds`` and ``--generations``: set on the base and on every arm.
    overrides : list of str or mapping, optional
        ``--set`` overrides, applied before the shortcuts above.
    workers, overwrite, max_memory
        As ``--workers``, ``--overwrite`` and ``--max-memory``.
    progress : bool
        Draw a progress bar on stderr.
    on_generation : callable, optional
        Called with a :class:`~collapselab.experiment.observers.GenerationEvent` after
        each generation of every chain.
    report : bool
        Write ``report.html`` at the end.
    threads : int or None
        Cap of the BLAS/OpenMP thread pools (``None``: leave them alone).
    heartbeat : float, optional
        ``--heartbeat``: log a progress line per arm every so many seconds.
    tracker : {"mlflow", "wandb"}, optional
        ``--tracker``: each arm a tracker run (see :mod:`collapselab.experiment.tracking`).
    save_generations : str, optional
        ``--save-generations``: ``"all"`` or seeds such as ``"0,1"``.

    Returns
    -------
    RunResult
        Its ``directory`` is what :func:`load` reads.

    Raises
    ------
    CollapseLabError
        A bad config (:class:`~collapselab.errors.ConfigError`), a folder conflict
        (:class:`~collapselab.errors.ResultsError`) and every other refusal, before
        anything is written.
    """
    from .experiment.config import load_config
    from .experiment.runner import run as run_config
    from .report.html import write_report_safely

    loaded = load_config(config, overrides, seeds=seeds, generations=generations)
    return run_config(
        loaded,
        out,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        on_generation=on_generation,
        reporter=write_report_safely if report else None,
        threads=threads,
        max_memory=max_memory,
        heartbeat=heartbeat,
        tracker=tracker,
        save_generations=save_generations,
    )


def sweep(
    config: ConfigSource,
    grid: Sequence[str] | None = None,
    *,
    overrides: Overrides = None,
    out: str | Path | None = None,
    root: str | Path | None = None,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    granularity: str = "auto",
) -> SweepResult:
    """Run a grid of configs, as ``collapselab sweep`` does; complete points are skipped.

    Parameters
    ----------
    config : Config, mapping, str or Path
        The base config: a loaded config, a mapping, a preset name or a YAML file.
    grid : list of str, optional
        ``--grid`` axes, ``"KEY=V1,V2,..."`` each (default: a sweep preset's own grid).
    overrides : list of str or mapping, optional
        ``--set`` overrides of the base, before the grid.
    out, root : str or Path, optional
        The sweep folder inside the results root (``--out``, ``--root``; default
        ``$COLLAPSELAB_RESULTS`` or ``runs``, and the config's name).
    backend, workers, address, granularity
        As ``--backend`` (``local`` or ``ray``), ``--workers``, ``--address`` and
        ``--granularity`` (``auto``, ``run`` or ``seed``).

    Returns
    -------
    SweepResult
        Its ``directory`` is what :func:`load` reads.

    Raises
    ------
    CollapseLabError
        On a bad config or grid, or any refusal, before anything is written.
    """
    from .experiment.resources import check_workers
    from .experiment.sweep import plan_sweep, run_sweep

    if workers is not None:
        check_workers(workers)
    planned = plan_sweep(config, grid, overrides=overrides, out=out, root=root)
    return run_sweep(
        planned, backend=backend, workers=workers, address=address, granularity=granularity
    )


def diagnose(
    reference: str | Path | Sequence[str],
    candidate: str | Path | Sequence[str],
    *,
    column: str = "text",
    reference_column: str | None = None,
    candidate_column: str | None = None,
    split: str = "train",
    unit: str = "auto",
    encoding: str = "utf-8",
    top: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    match_size: bool = False,
    bootstrap_method: str = "auto",
) -> dict[str, Any]:
    """Has a candidate corpus lost the tails of a reference? As ``collapselab diagnose``.

    Each corpus is a path (a text file, a folder, ``.jsonl``/``.csv``/``.parquet``,
    maybe gzipped, a saved dataset) or a list of documents; the other arguments are
    the command's options. Returns what ``--json`` prints; see
    :func:`collapselab.diagnosis.diagnose_corpora`.
    """
    from .diagnosis import diagnose_corpora

    return diagnose_corpora(
        reference,
        candidate,
        column=column,
        reference_column=reference_column,
        candidate_column=candidate_column,
        split=split,
        unit=unit,
        encoding=encoding,
        top=top,
        bootstrap=bootstrap,
        seed=seed,
        match_size=match_size,
        bootstrap_method=bootstrap_method,
    )


def verdict(
    directory: str | os.PathLike[str],
    *,
    baseline: str | None = None,
    size_key: str | None = None,
    **thresholds: float,
) -> Verdict:
    """Which definitions of collapse each arm of a run (or sweep) meets, as
    ``collapselab verdict``; see :func:`collapselab.report.verdict.verdict`."""
    from .report.verdict import verdict as judge

    return judge(Path(directory), baseline=baseline, size_key=size_key, **thresholds)


def load(directory: str | os.PathLike[str]) -> Results:
    """A run or sweep folder's results for analysis: metrics, theory, plots, verdicts;
    see :func:`collapselab.report.results.load`."""
    from .report.results import load as read

    return read(directory)


__all__ = [
    "__version__",
    "diagnose",
    "list_ids",
    "load",
    "make",
    "register",
    "run",
    "sweep",
    "verdict",
]
