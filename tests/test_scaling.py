"""A sweep's report draws each metric against its numeric axis (the scaling picture)."""

import pytest

import collapselab as cl
from collapselab.report.figures import plan
from collapselab.report.runs import load, load_all
from collapselab.report.scaling import lines, numeric_axis, scaling_figure
from collapselab.report.style import pyplot

AXIS = "data.params.n_samples"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """strong-collapse over three decades of n, 10 seeds."""
    root = tmp_path_factory.mktemp("scaling")
    done = cl.sweep("strong-collapse", [f"{AXIS}=30,300,3000"], overrides=["seeds=10"], root=root)
    return done.directory


def test_the_swept_axis_is_found_and_each_arm_is_one_line(sweep):
    runs = load_all([sweep])
    assert numeric_axis(runs) == AXIS
    drawn = lines(runs, AXIS, "test_mse")
    assert sorted(line.label for line in drawn) == ["p0", "p0.01", "p0.1", "p0.5"]
    for line in drawn:
        assert line.x == [30.0, 300.0, 3000.0]
        assert all(lo <= m <= hi for lo, m, hi in zip(line.low, line.mean, line.high, strict=True))
        assert line.theory_x == line.x  # the exact OLS closed form at every point
    by = {line.label: line for line in drawn}
    # p = 0 keeps falling as d / n; p = 0.5 flattens near p^2 ||w_s - w*||^2 = 0.25
    assert by["p0"].mean[-1] < by["p0"].mean[0] / 20
    assert by["p0.5"].mean[-1] > 0.2
    # the simulation mean lies within one 95% interval width (about 4 s.e.) of the closed form
    for line in drawn:
        width = line.high[-1] - line.low[-1]
        assert abs(line.mean[-1] - line.theory[-1]) < width


def test_the_figure_is_log_log_with_every_arm(sweep):
    runs = load_all([sweep])
    fig, _ = scaling_figure(runs, AXIS)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert len(ax.containers) == 4  # one error-bar series per arm
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert {"p0", "p0.01", "p0.1", "p0.5"} <= set(labels)
    finally:
        pyplot().close(fig)
    assert any(item.key.startswith("scaling") for item in plan(runs))


def test_a_single_run_has_no_scaling_figure(sweep):
    point = sorted(p for p in sweep.iterdir() if (p / "manifest.json").is_file())[0]
    runs = [load(point)]
    assert numeric_axis(runs) is None
    assert not any(item.key.startswith("scaling") for item in plan(runs))
