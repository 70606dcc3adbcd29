"""Cross-run queries: DuckDB SQL over every run's results under one or several results roots.

Four views:

* ``metrics``: every ``metrics.parquet`` under the roots, one row per (run, seed,
  generation, metric), with ``root`` (the results root, as given) and ``run_dir``
  (the arm's folder, relative to its root);
* ``last_generation``: the rows of ``metrics`` at each arm's last generation (the
  last one it simulated; theory rows of that generation too);
* ``runs``: one row per arm: ``root``, ``run_dir``, ``name`` (the experiment's
  name), ``arm`` (the arm's name; also ``run_id``), ``config_hash``, ``status``, the
  sweep it belongs to (if any) and every other config field flattened to a dotted
  column (``"regime.params.real_fraction"``; quote such names in SQL);
* ``verdicts``: one row per (arm, definition of collapse) of every finished run
  (:mod:`collapselab.report.verdict`, default thresholds): ``root``, ``run_dir``,
  ``definition``, ``name``, ``outcome``, ``metric``, ``value``, ``low``, ``high``,
  ``onset``... Built only when the SQL names it (it reads every run).

Join them on ``run_dir`` (and ``root``, with several roots). A results file that is unreadable, has the wrong
columns or types, holds no rows, or fails its recorded checksum (and an arm whose
manifest or config fails its schema) is left out with a warning naming it, never
read silently.

The query stays inside the results roots: once the views exist, DuckDB's external
access is switched off (only the metrics files found may be read) and its
configuration locked, and only one statement that reads (``SELECT``, ``WITH``,
``FROM``...) is run; anything else (``COPY``, ``ATTACH``, ``EXPORT``, ``SET``,
``INSTALL``, a table function on another file) is refused in one line. An answer
stops at ``--limit`` rows (default :data:`DEFAULT_LIMIT`), with a warning that says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import CollapseLabError, ResultsError, require

METRICS_FILE = "metrics.parquet"
#: Rows an answer holds at most unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 1_000_000


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        return {prefix[:-1]: json.dumps(data, sort_keys=True, default=str)}
    return {prefix[:-1]: data}


def _valid(path: Path, manifest: Any) -> str | None:
    """Why ``path`` cannot be read (``None`` if it can); ``manifest`` is its arm's
    :class:`~collapselab.experiment.storage.ArmManifest` (or ``None``)."""
    import pyarrow.parquet as pq

    from .experiment.storage import metrics_problem
    from .io import check_digest

    try:
        check_digest(path, manifest.metrics_sha256 if manifest is not None else None)
        metadata = pq.read_metadata(path)
    except ResultsError as exc:
        return str(exc)
    except Exception as exc:  # pyarrow raises several types for a broken footer
        return f"{str(path)!r} is not a readable Parquet file ({type(exc).__name__})"
    return metrics_problem(path, metadata.schema.to_arrow_schema(), metadata.num_rows)


Roots = str | Path | Sequence[str | Path]


def roots_of(root: Roots) -> list[Path]:
    """``root`` as a list of results roots: each a folder, none given twice or inside
    another (its runs would count twice)."""
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    if not roots:
        raise ResultsError("no results root; pass --root")
    for base in roots:
        if not base.is_dir():
            raise ResultsError(f"results root {str(base)!r} is not a folder; pass --root")
    resolved = [base.resolve() for base in roots]
    for i, a in enumerate(resolved):
        for j, b in enumerate(resolved):
            if i != j and (a == b or a in b.parents):
                raise ResultsError(
                    f"results root {str(roots[j])!r} is "
                    + ("given twice" if a == b else f"inside {str(roots[i])!r}")
                    + "; its runs would count twice, pass each root once"
                )
    return roots


def collect(root: Roots) -> tuple[list[Path], pd.DataFrame, list[str]]:
    """The readable metrics files under each root, the ``runs`` table, and warnings."""
    files, rows, warnings = [], [], []
    for base in roots_of(root):
        found, more, problems = _collect(base)
        files += found
        rows += more
        warnings += problems
    runs = pd.DataFrame(rows)
    for column in runs.columns:  # one type per column, as DuckDB needs
        kinds = {type(v) for v in runs[column] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            runs[column] = runs[column].map(lambda v: None if v is None else str(v))
    return files, runs, warnings


def _collect(base: Path) -> tuple[list[Path], list[dict[str, Any]], list[str]]:
    """The readable metrics files under ``base``, their ``runs`` rows, and warnings."""
    files, rows, warnings = [], [], []
    from .experiment.storage import read_arm_manifest, read_run_manifest, read_stored_config

    names: dict[Path, str | None] = {}  # by run folder: the experiment's name
    for path in sorted(base.rglob(METRICS_FILE)):
        arm_dir = path.parent
        try:
            manifest = read_arm_manifest(arm_dir / "manifest.json")
            config = read_stored_config(arm_dir / "config.yaml")
        except ResultsError as exc:
            warnings.append(f"skipped {exc}")
            continue
        problem = _valid(path, manifest)
        if problem is not None:
            warnings.append(f"skipped {problem}")
            continue
        files.append(path)
        sweep = _find_sweep(arm_dir, base)
        arm = manifest.run_id if manifest and manifest.run_id else config.get("name")
        if arm_dir.parent not in names:
            try:
                top = read_run_manifest(arm_dir.parent / "manifest.json")
            except ResultsError:
                top = None
            names[arm_dir.parent] = (
                top.name if top is not None and arm in (top.arms or []) else None
            )
        row = {
            "root": str(base),
            "run_dir": arm_dir.relative_to(base).as_posix(),
            "run_id": arm,
            "arm": arm,
            "config_hash": manifest.config_hash if manifest else None,
            "status": manifest.status if manifest else None,
            "sweep": sweep,
        }
        row.update(_flatten(config))
        # The arm's own config names the arm; the run's manifest names the experiment.
        row["name"] = names[arm_dir.parent] or arm
        rows.append(row)
    return files, rows, warnings


def _find_sweep(arm_dir: Path, root: Path) -> str | None:
    for folder in arm_dir.parents:
        if folder == root or root not in folder.parents:
            return None
        if (folder / "sweep.json").is_file():
            return folder.relative_to(root).as_posix()
    return None


def connect(root: Roots) -> tuple[Any, list[str]]:
    """A DuckDB connection with the ``metrics``, ``last_generation`` and ``runs`` views,
    and the warnings."""
    duckdb = require("duckdb", "query", "collapselab query")
    files, runs, warnings = collect(root)
    if not files:
        where = ", ".join(repr(str(r)) for r in roots_of(root))
        raise ResultsError(
            f"no readable {METRICS_FILE} under {where}; run something or pass --root"
        )
    con = duckdb.connect(config={"threads": 1})
    table = pd.DataFrame(
        {
            "filename": [str(p) for p in files],
            "root": list(runs["root"]),
            "run_dir": list(runs["run_dir"]),
        }
    )
    con.register("_files", table)
    listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    con.execute(
        "CREATE VIEW metrics AS SELECT m.* EXCLUDE (filename), f.root, f.run_dir "
        f"FROM read_parquet([{listing}], filename = true) m JOIN _files f USING (filename)"
    )
    con.execute(
        "CREATE VIEW last_generation AS SELECT m.* FROM metrics m JOIN "
        "(SELECT root, run_dir, max(generation) AS generation FROM metrics "
        "WHERE source = 'simulation' GROUP BY root, run_dir) USING (root, run_dir, generation)"
    )
    con.register("runs", runs)
    # From here on the connection reads the metrics files found and nothing else.
    quoted = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    con.execute(f"SET allowed_paths = [{quoted}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con, warnings


def _is_run_manifest(path: Path) -> bool:
    """Whether ``path`` is a run's manifest (it lists arms), read as plain JSON."""
    from .io import read_json

    data = read_json(path)
    return isinstance(data, dict) and "arms" in data


def verdicts(root: Roots) -> tuple[pd.DataFrame, list[str]]:
    """The ``verdicts`` view: every definition's verdict for every arm of every finished run
    under each root (sweeps as sweeps, so definition 8 is measured), and warnings."""
    frames, warnings = [], []
    for base in roots_of(root):
        frame, more = _verdicts(base)
        if len(frame):
            frame.insert(0, "root", str(base))
            frames.append(frame)
        warnings += more
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), warnings


def _verdicts(base: Path) -> tuple[pd.DataFrame, list[str]]:
    """The ``verdicts`` rows of the runs under ``base``, and warnings."""
    from .report.verdict import verdict

    sweeps = sorted(p.parent for p in base.rglob("sweep.json"))
    runs = sorted(
        p.parent
        for p in base.rglob("manifest.json")
        if _is_run_manifest(p) and not any(s in p.parents for s in sweeps)
    )
    frames, warnings = [], []
    for folder in sweeps + runs:
        try:
            result = verdict(folder)
        except CollapseLabError as exc:
            warnings.append(f"no verdicts for {str(folder)!r}: {exc}")
            continue
        frame = result.to_frame()
        frame.insert(
            0,
            "run_dir",
            [
                (a.directory or folder).relative_to(base).as_posix()
                for a in result.arms
                for _ in a.rows
            ],
        )
        frames.append(frame)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), warnings


def _statement(con: Any, sql: str) -> str:
    """The one statement of ``sql``, refused unless it only reads."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise CollapseLabError(f"query failed: {_first_line(exc)}") from None
    if not statements:
        raise CollapseLabError('the query is empty; give one SELECT, e.g. "SELECT * FROM runs"')
    if len(statements) > 1:
        raise CollapseLabError(
            f"the query holds {len(statements)} statements; give one SELECT at a time"
        )
    (statement,) = statements
    if statement.type != duckdb.StatementType.SELECT:
        raise CollapseLabError(
            f"only queries that read are run (SELECT); this one is {statement.type.name}"
        )
    return str(statement.query)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def query(sql: str, root: Roots, limit: int | None = DEFAULT_LIMIT) -> pd.DataFrame:
    """Run one reading statement ``sql`` over the results under ``root`` (a results
    root, or a list of them: see the module's docstring); a DataFrame
    of the answer's first ``limit`` rows (``None``: all), fetched in chunks so a huge
    answer stops at the limit (with a warning) instead of filling memory."""
    import re

    duckdb = require("duckdb", "query", "collapselab query")
    con, warnings = connect(root)
    if re.search(r"\bverdicts\b", sql, re.IGNORECASE):
        table, more = verdicts(root)
        con.register("verdicts", table)
        warnings += more
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        statement = _statement(con, sql)
        con.execute(statement)
        chunks, rows = [], 0
        while limit is None or rows <= limit:
            chunk = con.fetch_df_chunk(16)
            if not len(chunk):
                break
            chunks.append(chunk)
            rows += len(chunk)
        if not chunks:
            chunks = [chunk]  # the answer's columns, with no rows
        frame = pd.concat(chunks, ignore_index=True)
    except duckdb.Error as exc:
        raise CollapseLabError(f"query failed: {_first_line(exc)}") from None
    finally:
        con.close()
    if limit is not None and len(frame) > limit:
        print(
            f"warning: the answer has more than {limit:,} rows; stopped there "
            "(add LIMIT or GROUP BY to the query, or raise --limit)",
            file=sys.stderr,
        )
        frame = frame.iloc[:limit]
    return frame


def cmd_query(args: argparse.Namespace) -> int:
    from .experiment.sweep import results_root

    if args.limit < 1:
        raise CollapseLabError(f"--limit must be >= 1; got {args.limit}")
    roots = [results_root(r) for r in args.root] if args.root else [results_root(None)]
    frame = query(args.sql, roots, limit=args.limit)
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records") + "\n")
    else:
        with pd.option_context("display.max_rows", 200, "display.width", 200):
            print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``collapselab query`` to the CLI's subcommands."""
    p = sub.add_parser(
        "query",
        help="SQL (DuckDB) over every run under the results roots: views metrics, "
        "last_generation, runs, verdicts",
    )
    p.add_argument("sql", help='e.g. "SELECT run_dir, avg(value) FROM metrics GROUP BY 1"')
    p.add_argument(
        "--root",
        action="append",
        help="a results root (default $COLLAPSELAB_RESULTS or 'runs'); repeat for several, "
        "told apart by the 'root' column",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help="most rows of an answer (default %(default)s)",
    )
    p.set_defaults(func=cmd_query)
