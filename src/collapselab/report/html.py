"""``report.html``: one self-contained file per run, or a comparison of several runs.

The file needs nothing but itself: figures are inline PNG (``data:`` URIs), the
style sheet is inline, there is no script, and a Content-Security-Policy forbids
every fetch, so it reads the same offline and as an e-mail attachment. Every piece
of user or corpus text (names, descriptions, configs, sample texts) passes through
:func:`html.escape`; the policy is a second line of defence, not the first.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ResultsError
from ..io import atomic_write, dump_yaml
from . import figures as figs
from .runs import ARROW_KEY, Arm, Run, load_all, run_labels
from .samples import text_rows
from .summary import band_name, format_number, headline_metrics, summarize

#: Resolution of the inline figures: sharp on screens, small enough to e-mail.
INLINE_DPI = 110

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1200px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.4rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.meta, figcaption, .note { color: #555; font-size: .9rem; }
.note { background: #fff8e6; border-left: 3px solid #e69f00; padding: .4rem .7rem; }
nav a { margin-right: 1rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e4e4e4; text-align: right;
         vertical-align: top; }
th { background: #f5f5f7; }
td.text, th.text { text-align: left; }
tr.first td { border-top: 1px solid #bbb; }
table.texts td { text-align: left; max-width: 24rem; font-family: Georgia, serif; }
table.texts th { text-align: left; white-space: nowrap; }
tr.statistics th { text-align: left; background: #fafafa; font-weight: normal; color: #555; }
pre { background: #f5f5f7; padding: .7rem; overflow-x: auto; font-size: .8rem; }
details { margin: .4rem 0; }
summary { cursor: pointer; }
td.v-collapsed { background: #f6c9c4; } td.v-not { background: #cfe8cf; }
td.v-inconclusive { background: #fbe9b7; } td.v-none { color: #999; }
td.h-yes { background: #cfe8cf; } td.h-no { background: #f6c9c4; }
td.h-undecided { background: #fbe9b7; } td.h-notrun { color: #999; }
table.verdicts td, table.verdicts th { text-align: center; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML text: every ``<``, ``>``, ``&`` and quote escaped."""
    return html.escape(str(value), quote=True)


def _figure_html(item: figs.Figure) -> str:
    png = item.images.get(("png", INLINE_DPI))
    if png is None:
        return f'<p class="note">{esc(item.title)}: not drawn. {esc(item.note)}</p>'
    caption = f"<figcaption>{esc(item.caption)}</figcaption>" if item.caption else ""
    return (
        f'<figure id="fig-{esc(item.key)}"><img alt="{esc(item.title)}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">{caption}</figure>'
    )


def _metric_name(arm: Arm, metric: str) -> str:
    """The metric's id with its declared healthy direction, its axis label on hover."""
    declared = arm.describe(metric)
    arrow = f" {declared.arrow}" if declared.arrow else ""
    return f"<span title='{esc(declared.label)}'>{esc(metric)}{esc(arrow)}</span>"


def _headline_html(runs: list[Run], labels: list[str]) -> str:
    arrows = any(a.describe(m).arrow for r in runs for a in r.arms for m in a.metrics)
    rows = []
    for run, label in zip(runs, labels, strict=True):
        for arm in run.arms:
            cells = []
            for metric, first, last in headline_metrics(arm.frame, arm.metrics):
                cells.append(
                    f"<td class='text'>{_metric_name(arm, metric)}: {esc(format_number(first))} "
                    f"&rarr; <b>{esc(format_number(last))}</b></td>"
                )
            generations = int(arm.frame["generation"].max()) + 1
            name = f"{label} / {arm.name}" if len(runs) > 1 else arm.name
            rows.append(
                f"<tr><th class='text'>{esc(name)}</th><td>{generations}</td>{''.join(cells)}</tr>"
            )
    return (
        "<table class='headline'><thead><tr><th class='text'>arm</th><th>generations</th>"
        "<th class='text' colspan='3'>median over seeds: generation 0 &rarr; last</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (f"<p class='meta'>{esc(ARROW_KEY)}.</p>" if arrows else "")
    )


def _summary_html(run: Run, arm: Arm) -> str:
    """Median, band of seeds, mean ± s.e. and theory at generation 0, middle, last; the
    metrics first, then the statistics curators and regimes recorded."""
    summary = summarize(arm.frame)
    seeds = int(summary["seeds"].max()) if len(summary) else 0
    has_theory = bool(summary["theory"].notna().any())
    head = (
        "<th class='text'>metric</th><th>generation</th><th>median</th>"
        f"<th>{esc(band_name(seeds))}</th>"
    )
    if has_theory:
        head += "<th>mean ± s.e.</th><th>theory</th>"
    columns = 6 if has_theory else 4
    body = []
    by_metric = dict(tuple(summary.groupby("metric", sort=False)))
    metrics = [m for m in by_metric if arm.is_metric(str(m))]
    statistics = [m for m in by_metric if not arm.is_metric(str(m))]
    for metric in metrics + statistics:
        if statistics and metric == statistics[0]:
            body.append(
                f"<tr class='statistics'><th colspan='{columns}'>statistics of curators and "
                "regimes (not metrics: no healthy direction)</th></tr>"
            )
        rows = by_metric[metric]
        for i, (_, row) in enumerate(rows.sort_values("generation").iterrows()):
            cells = [
                f"<td class='text'>{_metric_name(arm, metric) if i == 0 else ''}</td>",
                f"<td>{int(row['generation'])}</td>",
                f"<td>{esc(format_number(row['median']))}</td>",
                f"<td>[{esc(format_number(row['lo']))}, {esc(format_number(row['hi']))}]</td>",
            ]
            if has_theory:
                known = row["theory"] == row["theory"]  # not NaN
                mean = f"{format_number(row['mean'])} ± {format_number(row['sem'])}"
                cells.append(f"<td>{esc(mean) if known else ''}</td>")
                cells.append(f"<td>{esc(format_number(row['theory'])) if known else ''}</td>")
            body.append(
                f"<tr class='{'first' if i == 0 else ''}' data-metric='{esc(metric)}' "
                f"data-generation='{int(row['generation'])}'>{''.join(cells)}</tr>"
            )
    halted = arm.manifest.get("halted") if isinstance(arm.manifest, dict) else None
    note = (
        f"<p class='halted'>{len(halted)} of {seeds} seeds had nothing left to train on (their "
        f"curators kept no sample), first at generation {esc(min(halted.values()))}: their "
        "later values are NaN and the medians are over the seeds still running.</p>"
        if halted
        else ""
    )
    return (
        f"<h3>{esc(arm.name)} <span class='meta'>({seeds} seeds)</span></h3>{note}"
        f"<table class='summary' data-run='{esc(run.directory.name)}' data-arm='{esc(arm.name)}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _texts_html(arm: Arm, title: str) -> str:
    """One row per generation of seed 0 (the real data first), a few documents each."""
    rows = text_rows(arm)
    if not rows:
        return ""
    depth = max(len(docs) for _, docs in rows)
    head = "<th class='text'>generation</th>" + "".join(
        f"<th class='text'>sample {i + 1}</th>" for i in range(depth)
    )
    body = []
    for name, docs in rows:
        cells = "".join(f"<td>{esc(docs[i]) if i < len(docs) else ''}</td>" for i in range(depth))
        body.append(f"<tr><th class='text'>{esc(name)}</th>{cells}</tr>")
    generations = int(arm.frame["generation"].max()) + 1
    shown = sum(name.startswith("generation") for name, _ in rows)
    every = bool(arm.snapshots.texts) or shown >= generations
    where = (
        "every generation"
        if every
        else "generation 0, the middle and the last (this run kept no texts of the others)"
    )
    return (
        f"<h3>{esc(title)}</h3><p class='meta'>Seed {esc(arm.snapshots.seed)}, {esc(where)}.</p>"
        f"<table class='texts' data-arm='{esc(arm.name)}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


#: CSS class of each verdict outcome's cell.
VERDICT_CLASSES = {
    "collapsed": "v-collapsed",
    "not collapsed": "v-not",
    "inconclusive": "v-inconclusive",
    "not measured": "v-none",
}


def _verdict_html(runs: list[Run], labels: list[str]) -> str:
    """The verdict matrix of each run (arms x definitions, coloured; a cell's statistic and
    interval on hover), each definition in one sentence with its source, and each arm's
    rows in full under a fold."""
    from .verdict import (
        DEFINITIONS,
        MATRIX_KEY,
        Outcome,
        cell,
        definitions_text,
        interval_text,
        run_verdicts,
    )

    parts = []
    for run, label in zip(runs, labels, strict=True):
        try:
            arms, baseline = run_verdicts(run)
        except Exception as exc:  # a report never fails for its verdicts
            parts.append(f"<p class='note'>{esc(label)}: no verdicts ({esc(exc)})</p>")
            continue
        head = "".join(
            f"<th title='{esc(d.sentence)}'>{d.number}<br>{esc(d.short)}</th>" for d in DEFINITIONS
        )
        body, details = [], []
        for arm in arms:
            cells = []
            for r in arm.rows:
                tip = (
                    r.need
                    if r.outcome is Outcome.NOT_MEASURED
                    else (
                        f"{r.metric}: {r.statistic} = {interval_text(r.estimate)}"
                        if r.estimate
                        else r.detail
                    )
                )
                cells.append(
                    f"<td class='{VERDICT_CLASSES[str(r.outcome)]}' title='{esc(tip)}'>{esc(cell(r))}</td>"
                )
            body.append(f"<tr><th class='text'>{esc(arm.arm)}</th>{''.join(cells)}</tr>")
            rows = "".join(
                f"<tr><td class='text'>{r.definition} {esc(DEFINITIONS[r.definition - 1].name)}</td>"
                f"<td class='text'>{esc(r.metric)}</td>"
                f"<td>{esc(interval_text(r.estimate)) if r.estimate else ''}</td>"
                f"<td class='{VERDICT_CLASSES[str(r.outcome)]}'>{esc(r.outcome)}"
                f"{esc(f' from generation {r.onset}') if r.onset is not None else ''}</td>"
                f"<td class='text'>{esc(r.statistic)}"
                f"{esc(f' ({r.estimate.method})') if r.estimate else ''}; "
                f"{esc(r.need if r.outcome is Outcome.NOT_MEASURED else r.detail)}</td></tr>"
                for r in arm.rows
            )
            details.append(
                f"<details><summary>{esc(arm.arm)}: each definition's statistic</summary>"
                "<table class='verdict-rows'><thead><tr><th class='text'>definition</th>"
                "<th class='text'>metric</th><th>value [95% interval]</th><th>verdict</th>"
                f"<th class='text'>statistic; why</th></tr></thead><tbody>{rows}</tbody></table>"
                "</details>"
            )
        title = f"<h3>{esc(label)}</h3>" if len(runs) > 1 else ""
        base = f" Definition 3 compares with arm {esc(baseline)}." if baseline else ""
        parts.append(
            f"{title}<table class='verdicts' data-run='{esc(run.directory.name)}'><thead><tr>"
            f"<th class='text'>arm</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<p class='meta'>{esc(MATRIX_KEY)}.{base}</p>{''.join(details)}"
        )
    sentences = "".join(f"<li>{esc(line)}</li>" for line in definitions_text().splitlines())
    return "".join(parts) + f"<ol class='definitions' style='list-style: none'>{sentences}</ol>"


def _claims_html(runs: list[Run], labels: list[str]) -> str:
    """The table claim | paper | ours (with interval) | holds? of each run that has claims."""
    from .claims import evaluate

    parts = []
    for run, label in zip(runs, labels, strict=True):
        try:
            results = evaluate(run)
        except Exception as exc:  # a report never fails for its claims
            parts.append(f"<p class='note'>{esc(label)}: claims not evaluated ({esc(exc)})</p>")
            continue
        if not results:
            continue
        body = "".join(
            f"<tr><td class='text'>{esc(r.claim.claim)}<br><span class='meta'>"
            f"{esc(r.claim.citation)}</span></td><td class='text'>{esc(r.claim.paper)}</td>"
            f"<td class='text'>{esc(r.ours)}<br><span class='meta'>{esc(r.why)}</span></td>"
            f"<td class='h-{r.holds.replace(' ', '')}'>{esc(r.holds)}"
            f"{'' if r.claim.reproduced else ' (known: does not reproduce)'}</td></tr>"
            for r in results
        )
        title = f"<h3>{esc(label)}</h3>" if len(runs) > 1 else ""
        parts.append(
            f"{title}<table class='claims' data-run='{esc(run.directory.name)}'><thead><tr>"
            "<th class='text'>claim</th><th class='text'>paper</th>"
            "<th class='text'>ours (95% interval)</th><th>holds?</th></tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    return "".join(parts)


def _dump(data: Any, as_yaml: bool) -> str:
    if as_yaml:
        return dump_yaml(data)
    return json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _run_html(run: Run, label: str) -> str:
    manifest = run.manifest
    parts = [
        f"<h3>{esc(label)}</h3>",
        "<table class='run'><tbody>",
        f"<tr><th class='text'>name</th><td class='text'>{esc(run.name)}</td></tr>",
        f"<tr><th class='text'>directory</th><td class='text'>{esc(run.directory)}</td></tr>",
        f"<tr><th class='text'>status</th><td class='text'>{esc(manifest.get('status', '?'))}"
        "</td></tr>",
        f"<tr><th class='text'>arms</th><td class='text'>"
        f"{esc(', '.join(a.name for a in run.arms))}</td></tr>",
        "</tbody></table>",
    ]
    if run.config.get("description"):
        parts.append(f"<p>{esc(run.config['description'])}</p>")
    parts.append(
        f"<details><summary>config.yaml</summary><pre>{esc(_dump(run.config, True))}</pre>"
        "</details>"
    )
    parts.append(
        f"<details><summary>manifest.json</summary><pre>{esc(_dump(manifest, False))}</pre>"
        "</details>"
    )
    for arm in run.arms:
        if arm.directory == run.directory:
            continue  # a single-arm run: its config and manifest are the run's
        parts.append(
            f"<details><summary>{esc(arm.name)}: config.yaml and manifest.json</summary>"
            f"<pre>{esc(_dump(arm.config, True))}</pre><pre>{esc(_dump(arm.manifest, False))}"
            "</pre></details>"
        )
    return "".join(parts)


def build_report(runs: list[Run], items: list[figs.Figure]) -> str:
    """The HTML text of the report of ``runs`` (one run, or a comparison of several), with
    the figures ``items`` rendered (:func:`~.figures.render`) at :data:`INLINE_DPI`."""
    labels = run_labels(runs)
    comparison = len(runs) > 1
    title = (
        "collapselab comparison: " + " vs ".join(labels)
        if comparison
        else f"collapselab report: {runs[0].name}"
    )
    sections = {
        section: "".join(_figure_html(i) for i in items if i.section == section)
        for section in ("metrics", "statistics", "distributions", "snapshots")
    }
    summaries = "".join(
        (f"<h3>{esc(label)}</h3>" if comparison else "")
        + "".join(_summary_html(run, arm) for arm in run.arms)
        for run, label in zip(runs, labels, strict=True)
    )
    texts = "".join(
        _texts_html(arm, f"{label} / {arm.name}" if comparison else arm.name)
        for run, label in zip(runs, labels, strict=True)
        for arm in run.arms
    )
    verdicts = _verdict_html(runs, labels)
    claims = _claims_html(runs, labels)
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    nav = [("headline", "Headline"), ("verdicts", "Verdicts")]
    nav += [("claims", "Claims")] if claims else []
    nav += [("metrics", "Metrics")]
    nav += [("statistics", "Statistics")] if sections["statistics"] else []
    nav += [("summary", "Summary")]
    nav += [("distributions", "Per-item")] if sections["distributions"] else []
    nav += [("snapshots", "Samples")] + ([("texts", "Texts")] if texts else [])
    nav += [("runs", "Runs" if comparison else "Config and manifest")]
    intro = (
        "Runs are matched by config name (arms of the same name overlaid)"
        if comparison and len({r.name for r in runs}) == 1
        else "Arms are matched by their real data"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{STYLE}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p class="meta">generated {esc(generated)} by collapselab {esc(__version__)} from
{esc(", ".join(str(r.directory) for r in runs))}</p>
<nav>{"".join(f'<a href="#{key}">{name}</a>' for key, name in nav)}</nav></header>
<section id="headline"><h2>Headline</h2>{_headline_html(runs, labels)}</section>
<section id="verdicts"><h2>Did it collapse? One verdict per definition</h2>
<p class="meta">Each arm against the eight definitions of model collapse (Schaeffer et al.
2025): collapsed where the 95% interval over seeds lies past the definition's threshold,
not collapsed where it lies on the healthy side, inconclusive where it straddles it.
Hover a cell for its statistic; open an arm for every row
(<code>collapselab verdict RUN</code> prints the same).</p>{verdicts}</section>
{
        f'<section id="claims"><h2>The paper&#39;s claims</h2>'
        f'<p class="meta">What the cited papers report, against this run: yes where our 95% '
        f"interval lies inside the paper's band, no where it lies outside it, undecided "
        f"where it straddles an edge.</p>{claims}</section>"
        if claims
        else ""
    }
<section id="metrics"><h2>Metrics over generations</h2>
<p class="meta">{esc(intro)}; series are labelled by what sets them apart.</p>
{sections["metrics"]}</section>
{
        f'<section id="statistics"><h2>Curator and regime statistics</h2>'
        f"{sections['statistics']}</section>"
        if sections["statistics"]
        else ""
    }
<section id="summary"><h2>Summary</h2>
<p class="meta">At generation 0, the middle and the last: the median and the band of seeds
(their range with fewer than 40 seeds, else the central 95%); where closed-form theory
exists, the simulation mean ± its standard error beside the expected value. Arrows give
each metric's declared healthy direction.</p>{summaries}</section>
{
        f'<section id="distributions"><h2>Per-item distributions</h2>'
        f'<p class="meta">Per-item metrics: every item of every generation, all seeds pooled.</p>'
        f"{sections['distributions']}</section>"
        if sections["distributions"]
        else ""
    }
<section id="snapshots"><h2>Distribution snapshots</h2>
<p class="meta">One seed's samples at generation 0, the middle and the last, against the real
held-out data.</p>{sections["snapshots"]}</section>
{f'<section id="texts"><h2>Sample texts by generation</h2>{texts}</section>' if texts else ""}
<section id="runs"><h2>{"Runs" if comparison else "Config and manifest"}</h2>
{"".join(_run_html(run, label) for run, label in zip(runs, labels, strict=True))}</section>
</body></html>
"""


def write_report(
    run_dirs: Iterable[str | Path],
    out: str | Path,
    *,
    figures: str | Path | None = None,
    formats: tuple[str, ...] = ("png",),
    inline_figures: str | Path | None = None,
) -> Path:
    """Write the report of one or several run directories to ``out`` (atomically).

    Parameters
    ----------
    run_dirs : iterable of path
        Run directories (or arm directories); several make a comparison, and so does
        a sweep folder: one comparison of its points.
    out : path
        The HTML file to write.
    figures : path, optional
        Also export every figure into this folder, once per format, at print resolution
        (:data:`~.figures.EXPORT_DPI`).
    formats : tuple of str
        Export formats: ``png``, ``svg``, ``pdf``.
    inline_figures : path, optional
        Also save the PNGs embedded in the report into this folder (the same bytes).

    Each figure is drawn once for all of these.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ResultsError
        If a directory is not a finished run, a format is unknown, or a file
        cannot be written.
    """
    figs.check_formats(formats)
    runs = load_all([Path(d) for d in run_dirs])
    if not runs:
        raise ResultsError("no run directories given")
    out = Path(out)
    outputs = [("png", INLINE_DPI)]
    if figures is not None:
        outputs += [(fmt, figs.EXPORT_DPI) for fmt in formats]
    # The sample texts are a table in the report; their figure is only for export.
    planned = [i for i in figs.plan(runs) if i.section != "texts" or figures is not None]
    items = figs.render(planned, outputs)
    atomic_write(out, build_report(runs, items).encode("utf-8"))
    if inline_figures is not None:
        figs.write_figures(items, inline_figures, ("png",), INLINE_DPI)
    if figures is not None:
        figs.write_figures(items, figures, formats, figs.EXPORT_DPI)
    return out


def write_report_safely(
    run_dirs: Iterable[str | Path], out: str | Path, figures: str | Path | None = None
) -> Path | None:
    """:func:`write_report` (also saving its PNGs into ``figures``), warning instead of
    raising: for the end of a run, whose results are already saved and must not be
    lost to a plotting failure."""
    try:
        return write_report(run_dirs, out, inline_figures=figures)
    except Exception as exc:
        warnings.warn(
            f"report.html could not be written ({type(exc).__name__}: {exc}); "
            "rerun it with 'collapselab report'",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
