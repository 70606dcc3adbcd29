"""What a run's report costs: its figures drawn once each, against the experiment itself.

A run ends by writing ``report.html`` and its PNGs (``figures/``). Two ratios, both
on ``web-contamination`` at two seeds (the preset as a user runs it, ``--seeds 2``):

* **savefig / one draw**: every figure of the report drawn and saved as PNG with
  ``Figure.savefig`` (which draws a figure with a layout engine twice: once only to
  lay it out) against :func:`collapselab.report.figures.png` (one draw); both sides
  draw the same figures from the same run folder, and the benchmark checks that they
  give the same bytes. Target >= 1.1.
* **report / experiment**: writing the report as the run does (load the folder,
  draw, build the HTML, write the PNGs) against running the experiment without a
  report (each round into a fresh folder; the report reads the first run's, of the
  same config and seeds). The issue measured reports costing as much
  as the experiment (0.5-1x); target <= 0.75.

    python benchmarks/bench_report.py [--preset web-contamination] [--seeds 2]
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

from collapselab.experiment.config import load_config
from collapselab.experiment.runner import run
from collapselab.report import figures
from collapselab.report.html import write_report
from collapselab.report.runs import load_all
from collapselab.report.style import pyplot, style
from harness import Ratio, finish, interleave, parser, per_round, repeats, time_ratio


def draw_all(folder: Path, one_draw: bool) -> list[bytes]:
    """Every figure of the report of ``folder`` as PNG bytes, drawn and closed in turn."""
    plt = pyplot()
    out = []
    with style():
        for item in figures.plan(load_all([folder])):
            if item.section == "texts":
                continue  # not in report.html (see write_report)
            fig, _ = item.draw()
            if one_draw:
                out.append(figures.png(fig, 110))
            else:
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=110)
                out.append(buffer.getvalue())
            plt.close(fig)
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--preset", default="web-contamination")
    p.add_argument("--seeds", type=int, default=2)
    args = p.parse_args()
    if args.quick:
        config = load_config(
            {
                "name": "tiny",
                "data": {"id": "gaussian"},
                "model": {"id": "gaussian"},
                "samples_per_generation": 50,
                "generations": 3,
                "seeds": 2,
                "metrics": ["variance"],
            }
        )
    else:
        config = load_config(args.preset, seeds=args.seeds)
    scratch = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        folder = run(config, scratch / "run").directory
        if not args.quick:
            draw_all(folder, True)  # warm-up: imports, fonts
        counter = iter(range(10**6))

        def experiment() -> Path:
            return run(config, scratch / f"experiment-{next(counter)}").directory

        def report() -> Path:  # what the run does at its end, on the same results
            return write_report([folder], folder / "report.html", inline_figures=folder / "f")

        seconds, _ = interleave({"experiment": experiment, "report": report}, repeats(args))
        draws, outputs = interleave(
            {
                "savefig": lambda: draw_all(folder, False),
                "one_draw": lambda: draw_all(folder, True),
            },
            repeats(args),
        )
        same = all(a == b for a, b in zip(outputs["savefig"], outputs["one_draw"], strict=True))
        assert same, "one draw gave other PNG bytes than savefig"
        print(f"{config.name}: {len(outputs['one_draw'][0])} figures, the same bytes both ways")
        finish(
            "report",
            args,
            [
                time_ratio("savefig / one draw", draws, "savefig", "one_draw", ">=", 1.1),
                Ratio(
                    "report / experiment",
                    per_round(seconds["report"], seconds["experiment"]),
                    "<=",
                    0.75,
                ),
            ],
            settings={"preset": config.name, "seeds": config.seeds, "dpi": 110},
            seconds={**seconds, **draws},
            extra={"figures": len(outputs["one_draw"][0]), "identical_png": same},
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
