"""What the report's figures and tables promise: every series visible, honest bands and
intervals, distinct looks, labels and healthy directions from the metrics' declarations.

Metrics with known declarations are registered here for the length of a test (the
built-in metrics may declare anything), so these tests hold whatever the built-in
declarations say.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collapselab import registry
from collapselab.cli import main
from collapselab.core import DataKind, Direction
from collapselab.experiment.config import load_config
from collapselab.experiment.runner import run
from collapselab.experiment.storage import write_json, write_metrics
from collapselab.metrics.continuous import NLLReal, Variance
from collapselab.report import curves, figures, runs, samples, style
from collapselab.report.html import write_report
from collapselab.report.snapshots import write_snapshots
from collapselab.report.summary import band_name, headline_metrics, summarize


class DeclaredSpread(Variance):
    """``variance`` with declarations a test can rely on."""

    registry_id = "report-test-spread"
    label = "spread of the output σ² (data units²)"
    direction = Direction.HIGHER
    headline = 1


class DeclaredLoss(NLLReal):
    """``nll_real`` with declarations a test can rely on."""

    registry_id = "report-test-loss"
    label = "loss on real test data (nats)"
    direction = Direction.LOWER
    headline = 0


@pytest.fixture
def declared(monkeypatch):
    """Register the two test metrics for one test."""
    registry.list_ids("metric")  # load the built-in metrics first
    for cls in (DeclaredSpread, DeclaredLoss):
        monkeypatch.setitem(registry._REGISTRY["metric"], cls.registry_id, cls)


def frame_of(values: dict[str, np.ndarray], theory: dict[str, np.ndarray] | None = None):
    """A tidy frame from ``metric -> (seeds, generations)`` values (and theory curves)."""
    rows = [
        (metric, seed, g, float(v), "simulation")
        for metric, grid in values.items()
        for (seed, g), v in np.ndenumerate(grid)
    ]
    rows += [
        (metric, -1, g, float(v), "theory")
        for metric, curve in (theory or {}).items()
        for g, v in enumerate(curve)
    ]
    return pd.DataFrame(rows, columns=["metric", "seed", "generation", "value", "source"])


def group_of(frames: dict[str, pd.DataFrame], configs: dict[str, dict] | None = None):
    series = []
    for name, frame in frames.items():
        config = (configs or {}).get(name, {"data": {"id": "x"}})
        arm = runs.Arm(name, Path("."), config, {}, frame, None)
        series.append(runs.Series(None, arm, name))
    return runs.Group("test", series)


def draw(group, names=None):
    with style.style():
        fig, notes = curves.metric_figure(group, names)
    return fig, notes


def panels(fig):
    return {
        ax.get_title().split("  (")[0]: ax for ax in fig.axes if ax.get_visible() and ax.get_title()
    }


def close(fig):
    style.pyplot().close(fig)


# ---------------------------------------------------------------------------
# Axes that show every series.
# ---------------------------------------------------------------------------


def test_a_log_axis_spans_every_arms_median():
    # mad-loops: one arm's NLL runs away by ten decades, five stay near 3; the old
    # axis (bottom at max / 1e8) started at ~1e2 and dropped the five
    rng = np.random.default_rng(0)
    g = np.arange(60)
    frames = {"runaway": frame_of({"nll": 3 * 1.5 ** g[None, :] * rng.uniform(0.9, 1.1, (4, 60))})}
    for i in range(5):
        frames[f"steady-{i}"] = frame_of({"nll": 3 + 0.1 * i + rng.uniform(0, 0.1, (4, 60))})
    fig, notes = draw(group_of(frames))
    ax = panels(fig)["nll"]
    assert ax.get_yscale() == "log"
    bottom, top = ax.get_ylim()
    medians = [line.get_ydata() for line in ax.get_lines() if line.get_label() in frames]
    assert len(medians) == 6
    assert all(bottom <= np.min(m) and np.max(m) <= top for m in medians)
    assert notes == []
    close(fig)


def test_lines_past_the_decade_limit_and_cut_bands_are_named():
    g = np.arange(40)
    falling = np.tile(10.0 ** (-g * 30 / 39), (3, 1))  # down to 1e-30: a collapsed tail mass
    steady = np.ones((3, 40)) * np.array([[0.9], [1.0], [1.1]])
    wide = steady.copy()
    wide[0] = 1e-20  # one seed's band reaches far below every line
    fig, notes = draw(
        group_of({"falls": frame_of({"mass": falling}), "flat": frame_of({"mass": steady})})
    )
    bottom = panels(fig)["mass"].get_ylim()[0]
    assert 1e-15 < bottom < 1e-11  # twelve decades below the top, and bands 1.5 more
    assert any(n.startswith("mass: falls: median below the axis") and "1.0e-30" in n for n in notes)
    close(fig)
    fig, notes = draw(
        group_of({"wide": frame_of({"mass": wide}), "high": frame_of({"mass": steady * 5000})})
    )
    assert any("bands cut at" in n and "1.0e-20" in n for n in notes)
    assert 1e-20 < panels(fig)["mass"].get_ylim()[0]
    close(fig)


def test_mean_intervals_on_a_log_axis_end_at_the_axis_not_at_the_band():
    # a heavy right tail: the mean's interval reaches below zero, the band's minimum is 1e-6
    rng = np.random.default_rng(3)
    values = np.exp(rng.normal(0, 2.5, (8, 30)))
    values[0] = 1e-6
    values[1] *= 50.0
    fig, _ = draw(group_of({"a": frame_of({"v": values}, {"v": np.ones(30)})}))
    ax = panels(fig)["v"]
    bottom = ax.get_ylim()[0]
    assert ax.get_yscale() == "log" and bottom > 1e-5
    from matplotlib.collections import LineCollection

    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    ends = np.concatenate([np.asarray(seg)[:, 1] for c in bars for seg in c.get_segments()])
    assert ends.size and ends.min() >= bottom * (1 - 1e-9)  # never stretched to 1e-6
    carets = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert carets and np.allclose(carets[0].get_ydata(), bottom)  # cut, and marked as cut
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "interval runs past the axis" in texts
    close(fig)


def test_linear_growth_keeps_a_linear_axis():
    g = np.arange(40.0)
    linear = np.tile(0.1 + 0.1 * g, (3, 1))  # gerstgrasser-linreg: test error grows linearly
    exponential = np.tile(0.1 * 1.15**g, (3, 1))
    fig, _ = draw(group_of({"a": frame_of({"linear": linear, "exponential": exponential})}))
    assert panels(fig)["linear"].get_yscale() == "linear"
    assert panels(fig)["exponential"].get_yscale() == "log"
    close(fig)


# ---------------------------------------------------------------------------
# Looks, bands, legends.
# ---------------------------------------------------------------------------


def _configs(preset):
    return [a.model_dump(mode="json") for a in load_config(preset).arm_configs()]


def test_looks_follow_the_grid_of_arms_and_never_repeat():
    configs = _configs("curation-shootout")  # 6 curators x 2 regimes
    frames = {c["name"]: frame_of({"m": np.ones((2, 3))}) for c in configs}
    group = group_of(frames, {c["name"]: c for c in configs})
    looks = style.looks(group)
    assert len(set(looks)) == len(configs) == 12
    by = {c["name"]: look for c, look in zip(configs, looks, strict=True)}
    # colour says the curator, line style the regime
    assert by["replace-verifier"].colour == by["accumulate-verifier"].colour
    assert by["replace-verifier"].colour != by["accumulate-detector"].colour
    assert by["replace-dedup"].linestyle == by["replace-none"].linestyle
    assert by["replace-dedup"].linestyle != by["accumulate-dedup"].linestyle
    # mad-loops: three loops (colours) x two sampling biases (styles)
    configs = _configs("mad-loops")
    looks = style.looks(group_of({c["name"]: frames["replace-none"] for c in configs},
                                 {c["name"]: c for c in configs}))  # fmt: skip
    assert (
        len({look.colour for look in looks}) == 3 and len({look.linestyle for look in looks}) == 2
    )
    # many arms without a grid: still no two alike
    many = group_of({f"arm-{i}": frames["replace-none"] for i in range(40)})
    assert len(set(style.looks(many))) == 40


def test_arms_of_one_factor_differ_in_line_style_too_so_coinciding_lines_both_show():
    # kazdan-regimes: accumulate and accumulate-subsample keep nearly the same variance;
    # drawn as two solid lines, the later hid the earlier
    configs = _configs("kazdan-regimes")
    frames = {c["name"]: frame_of({"m": np.ones((2, 3))}) for c in configs}
    looks = style.looks(group_of(frames, {c["name"]: c for c in configs}))
    assert len({look.colour for look in looks}) == len({look.linestyle for look in looks}) == 3
    # the (colour, line style) pairs come round once every 28 series, then markers
    many = style.looks(group_of({f"arm-{i}": frames["replace"] for i in range(29)}))
    assert len({(look.colour, look.linestyle) for look in many[:28]}) == 28
    assert many[28].marker is not None and many[27].marker is None


def test_bands_say_what_they_are():
    rng = np.random.default_rng(1)
    few = frame_of({"m": rng.normal(size=(4, 3))})
    table = summarize(few)
    values = few[few.generation == 0].value
    row = table[table.generation == 0].iloc[0]
    assert (row.lo, row.hi) == (values.min(), values.max())  # 4 seeds: their range
    many = frame_of({"m": rng.normal(size=(40, 3))})
    row = summarize(many).query("generation == 0").iloc[0]
    values = many[many.generation == 0].value
    assert row.lo == pytest.approx(np.quantile(values, 0.025)) and row.lo > values.min()
    assert band_name(4) == "min–max over seeds" and band_name([40, 50]) == "central 95% of seeds"
    assert "central 95% with 40 seeds or more" in band_name([4, 40])


def test_two_generations_are_bars_with_the_chance_line():
    rng = np.random.default_rng(2)
    accuracy = np.column_stack([rng.uniform(0.8, 0.9, 5), rng.uniform(0.05, 0.15, 5)])
    frames = {}
    for name in ("same-init", "different-init"):
        frame = frame_of({"accuracy": accuracy})
        chance = pd.DataFrame(
            {
                "metric": "accuracy",
                "seed": -1,
                "generation": [0, 1],
                "value": 0.1,
                "source": "chance",
            }
        )
        frames[name] = pd.concat([frame, chance], ignore_index=True)
    fig, _ = draw(group_of(frames))
    ax = panels(fig)["accuracy"]
    assert ax.get_yscale() == "linear"
    assert len(ax.patches) == 4  # a bar per arm and generation, no line between two points
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    chance = [ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), 0.1)]
    assert chance, "no chance line"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "chance level" in texts
    close(fig)


def test_legends_fit_inside_their_figure():
    long = {
        f"a-rather-long-arm-name-number-{i}-with-suffix": frame_of({"m": np.ones((2, 5))})
        for i in range(6)
    }
    fig, _ = draw(group_of(long))
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    close(fig)


def test_one_draw_gives_the_pngs_savefig_writes():
    # a log axis, a band cut with a note under the panels, a legend outside: every part
    # that the layout engine places; then the same figure again at another resolution
    g = np.arange(30)
    frames = {
        "falling": frame_of({"tail": np.tile(10.0 ** (-g * 30 / 29), (3, 1))}),
        "steady": frame_of({"tail": np.ones((3, 30)), "other": np.ones((3, 30))}),
    }
    for dpi in (40, 90):
        fig, notes = draw(group_of(frames))
        assert notes  # the supxlabel is drawn
        with style.style():
            ours = [figures.png(fig, dpi), figures.png(fig, 2 * dpi)]
        assert fig.dpi == 100  # the figure's own resolution is left as it was
        close(fig)
        fig, _ = draw(group_of(frames))
        with style.style():
            theirs = []
            for resolution in (dpi, 2 * dpi):
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=resolution)
                theirs.append(buffer.getvalue())
        close(fig)
        assert ours == theirs


# ---------------------------------------------------------------------------
# Declarations: labels, directions, headlines; statistics apart.
# ---------------------------------------------------------------------------


@pytest.fixture
def declared_run(declared, tmp_path):
    config = load_config(
        {
            "name": "declared",
            "data": {"id": "gaussian"},
            "model": {"id": "gaussian"},
            "regime": {"id": "accumulate"},
            "curators": ["dedup"],
            "samples_per_generation": 30,
            "generations": 5,
            "seeds": 3,
            "metrics": ["variance", "report-test-spread", "report-test-loss"],
        }
    )
    return run(config, tmp_path / "run").directory


def test_axis_labels_directions_and_headlines_come_from_declarations(declared_run, capsys):
    loaded = runs.load(declared_run)
    arm = loaded.arms[0]
    group = runs.groups([loaded])[0]
    assert group.recorded() == ["variance", "report-test-spread", "report-test-loss"]
    assert all(not arm.is_metric(s) for s in group.recorded(metrics=False))
    fig, _ = draw(group)
    titles = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert titles["report-test-spread  (↑ healthier)"].get_ylabel() == DeclaredSpread.label
    assert titles["report-test-loss  (↓ healthier)"].get_ylabel() == DeclaredLoss.label
    assert not any("kept_fraction" in t for t in titles)  # statistics are not metrics
    close(fig)
    picked = [m for m, _, _ in headline_metrics(arm.frame, arm.metrics)]
    assert picked[:2] == ["report-test-loss", "report-test-spread"]  # by declared rank

    path = write_report([declared_run], declared_run / "r.html")
    html = path.read_text(encoding="utf-8")
    assert f"<span title='{DeclaredSpread.label}'>report-test-spread ↑</span>" in html
    assert "statistics of curators and regimes" in html and 'id="statistics"' in html
    assert re.search(r'<img alt="Statistics: ', html)

    assert main(["show", str(declared_run)]) == 0
    out = capsys.readouterr().out
    assert "report-test-loss ↓" in out and "curation.kept_fraction" in out
    assert "min–max over seeds" in out  # 3 seeds: the band is their range
    assert main(["show", str(declared_run), "--last"]) == 0
    out = capsys.readouterr().out
    assert "report-test-spread ↑" in out and "statistics of curators and regimes" in out


def test_a_report_draws_each_figure_once_and_closes_it(declared_run, monkeypatch):
    calls = []
    original = figures.metric_figure

    def counting(group, names):
        calls.append(names)
        return original(group, names)

    monkeypatch.setattr(figures, "metric_figure", counting)
    open_before = style.pyplot().get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "More than 20 figures have been opened" included
        write_report(
            [declared_run],
            declared_run / "r.html",
            figures=declared_run / "export",
            formats=("png", "svg"),
            inline_figures=declared_run / "inline",
        )
    assert len(calls) == 2  # the metrics and the statistics, each drawn once for all outputs
    assert style.pyplot().get_fignums() == open_before  # none left open
    exported = sorted(p.name for p in (declared_run / "export").iterdir())
    inline = sorted(p.name for p in (declared_run / "inline").iterdir())
    assert [n for n in exported if n.endswith(".png")] == inline
    assert len(exported) == 2 * len(inline)


def test_phase_reads_the_declared_direction(declared, tmp_path):
    from collapselab.experiment.sweep import plan_sweep, run_sweep
    from collapselab.report.phase import phase_grid

    config = {
        "name": "phase",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "regime": {"id": "fresh", "params": {"real_fraction": 0.0}},
        "samples_per_generation": 10,
        "generations": 25,
        "seeds": 4,
        "metrics": ["report-test-spread", "report-test-loss", "variance"],
    }
    grid = ["samples_per_generation=5,200", "regime.params.real_fraction=0,0.5"]
    sweep = plan_sweep(config, grid, root=tmp_path)
    run_sweep(sweep, workers=1)
    axes = ("samples_per_generation", "regime.params.real_fraction")
    spread = phase_grid(sweep.directory, *axes, "report-test-spread")
    loss = phase_grid(sweep.directory, *axes, "report-test-loss")
    # higher spread is healthier: collapse below; lower loss is healthier: collapse above
    assert spread.falls and not loss.falls and "declared" in spread.why
    assert spread.collapsed[0, 0] and not spread.collapsed[1, 1]  # n=5 without real data
    assert loss.collapsed[0, 0] and not loss.collapsed[1, 1]
    # without a declared direction (whatever variance declares, this reads the same when
    # it is not one of higher or lower): collapse is the side away from generation 0
    undeclared = phase_grid(sweep.directory, *axes, "variance")
    assert undeclared.collapsed[0, 0] and not undeclared.collapsed[1, 1]


# ---------------------------------------------------------------------------
# Samples: texts by generation, supervised targets, confusion matrices.
# ---------------------------------------------------------------------------


def one_arm(directory: Path, kind, real, outputs, **snapshots) -> Path:
    generations = max(outputs) + 1
    rows = [
        {"run_id": "fake", "config_hash": "0" * 16, "seed": s, "generation": g,
         "metric": "m", "value": 1.0 + g, "source": "simulation"}
        for s in range(2) for g in range(generations)
    ]  # fmt: skip
    write_metrics(directory / "metrics.parquet", pd.DataFrame(rows))
    write_json(directory / "manifest.json", {"run_id": "fake", "status": "complete"})
    (directory / "config.yaml").write_text("name: fake\ndata: {id: corpus}\n", encoding="utf-8")
    write_snapshots(directory / "snapshots.npz", kind, real, outputs, **snapshots)
    return directory


def test_sample_texts_have_one_row_per_generation(tmp_path):
    real = ["to be or not to be", "that is the question"]
    outputs = {0: real, 3: real[:1], 6: ["be be be"]}
    every = {g: [f"generation {g} document {i}" for i in range(5)] for g in range(7)}
    arm = runs.load(one_arm(tmp_path / "every", DataKind.TEXT, real, outputs, texts=every)).arms[0]
    rows = samples.text_rows(arm)
    assert [name for name, _ in rows] == ["real (held-out)"] + [f"generation {g}" for g in range(7)]
    assert rows[3][1] == [
        "generation 2 document 0",
        "generation 2 document 1",
        "generation 2 document 2",
    ]
    html = write_report([arm.directory], tmp_path / "every.html").read_text(encoding="utf-8")
    table = re.search(r"<table class='texts'.*?</table>", html, re.S).group(0)
    assert table.count("<tr>") == 1 + 8 and "every generation" in html
    # a run from before: the snapshot generations only
    old = runs.load(one_arm(tmp_path / "old", DataKind.TEXT, real, outputs)).arms[0]
    assert [name for name, _ in samples.text_rows(old)][1:] == [
        "generation 0", "generation 3", "generation 6"
    ]  # fmt: skip


def test_supervised_snapshots_draw_targets_and_confusion_matrices(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.random((60, 8))
    y = np.repeat(np.arange(3), 20)
    outputs = {g: (rng.random((50, 8)), rng.normal(size=(50, 3))) for g in (0, 1)}
    wrong = y.copy()
    wrong[:20] = 1  # class 0 all taken for class 1
    arm = runs.load(
        one_arm(
            tmp_path / "pairs", DataKind.SUPERVISED, (x, y), outputs, predictions={0: y, 1: wrong}
        )
    ).arms[0]
    with style.style():
        fig = samples.snapshot_figure(arm)
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0] == "real (held-out): 3 classes (n=60)"
        assert fig.axes[1].get_xlabel() == "target y (3 columns)"  # not y against a pixel
        style.pyplot().close(fig)
        fig = samples.confusion_figure(arm)
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles == ["generation 0: accuracy 1.000", "generation 1: accuracy 0.667"]
        matrix = fig.axes[1].get_images()[0].get_array()
        np.testing.assert_allclose(matrix, [[0, 1, 0], [0, 1, 0], [0, 0, 1]])
        style.pyplot().close(fig)
    keys = [i.key for i in figures.plan([runs.load(arm.directory)])]
    assert "confusion-fake" in keys
