"""Preset claims: the claim language, its one evaluator, and claims kept out of hashes."""

import numpy as np
import pandas as pd
import pytest

from collapselab.errors import ConfigError
from collapselab.experiment.config import load_config, preset_names, read_yaml
from collapselab.experiment.storage import write_metrics
from collapselab.report.claims import evaluate, parse, summary
from test_verdict import frame, noise, write_run

BASE = {"claim": "c", "paper": "p", "citation": "Someone 2024"}


def claim(**fields):
    return parse([{**BASE, **fields}])[0]


@pytest.mark.parametrize(
    "item, message",
    [
        ({"kind": "guess"}, "'claims.0.kind' must be one of value, ratio"),
        ({"kind": "value", "arm": "a"}, "'claims.0.metric' is required for a value claim"),
        ({"kind": "value", "arm": "a", "metric": "m"}, "needs a target"),
        (
            {"kind": "value", "arm": "a", "metric": "m", "at_most": 1, "sigma": 2},
            "'claims.0.sigma'",
        ),
        ({"kind": "value", "arm": "a", "metric": "m", "at_most": "x"}, "at_most' must be a finite"),
        (
            {"kind": "value", "arm": "a", "metric": "m", "at_most": 1, "generation": -1},
            "generation",
        ),
        (
            {"kind": "ratio", "arm": "a", "metric": "m", "generations": [5], "at_most": 1},
            "numerator",
        ),
        ({"kind": "compare", "arms": ["a"], "metric": "m", "relation": "greater"}, "two arm names"),
        ({"kind": "trend", "arm": "a", "metric": "m", "direction": "up"}, "falling, rising"),
        ({"kind": "verdict", "arm": "a", "definition": 9, "expect": "collapsed"}, "1-8"),
        ({"kind": "verdict", "arm": "a", "definition": 2, "expect": "yes"}, "'claims.0.expect'"),
    ],
)
def test_a_bad_claim_is_one_line_naming_the_field(item, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse([{**BASE, **item}])


def test_a_claim_needs_its_words():
    with pytest.raises(ConfigError, match=r"'claims\.0\.citation' is required"):
        parse([{"kind": "value", "claim": "c", "paper": "p"}])
    with pytest.raises(ConfigError, match="must be a list"):
        parse({"kind": "value"})


@pytest.fixture
def run_dir(tmp_path):
    t = np.arange(10)
    falling = 1.0 * 0.9**t + noise(0.005, shape=(20, 10))
    steady = 1.0 + noise(0.005, seed=1, shape=(20, 10))
    return write_run(
        tmp_path / "run",
        {
            "replace": (
                {"variance": falling, "nll_real": 1 + 0.1 * t + noise(0.01, shape=(20, 10))},
                {},
            ),
            "accumulate": ({"variance": steady, "nll_real": 1 + noise(0.001, shape=(20, 10))}, {}),
        },
    )


def outcome(run_dir, **fields):
    return evaluate(run_dir, [claim(**fields)])[0]


def test_value_claims_hold_fail_or_stay_undecided(run_dir):
    at_5 = 0.9**5  # 0.59
    base = {"kind": "value", "arm": "replace", "metric": "variance", "generation": 5}
    assert outcome(run_dir, **base, expect=at_5, tolerance=0.02).holds == "yes"
    assert outcome(run_dir, **base, expect=0.8, tolerance=0.02).holds == "no"
    assert outcome(run_dir, **base, expect=at_5 + 0.02, tolerance=0.02).holds == "undecided"
    assert outcome(run_dir, **base, at_most=0.7).holds == "yes"
    assert outcome(run_dir, **base, expect=1.0, rel_tolerance=0.5).holds == "yes"
    result = outcome(run_dir, **base, at_least=0.7)
    assert result.holds == "no" and "generation 5" in result.ours and "[" in result.ours
    missing = outcome(run_dir, **{**base, "generation": 50}, at_most=1)
    assert missing.holds == "not run" and "needs generation 50" in missing.why
    assert outcome(run_dir, **{**base, "arm": "nope"}, at_most=1).holds == "not run"


def test_ratio_compare_and_trend_claims(run_dir):
    ratio = outcome(
        run_dir,
        kind="ratio",
        arm="replace",
        metric="variance",
        generations=[5, 0],
        expect=0.9**5,
        tolerance=0.02,
    )
    assert ratio.holds == "yes"
    greater = {"kind": "compare", "arms": ["accumulate", "replace"], "metric": "variance"}
    assert outcome(run_dir, **greater, relation="greater").holds == "yes"
    assert outcome(run_dir, **greater, relation="less").holds == "no"
    assert "paired by seed" in outcome(run_dir, **greater, relation="less").ours
    trend = {"kind": "trend", "arm": "replace", "metric": "variance"}
    assert outcome(run_dir, **trend, direction="falling").holds == "yes"
    assert outcome(run_dir, **trend, direction="rising").holds == "no"
    flat = {"kind": "trend", "arm": "accumulate", "metric": "variance", "direction": "rising"}
    assert outcome(run_dir, **flat).holds == "undecided"


def test_theory_claims_read_the_theory_rows(run_dir):
    t = np.arange(10)
    theory = frame({"variance": (0.9**t)[None, :]}, "replace")
    theory["seed"] = -1
    theory["source"] = "theory"
    sim = pd.read_parquet(run_dir / "replace" / "metrics.parquet")
    write_metrics(run_dir / "replace" / "metrics.parquet", pd.concat([sim, theory]))
    base = {"kind": "theory", "arm": "replace", "metric": "variance", "generations": [3, "last"]}
    held = outcome(run_dir, **base)
    assert held.holds == "yes" and "s.e." in held.ours
    theory["value"] *= 1.1
    write_metrics(run_dir / "replace" / "metrics.parquet", pd.concat([sim, theory]))
    assert outcome(run_dir, **base).holds == "no"
    no_rows = outcome(run_dir, **{**base, "arm": "accumulate"})
    assert no_rows.holds == "not run" and "no theory rows" in no_rows.why


def test_verdict_claims_and_the_summary(run_dir):
    diverges = {"kind": "verdict", "arm": "replace", "definition": 2, "expect": "collapsed"}
    stays = {"kind": "verdict", "arm": "accumulate", "definition": 2, "expect": "collapsed"}
    results = evaluate(run_dir, parse([{**BASE, **diverges}, {**BASE, **stays}]))
    assert [r.holds for r in results] == ["yes", "no"]
    assert "definition 2 (divergence): collapsed" in results[0].ours
    # the number is named by its statistic, a slope here, not only by the metric read
    assert "slope of the loss over the last half, per seed (" in results[0].ours
    assert summary(results) == "1 of 2 hold, 1 not"


def test_claims_stay_out_of_every_arm_config_and_hash():
    data, _ = read_yaml("kazdan-regimes")
    plain = load_config({k: v for k, v in data.items() if k != "claims"})
    with_claims = load_config({**data, "claims": [{**BASE, "kind": "value"}]})
    hashes = [a.config_hash() for a in plain.arm_configs()]
    assert [a.config_hash() for a in with_claims.arm_configs()] == hashes
    assert with_claims.claims and all(
        "claims" not in a.model_dump() for a in with_claims.arm_configs()
    )


def test_a_run_carries_its_claims(tmp_path):
    from collapselab.experiment.runner import run

    item = {**BASE, "kind": "trend", "arm": "r", "metric": "variance", "direction": "falling"}
    config = {
        "name": "small",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "samples_per_generation": 10,
        "generations": 6,
        "seeds": 50,
        "metrics": ["variance"],
        "arms": [{"name": "r"}],
        "claims": [item],
    }
    result = run(config, tmp_path / "run")
    (found,) = evaluate(result.directory)
    assert found.claim.claim == "c" and found.holds == "yes"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_claim_parses_and_names_its_arms(name):
    data, _ = read_yaml(name)
    arms = {a["name"] for a in data.get("arms", [])} or {data["name"]}
    for item in parse(data.get("claims")):
        named = item.get("arms") or [item.get("arm")]
        assert set(named) <= arms, f"{name}: claim names an arm it does not have: {named}"


def test_show_report_and_presets_print_verdicts_and_claims(run_dir, tmp_path, capsys):
    from collapselab.cli import main
    from collapselab.experiment.storage import read_yaml_mapping, write_yaml
    from collapselab.report.html import write_report

    item = {**BASE, "kind": "trend", "arm": "replace", "metric": "variance", "direction": "falling"}
    config = read_yaml_mapping(run_dir / "config.yaml")
    write_yaml(run_dir / "config.yaml", {**config, "claims": [item]})
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "did it collapse?" in out and "holds?" in out and "yes" in out
    page = write_report([run_dir], tmp_path / "r.html").read_text()
    assert "<table class='verdicts'" in page and "v-collapsed" in page
    assert "<table class='claims'" in page and "class='h-yes'" in page
    # presets: the last run of a preset under the results root, judged on its claims
    import shutil

    root = tmp_path / "root"
    shutil.copytree(run_dir, root / "kazdan-regimes")
    assert main(["presets", "--root", str(root)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "claims hold" in lines["kazdan-regimes"] and "not run" in lines["zipf-tails"]
