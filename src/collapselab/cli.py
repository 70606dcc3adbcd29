"""The ``collapselab`` command line: run, presets, show, report, diagnose, sweep, phase, query,
verdict.

Every user error prints one line, ``error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import CollapseLabError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every user error
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment.config import load_config, read_yaml
    from .experiment.runner import run

    data, _ = read_yaml(args.config)
    overrides = list(args.set or [])
    shortcuts = {"seeds": args.seeds, "generations": args.generations}
    for key, value in shortcuts.items():
        if value is not None:
            overrides.append(f"{key}={value}")
            # Shortcuts apply to every arm, also those that set their own value.
            for arm in data.get("arms") or []:
                if isinstance(arm, dict):
                    arm[key] = value
    config = load_config(data, overrides)
    result = run(
        config,
        args.out,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
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
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .report.runs import ARROW_KEY
    from .report.summary import band_levels, band_name, format_number, summarize

    console = Console()
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
    from rich.console import Console
    from rich.table import Table

    from .report.runs import ARROW_KEY, load
    from .report.summary import format_number

    console = Console()
    arms = load(directory).arms
    rows = {}
    for arm in arms:
        sim = arm.frame[arm.frame["source"] == "simulation"]
        last = sim[sim["generation"] == sim["generation"].max()]
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
    from rich.console import Console

    from .report.claims import evaluate, print_claims
    from .report.verdict import Thresholds, Verdict, print_verdict, run_verdicts

    console = Console()
    arms, baseline = run_verdicts(run)
    print_verdict(Verdict(run.directory, Thresholds(), arms, baseline), rows=False, console=console)
    console.print(
        "(each definition's statistic and interval: collapselab verdict RUN)", style="dim"
    )
    print_claims(evaluate(run), console=console)


def cmd_show(args: argparse.Namespace) -> int:
    from .report.runs import load

    directory = Path(args.run_dir)
    run = load(directory)
    if args.last:
        _print_last(directory)
    else:
        _print_run(run.arms, _halted_on_disk(run.arms))
    _print_verdicts(run)
    return 0


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
        if not args.full:  # one line each, cut to the terminal
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


def _one_line_warnings() -> None:
    """Warnings as one ``warning: ...`` line each (not Python's two, with a source line)."""
    import warnings

    def show(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        text = " ".join(str(message).split())
        print(f"warning: {text}", file=sys.stderr)

    warnings.showwarning = show


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="collapselab", description="Simulate, measure and mitigate model collapse."
    )
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
    p.add_argument("--quiet", action="store_true", help="print only the results path")
    add_memory_option(p)
    # issue 18: trackers and per-sample outputs
    p.add_argument(
        "--tracker",
        metavar="{mlflow,wandb}",
        help="log each arm as a tracker run: per-generation seed mean and s.e. of every "
        "metric, config as params, report as artifact (mlflow: OUT/mlruns unless "
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
    p.add_argument("--full", action="store_true", help="print each description whole")
    p.add_argument(
        "--root", help="results root of the last runs (default $COLLAPSELAB_RESULTS or 'runs')"
    )
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("show", help="table of each metric at the first, middle and last generation")
    p.add_argument("run_dir")
    p.add_argument(
        "--last", action="store_true", help="one table: every arm by metric at the last generation"
    )
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

    from .diagnose import add_parser as add_diagnose_parser

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _one_line_warnings()
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


if __name__ == "__main__":
    raise SystemExit(main())
