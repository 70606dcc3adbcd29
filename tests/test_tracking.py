"""``run --tracker``: each arm a tracker run, read back with the tracker's own client."""

import builtins
import math

import numpy as np
import pytest
import yaml

from collapselab.cli import main
from collapselab.experiment.tracking import flatten, seed_summary


def _write(tmp_path, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _client(out):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri="sqlite:///" + str((out / "mlflow.db").resolve()))


def _expected(frame, metric):
    """Seed mean and standard error per generation, from metrics.parquet's rows."""
    sim = frame[(frame["source"] == "simulation") & (frame["metric"] == metric)]
    out = {}
    for generation, part in sim.groupby("generation"):
        values = part["value"].to_numpy()
        out[int(generation)] = (values.mean(), values.std(ddof=1) / math.sqrt(len(values)))
    return out


def test_mlflow_runs_per_arm_with_history_params_and_report(tmp_path, small_config, capsys):
    pytest.importorskip("mlflow")
    from collapselab.report.runs import load

    config = {**small_config, "seeds": 3, "generations": 4}
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, config), "--out", str(out), "--tracker", "mlflow"]) == 0
    client = _client(out)
    experiment = client.get_experiment_by_name("small")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["gauss-replace", "kde-accumulate"]
    for arm in load(out).arms:
        run = runs[arm.name]
        assert run.info.status == "FINISHED"
        assert run.data.tags["collapselab.config_hash"] == arm.manifest["config_hash"]
        # config as flat params
        assert run.data.params["model.id"] == arm.config["model"]["id"]
        assert run.data.params["seeds"] == "3"
        assert run.data.params["samples_per_generation"] == "30"
        # one point per generation, the seed mean; its standard error beside it
        for metric in ("variance", "wasserstein"):
            expected = _expected(arm.frame, metric)
            history = client.get_metric_history(run.info.run_id, metric)
            assert sorted(m.step for m in history) == [0, 1, 2, 3]
            for point in history:
                assert point.value == pytest.approx(expected[point.step][0], rel=1e-12)
            se = {
                m.step: m.value for m in client.get_metric_history(run.info.run_id, metric + "_se")
            }
            assert se == pytest.approx({g: v[1] for g, v in expected.items()}, rel=1e-12)
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["report.html"]


def test_mlflow_respects_tracking_uri_and_resumed_generations(tmp_path, small_config, monkeypatch):
    """With MLFLOW_TRACKING_URI, nothing goes into the run folder; a second run of a
    complete folder (no events at all) still logs every generation from the results."""
    pytest.importorskip("mlflow")
    uri = "sqlite:///" + str(tmp_path / "elsewhere.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow keeps such a store's artifacts in ./mlruns
    config = _write(tmp_path, {**small_config, "seeds": 2, "generations": 3})
    out = tmp_path / "out"
    assert main(["run", config, "--out", str(out), "--quiet"]) == 0
    assert main(["run", config, "--out", str(out), "--quiet", "--tracker", "mlflow"]) == 0
    assert not (out / "mlflow.db").exists() and not (out / "mlartifacts").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("small")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "variance")]
        assert sorted(steps) == [0, 1, 2]


def test_missing_tracker_package_one_line_naming_the_extra(
    tmp_path, small_config, capsys, monkeypatch
):
    real_import = builtins.__import__

    def without_wandb(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_wandb)
    out = tmp_path / "out"
    code = main(["run", _write(tmp_path, small_config), "--out", str(out), "--tracker", "wandb"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install 'collapselab[wandb]'" in err
    assert not out.exists()


def test_unknown_tracker_refused(tmp_path, small_config, capsys):
    out = tmp_path / "out"
    assert main(["run", _write(tmp_path, small_config), "--out", str(out), "--tracker", "tb"]) == 2
    assert "--tracker must be one of mlflow, wandb" in capsys.readouterr().err
    assert not out.exists()


def test_wandb_offline_unless_configured(tmp_path, small_config, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    seen = []
    real_init = wandb.init

    def init(**kwargs):
        seen.append(kwargs)
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", init)
    out = tmp_path / "out"
    config = _write(tmp_path, {**small_config, "seeds": 2, "generations": 2})
    assert main(["run", config, "--out", str(out), "--quiet", "--tracker", "wandb"]) == 0
    assert sorted(k["name"] for k in seen) == ["gauss-replace", "kde-accumulate"]
    assert {k["mode"] for k in seen} == {"offline"} and {k["project"] for k in seen} == {"small"}
    assert seen[0]["config"]["model.id"] == "gaussian"
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2


def test_flatten_and_seed_summary():
    assert flatten({"a": {"b": 1, "c": None}, "d": [1, 2]}) == {
        "a.b": "1",
        "a.c": "",
        "d": "[1, 2]",
    }
    mean, se = seed_summary([1.0, 3.0, np.nan])
    assert mean == 2.0 and se == pytest.approx(1.0)
    assert seed_summary([np.nan]) is None
    assert math.isnan(seed_summary([5.0])[1])


def test_python_api_takes_the_tracker_and_the_user_hook_still_runs(tmp_path, small_config):
    pytest.importorskip("mlflow")
    import collapselab

    events = []
    config = {**small_config, "seeds": 2, "generations": 2, "arms": small_config["arms"][:1]}
    collapselab.run(
        config,
        tmp_path / "out",
        tracker="mlflow",
        save_generations="1",
        on_generation=events.append,
        report=False,
    )
    assert {(e.arm, e.generation) for e in events} == {("gauss-replace", 0), ("gauss-replace", 1)}
    client = _client(tmp_path / "out")
    (run,) = client.search_runs([client.get_experiment_by_name("small").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "variance")] == [0, 1]
    assert client.list_artifacts(run.info.run_id) == []  # no report asked for
    saved = sorted(p.name for p in (tmp_path / "out" / "gauss-replace" / "generations").iterdir())
    assert saved == ["seed-0001"]


def test_a_refused_run_with_a_tracker_writes_no_store(tmp_path, small_config, capsys):
    pytest.importorskip("mlflow")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    config = _write(tmp_path, small_config)
    assert main(["run", config, "--out", str(out), "--tracker", "mlflow"]) == 2
    assert "not a collapselab run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
