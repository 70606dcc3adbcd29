"""The ``collapselab`` command line: run, presets, show, report, diagnose, cache.

Every user error prints one line, ``error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import CollapseLabError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every user error
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment.config import load_config
    from .experiment.runner import run

    overrides = list(args.set or [])
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    if args.generations is not None:
        overrides.append(f"generations={args.generations}")
    config = load_config(args.config, overrides)
    if config.arms and (args.seeds is not None or args.generations is not None):
        # Shortcuts apply to every arm, also those that set their own value.
        for arm in config.arms:
            if args.seeds is not None:
                arm["seeds"] = args.seeds
            if args.generations is not None:
                arm["generations"] = args.generations
        config = load_config(config.model_dump(mode="json"))
    if args.workers < 1:
        raise CollapseLabError(f"--workers must be >= 1; got {args.workers}")
    _cache_switch(args)
    result = run(
        config,
        args.out,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if not args.quiet:
        _print_run(result.directory)
        _print_headline(result.directory)
    print(f"results: {result.directory}")
    if not args.quiet:
        print(f"report:  {result.report or 'not written (see the warning above)'}")
    return 0


def _print_headline(directory: Path) -> None:
    """Three headline numbers per arm: the median at generation 0 and at the last."""
    from .report.summary import format_number, headline_metrics, load_run

    frames = load_run(directory)
    width = max(len(arm) for arm in frames)
    print("headline (median over seeds, generation 0 -> last):")
    for arm, frame in frames.items():
        cells = [
            f"{metric} {format_number(first)} -> {format_number(last)}"
            for metric, first, last in headline_metrics(frame)
        ]
        print(f"  {arm:{width}s}  " + "   ".join(cells))


def _print_halted(directory: Path, arms: list[str]) -> None:
    """One line per arm whose chains halted: nothing was left to train on."""
    from .experiment.storage import read_json

    for arm in arms:
        arm_dir = directory / arm if (directory / arm).is_dir() else directory  # an arm's own
        manifest = read_json(arm_dir / "manifest.json")
        halted = manifest.get("halted") if isinstance(manifest, dict) else None
        if halted:
            print(
                f"  {arm}: {len(halted)} of {manifest.get('seeds', '?')} seeds had nothing left "
                f"to train on (the curators kept no sample), first at generation "
                f"{min(halted.values())}; their later values are NaN"
            )


def _print_run(directory: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from .report.summary import format_number, load_run, summarize

    console = Console()
    frames = load_run(directory)
    for arm, frame in frames.items():
        summary = summarize(frame)
        seeds = int(summary["seeds"].max())
        has_theory = bool(summary["theory"].notna().any())
        table = Table(title=f"{arm}: {seeds} seeds", title_justify="left")
        table.add_column("metric")
        table.add_column("gen", justify="right")
        table.add_column("median", justify="right")
        table.add_column("95% interval", justify="right")
        if has_theory:
            table.add_column("mean ± s.e.", justify="right")
            table.add_column("theory", justify="right")
        for metric, rows in summary.groupby("metric", sort=False):
            for i, (_, row) in enumerate(rows.sort_values("generation").iterrows()):
                cells = [
                    metric if i == 0 else "",
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
    _print_halted(directory, list(frames))


#: Curation and web statistics that `show --last` puts beside the metrics.
HEADLINE_STATS = ("curation.kept_fraction", "web.synthetic_share", "web.trained_synthetic_share")


def _print_last(directory: Path) -> None:
    """One table: every arm (rows) by metric (columns), median over seeds at the last generation."""
    from rich.console import Console
    from rich.table import Table

    from .report.summary import format_number, load_run

    frames = load_run(directory)
    rows = {}
    for arm, frame in frames.items():
        sim = frame[frame["source"] == "simulation"]
        last = sim[sim["generation"] == sim["generation"].max()]
        rows[arm] = (
            int(last["generation"].max()),
            last.groupby("metric", sort=False)["value"].median(),
        )
    # the configured metrics and the share curation kept; curator details stay in `show`
    metrics = list(
        dict.fromkeys(
            m
            for _, medians in rows.values()
            for m in medians.index
            if "." not in m or m in HEADLINE_STATS
        )
    )
    table = Table(
        title=f"{directory.name}: median over seeds at the last generation", title_justify="left"
    )
    table.add_column("arm", no_wrap=True)
    table.add_column("gen", justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right", overflow="fold")
    for arm, (generation, medians) in rows.items():
        cells = [format_number(medians[m]) if m in medians.index else "" for m in metrics]
        table.add_row(arm, str(generation), *cells)
    Console().print(table)


def cmd_show(args: argparse.Namespace) -> int:
    if args.last:
        _print_last(Path(args.run_dir))
    else:
        _print_run(Path(args.run_dir))
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


def cmd_presets(args: argparse.Namespace) -> int:
    import shutil
    import textwrap

    from .experiment.config import preset_names, read_yaml

    width = shutil.get_terminal_size((120, 24)).columns
    for name in preset_names():
        data, _ = read_yaml(name)
        description = " ".join(str(data.get("description", "")).split())
        if not args.full:  # one line each, cut to the terminal
            description = textwrap.shorten(description, max(width - 24, 40), placeholder=" ...")
        print(f"{name:22s} {description}")
    return 0


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
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="retrain generation 0 and reference models instead of reusing cached ones",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("presets", help="list the presets and what each reproduces")
    p.add_argument("--full", action="store_true", help="print each description whole")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("show", help="table of each metric at the first, middle and last generation")
    p.add_argument("run_dir")
    p.add_argument(
        "--last", action="store_true", help="one table: every arm by metric at the last generation"
    )
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "report", help="write report.html for a run, or a comparison of several runs"
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="one run, or several to compare")
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

    add_sweep_parser(sub)
    add_phase_parser(sub)
    add_query_parser(sub)
    _add_cache_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CollapseLabError as exc:
        # One line even when a library's message has several (YAML reader errors do).
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "interrupted: rerun the same command to resume from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
