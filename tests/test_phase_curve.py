"""``phase`` with one axis: the collapsed fraction with Wilson intervals and its onset."""

import numpy as np
import pytest
import scipy.stats as st
import yaml

from collapselab.cli import main
from collapselab.experiment.storage import read_metrics
from collapselab.report.phase import PhaseCurve, crossing, phase_curve


def _curve(x, collapsed, seeds):
    return PhaseCurve(
        "regime.params.real_fraction",
        list(x),
        "collapsed",
        np.asarray(collapsed),
        np.asarray(seeds),
        0.5,
        False,
        "test",
    )


def test_crossing_interpolates_linearly_and_skips_missing_points():
    x = np.array([0.0, 0.1, 0.2, 0.4])
    assert crossing(x, np.array([1.0, 0.9, 0.3, 0.0]), 0.5) == pytest.approx(0.1 + 0.1 * 4 / 6)
    assert crossing(x, np.array([1.0, np.nan, 0.0, 0.0]), 0.5) == pytest.approx(0.1)
    assert crossing(x, np.array([0.2, 0.5, 0.9, 1.0]), 0.5) == pytest.approx(0.1)
    assert crossing(x, np.array([1.0, 0.9, 0.8, 0.7]), 0.5) is None


def test_wilson_intervals_and_onset_interval_from_the_band_edges():
    curve = _curve([0.0, 0.1, 0.2, 0.5], [30, 28, 12, 0], [30, 30, 30, 30])
    low, high = curve.interval()
    for k, lo, hi in zip(curve.collapsed, low, high, strict=True):
        ci = st.binomtest(int(k), 30).proportion_ci(method="wilson")
        assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-6)
    onset, left, right = curve.onset()
    x = np.array(curve.x_values)
    assert onset == pytest.approx(crossing(x, curve.fraction, 0.5))
    assert 0.1 < onset < 0.2
    # the band's lower edge crosses first when the fraction falls along x
    assert left == pytest.approx(crossing(x, low, 0.5))
    assert right == pytest.approx(crossing(x, high, 0.5))
    assert left < onset < right


def test_onset_interval_open_where_an_edge_does_not_cross():
    # the fraction rises; its upper edge is above one half already at the first value
    curve = _curve([10, 20, 50], [2, 5, 10], [10, 10, 10])
    onset, left, right = curve.onset()
    assert onset == pytest.approx(20.0)
    assert left is None and right == pytest.approx(
        crossing(np.array([10, 20, 50.0]), curve.interval()[0], 0.5)
    )
    never = _curve([1, 2], [10, 10], [10, 10])
    assert never.onset() == (None, None, None)


@pytest.fixture
def sweep_dir(tmp_path):
    config = {
        "name": "enough",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "regime": {"id": "fresh", "params": {"real_fraction": 0.0}},
        "samples_per_generation": 10,
        "generations": 40,
        "seeds": 20,
        "metrics": ["variance", {"id": "collapsed", "params": {"tolerance": 0.1}}],
    }
    path = tmp_path / "enough.yaml"
    path.write_text(yaml.safe_dump(config))
    grid = ["regime.params.real_fraction=0.5,0,0.2", "samples_per_generation=10,400"]
    argv = ["sweep", str(path), "--root", str(tmp_path), "--workers", "1", "--quiet"]
    assert main([*argv, "--grid", grid[0], "--grid", grid[1]]) == 0
    return tmp_path / "enough"


def test_phase_curve_of_a_sweep_counts_seeds_from_the_runs(sweep_dir, capsys):
    curve = phase_curve(
        sweep_dir, "regime.params.real_fraction", "collapsed", fix={"samples_per_generation": 10}
    )
    assert curve.x_values == [0, 0.2, 0.5]  # ordered numerically, not as listed
    for value, k, n in zip(curve.x_values, curve.collapsed, curve.seeds, strict=True):
        name = f"real_fraction-{value}_samples_per_generation-10"
        frame = read_metrics(next((sweep_dir / name).rglob("metrics.parquet")))
        last = frame.query("metric == 'collapsed' and generation == 39 and source == 'simulation'")
        assert n == 20 and k == int((last["value"] >= 0.5).sum())
    # no real data: every seed collapses; half real data: none does
    assert curve.fraction[0] == 1.0 and curve.fraction[-1] == 0.0
    onset, left, right = curve.onset()
    assert left < onset < right and 0 < onset < 0.5

    code = main(
        [
            "phase", str(sweep_dir), "--x", "regime.params.real_fraction",
            "--fix", "samples_per_generation=10", "--metric", "collapsed",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"onset (half the seeds collapsed): regime.params.real_fraction = {onset:.3g}" in out
    assert (sweep_dir / "phase-collapsed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (sweep_dir / "phase-collapsed.csv").read_text().splitlines()
    assert table[0] == "regime.params.real_fraction,seeds,collapsed,fraction,low,high"
    assert len(table) == 4


def test_phase_curve_needs_the_other_axes_fixed(sweep_dir, capsys):
    code = main(
        ["phase", str(sweep_dir), "--x", "regime.params.real_fraction", "--metric", "collapsed"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--fix samples_per_generation=VALUE" in err
