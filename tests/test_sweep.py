"""Sweeps: grid parsing, safe point names, results-root confinement, determinism across
the serial and process-pool backends and task granularities, resume, phase diagrams."""

import json
import os

import numpy as np
import pytest
import yaml

from collapselab.cli import main
from collapselab.errors import ConfigError, ResultsError
from collapselab.experiment import runner
from collapselab.experiment.config import preset_names
from collapselab.experiment.storage import read_metrics
from collapselab.experiment.sweep import (
    PRESET_GRIDS,
    parse_axis,
    plan_sweep,
    point_names,
    run_sweep,
)
from collapselab.report.phase import boundary_segments, phase_grid

GRID = ["samples_per_generation=10,30", "arms.1.regime.id=accumulate,replace"]


@pytest.fixture
def sweep_config(small_config):
    """``small_config`` (a batched Gaussian arm and a per-seed KDE arm), a little smaller."""
    config = dict(small_config, generations=5, seeds=3)
    config["metrics"] = ["variance", "tail_mass", "collapsed"]
    return config


def files(directory):
    """Every metrics.parquet under ``directory``: relative path -> bytes."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("metrics.parquet"))
    }


def cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------
# Grid and names
# ---------------------------------------------------------------------------


def test_axis_values_are_yaml_and_lists_stay_whole():
    axis = parse_axis("data.params.mean=[0, 1],[2,3], 4 ,true")
    assert axis.key == "data.params.mean"
    assert axis.values == ([0, 1], [2, 3], 4, True)


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("seeds", "expected KEY=V1,V2"),
        ("seeds=", "expected KEY=V1,V2"),
        ("seeds=1,,2", "empty value"),
        ("seeds=1,1", "listed twice"),
        ("name=a,b", "cannot be swept"),
        ("../x=1,2", "not a dotted config key"),
    ],
)
def test_bad_axes_are_one_line_errors(spec, hint):
    with pytest.raises(ConfigError, match=hint):
        parse_axis(spec)


def test_point_names_are_safe_deterministic_and_distinct():
    axes = [parse_axis("data.params.mean=../../etc,..,a/b,a b"), parse_axis("seeds=1,2")]
    combos = [(m, s) for m in axes[0].raw for s in axes[1].raw]
    names = point_names(axes, combos)
    assert names == point_names(axes, combos)  # deterministic
    assert len(set(names)) == len(names)  # 'a/b' and 'a b' sanitize alike: a hash tells them apart
    for name in names:
        assert "/" not in name and ".." not in name and name[0].isalnum()
    assert names[0] == "mean-etc_seeds-1"
    # Two axes with the same last key part are named by their full keys.
    twin = [parse_axis("data.params.dim=1,2"), parse_axis("model.params.dim=3")]
    assert point_names(twin, [("1", "3")]) == ["data.params.dim-1_model.params.dim-3"]


def test_plan_validates_every_point_and_names_the_bad_one(tmp_path, sweep_config):
    with pytest.raises(
        ConfigError, match=r"grid point samples_per_generation=-1: .*greater than 0"
    ):
        plan_sweep(sweep_config, ["samples_per_generation=10,-1"], root=tmp_path)
    with pytest.raises(ConfigError, match="sampels_per_generation"):
        plan_sweep(sweep_config, ["sampels_per_generation=10"], root=tmp_path)
    with pytest.raises(ConfigError, match="at least one --grid"):
        plan_sweep(sweep_config, [], root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # planning writes nothing


def test_phase_gaussian_preset_has_its_grid(capsys, tmp_path):
    assert "phase-gaussian" in preset_names()
    code, out, _ = cli(capsys, "sweep", "phase-gaussian", "--root", str(tmp_path), "--dry-run")
    assert code == 0
    assert "30 points" in out  # 5 sample sizes x 6 real fractions
    assert "samples_per_generation-10_real_fraction-0.05" in out
    assert list(tmp_path.iterdir()) == []
    sweep = plan_sweep("phase-gaussian", root=tmp_path)
    assert [a.key for a in sweep.axes] == [g.split("=")[0] for g in PRESET_GRIDS["phase-gaussian"]]


# ---------------------------------------------------------------------------
# Results root: no path traversal
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["../escape", "/tmp/collapselab-escape", "a/../../escape", "."])
def test_out_cannot_leave_the_results_root(capsys, tmp_path, sweep_config, out):
    root = tmp_path / "root"
    root.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(sweep_config))
    code, _, err = cli(
        capsys, "sweep", str(config), "--grid", "seeds=2", "--root", str(root), "--out", out
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "outside the results root" in err
    assert not (tmp_path / "escape").exists() and not os.path.exists("/tmp/collapselab-escape")
    assert list(root.iterdir()) == []


def test_a_symlink_cannot_lead_out_of_the_root(tmp_path, sweep_config):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ResultsError, match="outside the results root"):
        plan_sweep(sweep_config, ["seeds=2"], root=root, out="link/sweep")


def test_arm_and_run_names_cannot_traverse(capsys, tmp_path, sweep_config):
    bad = dict(sweep_config, arms=[{"name": "../../evil"}])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(bad))
    code, _, err = cli(capsys, "sweep", str(config), "--grid", "seeds=2", "--root", str(tmp_path))
    assert code == 2 and "arms.0.name" in err and "pattern" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# ---------------------------------------------------------------------------
# Running: determinism across backends and granularities, resume
# ---------------------------------------------------------------------------


def test_serial_pool_and_seed_tasks_give_identical_bytes(tmp_path, sweep_config, monkeypatch):
    serial = plan_sweep(sweep_config, GRID, root=tmp_path, out="serial")
    result = run_sweep(serial, workers=1)
    assert sorted(result.ran) == sorted(p.name for p in serial.points) and not result.skipped
    reference = files(tmp_path / "serial")
    assert len(reference) == 4 * 2  # points x arms
    for path, blob in reference.items():
        frame = read_metrics(tmp_path / "serial" / path)
        sim = frame[frame.source == "simulation"]
        assert len(sim) == 3 * 5 * 3  # seeds x generations x metrics
        assert not sim.duplicated(["seed", "generation", "metric"]).any()
        assert blob

    run_sweep(plan_sweep(sweep_config, GRID, root=tmp_path, out="pool"), workers=2)
    assert files(tmp_path / "pool") == reference

    # Seed tasks: every per-seed chain runs once, and assembling the arm recomputes nothing.
    calls = []
    original = runner.run_seed

    def counting(spec, seed, state=None, on_generation=None, **kwargs):
        calls.append(seed)
        return original(spec, seed, state, on_generation, **kwargs)

    monkeypatch.setattr(runner, "run_seed", counting)
    seeds = plan_sweep(sweep_config, GRID, root=tmp_path, out="seeds")
    run_sweep(seeds, workers=1, granularity="seed")
    assert len(calls) == 4 * 3  # points x seeds of the per-seed (KDE) arm, nothing more
    assert files(tmp_path / "seeds") == reference

    manifest = json.loads((tmp_path / "seeds" / "sweep.json").read_text())
    assert manifest["status"] == "complete"
    assert [p["name"] for p in manifest["points"]] == [p.name for p in seeds.points]
    assert manifest["points"][0]["values"] == {
        "samples_per_generation": 10,
        "arms.1.regime.id": "accumulate",
    }


def test_rerun_skips_complete_points_and_redoes_a_missing_one(tmp_path, sweep_config):
    sweep = plan_sweep(sweep_config, GRID, root=tmp_path, out="s")
    run_sweep(sweep, workers=1)
    before = files(tmp_path / "s")
    victim = sweep.points[2]
    for path in (tmp_path / "s" / victim.name).rglob("metrics.parquet"):
        path.unlink()
    again = run_sweep(plan_sweep(sweep_config, GRID, root=tmp_path, out="s"), workers=1)
    assert again.ran == [victim.name] and len(again.skipped) == 3
    assert files(tmp_path / "s") == before


def test_a_grown_grid_reuses_points_and_a_changed_config_is_refused(tmp_path, sweep_config):
    run_sweep(plan_sweep(sweep_config, ["seeds=2"], root=tmp_path, out="s"), workers=1)
    grown = run_sweep(plan_sweep(sweep_config, ["seeds=2,3"], root=tmp_path, out="s"), workers=1)
    assert grown.skipped == ["seeds-2"] and grown.ran == ["seeds-3"]
    before = files(tmp_path / "s")
    changed = dict(sweep_config, generations=6)
    with pytest.raises(ResultsError, match=r"different config \(generations: 5 -> 6\)"):
        run_sweep(plan_sweep(changed, ["seeds=2"], root=tmp_path, out="s"), workers=1)
    assert files(tmp_path / "s") == before


def test_a_changed_base_gets_its_own_folder_and_resumes_there(tmp_path, sweep_config):
    """Issue 18: a sweep of another base never mixes with the old points."""
    first = run_sweep(plan_sweep(sweep_config, ["seeds=2"], root=tmp_path), workers=1)
    assert first.directory == (tmp_path / "small").resolve()
    before = files(first.directory)
    changed = dict(sweep_config, generations=6)
    plan = plan_sweep(changed, ["seeds=2"], root=tmp_path)
    assert plan.directory.parent == first.directory.parent
    assert plan.directory.name.startswith("small-") and plan.directory != first.directory
    second = run_sweep(plan, workers=1)
    assert second.ran == ["seeds-2"] and files(first.directory) == before
    frame = read_metrics(next(second.directory.rglob("metrics.parquet")))
    assert frame["generation"].max() == 5
    # each command finds its own folder again, complete: nothing runs
    again = run_sweep(plan_sweep(changed, ["seeds=2"], root=tmp_path), workers=1)
    assert again.directory == second.directory and again.skipped == ["seeds-2"]
    original = run_sweep(plan_sweep(sweep_config, ["seeds=2"], root=tmp_path), workers=1)
    assert original.directory == first.directory and original.skipped == ["seeds-2"]
    # checkpointing and a description change no result: same sweep, same folder
    quiet = dict(sweep_config, checkpoint_every=2, description="said otherwise")
    same = plan_sweep(quiet, ["seeds=2"], root=tmp_path)
    assert same.directory == first.directory


def test_points_are_skipped_by_config_hash_not_by_folder_name(tmp_path, sweep_config):
    grid = ["samples_per_generation=10,30", "seeds=2"]
    first = run_sweep(plan_sweep(sweep_config, grid, root=tmp_path, out="s"), workers=1)
    before = files(tmp_path / "s")
    names = sorted(p.name for p in first.points)
    # the same values spelled otherwise, and the axes in the other order: other names
    respelled = ["seeds=2.0e0", "samples_per_generation=10,3.0e1"]
    plan = plan_sweep(sweep_config, respelled, root=tmp_path, out="s")
    assert sorted(p.name for p in plan.points) == names
    again = run_sweep(plan, workers=1)
    assert again.ran == [] and sorted(again.skipped) == names
    assert files(tmp_path / "s") == before
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir()) == names


# ---------------------------------------------------------------------------
# Phase diagrams
# ---------------------------------------------------------------------------


def test_boundary_runs_between_collapsed_and_healthy_cells():
    collapsed = np.array([[True, True, False], [True, False, False]])
    segments = set(boundary_segments(collapsed))
    assert segments == {
        ((1.5, -0.5), (1.5, 0.5)),  # row 0: between columns 1 and 2
        ((0.5, 0.5), (0.5, 1.5)),  # row 1: between columns 0 and 1
        ((0.5, 0.5), (1.5, 0.5)),  # column 1: between rows 0 and 1
    }
    assert boundary_segments(np.zeros((2, 2), dtype=bool)) == []


def test_phase_diagram_of_a_small_fresh_data_sweep(capsys, tmp_path):
    config = {
        "name": "phase",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "regime": {"id": "fresh", "params": {"real_fraction": 0.0}},
        "samples_per_generation": 10,
        "generations": 60,
        "seeds": 40,
        "metrics": ["variance", "collapsed"],
    }
    path = tmp_path / "phase.yaml"
    path.write_text(yaml.safe_dump(config))
    grid = ["samples_per_generation=10,100", "regime.params.real_fraction=0,0.5"]
    argv = ["sweep", str(path), "--root", str(tmp_path), "--workers", "1", "--quiet"]
    code, _, err = cli(capsys, *argv, "--grid", grid[0], "--grid", grid[1])
    assert code == 0, err
    sweep_dir = tmp_path / "phase"
    phase = phase_grid(
        sweep_dir, "samples_per_generation", "regime.params.real_fraction", "variance"
    )
    # Without real data small samples collapse; half real data keeps the variance up.
    assert phase.values[0, 0] < 1e-3 and phase.values[0, 0] < phase.values[0, 1] < 0.6
    assert phase.values[1, 0] > 0.5 and phase.values[1, 1] > 0.8
    assert phase.collapsed[0].all() and not phase.collapsed[1].any()
    # The cell matches the medians read straight from the run.
    cell = read_metrics(
        next((sweep_dir / "samples_per_generation-10_real_fraction-0").rglob("*.parquet"))
    )
    last = cell.query("metric == 'variance' and generation == 59 and source == 'simulation'")
    assert phase.values[0, 0] == pytest.approx(float(np.median(last.value)))

    code, _, err = cli(
        capsys,
        "phase",
        str(sweep_dir),
        "--x",
        "samples_per_generation",
        "--y",
        "regime.params.real_fraction",
        "--metric",
        "collapsed",
    )
    assert code == 0, err
    assert (sweep_dir / "phase-collapsed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (sweep_dir / "phase-collapsed.csv").read_text().splitlines()
    assert len(table) == 1 + 4
    code, _, err = cli(
        capsys, "phase", str(sweep_dir), "--x", "seeds", "--y", "samples_per_generation",
        "--metric", "variance",
    )  # fmt: skip
    assert code == 2 and "not a grid axis" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(
        capsys, "phase", str(sweep_dir), "--x", "samples_per_generation",
        "--y", "regime.params.real_fraction", "--metric", "wasserstein",
    )  # fmt: skip
    assert code == 2 and "recorded: collapsed, variance" in err
    code, _, err = cli(
        capsys, "phase", str(tmp_path), "--x", "a", "--y", "b", "--metric", "variance"
    )
    assert code == 2 and "not a sweep directory" in err


def test_phase_needs_fix_for_a_third_axis_and_arm_for_arms(tmp_path, sweep_config):
    grid = [*GRID, "seeds=2,3"]
    sweep = plan_sweep(sweep_config, grid, root=tmp_path, out="s")
    # No run needed for the argument checks, only the manifest.
    from collapselab.experiment.storage import write_json
    from collapselab.experiment.sweep import _manifest

    write_json(sweep.directory / "sweep.json", _manifest(sweep))
    with pytest.raises(Exception, match="--fix seeds=VALUE"):
        phase_grid(sweep.directory, "samples_per_generation", "arms.1.regime.id", "variance")
    with pytest.raises(Exception, match="pick one with --arm"):
        phase_grid(
            sweep.directory,
            "samples_per_generation",
            "arms.1.regime.id",
            "variance",
            fix={"seeds": 2},
        )
    with pytest.raises(Exception, match="is not an arm"):
        phase_grid(
            sweep.directory,
            "samples_per_generation",
            "arms.1.regime.id",
            "variance",
            fix={"seeds": 2},
            arm="nope",
        )
