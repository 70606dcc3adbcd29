"""The command line: presets, run, show, and one-line errors with exit code 2."""

import subprocess
import sys

import pytest
import yaml

from collapselab.cli import main
from collapselab.experiment.config import preset_names


def write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def base_config(**changes):
    config = {
        "name": "t",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "samples_per_generation": 20,
        "generations": 4,
        "seeds": 3,
        "metrics": ["variance", "tail_mass"],
    }
    config.update(changes)
    return config


BAD = [
    ("unknown model id", base_config(model={"id": "gausian"}), "model", "Did you mean 'gaussian'?"),
    (
        "bad parameter",
        base_config(model={"id": "kde", "params": {"bandwidth": 0}}),
        "model",
        "'bandwidth' parameter of KDE must be",
    ),
    (
        "unknown parameter",
        base_config(model={"id": "kde", "params": {"bandwith": 1}}),
        "model",
        "Did you mean 'bandwidth'?",
    ),
    (
        "unknown field",
        base_config(sample_per_generation=3),
        "sample_per_generation",
        "Allowed fields",
    ),
    (
        "negative size",
        base_config(samples_per_generation=-5),
        "samples_per_generation",
        "greater than 0",
    ),
    (
        "missing field",
        {k: v for k, v in base_config().items() if k != "seeds"},
        "seeds",
        "required",
    ),
    (
        "unknown metric",
        base_config(metrics=["variance", "tailmass"]),
        "metrics.1",
        "Did you mean 'tail_mass'?",
    ),
    ("unknown regime", base_config(regime="acumulate"), "regime", "Did you mean 'accumulate'?"),
    (
        "bad regime param",
        base_config(regime={"id": "fresh", "params": {"real_fraction": 2}}),
        "regime",
        "real_fraction",
    ),
    ("arm without name", base_config(arms=[{"regime": "accumulate"}]), "arms", "name"),
    (
        "bad arm override",
        base_config(arms=[{"name": "a", "model": "kdee"}]),
        "arms.0.model",
        "Did you mean 'kde'?",
    ),
    ("bad name", base_config(name="../escape"), "name", "pattern"),
    (
        "bad data param",
        base_config(data={"id": "gaussian", "params": {"dim": 2, "mean": [1, 2, 3]}}),
        "data",
        "'mean' parameter",
    ),
    (
        "param named id",
        base_config(data={"id": "gaussian", "params": {"id": None}}),
        "data",
        "unexpected parameter 'id'",
    ),
    ("not a mapping", "- a\n- b\n", "", "mapping"),
    ("invalid yaml", "name: [unclosed\n", "", "invalid YAML"),
]


@pytest.mark.parametrize(("label", "config", "field", "hint"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_line_exit_2(tmp_path, capsys, label, config, field, hint):
    code, _out, err = run_cli(
        capsys, "run", write(tmp_path, config), "--out", str(tmp_path / "out")
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert field in lines[0] and hint in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing written for a bad config


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "quickstrat"], "Did you mean 'quickstart'?"),
        (["run", "missing.yaml"], "does not exist"),
        (["run", "quickstart", "--set", "seeds"], "expected KEY=VALUE"),
        (["run", "quickstart", "--set", "nonsense.key=1"], "'nonsense'"),
        (["run", "quickstart", "--set", "seeds=-1"], "seeds"),
        (["run", "quickstart", "--seeds", "x"], "invalid int value"),
        (["run", "quickstart", "--workers", "0"], "--workers"),
        (["show", "/nonexistent/run"], "not a run directory"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_command_lines_one_line_exit_2(capsys, tmp_path, argv, hint):
    code = None
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit directly
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert hint in err


def test_no_traceback_from_a_real_process(tmp_path):
    path = write(tmp_path, base_config(model={"id": "gausian"}))
    proc = subprocess.run(
        [sys.executable, "-m", "collapselab", "run", path], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: config field 'model'")


def test_presets_lists_every_preset(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert names == preset_names()
    assert {"quickstart", "shumailov-gaussian", "shumailov-gmm", "kazdan-regimes"} <= set(names)
    assert all(len(line.split()) > 3 for line in out.strip().splitlines())  # each has a description


@pytest.mark.parametrize(
    "name", ["quickstart", "shumailov-gaussian", "shumailov-gmm", "kazdan-regimes"]
)
def test_presets_are_valid_configs(name):
    from collapselab.experiment import load_config

    config = load_config(name)
    assert config.description
    assert len(config.arm_configs()) >= 2


def test_run_then_show_with_overrides(tmp_path, capsys):
    path = write(tmp_path, base_config(arms=[{"name": "r"}, {"name": "a", "regime": "accumulate"}]))
    code, out, _ = run_cli(
        capsys,
        "run",
        path,
        "--out",
        str(tmp_path / "run"),
        "--seeds",
        "4",
        "--generations",
        "5",
        "--set",
        "model.params.unbiased=true",
        "--quiet",
    )
    assert code == 0 and str(tmp_path / "run") in out
    resolved = yaml.safe_load((tmp_path / "run" / "a" / "config.yaml").read_text())
    assert resolved["seeds"] == 4 and resolved["generations"] == 5
    assert (
        resolved["model"]["params"]["unbiased"] is True and resolved["regime"]["id"] == "accumulate"
    )
    code, out, _ = run_cli(capsys, "show", str(tmp_path / "run"))
    assert code == 0
    assert "r: 4 seeds" in out and "a: 4 seeds" in out
    assert "variance" in out and "theory" in out


def test_set_a_new_component_id_drops_the_old_parameters():
    from collapselab.experiment.config import load_config

    # nature-lm's gpt parameters would be unknown to ngram: a new id starts from defaults
    # (and ngram samples: it has no beam search).
    overrides = ["model.id=ngram", "model.params.order=3", "decoding.beams=1"]
    config = load_config("nature-lm", [*overrides, "arms.2.regime.id=accumulate"])
    assert config.model.id == "ngram" and config.model.params == {"order": 3}
    arm = {a.name: a for a in config.arm_configs()}["real-10pct-beam"]
    assert arm.regime.id == "accumulate" and not arm.regime.params
    # the same id keeps its parameters
    same = load_config("nature-lm", ["model.id=gpt"])
    assert same.model.params["n_layer"] == 3


def test_yaml_reads_exponent_floats(tmp_path):
    from collapselab.experiment.config import load_config

    # YAML 1.1 would read 1e9 as the string '1e9'; configs read numbers as YAML 1.2 does
    config = load_config(
        "shumailov-gaussian",
        ["curators=[{id: likelihood-filter, params: {threshold: 1e9}}]", "seeds=2"],
    )
    assert config.curators[0].params["threshold"] == 1e9
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\ndata: gaussian\nmodel: gaussian\nsamples_per_generation: 1e2\n"
        "generations: 2\nseeds: 1\nmetrics: [variance]\n"
    )
    assert load_config(str(path)).samples_per_generation == 100


def test_show_on_a_failed_run_says_it_failed(tmp_path, capsys):
    import json

    from collapselab.cli import main

    out = tmp_path / "r"
    args = ["run", "quickstart", "--out", str(out), "--seeds", "1", "--generations", "2",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    # as a run that failed in its first arm leaves it: no metrics, the error in the manifest
    arm = out / "gaussian-replace"
    (arm / "metrics.parquet").unlink()
    for path, update in [
        (arm / "manifest.json", {"status": "running"}),
        (out / "manifest.json", {"status": "failed", "error": "something broke"}),
    ]:
        path.write_text(json.dumps({**json.loads(path.read_text()), **update}))
    capsys.readouterr()
    for command in (["show", str(out)], ["report", str(out)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "failed (something broke)" in err and "rerun" in err
        assert len(err.splitlines()) == 1


README_ARMS = base_config(
    regime="replace", arms=[{"name": "replace"}, {"name": "accumulate", "regime": "accumulate"}]
)


def test_an_override_that_falsifies_an_arm_name_is_refused(tmp_path, capsys):
    """Issue 12 item 8: the README's own example ran the arm named 'replace' under
    accumulate. A --set on the base that changes what an inheriting arm's name
    states is refused in one line that says how to set it per arm."""
    path = write(tmp_path, README_ARMS)
    out = str(tmp_path / "run")
    argv = ["run", path, "--out", out, "--seeds", "2", "--quiet"]
    code, _, err = run_cli(capsys, *argv, "--set", "regime.id=accumulate")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "arm 'replace'" in err and "--set arms.0.regime.id=" in err
    assert not (tmp_path / "run").exists()  # refused before anything ran
    # the same change asked of that arm is what the user means, and runs
    code, _, _ = run_cli(capsys, *argv, "--set", "arms.0.regime.id=accumulate")
    assert code == 0
    assert (
        yaml.safe_load((tmp_path / "run" / "replace" / "config.yaml").read_text())["regime"]["id"]
        == "accumulate"
    )


def test_overrides_that_leave_arm_names_true_pass():
    from collapselab.experiment.config import load_config

    # a parameter no arm's name states, and the arm that sets its own regime is untouched
    config = load_config(README_ARMS, ["model.params.unbiased=true", "seeds=2"])
    assert [a.model.params for a in config.arm_configs()] == [{"unbiased": True}] * 2
    # decoding values count too: an arm named for its top-p keeps it
    decoded = base_config(
        data="zipf",
        model="categorical",
        metrics=["types"],
        decoding={"top_p": 0.9},
        arms=[{"name": "replace-top-p-0.9"}, {"name": "plain", "decoding": {"top_p": 1.0}}],
    )
    from collapselab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"decoding.top_p changed from 0.9"):
        load_config(decoded, ["decoding.top_p=0.5"])
    assert load_config(decoded, ["decoding.temperature=0.8"]).decoding.temperature == 0.8


def test_run_prints_from_the_results_in_memory(tmp_path, capsys, monkeypatch):
    from collapselab.report import summary

    def no_reading(directory):
        raise AssertionError("the run path must not read its results back")

    monkeypatch.setattr(summary, "load_run", no_reading)
    path = write(tmp_path, base_config(arms=[{"name": "r"}, {"name": "a", "regime": "accumulate"}]))
    code, out, _ = run_cli(capsys, "run", path, "--out", str(tmp_path / "run"))
    assert code == 0
    assert "r: 3 seeds" in out and "a: 3 seeds" in out and "headline" in out


def test_a_folder_named_like_a_preset_does_not_hide_the_preset(tmp_path, monkeypatch, capsys):
    # a run written with --out quickstart leaves a folder of the preset's name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").mkdir()
    from collapselab.experiment.config import read_yaml

    data, origin = read_yaml("quickstart")
    assert origin == "preset quickstart" and data["name"] == "quickstart"
    (tmp_path / "other").mkdir()
    assert main(["run", "other", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a folder" in err
