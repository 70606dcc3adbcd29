"""Cross-run queries: DuckDB SQL over every run's results under a results root.

Two views:

* ``metrics``: every ``metrics.parquet`` under the root, one row per (run, seed,
  generation, metric), with ``run_dir`` (the arm's folder, relative to the root);
* ``runs``: one row per arm: ``run_dir``, ``run_id``, ``config_hash``, ``status``,
  the sweep it belongs to (if any) and every config field flattened to a dotted
  column (``"regime.params.real_fraction"``; quote such names in SQL).

Join them on ``run_dir``. A results file that is unreadable, has the wrong
columns or fails its recorded checksum is left out with a warning naming it, never
read silently.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import CollapseLabError, ResultsError, require
from .io import read_json, read_yaml_mapping

METRICS_FILE = "metrics.parquet"


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        return {prefix[:-1]: json.dumps(data, sort_keys=True, default=str)}
    return {prefix[:-1]: data}


def _valid(path: Path, manifest: dict[str, Any] | None) -> str | None:
    """Why ``path`` cannot be read (``None`` if it can)."""
    import pyarrow.parquet as pq

    from .experiment.storage import METRIC_COLUMNS
    from .io import check_digest

    try:
        if isinstance(manifest, dict):
            check_digest(path, manifest.get("metrics_sha256"))
        names = pq.read_schema(path).names
    except ResultsError as exc:
        return str(exc)
    except Exception as exc:  # pyarrow raises several types for a broken footer
        return f"{str(path)!r} is not a readable Parquet file ({type(exc).__name__})"
    if names != list(METRIC_COLUMNS):
        return f"{str(path)!r} has columns {names}, expected {list(METRIC_COLUMNS)}"
    return None


def collect(root: str | Path) -> tuple[list[Path], pd.DataFrame, list[str]]:
    """The readable metrics files under ``root``, the ``runs`` table, and warnings."""
    base = Path(root)
    if not base.is_dir():
        raise ResultsError(f"results root {str(base)!r} is not a folder; pass --root")
    files, rows, warnings = [], [], []
    for path in sorted(base.rglob(METRICS_FILE)):
        arm_dir = path.parent
        manifest = _manifest(arm_dir / "manifest.json")
        problem = _valid(path, manifest)
        if problem is not None:
            warnings.append(f"skipped {problem}")
            continue
        files.append(path)
        config = read_yaml_mapping(arm_dir / "config.yaml")
        sweep = _find_sweep(arm_dir, base)
        row = {
            "run_dir": arm_dir.relative_to(base).as_posix(),
            "run_id": (manifest or {}).get("run_id", config.get("name")),
            "config_hash": (manifest or {}).get("config_hash"),
            "status": (manifest or {}).get("status"),
            "sweep": sweep,
        }
        row.update(_flatten(config))
        rows.append(row)
    runs = pd.DataFrame(rows)
    for column in runs.columns:  # one type per column, as DuckDB needs
        kinds = {type(v) for v in runs[column] if v is not None and v == v}
        if len(kinds) > 1 and not kinds <= {int, float}:
            runs[column] = runs[column].map(lambda v: None if v is None else str(v))
    return files, runs, warnings


def _manifest(path: Path) -> dict[str, Any] | None:
    data = read_json(path)
    return data if isinstance(data, dict) else None


def _find_sweep(arm_dir: Path, root: Path) -> str | None:
    for folder in arm_dir.parents:
        if folder == root or root not in folder.parents:
            return None
        if (folder / "sweep.json").is_file():
            return folder.relative_to(root).as_posix()
    return None


def connect(root: str | Path) -> tuple[Any, list[str]]:
    """A DuckDB connection with the ``metrics`` and ``runs`` views, and the warnings."""
    duckdb = require("duckdb", "query", "collapselab query")
    files, runs, warnings = collect(root)
    if not files:
        raise ResultsError(
            f"no readable {METRICS_FILE} under {str(root)!r}; run something or pass --root"
        )
    con = duckdb.connect()
    base = Path(root)
    table = pd.DataFrame(
        {
            "filename": [str(p) for p in files],
            "run_dir": [p.parent.relative_to(base).as_posix() for p in files],
        }
    )
    con.register("_files", table)
    listing = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    con.execute(
        "CREATE VIEW metrics AS SELECT m.* EXCLUDE (filename), f.run_dir "
        f"FROM read_parquet([{listing}], filename = true) m JOIN _files f USING (filename)"
    )
    con.register("runs", runs)
    return con, warnings


def query(sql: str, root: str | Path) -> pd.DataFrame:
    """Run ``sql`` over the results under ``root``; a DataFrame of the answer."""
    duckdb = require("duckdb", "query", "collapselab query")
    con, warnings = connect(root)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        return con.execute(sql).df()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CollapseLabError(f"query failed: {first}") from None
    finally:
        con.close()


def cmd_query(args: argparse.Namespace) -> int:
    from .experiment.sweep import results_root

    frame = query(args.sql, results_root(args.root))
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
        "query", help="SQL (DuckDB) over every run under the results root: views metrics, runs"
    )
    p.add_argument("sql", help='e.g. "SELECT run_dir, avg(value) FROM metrics GROUP BY 1"')
    p.add_argument("--root", help="results root (default $COLLAPSELAB_RESULTS or 'runs')")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_query)
