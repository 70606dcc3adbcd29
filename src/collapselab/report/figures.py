"""Every figure of a report: which ones, in which section, with which caption, drawn once.

:func:`plan` lists the figures of one run or of several compared, without drawing:

* **metrics**, per group of comparable series (:mod:`.runs`): one panel per metric
  (:mod:`.curves`); for a sweep with a numeric axis, also each metric at the last
  generation against that axis (:mod:`.scaling`);
* **statistics**, per group: what curators and regimes recorded beside the metrics
  (kept fractions, precision, provenance shares), one panel each, labelled by id;
* **distributions**, per arm with per-item metrics (:mod:`.distributions`);
* **snapshots**, per arm: its samples by data kind and, where the snapshots hold
  predictions, confusion matrices (:mod:`.samples`);
* **texts**, per text arm: sample documents by generation (the HTML report shows them
  as a table; this is its export).

:func:`render` draws each figure once, saves it in every requested format and dpi
(PNGs with one draw each, :func:`png`),
and closes it before drawing the next, so a report of many arms holds one open figure
at a time and report.html and ``figures/*.png`` carry the same bytes. One bad panel
never costs the whole report: a figure that cannot be drawn keeps a note saying why.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import DataKind
from ..errors import ResultsError
from .curves import few_generations, metric_figure
from .distributions import distribution_figure
from .runs import Group, Run, groups
from .samples import confusion_figure, sample_text_figure, snapshot_figure
from .scaling import numeric_axis, scaling_figure
from .style import pyplot, slug, style
from .summary import band_name

FORMATS = ("png", "svg", "pdf")
#: Resolution of exported figures (``report --figures``): print quality.
EXPORT_DPI = 300


@dataclass
class Figure:
    """A figure of a report: how to draw it and, once rendered, its bytes or a note.

    ``key`` is a file-name stem, unique within a report; ``section`` is ``"metrics"``,
    ``"statistics"``, ``"distributions"``, ``"snapshots"`` or ``"texts"``; ``draw``
    returns the matplotlib Figure and notes on what it cuts (added to the caption).
    """

    key: str
    title: str
    section: str
    draw: Callable[[], tuple[Any, list[str]]]
    caption: str = ""
    note: str = ""
    #: Rendered bytes by (format, dpi).
    images: dict[tuple[str, int], bytes] = field(default_factory=dict)


def _only(draw: Callable[[], Any]) -> Callable[[], tuple[Any, list[str]]]:
    return lambda: (draw(), [])


def _caption(group: Group, statistics: bool) -> str:
    seeds = [int(s.arm.frame["seed"].nunique()) for s in group.series]
    if few_generations(group):
        what = (
            "Bars are means over seeds with 95% confidence intervals (95% Wilson intervals "
            "for 0/1 metrics); dots are single seeds."
        )
    else:
        what = f"Lines are medians over seeds; bands are the {band_name(seeds)}."
        if any((s.arm.frame["source"] == "theory").any() for s in group.series):
            what += (
                " Where closed-form theory exists, the wide pale line is its expected value "
                "and the points, with 95% confidence intervals, are the simulation means."
            )
    if statistics:
        return (
            f"{group.title}. What curators and regimes recorded beside the metrics (not "
            f"metrics: no healthy direction). {what}"
        )
    return (
        f"{group.title}. {what} Each panel title gives the metric's declared healthy direction "
        "(↑ higher, ↓ lower, ≈ closest to the real data)."
    )


def plan(runs: list[Run]) -> list[Figure]:
    """The figures of ``runs``, in report order, not yet drawn (see the module docstring)."""
    items = []
    used: set[str] = set()

    def key(*parts: str) -> str:
        stem = slug("-".join(parts))
        out, i = stem, 2
        while out in used:
            out, i = f"{stem}-{i}", i + 1
        used.add(out)
        return out

    for group in groups(runs):
        names = ", ".join(s.label for s in group.series)
        for section, recorded in (
            ("metrics", group.recorded()),
            ("statistics", group.recorded(False)),
        ):
            if not recorded:
                continue
            items.append(
                Figure(
                    key(section, group.title),
                    f"{section.capitalize()}: {names}",
                    section,
                    lambda group=group, recorded=recorded: metric_figure(group, recorded),
                    caption=_caption(group, section == "statistics"),
                )
            )
    axis = numeric_axis(runs)
    if axis is not None:
        items.append(
            Figure(
                key("scaling", axis),
                f"Against {axis}: every point of the sweep",
                "metrics",
                lambda axis=axis: scaling_figure(runs, axis),
                caption=f"Each metric at the last generation against {axis}, one line per "
                "arm: means over seeds with 95% t intervals; dashed, the closed form where "
                "the points carry theory rows. Axes are logarithmic where every value is "
                "positive and spans more than a decade.",
            )
        )
    several = len(runs) > 1
    for run in runs:
        for arm in run.arms:
            prefix = f"{run.directory.name}/{arm.name}" if several else arm.name
            snap = arm.snapshots
            items.append(
                Figure(
                    key("snapshots", prefix),
                    f"Samples: {prefix}",
                    "snapshots",
                    _only(lambda arm=arm: snapshot_figure(arm)),
                )
            )
            if snap is not None and snap.predictions:
                items.append(
                    Figure(
                        key("confusion", prefix),
                        f"Predictions: {prefix}",
                        "snapshots",
                        _only(lambda arm=arm: confusion_figure(arm)),
                        caption="Seed 0's predicted class against the true class of each real "
                        "test example, by generation; rows sum to 1.",
                    )
                )
            if arm.distributions is not None and not arm.distributions.empty:
                items.append(
                    Figure(
                        key("distributions", prefix),
                        f"Distributions: {prefix}",
                        "distributions",
                        _only(lambda arm=arm: distribution_figure(arm)),
                        caption="Histogram of each item's value at every generation, "
                        "all seeds pooled.",
                    )
                )
            if snap is not None and snap.kind == DataKind.TEXT:
                items.append(
                    Figure(
                        key("texts", prefix),
                        f"Sample texts: {prefix}",
                        "texts",
                        _only(lambda arm=arm: sample_text_figure(arm)),
                    )
                )
    return items


def render(items: list[Figure], outputs: list[tuple[str, int]]) -> list[Figure]:
    """Draw each figure once, save it in every ``(format, dpi)`` of ``outputs`` into
    :attr:`Figure.images` and close it; a figure that fails keeps a note instead."""
    plt = pyplot()
    with style():
        for item in items:
            fig = None
            try:
                fig, notes = item.draw()
                if notes:
                    item.caption = f"{item.caption} Cut or marked: {'; '.join(notes)}.".strip()
                for fmt, dpi in outputs:
                    item.images[(fmt, dpi)] = (
                        png(fig, dpi) if fmt == "png" else _saved(fig, fmt, dpi)
                    )
            except ResultsError as exc:
                item.note = str(exc)
            except Exception as exc:  # a plotting failure must not lose the rest of the report
                item.images.clear()
                item.note = f"could not draw ({type(exc).__name__}: {exc})"
            finally:
                if fig is not None:
                    plt.close(fig)
    return items


def _saved(fig: Any, fmt: str, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


def png(fig: Any, dpi: int) -> bytes:
    """``fig`` as PNG at ``dpi``: the bytes ``fig.savefig(format="png", dpi=dpi)`` writes,
    from one draw instead of two.

    ``savefig`` lays a figure with a layout engine out in a first draw that renders
    nothing, then draws it again; but :meth:`matplotlib.figure.Figure.draw` runs the
    layout engine itself, so one draw gives the same pixels. The first draw was a third
    of a report's drawing time; tests compare the bytes with ``savefig``'s.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    previous = fig.dpi
    fig.dpi = dpi
    try:
        canvas.draw()
        buffer = io.BytesIO()
        # what FigureCanvasAgg.print_png does after its draw
        imsave(buffer, canvas.buffer_rgba(), format="png", origin="upper", dpi=fig.dpi)
    finally:
        fig.dpi = previous
    return buffer.getvalue()


def check_formats(formats: tuple[str, ...]) -> None:
    """Raise :class:`ResultsError` for a figure format other than png, svg or pdf."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ResultsError(f"unknown figure format {unknown[0]!r}; choose from {list(FORMATS)}")


def _folder(folder: str | Path) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create {str(folder)!r}: {exc.strerror or exc}") from None
    return folder


def write_figures(
    items: list[Figure], folder: str | Path, formats: tuple[str, ...], dpi: int
) -> list[Path]:
    """Write each rendered figure's ``(format, dpi)`` bytes to ``folder``; the paths written.

    Raises
    ------
    ResultsError
        If the folder cannot be written.
    """
    from ..experiment.storage import atomic_write

    folder = _folder(folder)
    written = []
    for item in items:
        for fmt in formats:
            data = item.images.get((fmt, dpi))
            if data is not None:
                path = folder / f"{item.key}.{fmt}"
                atomic_write(path, data)
                written.append(path)
    return written


def export(
    runs: list[Run], folder: str | Path, formats: tuple[str, ...] = ("png",), dpi: int = EXPORT_DPI
) -> list[Path]:
    """Write every figure of ``runs`` to ``folder`` in each of ``formats``; the paths written.

    Raises
    ------
    ResultsError
        For an unknown format or a folder that cannot be written.
    """
    check_formats(formats)
    _folder(folder)  # before drawing: a folder that cannot be written fails fast
    items = render(plan(runs), [(fmt, dpi) for fmt in formats])
    return write_figures(items, folder, formats, dpi)
