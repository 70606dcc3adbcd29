"""How every figure looks: matplotlib on the Agg backend, print-quality defaults, and
one colour and line style per series that no other series of its figure shares."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .runs import Group, factors

RC = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "pdf.fonttype": 42,  # TrueType: text stays text in PDF and editable in SVG
    "svg.fonttype": "none",
    "figure.max_open_warning": 0,  # figures are closed one by one (see figures.render)
}
#: Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
#: Line styles: of a second factor, or in turn with the colours.
LINESTYLES = ["-", (0, (5, 2)), (0, (5, 1.5, 1, 1.5)), (0, (1, 1.2))]
#: Markers, only for series past every (colour, line style) pair of the turn.
MARKERS = [None, "o", "s", "^", "D", "v"]
#: Generations in snapshots, oldest to newest: light to dark.
GENERATION_COLOURS = ["#E69F00", "#D55E00", "#7B1F00"]
REAL_COLOUR = "#9a9a9a"


@dataclass(frozen=True)
class Look:
    """How one series is drawn: its colour, line style and (rarely) marker."""

    colour: str
    linestyle: Any = "-"
    marker: str | None = None

    def line(self) -> dict[str, Any]:
        """Keyword arguments for ``Axes.plot``."""
        out: dict[str, Any] = {"color": self.colour, "linestyle": self.linestyle}
        if self.marker:
            out.update(marker=self.marker, markevery=0.1, markersize=4)
        return out


#: Jupyter's backend: it draws into the notebook and never opens a window, so it is kept
#: (switching to Agg would stop the notebook's own figures from showing).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (or Jupyter's inline one, where it is set):
    no window, ever; figures go to files or into the notebook."""
    import matplotlib

    # dict's own lookup reads the setting without resolving an unset backend
    if dict.__getitem__(matplotlib.rcParams, "backend") != INLINE_BACKEND:
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def style() -> Iterator[Any]:
    """Readable publication defaults for every figure drawn inside."""
    plt = pyplot()
    from cycler import cycler

    rc = {**RC, "axes.prop_cycle": cycler(color=PALETTE)}
    with plt.rc_context(rc):
        yield plt


def slug(text: str) -> str:
    """``text`` as a file-name stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "figure"


def looks(group: Group) -> list[Look]:
    """One :class:`Look` per series of ``group``, no two alike.

    When the series form a grid of two or more independent factors
    (:func:`~.runs.factors`: curator x regime), or are too many for the palette, the
    factor with the most levels gets the colours and the others together the line
    styles, so a reader can tell both apart at a glance. Otherwise, or where the
    palette or the styles run out, series take colours and line styles both in turn:
    two series whose lines coincide (accumulate and accumulate-subsample in
    kazdan-regimes) then still both show, the later one's gaps letting the earlier
    one through, where a solid line drawn over another hid it. A sweep's group (``by_arm``) gives each arm one
    colour and its points shades of it, light to dark in their order, and line styles.
    """
    n = len(group.series)
    if group.by_arm:
        return _arm_shades(group)
    grid = factors([s.arm.config for s in group.series])
    levels = [list(dict.fromkeys(values)) for values in grid]
    full = len(grid) >= 2 and math.prod(len(v) for v in levels) == n
    if full or (len(grid) >= 2 and n > len(PALETTE)):
        rest = [tuple(values) for values in zip(*grid[1:], strict=True)]
        style_levels = list(dict.fromkeys(rest))
        if len(levels[0]) <= len(PALETTE) and len(style_levels) <= len(LINESTYLES):
            out = [
                Look(PALETTE[levels[0].index(c)], LINESTYLES[style_levels.index(r)])
                for c, r in zip(grid[0], rest, strict=True)
            ]
            if len(set(out)) == n:
                return out
    pairs = math.lcm(len(PALETTE), len(LINESTYLES))  # coprime: every pair, once
    return [
        Look(
            PALETTE[i % len(PALETTE)],
            LINESTYLES[i % len(LINESTYLES)],
            MARKERS[(i // pairs) % len(MARKERS)],
        )
        for i in range(n)
    ]


def _shade(colour: str, weight: float) -> str:
    """``colour`` mixed with white: ``weight`` 1 is the colour itself."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(255 - weight * (255 - c)) for c in rgb]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _arm_shades(group: Group) -> list[Look]:
    arms = list(dict.fromkeys(s.arm.name for s in group.series))
    out = []
    for s in group.series:
        own = [t for t in group.series if t.arm.name == s.arm.name]
        rank, count = own.index(s), len(own)
        colour = PALETTE[arms.index(s.arm.name) % len(PALETTE)]
        weight = 1.0 if count == 1 else 0.35 + 0.65 * rank / (count - 1)
        marker = MARKERS[(arms.index(s.arm.name) // len(PALETTE)) % len(MARKERS)]
        out.append(Look(_shade(colour, weight), LINESTYLES[rank % len(LINESTYLES)], marker))
    return out


def legend_columns(fig: Any, labels: list[str], fontsize: float = 9.0) -> int:
    """The most legend columns whose labels fit across ``fig``'s width (at least one).

    A label takes about 0.6 em per character plus 2.5 em for its handle and padding; a
    legend wider than its figure is clipped when saved.
    """
    width = fig.get_size_inches()[0] * 72 * 0.96
    widest = max((len(label) for label in labels), default=1)
    column = (0.6 * widest + 3.5) * fontsize
    return max(1, min(len(labels), int(width // column)))
