"""Figures, snapshots and the HTML report: what they show, and that they show it safely."""

from __future__ import annotations

import base64
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapselab as cl
from collapselab.chain import run_batched, run_seed
from collapselab.cli import main
from collapselab.core import DataKind
from collapselab.experiment.config import load_config
from collapselab.experiment.runner import make_spec, run
from collapselab.experiment.snapshots import SNAPSHOT_SEED
from collapselab.experiment.snapshots import encode as _encode
from collapselab.experiment.storage import write_json, write_metrics
from collapselab.report import curves, figures, runs, samples
from collapselab.report.html import write_report, write_report_safely
from collapselab.report.snapshots import _decode, load_snapshots, write_snapshots
from collapselab.report.style import pyplot
from collapselab.report.summary import (
    headline_metrics,
    seed_quantiles,
    snapshot_generations,
    summarize,
)

PAYLOAD = "<script>document.title='pwned'</script>"

SMALL = {
    "name": "small",
    "description": f"report test {PAYLOAD} & friends",
    "data": {"id": "gaussian", "params": {"dim": 1}},
    "model": {"id": "gaussian", "params": {"unbiased": False}},
    "regime": {"id": "replace"},
    "samples_per_generation": 20,
    "generations": 7,
    "seeds": 4,
    "metrics": ["variance", "nll_real", "tail_mass", "collapsed"],
    "arms": [
        {"name": "replace"},
        {"name": "accumulate", "regime": {"id": "accumulate"}},
        {
            "name": "plane",
            "data": {"id": "gaussian", "params": {"dim": 2}},
            "batched": "no",
            "samples_per_generation": 30,
            "generations": 4,
            "seeds": 2,
            "metrics": ["variance", "wasserstein"],
        },
    ],
}


def small_config(**changes):
    data = {**SMALL, **changes}
    return load_config(data)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A finished run with three arms: batched 1-D (two regimes) and per-seed 2-D.

    Without its report, which costs more than the run; one slow test writes it.
    """
    out = tmp_path_factory.mktemp("run") / "small"
    return run(small_config(), out)


# ---------------------------------------------------------------------------
# Hand-built runs of data kinds whose models live elsewhere (text, images, ...).
# ---------------------------------------------------------------------------


def make_run(directory: Path, kind, real, outputs, *, name="fake", description="") -> Path:
    """A one-arm run directory written through the public storage functions."""
    generations = max(outputs) + 1
    rng = np.random.default_rng(0)
    rows = [
        {
            "run_id": name,
            "config_hash": "0" * 16,
            "seed": seed,
            "generation": g,
            "metric": metric,
            "value": float(base * (0.8**g) * rng.uniform(0.9, 1.1)),
            "source": "simulation",
        }
        for seed in range(3)
        for g in range(generations)
        for metric, base in (("perplexity", 50.0), ("distinct_2", 0.9))
    ]
    write_metrics(directory / "metrics.parquet", pd.DataFrame(rows))
    write_json(
        directory / "manifest.json",
        {"run_id": name, "status": "complete", "seeds": 3, "generations": generations},
    )
    (directory / "config.yaml").write_text(
        f"name: {name}\ndescription: {description!r}\ndata: {{id: corpus}}\n", encoding="utf-8"
    )
    write_snapshots(directory / "snapshots.npz", kind, real, outputs)
    return directory


CORPUS = [
    f"the cat sat on the mat {PAYLOAD} and the dog barked",
    "a rare aardvark wandered past the zebra at dawn",
    "prices rose by $5 & the {braces} stayed",
]


def make_text_run(directory: Path) -> Path:
    outputs = {0: CORPUS, 2: CORPUS[:2], 4: ["the cat sat on the mat"] * 3}
    return make_run(directory, DataKind.TEXT, CORPUS, outputs, description=PAYLOAD)


# ---------------------------------------------------------------------------
# Snapshots.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        np.arange(12.0).reshape(6, 2),
        ["héllo wörld", "", "<b>x</b>", "line\nbreak"],
        [np.array([1, 2, 3]), np.array([], dtype=int), np.array([7])],
        (np.ones((3, 2)), np.arange(3.0)),
        np.zeros((2, 4, 4)),
    ],
    ids=["continuous", "text", "tokens", "supervised", "images"],
)
def test_snapshot_encoding_round_trips(data):
    encoding, arrays = _encode(data)
    assert all(a.dtype != object for a in arrays.values())  # loadable without pickle
    back = _decode(encoding, arrays)
    if isinstance(data, np.ndarray):
        np.testing.assert_array_equal(back, data)
    elif isinstance(data, tuple):
        for a, b in zip(back, data, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert len(back) == len(data)
        for a, b in zip(back, data, strict=True):
            assert np.array_equal(a, b) if isinstance(b, np.ndarray) else a == b


def test_snapshot_encoding_refuses_objects():
    with pytest.raises(TypeError):
        _encode([{"a": 1}, {"b": 2}])


def _outputs_of(spec, generations, batched, n_seeds):
    """Seed 0's output at each generation, straight from the chain."""
    seen = {}

    def capture(state):
        out = state.output
        seen[state.generation] = np.array(out.array[SNAPSHOT_SEED] if batched else out)

    if batched:
        run_batched(spec, n_seeds, None, capture)
    else:
        run_seed(spec, SNAPSHOT_SEED, None, capture)
    return {g: seen[g] for g in generations}


@pytest.mark.parametrize("arm_index", [0, 2], ids=["batched", "per-seed"])
def test_snapshots_hold_seed_zero_outputs(small_run, arm_index):
    arm = small_run.arms[arm_index]
    snap = load_snapshots(arm.directory)
    assert snap is not None and snap.kind == DataKind.CONTINUOUS
    generations = snapshot_generations(arm.config.generations)
    assert list(snap.outputs) == generations
    expected = _outputs_of(
        make_spec(arm.config), generations, arm.execution == "batched", arm.config.seeds
    )
    for g in generations:
        np.testing.assert_array_equal(snap.outputs[g], expected[g])
    assert snap.real.shape[0] > 0
    assert not (arm.directory / "checkpoints").exists()


def test_snapshots_survive_interruption(tmp_path):
    config = small_config(arms=[], checkpoint_every=1, generations=9, batched="no", seeds=2)
    reference = run(config, tmp_path / "whole")

    def stop(event):
        seed, generation = event.seed, event.generation
        if seed == 1 and generation == 6:  # seed 0 done; seed 1 past its middle snapshot
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "cut", on_generation=stop)
    assert not (tmp_path / "cut" / "small" / "snapshots.npz").exists()
    resumed = run(config, tmp_path / "cut")
    assert resumed.arms[0].resumed
    a = load_snapshots(reference.arms[0].directory)
    b = load_snapshots(resumed.arms[0].directory)
    assert list(a.outputs) == list(b.outputs) == [0, 4, 8]
    for g in a.outputs:
        np.testing.assert_array_equal(a.outputs[g], b.outputs[g])


# ---------------------------------------------------------------------------
# Statistics behind the figures.
# ---------------------------------------------------------------------------


def test_seed_quantiles_keep_infinities_and_ignore_nan():
    values = np.array([[1.0, np.nan], [2.0, 2.0], [np.inf, 4.0], [np.inf, 6.0], [np.inf, 8.0]])
    low, median, high = seed_quantiles(values, (0.025, 0.5, 0.975))
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.quantile(values[:, 0], 0.975))  # what NumPy alone gives: inf - inf
    assert (low[0], median[0], high[0]) == (pytest.approx(1.1), np.inf, np.inf)
    assert median[1] == 5.0  # NaN ignored
    frame = pd.DataFrame(
        {"metric": "nll", "generation": 0, "seed": range(5), "value": values[:, 0]}
    ).assign(source="simulation")
    assert summarize(frame)["hi"].iloc[0] == np.inf


def test_binary_metric_is_a_fraction_with_wilson_interval():
    frame = pd.DataFrame(
        {
            "seed": np.repeat(np.arange(10), 2),
            "generation": np.tile([0, 1], 10),
            "metric": "collapsed",
            "value": [0.0, 1.0] * 3 + [0.0, 0.0] * 7,
            "source": "simulation",
        }
    )
    c = curves.curve(frame, "collapsed")
    assert c.binary
    np.testing.assert_allclose(c.centre, [0.0, 0.3])
    assert c.low[1] < 0.3 < c.high[1] and c.low[0] == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < c.high[0] < 0.35  # Wilson's upper bound for 0 of 10, not 0
    # a share that stays exactly 1 is not a 0/1 outcome: its band is its spread
    ones = frame.assign(value=1.0, metric="share")
    assert not curves.is_binary([ones], "share")
    assert curves.curve(ones, "share").high[0] == 1.0 == curves.curve(ones, "share").low[0]
    assert curves.is_binary([ones, frame.assign(value=0.0, metric="share")], "share")


def test_headline_values_are_medians_at_first_and_last(small_run):
    arm = runs.load(small_run.directory).arms[0]
    picked = headline_metrics(arm.frame, arm.metrics)
    assert len(picked) == 3 and {m for m, _, _ in picked} <= set(arm.metrics)
    metric, first, last = picked[0]
    sim = arm.frame[(arm.frame.metric == metric) & (arm.frame.source == "simulation")]
    assert first == sim[sim.generation == 0]["value"].median()
    assert last == sim[sim.generation == sim.generation.max()]["value"].median()


# ---------------------------------------------------------------------------
# Figures.
# ---------------------------------------------------------------------------


def _panels(fig):
    """Visible panels by metric id (a title may add the healthy direction after two spaces)."""
    return {
        ax.get_title().split("  (")[0]: ax for ax in fig.axes if ax.get_visible() and ax.get_title()
    }


def test_metric_figure_panels_scales_and_theory(small_run):
    loaded = runs.load(small_run.directory)
    group = runs.groups([loaded])[0]
    assert [s.label for s in group.series] == ["replace", "accumulate"]
    with figures.style():
        fig, _ = curves.metric_figure(group)
        panels = _panels(fig)
        assert set(panels) == {"variance", "nll_real", "tail_mass", "collapsed"}
        for ax in panels.values():
            assert ax.get_xlabel() == "generation" and ax.get_ylabel()
        # 0/1 stays linear, from 0 to 1
        assert panels["collapsed"].get_yscale() == "linear"
        assert panels["collapsed"].get_ylim()[1] <= 1.05
        # theory: a wide pale line per arm in the variance panel
        wide = [ln for ln in panels["variance"].get_lines() if ln.get_linewidth() == 4.0]
        assert len(wide) == 2
        theory = loaded.arms[0].frame.query("source == 'theory' and metric == 'variance'")
        np.testing.assert_allclose(wide[0].get_ydata(), theory.sort_values("generation").value)
        legend = fig.legends[0]
        texts = [t.get_text() for t in legend.get_texts()]
        assert "replace (4 seeds)" in texts and "theory (expected)" in texts
        assert "band: min–max over seeds" in texts  # 4 seeds: a range, not a central 95%
        pyplot().close(fig)


def test_log_scale_when_values_span_decades():
    generations = np.arange(6)
    rows = []
    for seed in range(3):
        for g in generations:
            rows.append(("spread", seed, g, 10.0 ** (-g)))
            rows.append(("mass", seed, g, 0.0 if g > 3 else 1.0 - 0.1 * seed))
    frame = pd.DataFrame(rows, columns=["metric", "seed", "generation", "value"])
    frame["source"] = "simulation"
    arm = runs.Arm("a", Path("."), {"data": {"id": "x"}}, {}, frame, None)
    group = runs.Group("t", [runs.Series(None, arm, "a")])
    with figures.style():
        fig, _ = curves.metric_figure(group)
        panels = _panels(fig)
        assert panels["spread"].get_yscale() == "log"
        assert panels["mass"].get_yscale() == "linear"  # zeros cannot go on a log axis
        pyplot().close(fig)


def test_snapshot_figures_by_kind(small_run, tmp_path):
    loaded = runs.load(small_run.directory)
    with figures.style():
        hist = samples.snapshot_figure(loaded.arms[0])
        assert [ax.get_yscale() for ax in hist.axes] == ["linear", "log"]
        assert hist.axes[0].get_xlabel() == "x (data units)"
        scatter = samples.snapshot_figure(loaded.arms[2])
        titles = [ax.get_title() for ax in scatter.axes]
        assert titles[0].startswith("real") and titles[-1].startswith("generation 3")
        text = runs.load(make_text_run(tmp_path / "text"))
        rank = samples.snapshot_figure(text.arms[0])
        ax = rank.axes[0]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[-1] == "generation 4: 5 word types"  # collapsed to one sentence
        pyplot().close("all")


def test_other_kinds_draw_or_say_why(tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "images": (DataKind.IMAGES, rng.random((5, 6, 6)), {0: rng.random((5, 6, 6))}),
        "tokens": (DataKind.TOKENS, [np.array([1, 2, 2])], {0: [np.array([2, 2, 3, 9])]}),
        "pairs": (
            DataKind.SUPERVISED,
            (rng.random((9, 2)), rng.random(9)),
            {0: (rng.random((9, 2)), rng.random(9))},
        ),
        "graphs": ("graphs", np.zeros((3, 2)), {0: np.zeros((3, 2))}),
    }
    loaded = [runs.load(make_run(tmp_path / k, *v, name=k)) for k, v in cases.items()]
    items = figures.render(figures.plan(loaded), [("png", 40)])
    snaps = {i.key: i for i in items if i.section == "snapshots"}
    assert {k for k, i in snaps.items() if i.images} == {
        "snapshots-images-images",
        "snapshots-tokens-tokens",
        "snapshots-pairs-pairs",
    }
    assert "no snapshot view for data kind 'graphs'" in snaps["snapshots-graphs-graphs"].note
    (tmp_path / "images" / "snapshots.npz").unlink()  # as in a run from before snapshots
    items = figures.render(figures.plan([runs.load(tmp_path / "images")]), [("png", 40)])
    assert "no snapshots were saved" in items[1].note and items[0].images
    assert pyplot().get_fignums() == []  # every figure closed as soon as it was saved


@pytest.mark.slow
def test_export_formats_are_what_they_claim(tmp_path):
    rng = np.random.default_rng(2)
    fake = make_run(
        tmp_path / "fake",
        DataKind.CONTINUOUS,
        rng.normal(size=(50, 1)),
        {0: rng.normal(size=(20, 1))},
    )
    loaded = runs.load(fake)
    written = figures.export([loaded], tmp_path / "out", ("png", "svg", "pdf"), dpi=60)
    assert sorted(p.name for p in written) == sorted(
        f"{stem}.{fmt}"
        for stem in ("metrics-data-corpus", "snapshots-fake")
        for fmt in ("png", "svg", "pdf")
    )
    for path in written:
        head = path.read_bytes()[:200]
        assert {"png": b"\x89PNG", "pdf": b"%PDF"}.get(path.suffix[1:], b"<?xml") in head
    svg = (tmp_path / "out" / "metrics-data-corpus.svg").read_text()
    assert ">generation<" in svg  # fonts stay text: editable, searchable
    from collapselab.errors import ResultsError

    with pytest.raises(ResultsError, match="unknown figure format 'gif'"):
        figures.export([loaded], tmp_path, ("gif",))


# ---------------------------------------------------------------------------
# The HTML report.
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_run_writes_a_self_contained_report(small_run):
    assert small_run.report is None  # the runner writes no report without a reporter
    # collapselab.run reports by default: on a complete run without one, it reloads, then reports
    again = cl.run(small_config(), small_run.directory)
    assert all(arm.resumed for arm in again.arms)
    assert again.report == small_run.directory / "report.html"
    text = again.report.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert "default-src 'none'" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 5  # 2 metric groups + 3 snapshot figures
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    # the same figures, byte for byte, as files in the run directory
    files = sorted((small_run.directory / "figures").glob("*.png"))
    assert sorted(p.read_bytes() for p in files) == sorted(base64.b64decode(i) for i in images)
    assert 'class="note"' not in text  # every figure drawn
    for arm, metrics in (("replace", 4), ("accumulate", 4), ("plane", 2)):
        table = re.search(rf"data-arm='{arm}'>(.*?)</table>", text, re.S).group(1)
        assert len(re.findall(r"<tr class=", table)) == metrics * 3
    assert "config.yaml" in text and "manifest.json" in text


def test_text_report_escapes_the_corpus(tmp_path):
    path = write_report([make_text_run(tmp_path / "text")], tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text
    assert text.count("&lt;script&gt;") >= 2  # in the sample texts and the config
    texts = re.search(r"<table class='texts'.*?</table>", text, re.S).group(0)
    assert "the cat sat on the mat &lt;script&gt;" in texts and "$5 &amp; the {braces}" in texts
    assert "generation 4" in texts and "real (held-out)" in texts


def test_comparison_matches_runs_of_one_preset_by_arm(small_run, tmp_path):
    other = run(small_config(seeds=3, arms=SMALL["arms"][:1]), tmp_path / "fewer")
    loaded = [runs.load(small_run.directory), runs.load(other.directory)]
    grouped = runs.groups(loaded)
    assert [g.title for g in grouped] == ["replace", "accumulate", "plane"]
    assert [s.label for s in grouped[0].series] == ["seeds=3", "seeds=4"]  # numerically
    assert [len(g.series) for g in grouped] == [2, 1, 1]
    first, second = runs.run_labels(loaded)
    assert first.startswith("seeds=4, arms=replace,accumulate,plane, arms.accumulate.regime=")
    assert second.startswith("seeds=3, arms=replace, arms.accumulate.regime=-")


def test_comparison_of_different_configs_labels_what_differs(small_run, tmp_path):
    other = run(
        small_config(name="other", arms=[], model={"id": "gaussian", "params": {"unbiased": True}}),
        tmp_path / "other",
    )
    loaded = [runs.load(small_run.directory), runs.load(other.directory)]
    gaussian = next(g for g in runs.groups(loaded) if g.title == "data: gaussian (dim=1)")
    labels = [s.label for s in gaussian.series]
    assert labels == [
        "replace: model.params.unbiased=false, regime=replace",
        "accumulate: model.params.unbiased=false, regime=accumulate",
        "other: model.params.unbiased=true, regime=replace",
    ]


@pytest.mark.slow
def test_comparison_report_overlays_runs(tmp_path):
    one = {**SMALL, "arms": [], "generations": 4, "seeds": 3}
    first = run(load_config(one), tmp_path / "a")
    second = run(load_config({**one, "samples_per_generation": 40}), tmp_path / "b")
    path = write_report([first.directory, second.directory], tmp_path / "c.html")
    text = path.read_text(encoding="utf-8")
    title = "collapselab comparison: n=20 vs n=40"
    assert f"<title>{title}</title>" in text
    assert text.count("<table class='summary'") == 2
    assert len(re.findall(r'<img alt="Metrics: ', text)) == 1  # one panel set, both runs in it
    assert 'alt="Metrics: n=20, n=40"' in text


def test_failed_report_warns_and_returns_none(tmp_path):
    with pytest.warns(RuntimeWarning, match="report.html could not be written"):
        assert write_report_safely([tmp_path / "missing"], tmp_path / "r.html") is None


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------


def test_cli_report_and_errors(tmp_path, capsys):
    fake = make_text_run(tmp_path / "text")
    out = tmp_path / "x.html"
    assert main(["report", str(fake), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "is not a run directory" in err and "\n" not in err
    assert main(["report", str(fake), "--figures", str(tmp_path), "--format", "bmp"]) == 2
    assert "unknown figure format 'bmp'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_ends_with_report_and_headline(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: tiny\ndata: {id: gaussian, params: {dim: 1}}\nmodel: {id: gaussian}\n"
        "samples_per_generation: 10\ngenerations: 4\nseeds: 3\n"
        "metrics: [variance, tail_mass, wasserstein, collapsed]\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a report failure would warn
        assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"report:  {tmp_path / 'r' / 'report.html'}"
    assert lines[-2] == f"results: {tmp_path / 'r'}"
    # three configured metrics (by their declared headline ranks), each with its values
    cell = r"(variance|tail_mass|wasserstein|collapsed)(?: [↑↓≈])? \S+ -> \S+"
    assert re.fullmatch(rf"  tiny  {cell}   {cell}   {cell}", lines[-3]), lines[-3]
    assert (tmp_path / "r" / "report.html").stat().st_size > 10_000
