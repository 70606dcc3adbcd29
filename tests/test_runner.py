"""Results, determinism (fresh, parallel, fresh process, resumed) and resume safety."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import collapselab as cl
from collapselab.errors import ResultsError
from collapselab.experiment import load_config
from collapselab.experiment.storage import METRIC_COLUMNS, read_metrics


def metrics(directory, arm):
    return read_metrics(directory / arm / "metrics.parquet")


def test_run_directory_layout(tmp_path, small_config):
    result = cl.run(load_config(small_config), tmp_path / "run", report=False)
    root = tmp_path / "run"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["arms"] == [
        "gauss-replace",
        "kde-accumulate",
    ]
    for arm in manifest["arms"]:
        arm_manifest = json.loads((root / arm / "manifest.json").read_text())
        assert arm_manifest["status"] == "complete"
        assert arm_manifest["root_seed"] == 0 and "numpy" in arm_manifest["versions"]
        assert (root / arm / "config.yaml").exists()
        assert not (root / arm / "checkpoints").exists()
        frame = metrics(root, arm)
        assert list(frame.columns) == list(METRIC_COLUMNS)
        sim = frame[frame.source == "simulation"]
        assert len(sim) == 5 * 8 * 7  # seeds x generations x metrics
        assert not sim.duplicated(["seed", "generation", "metric"]).any()
    assert {a.execution for a in result.arms} == {"batched", "per-seed"}
    theory_rows = metrics(root, "gauss-replace").query("source == 'theory'")
    assert set(theory_rows.metric) == {"variance", "log_variance", "mean_shift"}
    assert (theory_rows.seed == -1).all()
    assert (
        metrics(root, "kde-accumulate").query("source == 'theory'").empty
    )  # no closed form for a KDE


def test_same_config_same_results_serial_and_parallel(tmp_path, small_config):
    config = load_config(small_config)
    cl.run(config, tmp_path / "a", report=False)
    cl.run(config, tmp_path / "b", workers=2, report=False)
    for arm in ("gauss-replace", "kde-accumulate"):
        pd.testing.assert_frame_equal(metrics(tmp_path / "a", arm), metrics(tmp_path / "b", arm))
        assert (tmp_path / "a" / arm / "metrics.parquet").read_bytes() == (
            tmp_path / "b" / arm / "metrics.parquet"
        ).read_bytes()


@pytest.mark.slow
def test_same_results_in_a_fresh_process(tmp_path, small_config):
    config_path = tmp_path / "small.yaml"
    import yaml

    config_path.write_text(yaml.safe_dump(small_config))
    cl.run(load_config(config_path), tmp_path / "here", report=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "collapselab",
            "run",
            str(config_path),
            "--out",
            str(tmp_path / "there"),
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    for arm in ("gauss-replace", "kde-accumulate"):
        assert (tmp_path / "here" / arm / "metrics.parquet").read_bytes() == (
            tmp_path / "there" / arm / "metrics.parquet"
        ).read_bytes()


@pytest.mark.parametrize("stop_at", [("gauss-replace", None, 3), ("kde-accumulate", 2, 5)])
def test_interrupted_run_resumes_bit_identical(tmp_path, small_config, stop_at):
    config = load_config(small_config)
    cl.run(config, tmp_path / "clean", report=False)

    def interrupt(event):
        arm, seed, generation = event.arm, event.seed, event.generation
        if (arm, seed, generation) == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(config, tmp_path / "resumed", on_generation=interrupt, report=False)
    manifest = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert (tmp_path / "resumed" / stop_at[0] / "checkpoints").exists()
    seen = []
    result = cl.run(
        config,
        tmp_path / "resumed",
        on_generation=lambda e: seen.append((e.arm, e.seed, e.generation)),
        report=False,
    )
    resumed_arm = next(a for a in result.arms if a.name == stop_at[0])
    assert resumed_arm.resumed
    # generations already checkpointed are not recomputed
    assert (stop_at[0], stop_at[1], stop_at[2]) not in seen
    for arm in ("gauss-replace", "kde-accumulate"):
        assert (tmp_path / "clean" / arm / "metrics.parquet").read_bytes() == (
            tmp_path / "resumed" / arm / "metrics.parquet"
        ).read_bytes()


def test_corrupt_checkpoint_is_recomputed_not_loaded(tmp_path, small_config):
    config = load_config(small_config)
    cl.run(config, tmp_path / "clean", report=False)

    def interrupt(event):
        arm, seed, generation = event.arm, event.seed, event.generation
        if arm == "kde-accumulate" and seed == 1 and generation == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(config, tmp_path / "broken", on_generation=interrupt, report=False)
    checkpoint = tmp_path / "broken" / "kde-accumulate" / "checkpoints" / "seed-00001.ckpt"
    blob = checkpoint.read_bytes()
    checkpoint.write_bytes(blob[: len(blob) // 2])  # truncated
    seen = []
    cl.run(
        config,
        tmp_path / "broken",
        on_generation=lambda e: seen.append((e.arm, e.seed, e.generation)),
        report=False,
    )
    assert ("kde-accumulate", 1, 0) in seen  # seed 1 started again from generation 0
    assert (tmp_path / "clean" / "kde-accumulate" / "metrics.parquet").read_bytes() == (
        tmp_path / "broken" / "kde-accumulate" / "metrics.parquet"
    ).read_bytes()


def test_corrupt_results_are_redone(tmp_path, small_config):
    config = load_config(small_config)
    cl.run(config, tmp_path / "run", report=False)
    target = tmp_path / "run" / "gauss-replace" / "metrics.parquet"
    good = target.read_bytes()
    target.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="does not match its recorded checksum"):
        read_metrics(target)
    with pytest.raises(ResultsError, match="not a readable Parquet"):
        read_metrics(target, digest=None)
    cl.run(config, tmp_path / "run", report=False)
    assert target.read_bytes() == good


def test_completed_run_is_not_recomputed(tmp_path, small_config):
    config = load_config(small_config)
    cl.run(config, tmp_path / "run", report=False)
    seen = []
    result = cl.run(config, tmp_path / "run", on_generation=lambda *a: seen.append(a), report=False)
    assert seen == [] and all(a.resumed for a in result.arms)


def test_different_config_in_same_directory_is_refused(tmp_path, small_config):
    cl.run(load_config(small_config), tmp_path / "run", report=False)
    before = (tmp_path / "run" / "gauss-replace" / "metrics.parquet").read_bytes()
    other = load_config(small_config, ["seeds=6"])
    with pytest.raises(ResultsError, match="different config"):
        cl.run(other, tmp_path / "run", report=False)
    assert (tmp_path / "run" / "gauss-replace" / "metrics.parquet").read_bytes() == before
    cl.run(other, tmp_path / "run", overwrite=True, report=False)
    assert (
        metrics(tmp_path / "run", "gauss-replace").query("source == 'simulation'").seed.nunique()
        == 6
    )


def test_unwritable_output_is_a_clear_error(tmp_path, small_config):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultsError, match="cannot write"):
        cl.run(load_config(small_config), blocker / "run", report=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_on_generation_receives_every_generation_with_its_values(tmp_path, small_config, workers):
    """On every path, the process pool included, the hook gets each generation once,
    with the values that end up in metrics.parquet."""
    events = []
    result = cl.run(
        load_config(small_config),
        tmp_path / "run",
        workers=workers,
        on_generation=events.append,
        report=False,
    )
    for arm in result.arms:
        mine = [e for e in events if e.arm == arm.name]
        sim = arm.frame[arm.frame.source == "simulation"]
        variance = sim[sim.metric == "variance"].pivot(
            index="seed", columns="generation", values="value"
        )
        if arm.execution == "batched":
            assert [e.generation for e in mine] == list(range(8))
            assert all(e.seed is None for e in mine)
            for e in mine:
                assert list(e.values["variance"]) == list(variance[e.generation])
        else:
            assert sorted((e.seed, e.generation) for e in mine) == [
                (s, g) for s in range(5) for g in range(8)
            ]
            for e in mine:
                assert e.values["variance"] == variance.loc[e.seed, e.generation]
            assert set(mine[0].values) == set(sim.metric)


def test_components_are_built_once_and_real_data_loaded_once_per_seed(
    tmp_path, small_config, monkeypatch
):
    from collapselab import registry
    from collapselab.data import GaussianTruth

    made, loads = [], []
    make = registry.make
    monkeypatch.setattr(
        registry, "make", lambda kind, id, **p: made.append(kind) or make(kind, id, **p)
    )
    load = GaussianTruth.load
    monkeypatch.setattr(
        GaussianTruth, "load", lambda self, **kw: loads.append(1) or load(self, **kw)
    )
    config = load_config({**small_config, "arms": small_config["arms"][1:]})  # per-seed KDE
    cl.run(config, tmp_path / "run", report=False)
    assert made.count("model") == 1 and made.count("data") == 1
    # one load per seed's chain (seed 0's also serves the snapshots), one for the theory
    assert len(loads) <= 5 + 1


TINY = {
    "name": "tiny",
    "data": "gaussian",
    "model": "gaussian",
    "samples_per_generation": 10,
    "generations": 3,
    "seeds": 2,
    "metrics": ["variance"],
}


def test_the_runner_reports_through_the_reporter_it_is_given(tmp_path):
    from collapselab.experiment.runner import run

    folder = tmp_path / "run"
    calls = []

    def reporter(run_dirs, out, figures):
        # the run's results are saved before its report is drawn
        assert (folder / "manifest.json").is_file() and (
            folder / "tiny" / "metrics.parquet"
        ).is_file()
        calls.append((run_dirs, out, figures))
        out.write_text("drawn")
        return out

    config = load_config(TINY)
    fresh = run(config, folder, reporter=reporter)
    assert calls == [([folder], folder / "report.html", folder / "figures")]
    assert fresh.report == folder / "report.html"
    again = run(config, folder, reporter=reporter)  # complete, with its report: not redrawn
    assert len(calls) == 1 and again.report == folder / "report.html"
    (folder / "report.html").unlink()
    third = run(config, folder, reporter=reporter)  # complete, without one: drawn
    assert len(calls) == 2 and third.report == folder / "report.html"
    (folder / "report.html").unlink()
    assert run(config, folder, reporter=lambda *_: None).report is None  # could not draw it
    quiet = run(config, tmp_path / "quiet")  # no reporter, no report
    assert quiet.report is None and not (tmp_path / "quiet" / "report.html").exists()


def test_collapselab_run_reports_by_default_and_not_when_asked(tmp_path):
    assert cl.run(TINY, tmp_path / "on").report == tmp_path / "on" / "report.html"
    assert (tmp_path / "on" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert cl.run(TINY, tmp_path / "off", report=False).report is None
    assert not (tmp_path / "off" / "report.html").exists()


def test_a_run_without_a_reporter_imports_no_report_module(tmp_path):
    # the experiment layer never imports the report layer (also checked by lint-imports)
    code = (
        "import sys, collapselab.experiment.runner as runner\n"
        "from collapselab.experiment import load_config\n"
        f"runner.run(load_config({TINY!r}), sys.argv[1])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('collapselab.report'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], check=True)
    assert (tmp_path / "run" / "tiny" / "metrics.parquet").is_file()
