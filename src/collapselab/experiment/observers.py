"""What runs after every generation of a chain: snapshots, checkpoint, progress, the user's hook.

One list, on every path: :class:`Observers` is the chain's per-generation callback
in this process, in a worker of the local process pool and in a sweep's task on Ray.
It records the snapshot and, with ``--save-generations``, the generation's output
(both before the checkpoint, so a resumed run never misses one), saves the checkpoint
when due, then hands a :class:`GenerationEvent` to ``notify``:
in the driving process a :class:`Notifier` (the progress bar or heartbeat, then the user's
``on_generation`` hook); in a pool worker a queue that carries it to the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chain import ChainState
from ..errors import ConfigError
from .config import RunConfig
from .generations import GenerationSaver
from .snapshots import SnapshotRecorder
from .storage import load_checkpoint, save_checkpoint

#: Without ``checkpoint_every``, a chain checkpoints after this much work.
CHECKPOINT_SECONDS = 10.0
#: Layout of the chain state in a checkpoint; a checkpoint of another layout (written
#: by an older collapselab) is not resumed: its chain starts over, to the same results.
CHECKPOINT_LAYOUT = 2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationEvent:
    """What the ``on_generation`` hook receives after each completed generation.

    ``seed`` is ``None`` on the batched path, where each value is an array over the
    seeds. ``values`` holds generation ``generation``'s value of every recorded series
    (metrics, curator and regime statistics; NaN where a series was not recorded).
    A chain that halted (nothing left to train on) reports its last generation once,
    with ``halted`` set.
    """

    arm: str
    seed: int | None
    generation: int
    values: dict[str, Any]
    halted: bool = False

    @classmethod
    def of(cls, arm: str, seed: int | None, state: ChainState) -> GenerationEvent:
        """The event of ``state``'s last completed generation."""
        values = {name: series[state.generation] for name, series in state.values.items()}
        return cls(arm, seed, state.generation, values, state.halted_at is not None)


Hook = Callable[[GenerationEvent], None]


class Checkpointer:
    """Decides when to save a chain's state (every k generations, or every few seconds),
    and binds each checkpoint to its chain.

    The binding (config hash, arm, seed, ``data``: the digest of the user data files,
    layout; and the generation it holds) is the checkpoint's authenticated header (see
    :mod:`~collapselab.experiment.storage`): a checkpoint of another chain, another
    config, other data or another layout is not loaded, and its chain starts over.
    """

    def __init__(
        self,
        path: Path,
        config: RunConfig,
        config_hash: str,
        *,
        arm: str = "",
        seed: int | None = None,
        data: str = "",
    ) -> None:
        self.path = path
        self.every = config.checkpoint_every
        self.last_generation = config.generations - 1
        self.config_hash = config_hash
        self.binding = {
            "config_hash": config_hash,
            "arm": arm,
            "seed": seed,
            "data": data,
            "layout": CHECKPOINT_LAYOUT,
        }
        self.last_save = time.monotonic()

    def load(self) -> ChainState | None:
        """The saved state, or ``None`` (none, not authentic, another chain's or layout's)."""
        saved = load_checkpoint(self.path, self.binding)
        if not isinstance(saved, dict) or not isinstance(saved.get("state"), ChainState):
            return None
        state: ChainState = saved["state"]
        if state.generation != saved.get("generation"):
            return None
        return state

    def maybe_save(self, state: ChainState) -> None:
        due = (
            state.generation == self.last_generation
            or (self.every is not None and (state.generation + 1) % self.every == 0)
            or (self.every is None and time.monotonic() - self.last_save > CHECKPOINT_SECONDS)
        )
        if due:
            header = {**self.binding, "generation": state.generation}
            payload = {"generation": state.generation, "state": state}
            save_checkpoint(self.path, payload, header)
            self.last_save = time.monotonic()


class Observers:
    """The per-generation callback of one chain (see the module's docstring)."""

    def __init__(
        self,
        arm: str,
        seed: int | None,
        checkpoint: Checkpointer,
        snapshots: SnapshotRecorder,
        notify: Callable[[GenerationEvent], None] | None,
        saver: GenerationSaver | None = None,
    ) -> None:
        self.arm = arm
        self.seed = seed
        self.checkpoint = checkpoint
        self.snapshots = snapshots
        self.notify = notify
        self.saver = saver

    def __call__(self, state: ChainState) -> None:
        self.snapshots.observe(self.seed, state)
        if self.saver is not None:
            self.saver.observe(self.seed, state)
        self.checkpoint.maybe_save(state)
        if self.notify is not None:
            self.notify(GenerationEvent.of(self.arm, self.seed, state))


class Progress:
    """How a run reports its progress: a ``rich`` bar with one task per arm, heartbeat
    lines, or nothing.

    ``heartbeat``: instead of the bar, a plain line per unfinished arm every
    ``heartbeat`` seconds, logged (``logging``, level INFO, logger of this module) from a
    background thread, so a job's log (a SLURM output file) shows the run is alive even
    while one generation takes long; and one line as such an arm finishes (an arm done
    within the first interval logs nothing).
    """

    def __init__(self, enabled: bool, heartbeat: float | None = None) -> None:
        self.bar = None
        self.heartbeat = heartbeat
        self.tasks: list[_Beat] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if heartbeat is not None:
            if not heartbeat > 0:
                raise ConfigError(f"--heartbeat must be > 0 seconds; got {heartbeat}")
        elif enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=False,
            )

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self.bar.__enter__()
        if self.heartbeat is not None:
            self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        if self.thread is not None:
            self.stop.set()
            self.thread.join()

    def _beat(self) -> None:
        assert self.heartbeat is not None
        while not self.stop.wait(self.heartbeat):
            for beat in list(self.tasks):
                if not beat.finished:
                    beat.beats += 1
                    logger.info("%s", beat.line())

    def task(self, description: str, total: int) -> Callable[..., None]:
        """A function that advances a new task by ``n`` units (``resumed=True``: units
        done by an earlier run, which a time estimate leaves out)."""
        if self.heartbeat is not None:
            beat = _Beat(description, total)
            self.tasks.append(beat)
            return beat.advance
        if self.bar is None:
            return lambda n, resumed=False: None
        bar = self.bar
        task_id = bar.add_task(description, total=total)
        return lambda n, resumed=False: bar.advance(task_id, n)


class _Beat:
    """One arm's count of chain-generations, for heartbeat lines."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self.before = 0  # done by an earlier run (resumed), not counted in the rate
        self.start = time.monotonic()
        self.finished = False
        self.beats = 0  # lines logged so far

    def advance(self, n: int, resumed: bool = False) -> None:
        if resumed:
            self.before += n
        self.done += n
        if self.done >= self.total and not self.finished:
            self.finished = True
            if self.beats:
                logger.info("%s", self.line())

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        share = self.done / self.total if self.total else 1.0
        text = (
            f"{self.name}: {self.done}/{self.total} chain-generations ({share:.0%}), "
            f"{elapsed:.1f} s"
        )
        worked = self.done - self.before
        if self.finished:
            return text + " (done)"
        if worked > 0:
            left = elapsed / worked * (self.total - self.done)
            text += f", about {left:.0f} s left"
        return text


class Notifier:
    """One arm's events in the driving process: the progress bar, then the user's hook.

    ``batched``: the arm's events are those of one chain of every seed (``seed`` is
    ``None``), each generation worth ``seeds`` units of progress.
    """

    def __init__(
        self,
        name: str,
        seeds: int,
        generations: int,
        batched: bool,
        progress: Progress,
        hook: Hook | None,
    ) -> None:
        self.per_generation = seeds if batched else 1
        self.advance = progress.task(name, seeds * generations)
        self.done: dict[int | None, int] = {}
        self.hook = hook

    def resumed(self, seed: int | None, generations: int) -> None:
        """Generations done before this run (a resumed checkpoint) count as progress."""
        self.done[seed] = generations
        self.advance(generations * self.per_generation, resumed=True)

    def __call__(self, event: GenerationEvent) -> None:
        done = event.generation + 1
        self.advance((done - self.done.get(event.seed, 0)) * self.per_generation)
        self.done[event.seed] = done
        if self.hook is not None:
            self.hook(event)
