"""Sweeps: the cross product of a grid of config overrides, each point a run.

A grid axis is a dotted key and its values (``--grid samples_per_generation=20,50,100``);
a point sets one value per axis with :func:`~.config.apply_set`, so any field a
``--set`` can reach can be swept, arms included. Layout of a sweep directory::

    ROOT/<sweep>/sweep.json        the grid, every point (name, values, config hashes), status
    ROOT/<sweep>/config.yaml       the base config (after --set overrides)
    ROOT/<sweep>/<point>/...       one ordinary run directory per point (see runner)

Point names come from the point's values, sanitized to ``[A-Za-z0-9._-]`` (a hash
disambiguates what sanitizing merges), so they are deterministic, stable when a
grid grows, and can never leave the sweep directory. The sweep directory itself
must lie inside the results root. Rerunning the same command resumes: complete
points are checked (manifest, checksum, Parquet) and skipped, the rest resume from
their checkpoints, and the results are bit-identical on every backend.

Points are matched by their arms' config hashes, not by folder name: a point whose
values are spelled differently (``0.10`` for ``0.1``, axes in another order) reuses
the complete folder of the same configs. A sweep of another base (another ``--set``,
an edited file, other grid axes) never mixes with the old points: without ``--out``
it goes into its own folder, ``<name>-<hash of its base>``; with an ``--out`` that
holds the other sweep it is refused, naming the first setting that differs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import CollapseLabError, ConfigError, ResultsError
from .backends import Task, make_backend
from .config import (
    NAME_PATTERN,
    Config,
    ConfigSource,
    RunConfig,
    apply_set,
    config_data,
    load_config,
    override_assignments,
)
from .storage import FolderLock, load_yaml, write_yaml

logger = logging.getLogger(__name__)

#: Where results live unless ``--root`` (or ``COLLAPSELAB_RESULTS``) says otherwise.
DEFAULT_ROOT = "runs"
ROOT_VARIABLE = "COLLAPSELAB_RESULTS"

#: Grids of the sweep presets, used when ``collapselab sweep PRESET`` gets no ``--grid``.
PRESET_GRIDS: dict[str, list[str]] = {
    "phase-gaussian": [
        "samples_per_generation=10,20,50,100,200",
        "regime.params.real_fraction=0,0.02,0.05,0.1,0.2,0.5",
    ],
    # test error against the total data n, at each synthetic share (the arms)
    "strong-collapse": [
        "data.params.n_samples=30,100,300,1000,3000,10000,30000,100000,300000,1000000"
    ],
}

MANIFEST = "sweep.json"
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Axis:
    """One grid axis: a dotted config key and its values (as typed, and parsed as YAML)."""

    key: str
    raw: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass
class Point:
    """One grid point: its name, its value on each axis, and its validated config."""

    name: str
    values: dict[str, Any]
    config: Config

    def arm_hashes(self) -> dict[str, str]:
        return {arm.name: arm.config_hash() for arm in self.config.arm_configs()}


@dataclass
class Sweep:
    """A planned sweep: base config, axes, points and where they go."""

    name: str
    directory: Path
    root: Path
    base: dict[str, Any]
    axes: list[Axis]
    points: list[Point]

    def point_dir(self, point: Point) -> Path:
        return self.directory / point.name

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps' points comparable: see :func:`base_identity`."""
        return base_identity(self.base, [a.key for a in self.axes])


@dataclass
class SweepResult:
    """What a sweep did: its directory, points, and how many ran or were already done."""

    directory: Path
    points: list[Point]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def _split_values(text: str) -> list[str]:
    """Split ``v1,v2,...`` at top-level commas (YAML lists and mappings stay whole)."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_axis(spec: str) -> Axis:
    """Parse one ``--grid KEY=V1,V2,...``; each value is read as YAML."""
    key, sep, rest = spec.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise ConfigError(
            f"--grid {spec!r}: expected KEY=V1,V2,..., e.g. --grid samples_per_generation=20,50"
        )
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_-]+)*", key):
        raise ConfigError(f"--grid {spec!r}: {key!r} is not a dotted config key")
    if key == "name" or key == "arms":
        raise ConfigError(
            f"--grid {spec!r}: {key!r} cannot be swept; point names come from the grid, "
            "and arms are swept through their fields (e.g. arms.0.regime.id)"
        )
    raw = _split_values(rest)
    if any(not v for v in raw):
        raise ConfigError(f"--grid {spec!r}: empty value; separate values by single commas")
    if len(set(raw)) != len(raw):
        raise ConfigError(f"--grid {spec!r}: a value is listed twice")
    values = []
    for v in raw:
        try:
            values.append(load_yaml(v))
        except yaml.YAMLError:
            raise ConfigError(f"--grid {spec!r}: value {v!r} is not valid YAML") from None
    return Axis(key, tuple(raw), tuple(values))


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return re.sub(r"\.{2,}", ".", slug)  # no '..' anywhere, even though '/' never survives


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def point_names(axes: list[Axis], combos: list[tuple[str, ...]]) -> list[str]:
    """Safe, deterministic names: ``<key>-<value>`` per axis, joined by ``_``.

    The key is its last dotted part unless two axes share it. A name that sanitizing
    made ambiguous, or that is too long, gets a hash of the exact values.
    """
    last = [a.key.rsplit(".", 1)[-1] for a in axes]
    labels = [
        _slug(a.key if last.count(short) > 1 else short)
        for a, short in zip(axes, last, strict=True)
    ]
    exact = [json.dumps(list(c)) for c in combos]
    names = []
    for combo, key in zip(combos, exact, strict=True):
        name = "_".join(f"{lab}-{_slug(v) or 'x'}" for lab, v in zip(labels, combo, strict=True))
        if not name or not name[0].isalnum():
            name = "p" + name
        if len(name) > 90:
            name = name[:80].rstrip("-._") + "-" + _short_hash(key)
        names.append(name)
    counts = {n: names.count(n) for n in names}
    names = [
        n if counts[n] == 1 else f"{n[:80]}-{_short_hash(k)}"
        for n, k in zip(names, exact, strict=True)
    ]
    for n in names:  # defence in depth: a name is one safe path component
        if not _NAME_RE.match(n) or n in (".", ".."):  # pragma: no cover - guaranteed above
            raise ConfigError(f"grid point name {n!r} is not a safe directory name")
    return names


def results_root(root: str | Path | None) -> Path:
    """The results root: ``--root``, else ``$COLLAPSELAB_RESULTS``, else ``runs``."""
    return Path(root or os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)


def resolve_inside(root: Path, out: str | Path | None, default: str) -> Path:
    """``out`` (relative to ``root``, or absolute) as a folder strictly inside ``root``.

    Symbolic links are resolved first, so a link cannot lead out of the root either.
    """
    target = Path(out) if out is not None else Path(default)
    if not str(target).strip():
        raise ResultsError("--out is empty; name a folder inside the results root")
    path = target if target.is_absolute() else root / target
    resolved, base = path.resolve(), root.resolve()
    if resolved == base or base not in resolved.parents:
        raise ResultsError(
            f"--out {str(target)!r} resolves to {str(resolved)!r}, outside the results root "
            f"{str(base)!r}; choose a folder inside it or set --root"
        )
    return resolved


def plan_sweep(
    source: ConfigSource,
    grid: Sequence[str] | None = None,
    *,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    root: str | Path | None = None,
) -> Sweep:
    """Expand a config and a grid into points, each validated, without writing anything.

    Parameters
    ----------
    source : Config, mapping, str or Path
        A config, a config mapping, a preset name or a config file (see
        :func:`~.config.config_data`).
    grid : list of str, optional
        ``KEY=V1,V2,...`` axes; by default the preset's grid (see :data:`PRESET_GRIDS`).
    overrides : list of str or mapping, optional
        ``--set KEY=VALUE`` applied to the base before the grid (a mapping as in
        :func:`~.config.load_config`).
    out : str or Path, optional
        The sweep directory, relative to ``root`` (default: the config's name).
    root : str or Path, optional
        The results root every sweep directory must lie in.
    """
    data = config_data(source)
    if isinstance(grid, str):
        raise ConfigError(f"grid must be a list of KEY=V1,V2,... axes; got the string {grid!r}")
    grid = list(grid or [])
    if not grid:
        grid = PRESET_GRIDS.get(str(source), []) if isinstance(source, str | Path) else []
    if not grid:
        raise ConfigError("a sweep needs at least one --grid KEY=V1,V2,...")
    for assignment in override_assignments(overrides):
        apply_set(data, assignment)
    base = load_config(data)  # the base itself must be valid
    axes = [parse_axis(spec) for spec in grid]
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError("--grid: an axis is given twice; list all its values in one --grid")
    combos = list(itertools.product(*(a.raw for a in axes)))
    names = point_names(axes, combos)
    points = []
    for name, combo in zip(names, combos, strict=True):
        point_data = copy.deepcopy(data)
        for axis, raw in zip(axes, combo, strict=True):
            try:
                apply_set(point_data, f"{axis.key}={raw}")
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("--set", "--grid", 1)) from None
        point_data["name"] = name
        where = ", ".join(f"{a.key}={v}" for a, v in zip(axes, combo, strict=True))
        try:
            config = load_config(point_data)
        except ConfigError as exc:
            raise ConfigError(f"grid point {where}: {exc}") from None
        values = {a.key: a.values[a.raw.index(v)] for a, v in zip(axes, combo, strict=True)}
        points.append(Point(name, values, config))
    results = results_root(root)
    directory = resolve_inside(results, out, base.name)
    sweep = _own_folder(Sweep(base.name, directory, results, data, axes, points), out is not None)
    return _reuse_by_hash(sweep)


def _fields(data: Any, prefix: str = "") -> dict[str, str]:
    """Every leaf of a config as ``dotted.key: JSON`` (list items by index: ``arms.1.regime.id``)."""
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return {prefix[:-1]: json.dumps(data, sort_keys=True, default=str)}
    out: dict[str, str] = {}
    for key, value in items:
        out.update(_fields(value, f"{prefix}{key}."))
    return out


#: Base fields that do not change a point's results (see ``RunConfig.result_fields``;
#: claims describe the paper, not the run).
_NOT_RESULTS = ("name", "description", "checkpoint_every", "claims")


def base_identity(base: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The grid axes and the base's fields that decide the results, less the swept ones."""
    fields = {
        key: value
        for key, value in _fields(base).items()
        if key.split(".", 1)[0] not in _NOT_RESULTS
        and not any(key == k or key.startswith(k + ".") for k in keys)
    }
    return {"axes": sorted(keys), "base": fields}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first difference between two identities, in words (``seeds: 3 -> 5``)."""
    if old["axes"] != new["axes"]:
        return f"grid axes {', '.join(old['axes'])} -> {', '.join(new['axes'])}"
    for key in sorted(set(old["base"]) | set(new["base"])):
        before, after = old["base"].get(key, "unset"), new["base"].get(key, "unset")
        if before != after:
            return f"{key}: {before} -> {after}"
    return "the same settings"  # pragma: no cover - identities differ somewhere


def stored_identity(directory: Path) -> dict[str, Any] | None:
    """The identity of the sweep in ``directory`` (``None`` if it holds none readable)."""
    from .storage import read_json

    manifest = read_json(directory / MANIFEST)
    try:
        base = load_yaml((directory / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, CollapseLabError):
        return None
    if not isinstance(manifest, dict) or not isinstance(base, dict):
        return None
    axes = manifest.get("axes")
    if not isinstance(axes, list) or not all(isinstance(a, dict) and "key" in a for a in axes):
        return None
    return base_identity(base, [str(a["key"]) for a in axes])


def _own_folder(sweep: Sweep, explicit: bool) -> Sweep:
    """``sweep`` in a folder of its own when its default folder holds another base's
    sweep; refused (one line) when that folder was chosen with ``--out``."""
    old = stored_identity(sweep.directory)
    new = sweep.identity()
    if old is None or old == new:
        return sweep
    what = _difference(old, new)
    if explicit:
        raise ResultsError(
            f"{str(sweep.directory)!r} holds a sweep of a different config ({what}); its "
            "points would mix with this sweep's: choose another --out, or leave --out out "
            "to get a folder of its own"
        )
    blob = json.dumps(new, sort_keys=True, separators=(",", ":"))
    own = resolve_inside(sweep.root, None, f"{sweep.name}-{_short_hash(blob)}")
    return dataclasses.replace(sweep, directory=own)


def _reuse_by_hash(sweep: Sweep) -> Sweep:
    """Each point that has no complete folder of its own but whose configs (by hash) a
    complete point of the previous sweep in this folder ran: renamed to that point."""
    from .storage import read_json

    manifest = read_json(sweep.directory / MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("points"), list):
        return sweep
    previous = {}
    for old in manifest["points"]:
        if isinstance(old, dict) and isinstance(old.get("arms"), dict) and "name" in old:
            previous.setdefault(tuple(sorted(map(str, old["arms"].values()))), str(old["name"]))
    taken = {point.name for point in sweep.points}
    points = []
    for point in sweep.points:
        name = previous.get(tuple(sorted(point.arm_hashes().values())))
        if name is None or name in taken or _complete(sweep.directory / point.name, point.config):
            points.append(point)
            continue
        renamed = load_config({**point.config.model_dump(mode="json"), "name": name})
        if _complete(sweep.directory / name, renamed):
            taken.add(name)
            points.append(Point(name, point.values, renamed))
        else:
            points.append(point)
    return dataclasses.replace(sweep, points=points)


def _complete(directory: Path, config: Config) -> bool:
    from .storage import read_json

    top = read_json(directory / "manifest.json")
    done = isinstance(top, dict) and top.get("status") == "complete"
    return done and all(arm_complete(arm, directory / arm.name) for arm in config.arm_configs())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def arm_complete(arm: RunConfig, directory: Path) -> bool:
    """Whether an arm's results are complete and intact (manifest, checksum, Parquet)."""
    from ..io import check_digest
    from .storage import read_json, read_metrics

    manifest = read_json(directory / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("status") != "complete":
        return False
    if manifest.get("config_hash") != arm.config_hash():
        return False
    try:
        check_digest(directory / "metrics.parquet", manifest.get("metrics_sha256"))
        read_metrics(directory / "metrics.parquet")
    except ResultsError:
        return False
    return True


def _check_no_conflict(sweep: Sweep, point: Point) -> None:
    """Refuse before any work what a point's run would refuse (another config's or other
    data's results in its folder, a folder of other files), naming the point."""
    from .runner import FolderConflict, check_run_folder, prepare

    try:
        check_run_folder(sweep.point_dir(point), point.config, prepare(point.config))
    except FolderConflict as exc:
        raise ResultsError(
            f"{exc.problem}; choose another --out for this sweep, or remove that folder"
        ) from None


def _check_sweep_folder(directory: Path) -> None:
    """Refuse a folder that holds a run (not a sweep): the sweep's points would mix with it."""
    if directory.is_file():
        raise ResultsError(f"cannot write {str(directory)!r}: it is a file; name a folder")
    if (directory / "manifest.json").exists() and not (directory / MANIFEST).exists():
        raise ResultsError(
            f"{str(directory)!r} holds a run (manifest.json), not a sweep; choose another "
            f"--out for the sweep (e.g. {directory.name}-sweep)"
        )


def _check_memory(sweep: Sweep, workers: int) -> None:
    """The largest point's memory estimate, times the points that run at once."""
    from .resources import check_memory, estimate
    from .runner import prepare

    worst = []
    for point in sweep.points:
        arms = prepare(point.config)
        worst += estimate(point.config, [arm.batched for arm in arms], 1)
    if worst:
        top = max(worst, key=lambda e: e.bytes)
        parallel = min(workers, len(sweep.points))
        check_memory([dataclasses.replace(top, bytes=top.bytes * parallel)])


def _tasks(sweep: Sweep, point: Point, granularity: str) -> list[Task]:
    """The tasks of one incomplete point: the whole run, or its arms and seeds."""
    config = point.config.model_dump(mode="json")
    directory = str(sweep.point_dir(point))
    if granularity == "run":
        return [Task("run", config, directory)]
    from .runner import prepare

    tasks = []
    for index, arm in enumerate(prepare(point.config)):
        if arm_complete(arm.config, sweep.point_dir(point) / arm.name):
            continue
        if arm.batched:
            tasks.append(Task("arm", config, directory, arm=index))
        else:
            tasks += [
                Task("seed", config, directory, arm=index, seed=s) for s in range(arm.config.seeds)
            ]
    return tasks


def _manifest(sweep: Sweep, **extra: Any) -> dict[str, Any]:
    from .runner import versions

    return {
        "name": sweep.name,
        "root": str(sweep.root),
        "axes": [{"key": a.key, "values": list(a.values)} for a in sweep.axes],
        "points": [
            {"name": p.name, "values": p.values, "arms": p.arm_hashes()} for p in sweep.points
        ],
        "versions": versions(),
        **extra,
    }


def run_sweep(
    sweep: Sweep,
    *,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    granularity: str = "auto",
) -> SweepResult:
    """Run every incomplete point of ``sweep`` and write the sweep manifest.

    Parameters
    ----------
    backend : {"local", "ray"}
        ``local`` runs points in a process pool of ``workers`` processes (serially in
        this process with one worker); ``ray`` sends tasks to a Ray cluster.
    workers : int, optional
        Local processes (default: the CPU count), or CPUs of a new local Ray cluster.
    address : str, optional
        ``HOST:PORT`` of a running Ray cluster.
    granularity : {"auto", "run", "seed"}
        ``run``: one task per point. ``seed``: one task per seed of per-seed arms
        (expensive models) and per arm on the batched path. ``auto``: ``seed`` on Ray,
        ``run`` locally.
    """
    from .resources import check_workers, cpu_count

    if granularity not in ("auto", "run", "seed"):
        raise CollapseLabError(f"--granularity must be auto, run or seed; got {granularity!r}")
    if address and backend != "ray":
        raise CollapseLabError("--address applies only to --backend ray")
    workers = workers or cpu_count()
    check_workers(workers)
    if granularity == "auto":
        granularity = "seed" if backend == "ray" else "run"
    start = time.perf_counter()
    _check_sweep_folder(sweep.directory)
    _check_memory(sweep, workers)
    for point in sweep.points:
        _check_no_conflict(sweep, point)
    with FolderLock(sweep.directory) as lock:
        return _run_points(sweep, lock, backend, workers, address, granularity, start)


def _run_points(
    sweep: Sweep,
    lock: FolderLock,
    backend: str,
    workers: int,
    address: str | None,
    granularity: str,
    start: float,
) -> SweepResult:
    from .runner import run
    from .storage import read_json, write_json

    result = SweepResult(sweep.directory, sweep.points)
    todo: list[Point] = []
    for point in sweep.points:
        if _complete(sweep.point_dir(point), point.config):
            result.skipped.append(point.name)
        else:
            todo.append(point)
    manifest_path = sweep.directory / MANIFEST
    manifest = _manifest(sweep, status="running", started=_now(), backend=backend)
    previous = read_json(manifest_path)
    if not todo and isinstance(previous, dict) and previous.get("status") == "complete":
        same = json.loads(json.dumps(manifest["points"], default=str)) == previous.get("points")
        if same:  # a complete sweep, rerun: nothing to do, nothing written
            result.elapsed = time.perf_counter() - start
            return result
    tasks = [t for point in todo for t in _tasks(sweep, point, granularity)]
    # The backend connects (Ray: to its cluster) before anything is written.
    runner = (
        make_backend(backend, workers=min(workers, len(tasks)), address=address) if tasks else None
    )
    lock.claim()
    write_json(manifest_path, manifest)
    write_yaml(sweep.directory / "config.yaml", sweep.base)
    try:
        if runner is not None:
            try:
                for done, (task, _) in enumerate(runner.map(tasks), 1):
                    logger.info(
                        "sweep %s: %s done (%d of %d)", sweep.name, task.label(), done, len(tasks)
                    )
            finally:
                runner.close()
        # Assemble points run as arm and seed tasks (from their checkpoints: no
        # recomputation), and write each point's own manifest.
        if granularity == "seed":
            for point in todo:
                run(point.config, sweep.point_dir(point))
    except KeyboardInterrupt:
        manifest.update(status="interrupted", interrupted=_now())
        write_json(manifest_path, manifest)
        raise
    except Exception as exc:
        manifest.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else "")
        try:
            write_json(manifest_path, manifest)
        except ResultsError:
            pass  # the disk that failed the run may fail this too; the first error matters
        raise
    result.ran = [p.name for p in todo]
    result.elapsed = time.perf_counter() - start
    manifest.update(status="complete", finished=_now(), elapsed_s=round(result.elapsed, 3))
    write_json(manifest_path, manifest)
    return result


def load_sweep(directory: str | Path) -> dict[str, Any]:
    """A sweep directory's manifest, with a clear error if it is not one."""
    from .storage import read_json

    manifest = read_json(Path(directory) / MANIFEST)
    if not isinstance(manifest, dict) or "points" not in manifest:
        raise ResultsError(
            f"{str(directory)!r} is not a sweep directory (no readable {MANIFEST}); "
            "run 'collapselab sweep' first"
        )
    return manifest


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    from .resources import check_workers

    if args.workers is not None:
        check_workers(args.workers)
    sweep = plan_sweep(args.config, args.grid, overrides=args.set, out=args.out, root=args.root)
    if args.dry_run:
        print(f"sweep {sweep.name}: {len(sweep.points)} points -> {sweep.directory}")
        for point in sweep.points:
            print(f"  {point.name}")
        return 0
    result = run_sweep(
        sweep,
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        granularity=args.granularity,
    )
    if not args.quiet:
        print(
            f"sweep {sweep.name}: {len(result.points)} points, {len(result.ran)} run, "
            f"{len(result.skipped)} already complete, {result.elapsed:.1f} s"
        )
    print(f"results: {result.directory}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``collapselab sweep`` to the CLI's subcommands."""
    p = sub.add_parser("sweep", help="run a grid of configs (a phase diagram) locally or on Ray")
    p.add_argument("config", help="a YAML config file or a preset name")
    p.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2,...",
        help="a grid axis (dotted key, comma-separated values); repeat for a cross product",
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a base config field"
    )
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument(
        "--address",
        metavar="HOST:PORT|auto",
        help="a running Ray cluster (--backend ray): HOST:PORT of its head, or 'auto' for the "
        "one this machine belongs to (RAY_ADDRESS, or the cluster 'ray start' left here); "
        "default: a new cluster on this machine",
    )
    p.add_argument(
        "--workers", type=int, help="local processes, or CPUs of a new local Ray cluster"
    )
    p.add_argument(
        "--granularity",
        choices=("auto", "run", "seed"),
        default="auto",
        help="one task per run, or per seed for expensive models (auto: seed on Ray)",
    )
    p.add_argument("--root", help=f"results root (default ${ROOT_VARIABLE} or '{DEFAULT_ROOT}')")
    p.add_argument("--out", help="sweep folder inside the results root (default: config name)")
    p.add_argument("--dry-run", action="store_true", help="list the points, write nothing")
    p.set_defaults(func=cmd_sweep)  # -q/--quiet (print only the results path): the CLI's
