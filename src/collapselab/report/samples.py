"""What a chain produced, drawn from its snapshots (:mod:`.snapshots`), by data kind.

Seed 0's samples at generation 0, the middle and the last generation against the real
held-out data:

* continuous: histograms on linear and log density axes (1-D), scatter plots (2-D;
  first two principal components of the real data beyond);
* text and tokens: rank-frequency on log-log axes;
* images: a grid of samples per generation;
* supervised pairs: the distribution of the targets ``y`` (histograms of real and
  generated targets when both are numbers on one scale; class shares for class
  labels; one histogram per column for vector targets) and, where the snapshots hold
  a model's predictions on the real test inputs, a confusion matrix per generation;
* sample texts: one row per generation (every generation where the recorder kept a few
  documents of each, else the snapshot generations), so a drift into gibberish is
  visible.

Every builder returns a matplotlib Figure or raises :class:`~collapselab.errors.ResultsError`
saying why there is none; nothing here raises for a data kind it does not know.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

import numpy as np

from ..core import DataKind
from ..errors import ResultsError
from ..tokenize import tokenize_words
from .runs import Arm
from .snapshots import Snapshots
from .style import GENERATION_COLOURS, REAL_COLOUR, legend_columns, pyplot

#: Sample documents shown per generation, and how long each may be.
TEXTS_PER_GENERATION = 3
TEXT_CHARS = 240
#: A target with at most this many distinct integer values is read as class labels.
MAX_CLASSES = 50


def generation_label(generation: int) -> str:
    return f"generation {generation}"


def _continuous(snap: Snapshots, title: str) -> Any:
    real = None if snap.real is None else np.asarray(snap.real, dtype=float)
    outputs = {g: np.asarray(x, dtype=float) for g, x in snap.outputs.items()}
    dims = {x.reshape(len(x), -1).shape[1] for x in outputs.values()}
    if len(dims) != 1:
        raise ValueError(f"outputs of different dimensions {sorted(dims)}")
    if dims == {1}:
        return _histograms(real, outputs, title)
    return _scatters(real, outputs, title)


def shared_bins(pooled: np.ndarray, real: np.ndarray | None) -> np.ndarray:
    """One set of bins for every histogram: Freedman–Diaconis width on the real data
    (the largest sample), spanning everything drawn, 20 to 80 bins."""
    low, high = float(pooled.min()), float(pooled.max())
    if high <= low:
        return np.linspace(low - 0.5, high + 0.5, 21)
    basis = real[np.isfinite(real)] if real is not None and real.size > 1 else pooled
    width = np.diff(np.histogram_bin_edges(basis, bins="fd")[:2])[0]
    count = int(np.clip(np.ceil((high - low) / width) if width > 0 else 40, 20, 80))
    return np.linspace(low, high, count + 1)


def _histograms(
    real: np.ndarray | None,
    outputs: dict[int, np.ndarray],
    title: str,
    xlabel: str = "x (data units)",
) -> Any:
    plt = pyplot()
    everything = [x.ravel() for x in outputs.values()] + (
        [real.ravel()] if real is not None else []
    )
    pooled = np.concatenate(everything)
    pooled = pooled[np.isfinite(pooled)]
    bins = shared_bins(pooled, None if real is None else real.ravel())
    fig, (ax, ax_log) = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
    for axis in (ax, ax_log):
        if real is not None:
            axis.hist(real.ravel(), bins=bins, density=True, color=REAL_COLOUR, alpha=0.5)
        for colour, x in zip(GENERATION_COLOURS, outputs.values(), strict=False):
            axis.hist(x.ravel(), bins=bins, density=True, histtype="step", color=colour, lw=1.6)
        if real is not None:
            for q in np.quantile(real.ravel(), [0.01, 0.99]):
                axis.axvline(q, color="#333333", linestyle=":", linewidth=1)
        axis.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title("linear scale")
    ax_log.set_yscale("log")
    ax_log.set_ylabel("density (log scale)")
    ax_log.set_title("log scale: the tails")
    _legend(fig, real is not None, outputs, title, tails=real is not None)
    return fig


def _legend(
    fig: Any, has_real: bool, outputs: dict[int, Any], title: str, tails: bool = False
) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if has_real:
        handles.append(Patch(color=REAL_COLOUR, alpha=0.6, label="real (held-out)"))
    handles += [
        Line2D([], [], color=c, label=generation_label(g))
        for c, g in zip(GENERATION_COLOURS, outputs, strict=False)
    ]
    if tails:
        handles.append(
            Line2D([], [], color="#333333", linestyle=":", label="real 1% and 99% quantiles")
        )
    fig.legend(
        handles=handles,
        loc="outside upper center",
        ncols=legend_columns(fig, [str(h.get_label()) for h in handles]),
        frameon=False,
        title=title,
    )


def _project(real: np.ndarray | None, outputs: dict[int, np.ndarray]) -> tuple[Any, Any, str]:
    """2-D views: the data itself, or its first two principal components (of the real data)."""
    flat = {g: x.reshape(len(x), -1) for g, x in outputs.items()}
    d = next(iter(flat.values())).shape[1]
    real2 = None if real is None else real.reshape(len(real), -1)
    if d == 2:
        return real2, flat, "x₁"
    basis_source = real2 if real2 is not None else np.concatenate(list(flat.values()))
    centre = basis_source.mean(axis=0)
    _, _, vt = np.linalg.svd(basis_source - centre, full_matrices=False)
    basis = vt[:2].T

    def project(x: np.ndarray) -> np.ndarray:
        return (x - centre) @ basis

    return (
        None if real2 is None else project(real2),
        {g: project(x) for g, x in flat.items()},
        "principal component",
    )


def _scatters(real: np.ndarray | None, outputs: dict[int, np.ndarray], title: str) -> Any:
    plt = pyplot()
    real2, flat, axis_name = _project(real, outputs)
    panels = ([("real (held-out)", real2, REAL_COLOUR)] if real2 is not None else []) + [
        (generation_label(g), x, c)
        for (g, x), c in zip(flat.items(), GENERATION_COLOURS, strict=False)
    ]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(2.9 * len(panels), 3.0),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, points, colour) in zip(axes[0], panels, strict=True):
        if real2 is not None and points is not real2:
            ax.scatter(real2[:, 0], real2[:, 1], s=4, color=REAL_COLOUR, alpha=0.35, lw=0)
        ax.scatter(points[:, 0], points[:, 1], s=6, color=colour, alpha=0.8, lw=0)
        ax.set_title(f"{name} (n={len(points)})")
        ax.set_xlabel(f"{axis_name} 1" if axis_name != "x₁" else "x₁")
        ax.set_aspect("equal", adjustable="box")
    axes[0][0].set_ylabel(f"{axis_name} 2" if axis_name != "x₁" else "x₂")
    fig.suptitle(title + ("" if axis_name == "x₁" else " (projected on the real data's PCs)"))
    return fig


def _counts(data: Any, kind: DataKind | str) -> Counter:
    if kind == DataKind.TEXT:
        counts: Counter = Counter()
        for doc in data:
            counts.update(tokenize_words(doc))
        # words only (not punctuation): checked once per type, not at every occurrence
        return Counter({w: n for w, n in counts.items() if any(ch.isalnum() for ch in w)})
    if isinstance(data, np.ndarray):
        return Counter(np.ravel(data).tolist())
    return Counter(int(t) for seq in data for t in np.ravel(seq))


def _rank_frequency(snap: Snapshots, title: str) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0), layout="constrained")
    unit = "word" if snap.kind == DataKind.TEXT else "token"
    sets = ([("real (held-out)", snap.real, REAL_COLOUR)] if snap.real is not None else []) + [
        (generation_label(g), x, c)
        for (g, x), c in zip(snap.outputs.items(), GENERATION_COLOURS, strict=False)
    ]
    for name, data, colour in sets:
        counts = np.array(sorted(_counts(data, snap.kind).values(), reverse=True), dtype=float)
        if counts.size == 0:
            continue
        rank = np.arange(1, counts.size + 1)
        width = 3.0 if colour == REAL_COLOUR else 1.6
        label = f"{name}: {counts.size:,} {unit} types"
        ax.loglog(rank, counts / counts.sum(), color=colour, lw=width, label=label)
    ax.set_xlabel(f"rank of {unit} (by frequency)")
    ax.set_ylabel("relative frequency")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def _images(snap: Snapshots, title: str, per_row: int = 8) -> Any:
    plt = pyplot()
    rows = ([("real", np.asarray(snap.real))] if snap.real is not None else []) + [
        (f"gen {g}", np.asarray(x)) for g, x in snap.outputs.items()
    ]
    reference = rows[0][1]
    lo, hi = float(np.nanmin(reference)), float(np.nanmax(reference))
    fig, axes = plt.subplots(
        len(rows), per_row, figsize=(1.1 * per_row, 1.2 * len(rows)), squeeze=False
    )
    for r, (name, images) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.spines[:].set_visible(False)  # a frame would read as a pixel row
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            else:
                ax.set_visible(False)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def _targets(pair: Any) -> np.ndarray:
    _, y = pair
    y = np.asarray(y, dtype=float)
    return y.reshape(len(y), -1) if y.ndim > 1 else y


def _is_classes(y: np.ndarray) -> bool:
    finite = y[np.isfinite(y)]
    return y.ndim == 1 and bool(
        finite.size and np.all(finite == np.round(finite)) and len(np.unique(finite)) <= MAX_CLASSES
    )


def _supervised(snap: Snapshots, title: str) -> Any:
    """The targets' distributions: what each generation was taught (and by whom)."""
    panels = (
        [("real (held-out)", _targets(snap.real), REAL_COLOUR)] if snap.real is not None else []
    )
    panels += [
        (generation_label(g), _targets(p), c)
        for (g, p), c in zip(snap.outputs.items(), GENERATION_COLOURS, strict=False)
    ]
    if all(y.ndim == 1 and not _is_classes(y) for _, y, _ in panels):
        real = panels[0][1] if snap.real is not None else None
        outputs = {g: _targets(p) for g, p in snap.outputs.items()}
        return _histograms(real, outputs, f"{title}: targets y", xlabel="target y")
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.1 * len(panels), 3.2), squeeze=False, layout="constrained"
    )
    for ax, (name, y, colour) in zip(axes[0], panels, strict=True):
        if _is_classes(y):
            classes, counts = np.unique(y[np.isfinite(y)].astype(int), return_counts=True)
            ax.bar(classes, counts / counts.sum(), color=colour, alpha=0.8)
            ax.set_xlabel("class label y")
            ax.set_ylabel("share of items")
            ax.set_title(f"{name}: {len(classes)} classes (n={len(y)})", fontsize=9)
        else:
            columns = y.reshape(len(y), -1)
            finite = columns[np.isfinite(columns)]
            bins = shared_bins(finite, None) if finite.size else 20
            for j in range(min(columns.shape[1], 6)):
                ax.hist(
                    columns[:, j], bins=bins, histtype="step", density=True, lw=1.4, label=f"y[{j}]"
                )
            ax.set_xlabel(f"target y ({columns.shape[1]} columns)")
            ax.set_ylabel("density")
            ax.set_title(f"{name} (n={len(y)})", fontsize=9)
            if columns.shape[1] > 1:
                ax.legend(frameon=False, fontsize=7)
    fig.suptitle(f"{title}: targets y")
    return fig


def snapshot_figure(arm: Arm) -> Any:
    """The distribution snapshot of ``arm`` by its data kind.

    Raises
    ------
    ResultsError
        If the arm has no snapshots or its kind has no snapshot view.
    """
    snap = arm.snapshots
    if snap is None or not snap.outputs:
        raise ResultsError("no snapshots were saved for this arm (a run from before snapshots?)")
    title = f"{arm.name}: samples of seed {snap.seed}" + (
        " (first samples of each snapshot)" if snap.truncated else ""
    )
    if snap.kind == DataKind.CONTINUOUS:
        return _continuous(snap, title)
    if snap.kind in (DataKind.TEXT, DataKind.TOKENS):
        return _rank_frequency(snap, title)
    if snap.kind == DataKind.IMAGES:
        return _images(snap, title)
    if snap.kind == DataKind.SUPERVISED:
        return _supervised(snap, title)
    raise ResultsError(f"no snapshot view for data kind {str(snap.kind)!r} yet")


def confusion_figure(arm: Arm) -> Any:
    """Seed 0's confusion matrix on the real test pairs at each generation with predictions
    (the teacher at generation 0, its student after), rows normalized to the true class.

    Raises
    ------
    ResultsError
        If the snapshots hold no predictions, or no real test pairs to score them against.
    """
    snap = arm.snapshots
    if snap is None or not snap.predictions:
        raise ResultsError("the snapshots hold no predictions on the real test data")
    if snap.real is None:
        raise ResultsError("the snapshots hold no real test pairs to score predictions against")
    truth = np.asarray(snap.real[1]).astype(int).ravel()
    classes = np.unique(np.concatenate([truth, *(np.ravel(p) for p in snap.predictions.values())]))
    plt = pyplot()
    fig, axes = plt.subplots(
        1,
        len(snap.predictions),
        figsize=(3.4 * len(snap.predictions) + 0.8, 3.4),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, (g, predicted) in zip(axes[0], snap.predictions.items(), strict=True):
        predicted = np.asarray(predicted).astype(int).ravel()[: len(truth)]
        y = truth[: len(predicted)]
        index = {c: i for i, c in enumerate(classes)}
        counts = np.zeros((len(classes), len(classes)))
        np.add.at(counts, ([index[c] for c in y], [index[c] for c in predicted]), 1)
        with np.errstate(invalid="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
        ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
        ax.grid(False)
        ax.set_xlabel("predicted class")
        ax.set_title(f"generation {g}: accuracy {np.mean(predicted == y):.3f}", fontsize=9)
    axes[0][0].set_ylabel("true class")
    fig.colorbar(image, ax=axes[0].tolist(), label="share of the true class", shrink=0.85)
    fig.suptitle(f"{arm.name}: seed {snap.seed}'s predictions on the real test data")
    return fig


def _shorten(text: str, chars: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def text_rows(
    arm: Arm, per_generation: int = TEXTS_PER_GENERATION, chars: int = TEXT_CHARS
) -> list[tuple[str, list[str]]]:
    """``(row label, a few shortened documents)``: the real data, then one row per
    generation of seed 0. Every generation where the snapshots keep a few documents of
    each (``texts``), else the snapshot generations; empty unless the arm is text."""
    snap = arm.snapshots
    if snap is None or snap.kind != DataKind.TEXT:
        return []
    rows = [("real (held-out)", snap.real)] if snap.real is not None else []
    by_generation = snap.texts or snap.outputs
    rows += [(generation_label(g), docs) for g, docs in sorted(by_generation.items())]
    return [
        (name, [_shorten(str(doc), chars) for doc in list(docs)[:per_generation]])
        for name, docs in rows
    ]


def sample_text_figure(arm: Arm) -> Any:
    """The sample-text table as a figure, one row per generation (for export; the HTML
    report shows it as a table)."""
    rows = text_rows(arm, chars=160)
    if not rows:
        raise ResultsError("no text snapshots for this arm")
    plt = pyplot()
    bodies = [(name, "\n".join(textwrap.fill(doc, 110) for doc in docs)) for name, docs in rows]
    lines = sum(body.count("\n") + 1 for _, body in bodies) + len(bodies)
    fig = plt.figure(figsize=(10.5, 0.8 + 0.16 * lines), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    y = 1.0
    step = 1.0 / max(lines, 1)
    for name, body in bodies:
        # parse_math=False: a "$" in a corpus is a dollar sign, not TeX.
        ax.text(0, y, name, va="top", ha="left", fontsize=8, weight="bold", parse_math=False)
        ax.text(0.15, y, body, va="top", ha="left", fontsize=8, family="serif", parse_math=False)
        y -= step * (body.count("\n") + 2)
    seed = arm.snapshots.seed if arm.snapshots is not None else "?"
    fig.suptitle(f"{arm.name}: sample texts of seed {seed}")
    return fig
