"""What a run may take of the machine, checked before anything is allocated or written.

* Memory: :func:`estimate` adds up, per arm, what its chains hold at once, from the
  config and the components' declarations (:meth:`~collapselab.core.DataSource.item_bytes`,
  :meth:`~collapselab.core.DataSource.fixed_bytes`,
  :meth:`~collapselab.core.Regime.held_items`): the real and generated items of a
  generation (``oversample`` times more candidates under curators), what the regime
  keeps (the pool under ``accumulate``), a few working copies of each, every seed at
  once on the batched path and ``workers`` chains at once on the per-seed path, and
  the recorded values. :func:`check_memory` refuses a run whose estimate exceeds the
  budget (:func:`collapselab.io.memory_budget`, or ``max_memory``) in one line that
  names the config field that dominates the estimate. The estimate is deliberately
  rough (a factor of a few either way); it exists to refuse ``samples_per_generation:
  1e12`` in a second instead of swapping for an hour.
* Processes: :func:`check_workers` refuses more workers than :data:`WORKERS_PER_CPU`
  per CPU; callers also cap workers at the number of tasks. A pool worker calls
  :func:`exit_with_parent` first, so killing only the parent never leaves workers
  behind.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..io import format_bytes, memory_budget
from .config import Config, RunConfig

#: Working copies of a generation's items (training set, output, a model that keeps
#: its data, a metric's temporary arrays).
COPIES = 4
#: Bytes of one recorded value (a float in a list, or its slot in an array).
VALUE_BYTES = 32
#: Workers beyond this many per CPU only add processes that wait for a core.
WORKERS_PER_CPU = 4
#: How often a pool worker checks that its parent is alive, in seconds.
PARENT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Estimate:
    """An arm's estimated memory and the config field whose term dominates it."""

    arm: str
    bytes: int
    field: str
    why: str


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_workers(workers: int, option: str = "--workers") -> None:
    """Refuse fewer than one worker, or more than :data:`WORKERS_PER_CPU` per CPU."""
    if workers < 1:
        raise ConfigError(f"{option} must be >= 1; got {workers}")
    most = WORKERS_PER_CPU * cpu_count()
    if workers > most:
        raise ConfigError(
            f"{option} {workers} is more than {WORKERS_PER_CPU} per CPU (this machine has "
            f"{cpu_count()}); use at most {most}"
        )


def arm_estimate(
    config: RunConfig, parts: dict[str, Any], *, batched: bool, workers: int
) -> Estimate:
    """The memory one arm needs at once (see the module's docstring)."""
    data, model, regime = parts["data"], parts["model"], parts["regime"]
    n = config.samples_per_generation
    drawn = math.ceil(n * config.oversample) if config.curators else n
    real = config.resolved_real_samples()
    held = regime.held_items(real, drawn, config.generations, fits_moments=type(model).fits_moments)
    item = max(int(data.item_bytes()), 1)
    chains = config.seeds if batched else min(workers, config.seeds)
    where = f"{chains} seeds at once" if chains > 1 else "one seed at a time"
    # (field, bytes, why): the terms of the estimate, each named by what drives it
    terms = [
        ("data.params", int(data.fixed_bytes()) * chains, f"the data source's own data, {where}"),
        (
            "real_samples",
            real * item * COPIES * chains,
            f"{real:,} real items of {item} B, {where}",
        ),
        (
            "oversample" if drawn > n else "samples_per_generation",
            drawn * item * COPIES * chains,
            f"{drawn:,} items of {item} B per generation, {where}",
        ),
        (
            "regime",
            max(held - real - drawn, 0) * item * COPIES * chains,
            f"regime {config.regime.id!r} holding {held:,} items, {where}",
        ),
    ]
    values = config.seeds * config.generations * (len(config.metrics) + len(config.curators) + 4)
    per_item = sum(1 for m in parts["metrics"].values() if type(m).per_item)
    values += config.seeds * config.generations * n * per_item
    terms.append(
        (
            "generations" if config.generations > config.seeds else "seeds",
            values * VALUE_BYTES,
            f"{values:,} recorded values ({config.seeds:,} seeds x {config.generations:,} "
            "generations)",
        )
    )
    total = sum(size for _, size, _ in terms)
    field, _, why = max(terms, key=lambda term: term[1])
    if chains > 1 and config.seeds > drawn and field != "generations":
        field = "seeds"  # many seeds at once weigh more than the items of each
    return Estimate(config.name, total, field, why)


def estimate(config: Config, batched: list[bool], workers: int = 1) -> list[Estimate]:
    """Each arm's :class:`Estimate`; arms run one after another."""
    return [
        arm_estimate(arm, parts, batched=b, workers=workers)
        for arm, parts, b in zip(config.arm_configs(), config.components(), batched, strict=True)
    ]


def check_memory(estimates: list[Estimate], max_memory: int | str | None = "auto") -> None:
    """Refuse the largest estimate if it exceeds the budget.

    ``max_memory``: ``"auto"`` (what :func:`collapselab.io.memory_budget` says), a
    number of bytes, or ``None``/``"off"`` (no check).
    """
    if max_memory is None or max_memory == "off" or not estimates:
        return
    budget = memory_budget() if max_memory == "auto" else int(max_memory)
    if budget is None:
        return
    worst = max(estimates, key=lambda e: e.bytes)
    if worst.bytes <= budget:
        return
    source = "the budget given" if max_memory != "auto" else "what this process can allocate"
    raise ConfigError(
        f"config field {worst.field!r} (arm {worst.arm!r}): this run needs about "
        f"{format_bytes(worst.bytes)} of memory ({worst.why}), more than the "
        f"{format_bytes(budget)} of {source}; lower it, or pass --max-memory SIZE "
        "(or off) if you know better"
    )


def exit_with_parent() -> None:
    """End this process (a pool worker) soon after its parent dies.

    A daemon thread polls the parent's pid: once the parent is gone the worker is
    re-parented (to init or a subreaper) and exits. Polling works on every POSIX
    system and, unlike ``PR_SET_PDEATHSIG``, does not fire when merely the thread
    that started the worker ends.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
