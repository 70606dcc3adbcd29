"""The Python API on a real (tiny) run and a real (tiny) sweep: ``collapselab.run``,
``sweep``, ``diagnose``, ``verdict`` and ``load``, and the one config resolver."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import collapselab as cl
from collapselab.errors import CollapseLabError, ConfigError, ResultsError
from collapselab.experiment.config import load_config
from collapselab.experiment.storage import read_metrics
from collapselab.experiment.sweep import plan_sweep

CONFIG = {
    "name": "tiny",
    "description": "two arms, a few seeds",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 100}},
    "model": {"id": "gaussian"},
    "regime": {"id": "replace"},
    "samples_per_generation": 20,
    "generations": 4,
    "seeds": 3,
    "metrics": ["variance", "tail_mass", "collapsed"],
    "arms": [{"name": "replace"}, {"name": "accumulate", "regime": {"id": "accumulate"}}],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "tiny"
    result = cl.run(CONFIG, out, report=False)
    assert result.directory == out
    return out


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-sweep")
    result = cl.sweep(CONFIG, ["samples_per_generation=10,40"], root=root, out="grid", workers=1)
    assert sorted(result.ran) == ["samples_per_generation-10", "samples_per_generation-40"]
    return result.directory


# ---------------------------------------------------------------------------
# One resolver: a Config, a mapping, a preset name or a path
# ---------------------------------------------------------------------------


def _hashes(config):
    return [arm.config_hash() for arm in config.arm_configs()]


def test_every_form_of_a_config_resolves_to_the_same_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    from_dict = load_config(CONFIG)
    assert _hashes(load_config(path)) == _hashes(from_dict)
    assert _hashes(load_config(str(path))) == _hashes(from_dict)
    assert load_config(from_dict) is from_dict  # a Config without overrides, as it is
    assert _hashes(load_config(from_dict, seeds=3)) == _hashes(from_dict)
    assert _hashes(load_config(from_dict, seeds=4)) != _hashes(from_dict)


def test_overrides_as_a_list_or_a_mapping_are_the_same():
    as_list = load_config(CONFIG, ["samples_per_generation=30", "data.params.mean=0.5"])
    as_mapping = load_config(CONFIG, {"samples_per_generation": 30, "data.params.mean": 0.5})
    assert _hashes(as_list) == _hashes(as_mapping)
    assert _hashes(as_list) != _hashes(load_config(CONFIG))
    assert as_mapping.arm_configs()[0].data.params["mean"] == 0.5


def test_the_shortcuts_apply_to_every_arm_of_a_preset_as_on_the_command_line():
    config = load_config("quickstart", seeds=2, generations=3)
    # the gmm arms set their own seeds and generations; the shortcuts still win
    assert {(a.seeds, a.generations) for a in config.arm_configs()} == {(2, 3)}


@pytest.mark.parametrize(
    ("source", "overrides", "message"),
    [
        (42, None, "a config is a Config, a mapping of fields, a preset name"),
        ("no-such-preset", None, "Unknown preset id 'no-such-preset'"),
        (CONFIG, "seeds=2", "overrides must be a list of KEY=VALUE strings or a mapping"),
        (CONFIG, {"seeds": float("nan")}, "override 'seeds' is nan"),
        (CONFIG, {"seeds": 0}, "seeds"),
    ],
)
def test_a_bad_config_is_one_line_config_error(source, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        cl.run(source, overrides=overrides)
    assert "\n" not in str(info.value)


def test_run_accepts_a_config_object_with_the_same_results(run_dir, tmp_path):
    result = cl.run(load_config(CONFIG), tmp_path / "again", report=False)
    for arm in result.arms:
        mine = read_metrics(arm.directory / "metrics.parquet")
        theirs = read_metrics(run_dir / arm.name / "metrics.parquet")
        pd.testing.assert_frame_equal(mine, theirs)


def test_sweep_accepts_every_form_of_a_config(tmp_path):
    grid = ["samples_per_generation=10,40"]
    from_dict = plan_sweep(CONFIG, grid, root=tmp_path)
    from_config = plan_sweep(load_config(CONFIG), grid, root=tmp_path)
    assert [p.arm_hashes() for p in from_config.points] == [
        p.arm_hashes() for p in from_dict.points
    ]
    with pytest.raises(ConfigError, match="grid must be a list"):
        cl.sweep(CONFIG, "samples_per_generation=10,40", root=tmp_path)


# ---------------------------------------------------------------------------
# load: a run
# ---------------------------------------------------------------------------


def test_metrics_are_the_simulation_rows_with_an_arm_column(run_dir):
    results = cl.load(run_dir)
    assert not results.sweep and results.arms == ["replace", "accumulate"]
    frame = results.metrics()
    assert list(frame.columns[:2]) == ["arm", "run_id"]
    assert set(frame["source"]) == {"simulation"}
    assert (frame["arm"] == frame["run_id"]).all()
    for arm in results.arms:
        stored = read_metrics(run_dir / arm / "metrics.parquet")
        stored = stored[stored["source"] == "simulation"].reset_index(drop=True)
        mine = frame[frame["arm"] == arm].drop(columns="arm").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, stored, check_dtype=False)


def test_theory_rows_come_on_request(run_dir):
    results = cl.load(run_dir)
    theory = results.theory()
    # the Gaussian under replace has closed forms (variance); theory rows are seed -1
    assert len(theory) > 0 and set(theory["source"]) == {"theory"}
    assert set(theory["seed"]) == {-1}
    both = results.metrics(theory=True)
    assert len(both) == len(results.metrics()) + len(theory)


def test_config_and_manifest_are_the_run_folders(run_dir):
    results = cl.load(run_dir)
    assert results.config["name"] == "tiny"
    assert results.manifest["status"] == "complete"
    assert results.manifest["arms"] == ["replace", "accumulate"]


def test_plot_draws_every_series_of_each_metric(run_dir):
    from matplotlib.figure import Figure

    results = cl.load(run_dir)
    fig = results.plot("variance")
    assert isinstance(fig, Figure)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any(label.startswith("replace (3 seeds)") for label in labels)
    assert any(label.startswith("accumulate (3 seeds)") for label in labels)
    every = results.plot()
    assert len([ax for ax in every.axes if ax.get_visible()]) == 3
    only = results.plot(["variance", "tail_mass"], arms=["replace"])
    labels = [t.get_text() for legend in only.legends for t in legend.get_texts()]
    assert not any(label.startswith("accumulate") for label in labels)


def test_plot_refuses_what_is_not_there(run_dir):
    results = cl.load(run_dir)
    with pytest.raises(ResultsError, match="metric 'nll_real' is not recorded"):
        results.plot("nll_real")
    with pytest.raises(ResultsError, match="arm 'fresh' is not an arm"):
        results.plot("variance", arms=["fresh"])


def test_verdict_is_the_verdict_of_the_folder(run_dir):
    results = cl.load(run_dir)
    mine = results.verdict().to_frame()
    theirs = cl.verdict(run_dir).to_frame()
    pd.testing.assert_frame_equal(mine, theirs)
    assert set(mine["arm"]) == {"replace", "accumulate"}
    assert len(mine) == 2 * 8  # every definition for every arm


def test_reprs_are_short_and_the_html_is_escaped(run_dir, tmp_path):
    odd = tmp_path / "a<b>&'c"
    cl.run(CONFIG, odd, report=False)
    results = cl.load(odd)
    text = repr(results)
    assert "\n" not in text and text.startswith("Results(run 'tiny'")
    assert "replace, accumulate" in text
    page = results._repr_html_()
    assert "a<b>" not in page and "a&lt;b&gt;&amp;&#x27;c" in page
    # the headline and one summary table per arm
    assert page.count("<table class='headline'>") == 1
    assert page.count("<table class='summary'") == 2
    assert "tail_mass" in page


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "is not a folder"),
        (lambda d: d, "neither a run folder"),
    ],
)
def test_load_refuses_what_is_not_results(tmp_path, make, message):
    with pytest.raises(ResultsError, match=message):
        cl.load(make(tmp_path))


# ---------------------------------------------------------------------------
# load: a sweep
# ---------------------------------------------------------------------------


def test_sweep_metrics_carry_the_point_and_the_swept_values(sweep_dir):
    results = cl.load(sweep_dir)
    assert results.sweep and results.axes == ["samples_per_generation"]
    frame = results.metrics()
    assert list(frame.columns[:3]) == ["point", "samples_per_generation", "arm"]
    assert set(frame["samples_per_generation"]) == {10, 40}
    assert set(frame["arm"]) == {"replace", "accumulate"}
    for point in results.points:
        stored = read_metrics(sweep_dir / point.name / "replace" / "metrics.parquet")
        stored = stored[stored["source"] == "simulation"]
        mine = frame[(frame["point"] == point.name) & (frame["arm"] == "replace")]
        assert len(mine) == len(stored)
        np.testing.assert_array_equal(mine["value"].to_numpy(), stored["value"].to_numpy())
        assert set(mine["samples_per_generation"]) == {point.values["samples_per_generation"]}
    assert set(results.theory()["source"]) == {"theory"}


def test_sweep_plot_labels_series_by_their_values(sweep_dir):
    fig = cl.load(sweep_dir).plot("variance")
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for value in (10, 40):
        for arm in ("replace", "accumulate"):
            assert any(
                label.startswith(f"samples_per_generation={value} / {arm}") for label in labels
            )


def test_sweep_verdict_repr_and_html(sweep_dir):
    results = cl.load(sweep_dir)
    verdict = results.verdict()
    assert verdict.sweep and len(verdict.arms) == 4  # 2 points x 2 arms
    assert repr(results).startswith("Results(sweep 'tiny': 2 points over samples_per_generation")
    page = results._repr_html_()
    assert "2 points over samples_per_generation" in page
    assert page.count("<tr><th class='text'>samples_per_generation-") == 4
    assert results.config["name"] == "tiny" and results.manifest["status"] == "complete"


def test_a_point_without_results_is_listed_as_missing(sweep_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    (copy / "samples_per_generation-40" / "manifest.json").unlink()
    results = cl.load(copy)
    assert results.missing == ["samples_per_generation-40"]
    assert [p.name for p in results.points] == ["samples_per_generation-10"]
    assert set(results.metrics()["samples_per_generation"]) == {10}
    # an interrupted point (its arms unfinished) is missing too, not a failure to load
    point = copy / "samples_per_generation-10"
    manifest = json.loads((point / "manifest.json").read_text())
    (point / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    (point / "replace" / "metrics.parquet").unlink()
    assert cl.load(copy).missing == ["samples_per_generation-10", "samples_per_generation-40"]
    assert "2 points without complete results" in cl.load(copy)._repr_html_()


@pytest.mark.parametrize("name", ["../outside", "config.yaml", 7])
def test_a_point_name_that_is_not_one_is_refused(sweep_dir, tmp_path, name):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    manifest = json.loads((copy / "sweep.json").read_text())
    manifest["points"][0]["name"] = name
    (copy / "sweep.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match=r"field 'points\.0' is not a grid point"):
        cl.load(copy)


# ---------------------------------------------------------------------------
# diagnose
# ---------------------------------------------------------------------------


def test_diagnose_takes_paths_or_documents_as_the_command_does(tmp_path):
    from collapselab.diagnosis import diagnose

    reference = [f"the cat sat on mat number {i} with rare{i}" for i in range(30)]
    candidate = [f"the cat sat on the mat number {i % 3}" for i in range(30)]
    (tmp_path / "ref.jsonl").write_text(
        "\n".join(json.dumps({"text": t}) for t in reference), encoding="utf-8"
    )
    from_docs = cl.diagnose(reference, candidate, bootstrap=20, top=5)
    assert from_docs == diagnose(reference, candidate, top=5, n_bootstrap=20)
    from_path = cl.diagnose(tmp_path / "ref.jsonl", candidate, bootstrap=20, top=5)
    assert from_path["reference"].pop("path") == str(tmp_path / "ref.jsonl")
    assert from_path == from_docs
    # 60 hapaxes in the reference (rare0..rare29 and the numbers 0..29); 0, 1, 2 survive
    assert from_docs["candidate"]["rare_survival_k1"]["value"] == pytest.approx(3 / 60)
    with pytest.raises(CollapseLabError, match="--bootstrap must be >= 1"):
        cl.diagnose(reference, candidate, bootstrap=0)


def test_importing_the_diagnosis_module_keeps_the_function():
    import collapselab.diagnosis  # noqa: F401

    assert callable(cl.diagnose) and cl.diagnose.__module__ == "collapselab"
