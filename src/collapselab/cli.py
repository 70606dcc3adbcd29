"""The ``collapselab`` command line: run, presets, show, report, diagnose, sweep, phase, query,
verdict, cache, completion.

Every user error prints one line, ``error: ...``, and exits with code 2. Results
(tables, paths, ``--json``) go to stdout; logs (``logging``: progress, heartbeats,
what a run resumed or skipped) and warnings to stderr. ``-v``/``-q`` (or
``--log-level``) set how much is logged, before or after the subcommand. When stdout
is not a terminal (a pipe, a file, a batch job's log) tables keep their full width
and a run logs a heartbeat line per arm instead of drawing a progress bar.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import CollapseLabError

EXIT_USAGE = 2
#: Seconds between heartbeat lines of a run whose output is not a terminal.
HEARTBEAT_SECONDS = 30.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every user error
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment.config import load_config
    from .experiment.runner import run
    from .report.html import write_report_safely

    # --seeds and --generations apply to every arm, also those that set their own value
    config = load_config(args.config, args.set, seeds=args.seeds, generations=args.generations)
    _cache_switch(args)
    interactive = sys.stdout.isatty() and sys.stderr.isatty()
    heartbeat = args.heartbeat
    if heartbeat is None and not interactive:
        heartbeat = HEARTBEAT_SECONDS
    if not logging.getLogger("collapselab.experiment.observers").isEnabledFor(logging.INFO):
        heartbeat = None  # -q: its lines would not be shown
    result = run(
        config,
        args.out,
        workers=args.workers,
        overwrite=args.overwrite,
        reporter=write_report_safely,
        progress=interactive and heartbeat is None and not args.quiet,
        heartbeat=heartbeat,
        tracker=args.tracker,
        save_generations=_save_generations(args),
    )
    if not args.quiet:
        # printed from the results in memory, not read back from the run directory
        arms = _arms_in_memory(result)
        _print_run(arms, {arm.name: (arm.halted, arm.config.seeds) for arm in result.arms})
        _print_headline(arms)
    print(f"results: {result.directory}")
    if not args.quiet:
        print(f"report:  {result.report or 'not written (see the warning above)'}")
    return 0


def _save_generations(args: argparse.Namespace) -> Any:
    """What ``--save-generations`` and ``--save-format`` ask for (``None``: nothing)."""
    from .experiment.generations import SaveGenerations

    if args.save_generations is None:
        return None
    return SaveGenerations.parse(args.save_generations, args.save_format)


def _arms_in_memory(result: Any) -> list[Any]:
    """The arms of a :class:`~collapselab.experiment.runner.RunResult` as the report reads
    them (:class:`collapselab.report.runs.Arm`), without reading the run folder back."""
    from .report.runs import Arm, declared_metrics

    arms = []
    for arm in result.arms:
        config = arm.config.model_dump(mode="json")
        metrics, metric_ids = declared_metrics(config)
        arms.append(
            Arm(
                name=arm.name,
                directory=arm.directory,
                config=config,
                manifest={},
                frame=arm.frame,
                snapshots=None,
                metrics=metrics,
                metric_ids=metric_ids,
            )
        )
    return arms


def _print_headline(arms: list[Any]) -> None:
    """Three headline numbers per arm: the median at generation 0 and at the last."""
    from .report.summary import format_number, headline_metrics

    width = max(len(arm.name) for arm in arms)
    print("headline (median over seeds, generation 0 -> last):")
    for arm in arms:
        cells = [
            f"{_marked(arm, metric)} {format_number(first)} -> {format_number(last)}"
            for metric, first, last in headline_metrics(arm.frame, arm.metrics)
        ]
        print(f"  {arm.name:{width}s}  " + "   ".join(cells))


def _marked(arm: object, metric: str) -> str:
    """``metric`` with its declared healthy direction (``variance ↑``), if it has one."""
    arrow = arm.describe(metric).arrow  # type: ignore[attr-defined]
    return f"{metric} {arrow}" if arrow else metric


def _halted_on_disk(arms: list[Any]) -> dict[str, tuple[dict[Any, int], Any]]:
    """By arm: the seeds that halted (by seed, the generation) and the number of seeds,
    from each arm's manifest (validated when the run was loaded)."""
    return {
        arm.name: (arm.manifest.get("halted") or {}, arm.manifest.get("seeds", "?"))
        for arm in arms
        if arm.manifest
    }


def _print_halted(halted: dict[str, tuple[dict[Any, int], Any]]) -> None:
    """One line per arm whose chains halted: nothing was left to train on."""
    for arm, (seeds_halted, seeds) in halted.items():
        if seeds_halted:
            print(
                f"  {arm}: {len(seeds_halted)} of {seeds} seeds had nothing left "
                f"to train on (the curators kept no sample), first at generation "
                f"{min(seeds_halted.values())}; their later values are NaN"
            )


def _print_run(arms: list[Any], halted: dict[str, tuple[dict[Any, int], Any]]) -> None:
    """Per arm: each metric (then each statistic) at generation 0, the middle and the last;
    then the arms that halted. ``arms`` are :class:`collapselab.report.runs.Arm`."""
    from rich.table import Table
    from rich.text import Text

    from .report.runs import ARROW_KEY
    from .report.summary import band_levels, band_name, format_number, stdout_console, summarize

    console = stdout_console()
    for arm in arms:
        summary = summarize(arm.frame)
        seeds = int(summary["seeds"].max())
        has_theory = bool(summary["theory"].notna().any())
        by_metric = dict(tuple(summary.groupby("metric", sort=False)))
        names = {m: _marked(arm, m) for m in by_metric}
        table = Table(
            title=f"{arm.name}: {seeds} seeds",
            title_justify="left",
            caption=f"band: {band_name(seeds)}",
            caption_justify="left",
        )
        table.add_column("metric", no_wrap=True, min_width=max(map(len, names.values())))
        band = "central 95%" if band_levels(seeds)[0] > 0 else "min–max"
        for column in ["gen", "median", band] + (["mean ± s.e.", "theory"] if has_theory else []):
            table.add_column(column, justify="right")
        statistics = [m for m in by_metric if not arm.is_metric(m)]
        for metric in [m for m in by_metric if arm.is_metric(m)] + statistics:
            if statistics and metric == statistics[0]:
                table.add_row(Text("statistics:", style="dim"))
            rows = by_metric[metric]
            for i, (_, row) in enumerate(rows.sort_values("generation").iterrows()):
                cells = [
                    Text(names[metric] if i == 0 else ""),
                    str(int(row["generation"])),
                    format_number(row["median"]),
                    f"[{format_number(row['lo'])}, {format_number(row['hi'])}]",
                ]
                if has_theory:
                    known = row["theory"] == row["theory"]  # not NaN
                    cells += [
                        f"{format_number(row['mean'])} ± {format_number(row['sem'])}"
                        if known
                        else "",
                        format_number(row["theory"]) if known else "",
                    ]
                table.add_row(*cells, end_section=i == len(rows) - 1)
        console.print(table)
    if any(arm.describe(m).arrow for arm in arms for m in arm.metrics):
        console.print(ARROW_KEY, style="dim")
    _print_halted(halted)


def _print_last(directory: Path) -> None:
    """Every arm (rows) by metric (columns), median over seeds at the last generation; then
    one small table of what curators and regimes recorded (statistics, not metrics)."""
    from rich.table import Table

    from .report.runs import ARROW_KEY, load
    from .report.summary import format_number, stdout_console

    console = stdout_console()
    arms = load(directory).arms
    rows = {}
    for arm in arms:
        last = _last_generation(arm.frame)
        rows[arm.name] = (
            arm,
            int(last["generation"].max()),
            last.groupby("metric", sort=False)["value"].median(),
        )
    names = list(dict.fromkeys(m for _, _, medians in rows.values() for m in medians.index))
    headers = {}
    for arm, _, medians in rows.values():
        for m in medians.index:
            if arm.is_metric(m):
                headers.setdefault(m, _marked(arm, m))
    metrics = [m for m in names if m in headers]
    table = Table(
        title=f"{directory.name}: median over seeds at the last generation", title_justify="left"
    )
    table.add_column("arm", no_wrap=True)
    table.add_column("gen", justify="right")
    for metric in metrics:
        table.add_column(headers[metric], justify="right", overflow="fold")
    statistics = []
    for name, (arm, generation, medians) in rows.items():
        cells = [format_number(medians[m]) if m in medians.index else "" for m in metrics]
        table.add_row(name, str(generation), *cells)
        statistics += [(name, m, medians[m]) for m in medians.index if not arm.is_metric(m)]
    console.print(table)
    if any(arm.describe(m).arrow for arm in arms for m in arm.metrics):
        console.print(ARROW_KEY, style="dim")
    if statistics:
        stats = Table(
            title="statistics of curators and regimes (median at the last generation)",
            title_justify="left",
        )
        stats.add_column("arm", no_wrap=True)
        stats.add_column("statistic")
        stats.add_column("median", justify="right")
        previous = None
        for name, statistic, value in statistics:
            stats.add_row(name if name != previous else "", statistic, format_number(value))
            previous = name
        console.print(stats)


def _print_verdicts(run: Any) -> None:
    """The verdict matrix (arms x definitions of collapse) and the claims table of ``run``
    (a :class:`collapselab.report.runs.Run`)."""
    from .report.claims import evaluate, print_claims
    from .report.summary import stdout_console
    from .report.verdict import Thresholds, Verdict, print_verdict, run_verdicts

    console = stdout_console()
    arms, baseline = run_verdicts(run)
    print_verdict(Verdict(run.directory, Thresholds(), arms, baseline), rows=False, console=console)
    console.print(
        "(each definition's statistic and interval: collapselab verdict RUN)", style="dim"
    )
    print_claims(evaluate(run), console=console)


def _last_generation(frame: Any) -> Any:
    """The simulation rows of ``frame``'s last generation."""
    sim = frame[frame["source"] == "simulation"]
    return sim[sim["generation"] == sim["generation"].max()]


def show_rows(run: Any, last: bool = False) -> Any:
    """The data of ``show``'s tables as one tidy frame: a row per (arm, series,
    generation) with the median, the band (``lo``, ``hi``: see ``band``), the mean and
    its standard error over ``seeds`` seeds, and the closed form (``theory``) where one
    holds. The generations are the table's (first, middle, last), or with ``last``
    only the last one."""
    import pandas as pd

    from .report.summary import band_levels, summarize

    frames = []
    for arm in run.arms:
        generations = None
        if last:
            generations = [int(_last_generation(arm.frame)["generation"].max())]
        summary = summarize(arm.frame, generations)
        seeds = int(summary["seeds"].max()) if len(summary) else 0
        summary.insert(0, "arm", arm.name)
        summary.insert(
            2, "kind", ["metric" if arm.is_metric(m) else "statistic" for m in summary["metric"]]
        )
        summary.insert(3, "direction", [str(arm.describe(m).direction) for m in summary["metric"]])
        summary["band"] = "central 95%" if band_levels(seeds)[0] > 0 else "min-max"
        frames.append(summary)
    return pd.concat(frames, ignore_index=True)


def cmd_show(args: argparse.Namespace) -> int:
    from .report.runs import load

    directory = Path(args.run_dir)
    run = load(directory)
    if args.csv:
        sys.stdout.write(show_rows(run, last=args.last).to_csv(index=False))
        return 0
    if args.json:
        _print_show_json(run, last=args.last)
        return 0
    if args.last:
        _print_last(directory)
    else:
        _print_run(run.arms, _halted_on_disk(run.arms))
    _print_verdicts(run)
    return 0


def _print_show_json(run: Any, last: bool) -> None:
    """``show --json``: the tables' rows, the verdicts and the claims, as strict JSON."""
    import json

    from .report.claims import evaluate
    from .report.verdict import Thresholds, Verdict, plain, run_verdicts

    rows = show_rows(run, last=last)
    arms, baseline = run_verdicts(run)
    document = {
        "run": str(run.directory),
        "halted": {name: seeds for name, (seeds, _) in _halted_on_disk(run.arms).items()},
        "rows": rows.to_dict(orient="records"),
        "verdicts": Verdict(run.directory, Thresholds(), arms, baseline).to_dict(),
        "claims": [result.to_dict() for result in evaluate(run)],
    }
    print(json.dumps(plain(document), indent=2))


def cmd_report(args: argparse.Namespace) -> int:
    from .report.html import write_report

    run_dirs = [Path(d) for d in args.run_dirs]
    if args.out:
        out = Path(args.out)
    else:
        out = run_dirs[0] / "report.html" if len(run_dirs) == 1 else Path("comparison.html")
    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    path = write_report(run_dirs, out, figures=args.figures, formats=formats)
    if args.figures:
        print(f"figures: {args.figures} ({', '.join(formats)})")
    print(f"report: {path}")
    return 0


def _last_result(name: str, root: Path) -> str:
    """How the preset's last run under ``root`` (``root/<name>``) fared on its claims."""
    from .experiment.config import read_yaml
    from .experiment.storage import read_json
    from .report.claims import evaluate, parse

    claims = parse(read_yaml(name)[0].get("claims"))
    manifest = read_json(root / name / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("status") != "complete":
        return "not run" if claims else "no claims"
    if not claims:
        return "ran, no claims"
    try:
        results = evaluate(root / name, claims)
    except CollapseLabError:
        return "unreadable run"
    return f"{sum(r.holds == 'yes' for r in results)}/{len(results)} claims hold"


def cmd_presets(args: argparse.Namespace) -> int:
    import shutil
    import textwrap

    from .experiment.config import preset_names, read_yaml
    from .experiment.sweep import results_root

    root = results_root(args.root)
    width = shutil.get_terminal_size((120, 24)).columns
    for name in preset_names():
        data, _ = read_yaml(name)
        description = " ".join(str(data.get("description", "")).split())
        last = _last_result(name, root)
        if not args.full and sys.stdout.isatty():  # one line each, cut to the terminal
            description = textwrap.shorten(description, max(width - 44, 40), placeholder=" ...")
        print(f"{name:22s} {last:19s} {description}")
    return 0


def add_memory_option(parser: argparse.ArgumentParser) -> None:
    """``--max-memory``: the memory budget that a run's estimate and every data read are
    checked against (default: what the machine has free)."""
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory the command may use, e.g. 64G, or 'off' for no check "
        "(default: what this machine has available)",
    )


def _apply_memory_option(args: argparse.Namespace) -> None:
    """Set ``--max-memory`` for this process and its workers (see :func:`io.memory_budget`)."""
    import os

    from .io import MEMORY_VARIABLE, parse_size

    value = vars(args).get("max_memory")
    if value is None:
        return
    try:
        parse_size(value)
    except ValueError as exc:
        raise CollapseLabError(f"--max-memory: {exc}") from None
    os.environ[MEMORY_VARIABLE] = value


def _one_line_warnings(level: int) -> None:
    """Warnings as one ``warning: ...`` line each (not Python's two, with a source line);
    none at a log level above WARNING (``-qq``)."""
    import warnings

    def show(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        if level > logging.WARNING:
            return
        text = " ".join(str(message).split())
        print(f"warning: {text}", file=sys.stderr)

    warnings.showwarning = show


def _cache_switch(args: argparse.Namespace) -> None:
    """``run --no-cache``: neither read nor write pretrained results (worker processes
    inherit the switch with the environment)."""
    if args.no_cache:
        import os

        from .cache import NO_CACHE_ENV

        os.environ[NO_CACHE_ENV] = "1"


def cmd_cache(args: argparse.Namespace) -> int:
    """``collapselab cache list`` and ``collapselab cache clear [--kind KIND]``."""
    from . import cache

    if args.action == "clear":
        removed = cache.clear(args.kind)
        print(f"removed {removed} cache entr{'y' if removed == 1 else 'ies'} from {cache.root()}")
        return 0
    found = cache.entries()
    if args.kind:
        found = [e for e in found if e.kind == args.kind]
    total = sum(e.bytes for e in found)
    print(f"cache: {cache.root()} ({len(found)} entries, {total / 1e6:.1f} MB)")
    for e in found:
        info = " ".join(f"{k}={v}" for k, v in e.info.items())
        print(f"  {e.kind:18s} {e.digest[:12]}  {e.bytes / 1e6:7.2f} MB  {e.created}  {info}")
    return 0


def _add_cache_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="list or clear the cache of pretrained results (generation 0, references)"
    )
    p.add_argument("action", choices=("list", "clear"))
    p.add_argument("--kind", help="only entries of this kind (e.g. gpt-generation0)")
    p.set_defaults(func=cmd_cache)


def add_logging_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``-v``, ``-q`` and ``--log-level``; ``default`` is ``argparse.SUPPRESS`` on a
    subcommand, so that the options work before and after its name."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if default is None else default,
        help="log more on stderr (-v: debug)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0 if default is None else default,
        help="print only results (a run or sweep: only its path); log only warnings "
        "(-qq: only errors)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=default,
        help="the level of log lines on stderr (default INFO; overrides -v and -q)",
    )


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the shell's completion script (shtab), built from this parser."""
    from .errors import require

    shtab = require("shtab", "completion", "shell completion")
    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = _Parser(
        prog="collapselab", description="Simulate, measure and mitigate model collapse."
    )
    parser.add_argument("--version", action="version", version=f"collapselab {__version__}")
    add_logging_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run a config file or a preset")
    p.add_argument("config", help="a YAML config file or a preset name (see 'collapselab presets')")
    p.add_argument("--out", help="run directory (default runs/<name>)")
    p.add_argument("--seeds", type=int, help="number of seeds S")
    p.add_argument("--generations", type=int, help="number of generations G")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config field (dotted key)"
    )
    p.add_argument("--workers", type=int, default=1, help="processes across seeds (per-seed path)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a run of a different config at --out"
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        metavar="SECONDS",
        help="log a plain progress line per arm every SECONDS instead of the progress bar "
        f"(default: {HEARTBEAT_SECONDS:g} when stdout is not a terminal, e.g. a SLURM log)",
    )
    add_memory_option(p)
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="retrain generation 0 and reference models instead of reusing cached ones",
    )
    # issue 18: trackers and per-sample outputs
    p.add_argument(
        "--tracker",
        metavar="{mlflow,wandb}",
        help="log each arm as a tracker run: per-generation seed mean and s.e. of every "
        "metric, config as params, report as artifact (mlflow: OUT/mlflow.db unless "
        "MLFLOW_TRACKING_URI; wandb: offline unless WANDB_MODE)",
    )
    p.add_argument(
        "--save-generations",
        nargs="?",
        const="all",
        metavar="all|SEEDS",
        help="save each generation's output under OUT/<arm>/generations/ for every seed "
        "(all, the default) or the seeds listed (0,1): JSONL for text, .npz for arrays",
    )
    p.add_argument(
        "--save-format",
        default="files",
        metavar="{files,datasets}",
        help="with --save-generations: 'datasets' also writes each seed's text as a "
        "Hugging Face dataset folder (needs 'datasets')",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "presets",
        help="list the presets, what each reproduces, and how its last run (ROOT/<preset>) "
        "fared on the paper's claims",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="print each description whole (always, when stdout is not a terminal)",
    )
    p.add_argument(
        "--root", help="results root of the last runs (default $COLLAPSELAB_RESULTS or 'runs')"
    )
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("show", help="table of each metric at the first, middle and last generation")
    p.add_argument("run_dir")
    p.add_argument(
        "--last", action="store_true", help="one table: every arm by metric at the last generation"
    )
    machine = p.add_mutually_exclusive_group()
    machine.add_argument(
        "--json",
        action="store_true",
        help="the tables' rows (arm, metric, generation, median, lo, hi, mean, sem, seeds, "
        "theory), the verdicts and the claims as JSON",
    )
    machine.add_argument("--csv", action="store_true", help="the tables' rows as CSV")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "report",
        help="write report.html for a run, or a comparison of several runs or of a sweep's points",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="one run, several to compare, or a sweep folder (its points compared)",
    )
    p.add_argument(
        "--out", help="HTML file (default RUN_DIR/report.html; comparison.html for several)"
    )
    p.add_argument("--figures", metavar="DIR", help="also export every figure into DIR")
    p.add_argument(
        "--format", default="png", help="figure formats for --figures: png, svg, pdf (comma list)"
    )
    p.set_defaults(func=cmd_report)

    from .diagnosis import add_parser as add_diagnose_parser

    add_diagnose_parser(sub)

    from .experiment.sweep import add_parser as add_sweep_parser
    from .query import add_parser as add_query_parser
    from .report.phase import add_parser as add_phase_parser
    from .report.verdict import add_parser as add_verdict_parser

    add_sweep_parser(sub)
    add_memory_option(sub.choices["sweep"])
    add_memory_option(sub.choices["diagnose"])
    add_phase_parser(sub)
    add_query_parser(sub)
    add_verdict_parser(sub)
    _add_cache_parser(sub)

    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for SHELL. Bash: "
        "'collapselab completion bash > ~/.local/share/bash-completion/completions/collapselab'; "
        "zsh: 'collapselab completion zsh > ~/.zfunc/_collapselab' (with ~/.zfunc on $fpath). "
        "Needs shtab: pip install 'collapselab[completion]'.",
    )
    p.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    p.set_defaults(func=cmd_completion)
    for command in sub.choices.values():
        add_logging_options(command, argparse.SUPPRESS)
    return parser


def log_level(args: argparse.Namespace) -> int:
    """The level that ``-v``, ``-q`` and ``--log-level`` ask for (default INFO)."""
    if args.log_level:
        return int(getattr(logging, args.log_level))
    level = logging.INFO + 10 * (args.quiet - args.verbose)
    return min(max(level, logging.DEBUG), logging.CRITICAL)


def _log_to_stderr(level: int) -> tuple[logging.Logger, logging.Handler, tuple[int, bool]]:
    """Log records of collapselab at ``level`` and above to stderr, one line each (and
    only there: the command owns its stderr); returns what to undo."""
    handler = logging.StreamHandler(sys.stderr)
    where = " %(name)s" if level <= logging.DEBUG else ""  # which module, when debugging
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s{where}: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    logger = logging.getLogger("collapselab")
    previous = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger, handler, previous


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = log_level(args)
    _one_line_warnings(level)
    logger, handler, previous = _log_to_stderr(level)
    try:
        _apply_memory_option(args)
        return args.func(args)
    except CollapseLabError as exc:
        # One line even when a library's message has several (YAML reader errors do).
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        # The estimates refuse what cannot fit before it starts; this is what they missed.
        print(
            "error: out of memory; lower the sizes in the config (or --max-memory)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        from .experiment.runner import Terminated

        print(
            "interrupted: rerun the same command to resume from the last checkpoint",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # output piped into `head`: stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:  # main() may run again in this process (tests, a notebook): leave no handler
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


if __name__ == "__main__":
    raise SystemExit(main())
