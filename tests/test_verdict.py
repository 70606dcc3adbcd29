"""Verdicts: each definition of collapse on run folders where the answer is known.

Most folders are constructed (tidy metrics.parquet written directly, with fixed-seed
noise); the diversity definition also runs on real Gaussian chains, whose drift the
theory fixes.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from collapselab.cli import main
from collapselab.errors import CollapseLabError
from collapselab.experiment.storage import write_json, write_metrics, write_yaml
from collapselab.report.runs import load
from collapselab.report.verdict import (
    DEFINITIONS,
    Outcome,
    Thresholds,
    estimate,
    judge,
    ratio_estimate,
    share_estimate,
    verdict,
)

SEEDS = 20
GENERATIONS = 20


def frame(series: dict[str, np.ndarray], run_id: str = "arm") -> pd.DataFrame:
    """Tidy rows from ``metric -> values[seed, generation]``."""
    parts = []
    for metric, values in series.items():
        seeds, generations = np.meshgrid(
            np.arange(values.shape[0]), np.arange(values.shape[1]), indexing="ij"
        )
        parts.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "config_hash": "0" * 16,
                    "seed": seeds.ravel(),
                    "generation": generations.ravel(),
                    "metric": metric,
                    "value": values.ravel().astype(float),
                    "source": "simulation",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def write_run(directory, arms, name="t"):
    """A run folder: ``arms`` maps an arm name to ``(series, config changes)``."""
    write_json(
        directory / "manifest.json", {"name": name, "arms": list(arms), "status": "complete"}
    )
    write_yaml(directory / "config.yaml", {"name": name})
    for arm, (series, changes) in arms.items():
        config = {
            "name": arm,
            "data": {"id": "gaussian"},
            "regime": {"id": "replace"},
            "root_seed": 0,
            "metrics": list(series),
            **changes,
        }
        write_yaml(directory / arm / "config.yaml", config)
        write_json(directory / arm / "manifest.json", {"run_id": arm, "status": "complete"})
        write_metrics(directory / arm / "metrics.parquet", frame(series, arm))
    return directory


def noise(scale, seed=0, shape=(SEEDS, GENERATIONS)):
    return scale * np.random.default_rng(seed).standard_normal(shape)


T = np.arange(GENERATIONS)


def row(directory, arm, definition, **kwargs):
    result = verdict(directory, **kwargs)
    found = next(a for a in result.arms if a.arm == arm)
    return found.row(definition)


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------


def test_estimate_is_a_t_interval_and_a_median_interval_with_infinities():
    x = np.random.default_rng(1).normal(2.0, 1.0, 30)
    e = estimate(x)
    assert e.value == pytest.approx(x.mean())
    half = 2.045 * x.std(ddof=1) / math.sqrt(30)  # t(0.975, 29)
    assert e.high - e.value == pytest.approx(half, rel=1e-3)
    with_inf = np.concatenate([x, [np.inf, np.inf]])
    m = estimate(with_inf)
    assert "median" in m.method and math.isfinite(m.low) and math.isfinite(m.high)
    assert m.low < np.median(with_inf) < m.high
    # five seeds are too few for a finite 95% interval of a median
    assert estimate([1, 2, 3, 4, np.inf]).low == -math.inf
    assert estimate([np.nan, 3.0]).n == 1


def test_ratio_and_share_estimates():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.5, 1.5, 200)
    a = 0.3 * b + rng.normal(0, 0.01, 200)
    r = ratio_estimate(a, b)
    assert r.low < 0.3 < r.high and r.high - r.low < 0.01
    s = share_estimate(np.r_[np.ones(18), np.zeros(2)])
    assert s.value == 0.9 and 0.68 < s.low < 0.9 < s.high < 0.98


# ---------------------------------------------------------------------------
# definitions 1-3: the real-data loss
# ---------------------------------------------------------------------------


def loss_run(tmp_path, **losses):
    return write_run(tmp_path / "run", {name: ({"nll_real": v}, {}) for name, v in losses.items()})


def test_linear_rise_is_divergent_and_saturation_is_not(tmp_path):
    linear = 1.0 + 0.1 * T + noise(0.02)
    saturating = 1.0 + 0.5 * (1 - np.exp(-T / 3.0)) + noise(0.005, seed=1)
    run = loss_run(tmp_path, linear=linear, saturating=saturating)
    for arm in ("linear", "saturating"):
        assert row(run, arm, 1).outcome is Outcome.COLLAPSED  # both rise: definition 1
    linear_2 = row(run, "linear", 2)
    assert linear_2.outcome is Outcome.COLLAPSED
    assert linear_2.estimate.low < 0.1 < linear_2.estimate.high  # the slope itself
    assert row(run, "saturating", 2).outcome is Outcome.NOT_COLLAPSED
    # onset of definition 1: the first generation from which the rise is significant
    assert row(run, "linear", 1).onset == 1


def test_a_loss_that_stays_is_not_collapsed_and_a_noisy_one_is_inconclusive(tmp_path):
    flat = 2.0 + noise(0.001)
    noisy = 2.0 + noise(1.0, seed=3, shape=(4, GENERATIONS))
    run = loss_run(tmp_path, flat=flat, noisy=noisy)
    assert row(run, "flat", 1).outcome is Outcome.NOT_COLLAPSED
    assert row(run, "flat", 2).outcome is Outcome.NOT_COLLAPSED
    noisy_1 = row(run, "noisy", 1)
    assert noisy_1.outcome is Outcome.INCONCLUSIVE
    assert noisy_1.estimate.low < 0 < noisy_1.estimate.high


def test_a_loss_beyond_the_multiple_diverges_and_infinite_seeds_count(tmp_path):
    # A jump to 3x generation 0 and then flat: not a trend, but beyond 2x.
    jump = np.where(T >= 2, 3.0, 1.0) + noise(0.01)
    infinite = 1.0 + 0.05 * T + noise(0.01, seed=4)
    infinite[:10, 15:] = np.inf  # half the seeds' losses became infinite
    run = loss_run(tmp_path, jump=jump, infinite=infinite)
    jump_2 = row(run, "jump", 2)
    assert jump_2.outcome is Outcome.COLLAPSED and jump_2.onset == 2
    assert "÷" in jump_2.statistic
    inf_1 = row(run, "infinite", 1)
    assert inf_1.outcome is Outcome.COLLAPSED and "median" in inf_1.estimate.method
    assert row(run, "infinite", 2).outcome is Outcome.COLLAPSED
    # a higher multiple is not reached
    assert row(run, "jump", 2, divergence_multiple=4).outcome is Outcome.NOT_COLLAPSED


def test_worse_than_real_data_alone_against_a_baseline_arm(tmp_path):
    real_only = 1.0 + noise(0.01)
    worse = 1.2 + noise(0.01, seed=5)
    equal = 1.0 + noise(0.01, seed=6)
    fresh_real = {"regime": {"id": "fresh", "params": {"real_fraction": 1, "source": "new"}}}
    new_data = {"regime": {"id": "fresh", "params": {"real_fraction": 0.5, "source": "new"}}}
    run = write_run(
        tmp_path / "run",
        {
            "real-only": ({"nll_real": real_only}, fresh_real),
            "worse": ({"nll_real": worse}, new_data),
            "equal": ({"nll_real": equal}, new_data),
            "other-data": ({"nll_real": worse}, {**new_data, "data": {"id": "moons"}}),
        },
    )
    result = verdict(run)
    assert result.baseline == "real-only"  # recognised: fresh with real_fraction 1
    rows = {a.arm: a.row(3) for a in result.arms}
    assert rows["worse"].outcome is Outcome.COLLAPSED
    assert "real-only" in rows["worse"].statistic
    assert rows["equal"].outcome is not Outcome.COLLAPSED
    assert rows["real-only"].outcome is Outcome.NOT_MEASURED
    # another data set: no recognised baseline applies, and this arm draws new real data
    assert rows["other-data"].outcome is Outcome.NOT_MEASURED
    assert "baseline" in rows["other-data"].need
    # named explicitly, a baseline on other data is refused for that arm
    named = row(run, "other-data", 3, baseline="real-only")
    assert named.outcome is Outcome.NOT_MEASURED and "same real data" in named.need
    with pytest.raises(CollapseLabError, match="--baseline 'nope' is not an arm"):
        verdict(run, baseline="nope")


def test_fixed_real_data_compares_with_generation_0(tmp_path):
    run = loss_run(tmp_path, rising=1.0 + 0.01 * T + noise(0.001))
    r3 = row(run, "rising", 3)
    assert r3.outcome is Outcome.COLLAPSED and "coincides with definition 1" in r3.detail


def test_not_measured_names_what_it_needs(tmp_path):
    run = write_run(tmp_path / "run", {"a": ({"variance": np.ones((5, 5))}, {})})
    r = row(run, "a", 1)
    assert r.outcome is Outcome.NOT_MEASURED and "real_loss" in r.need and "nll_real" in r.need
    assert row(run, "a", 6).outcome is Outcome.NOT_MEASURED
    assert "validity" in row(run, "a", 7).need
    assert "sweep" in row(run, "a", 8).need


# ---------------------------------------------------------------------------
# definition 4: diversity
# ---------------------------------------------------------------------------


def test_geometric_decay_is_diversity_collapse_and_convergence_is_not(tmp_path):
    decaying = np.exp(-0.05 * T + noise(0.05))
    converging = (0.5 + 0.5 * np.exp(-T / 3.0)) * np.exp(noise(0.002, seed=7))
    run = write_run(
        tmp_path / "run",
        {
            "decaying": ({"variance": decaying}, {}),
            "converging": ({"variance": converging}, {}),
        },
    )
    decay = row(run, "decaying", 4)
    assert decay.outcome is Outcome.COLLAPSED
    assert decay.estimate.low < -0.05 < decay.estimate.high  # slope of ln variance
    assert row(run, "converging", 4).outcome is Outcome.NOT_COLLAPSED


def test_a_diversity_that_fell_to_a_few_percent_and_stopped_has_collapsed(tmp_path):
    # zipf-tails under top-p 0.9: 565 types down to 4 by generation 12, then flat; the
    # trend over the last half is flat, and definition 4 said "not collapsed"
    gone = np.where(T < 12, np.exp(-T * np.log(565 / 4) / 12), 4 / 565)[None, :]
    gone = gone * np.exp(noise(0.002, seed=3))
    kept = np.full((SEEDS, GENERATIONS), 0.5) * np.exp(noise(0.002, seed=4))
    gone[:, 0] = kept[:, 0] = 1.0
    run = write_run(
        tmp_path / "run", {"gone": ({"types": gone}, {}), "kept": ({"types": kept}, {})}
    )
    r = row(run, "gone", 4)
    assert r.outcome is Outcome.COLLAPSED and r.metric == "types"
    assert r.estimate.high < 0.05 and "÷ generation 0's" in r.statistic
    assert r.onset == int(np.ceil(12 * np.log(20) / np.log(565 / 4)))  # first below 1/20
    # half the diversity kept, and flat: neither the trend nor the level fires
    assert row(run, "kept", 4).outcome is Outcome.NOT_COLLAPSED


def test_the_collapsed_state_decides_when_most_seeds_reach_it(tmp_path):
    state = (T[None, :] >= 5).repeat(SEEDS, axis=0).astype(float)
    # flat at half of generation 0's: neither the trend nor the level fires
    variance = np.full((SEEDS, GENERATIONS), 0.5) + noise(0.0)
    variance[:, 0] = 1.0
    run = write_run(
        tmp_path / "run",
        {"a": ({"variance": variance, "collapsed_now": state}, {})},
    )
    r = row(run, "a", 4)
    assert r.outcome is Outcome.COLLAPSED
    assert r.onset == 5 and r.metric == "collapsed_now"


@pytest.fixture(scope="module")
def gaussian_chains(tmp_path_factory):
    """Real Gaussian chains at theory-level drift: n = 50, 1000 seeds, 40 generations."""
    from collapselab.experiment.runner import run

    config = {
        "name": "drift",
        "data": {"id": "gaussian", "params": {"dim": 1}},
        "model": {"id": "gaussian", "params": {"unbiased": False}},
        "samples_per_generation": 50,
        "generations": 40,
        "seeds": 1000,
        "metrics": ["variance", "nll_real", "tail_mass"],
        "arms": [{"name": "replace"}, {"name": "accumulate", "regime": "accumulate"}],
    }
    return run(config, tmp_path_factory.mktemp("drift") / "run").directory


def test_drift_collapses_diversity_under_replace_not_under_accumulate(gaussian_chains):
    result = verdict(gaussian_chains)
    rows = {a.arm: a for a in result.arms}
    replace, accumulate = rows["replace"], rows["accumulate"]
    assert replace.row(4).outcome is Outcome.COLLAPSED
    # E ln σ²_t falls by ln((n-1)/n) + E ln(χ²_(n-1)/(n-1)) ≈ -0.0406 per generation
    assert replace.row(4).estimate.low < -0.0406 < replace.row(4).estimate.high
    assert accumulate.row(4).outcome is Outcome.NOT_COLLAPSED
    # under accumulate the loss rises a little (definition 1) but never diverges (2)
    assert accumulate.row(1).outcome is Outcome.COLLAPSED
    assert accumulate.row(2).outcome is Outcome.NOT_COLLAPSED
    assert replace.row(2).outcome is Outcome.COLLAPSED


# ---------------------------------------------------------------------------
# definitions 5-7
# ---------------------------------------------------------------------------


def test_tails_lost_below_the_share(tmp_path):
    lost = (1.0 - 0.04 * T) * np.exp(noise(0.02))
    kept = (1.0 - 0.005 * T) * np.exp(noise(0.02, seed=8))
    run = write_run(
        tmp_path / "run",
        {"lost": ({"tail_mass": lost}, {}), "kept": ({"tail_mass": kept}, {})},
    )
    r = row(run, "lost", 5)
    assert r.outcome is Outcome.COLLAPSED and 13 <= r.onset <= 14  # 1 - 0.04 t < 0.5
    assert row(run, "kept", 5).outcome is Outcome.NOT_COLLAPSED
    assert row(run, "kept", 5, tail_share=0.95).outcome is Outcome.COLLAPSED


def test_mode_seeking_is_gen0_perplexity_falling_while_real_loss_rises(tmp_path):
    rising = 10 + 0.5 * T + noise(0.1)
    run = write_run(
        tmp_path / "run",
        {
            "seeking": (
                {"perplexity_gen0": 8 - 0.1 * T + noise(0.05), "perplexity_real": rising},
                {},
            ),
            "drifting": (
                {"perplexity_gen0": 8 + 0.1 * T + noise(0.05), "perplexity_real": rising},
                {},
            ),
        },
    )
    seeking = row(run, "seeking", 6)
    assert seeking.outcome is Outcome.COLLAPSED and seeking.metric.startswith("perplexity_gen0")
    assert row(run, "drifting", 6).outcome is Outcome.NOT_COLLAPSED


def test_nonsense_is_validity_falling(tmp_path):
    run = write_run(
        tmp_path / "run",
        {
            "falling": ({"valid_fraction": np.clip(0.9 - 0.03 * T + noise(0.01), 0, 1)}, {}),
            "holding": ({"valid_fraction": np.clip(0.9 + 0.0 * T + noise(0.001), 0, 1)}, {}),
        },
    )
    assert row(run, "falling", 7).outcome is Outcome.COLLAPSED
    assert row(run, "holding", 7).outcome is Outcome.NOT_COLLAPSED


# ---------------------------------------------------------------------------
# definition 8: a sweep over data size
# ---------------------------------------------------------------------------


def test_scaling_breaks_when_more_data_stops_reducing_the_loss(tmp_path):
    sweep = tmp_path / "sweep"
    sizes = [100, 1000, 10000, 100000]
    points = []
    for n in sizes:
        name = f"samples_per_generation-{n}"
        points.append({"name": name, "values": {"samples_per_generation": n}})
        real = (1.0 / n) * np.exp(noise(0.01, seed=n, shape=(SEEDS, 3)))
        mixed = (0.01 + 1.0 / n) * np.exp(noise(0.01, seed=n + 1, shape=(SEEDS, 3)))
        write_run(
            sweep / name,
            {"real": ({"test_mse": real}, {}), "mixed": ({"test_mse": mixed}, {})},
            name=name,
        )
    write_json(
        sweep / "sweep.json",
        {
            "name": "s",
            "axes": [{"key": "samples_per_generation", "values": sizes}],
            "points": points,
        },
    )
    result = verdict(sweep)
    assert result.sweep and result.size_key == "samples_per_generation"
    rows = {(a.run, a.arm): a.row(8) for a in result.arms}
    holds = rows[("samples_per_generation-100", "real")]
    assert holds.outcome is Outcome.NOT_COLLAPSED
    assert holds.estimate.low < -1 < holds.estimate.high  # loss ~ 1/n
    assert rows[("samples_per_generation-1000", "mixed")].outcome is Outcome.COLLAPSED
    with pytest.raises(CollapseLabError, match="--size-key 'nope' is not an axis"):
        verdict(sweep, size_key="nope")


# ---------------------------------------------------------------------------
# thresholds, the API, the command line
# ---------------------------------------------------------------------------


def test_thresholds_are_checked():
    with pytest.raises(CollapseLabError, match="'tail_share' must be a number in"):
        Thresholds(tail_share=1.5).check()
    with pytest.raises(CollapseLabError, match="unknown verdict threshold 'tail'"):
        verdict(".", tail=0.3)


def test_judge_one_definition_and_every_definition_has_a_source(tmp_path):
    run = loss_run(tmp_path, linear=1.0 + 0.1 * T + noise(0.02))
    arm = load(run).arms[0]
    assert judge(arm, 2).outcome is Outcome.COLLAPSED
    assert judge(arm, 2, Thresholds(divergence_multiple=100)).outcome is Outcome.COLLAPSED
    assert [d.number for d in DEFINITIONS] == list(range(1, 9))
    assert all(d.sentence.endswith(".") and d.source for d in DEFINITIONS)


def test_cli_verdict_prints_the_matrix_and_json(tmp_path, capsys):
    import collapselab

    run = loss_run(tmp_path, linear=1.0 + 0.1 * T + noise(0.02))
    assert main(["verdict", str(run)]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "yes g1" in out and "Schaeffer" in out
    assert main(["verdict", str(run), "--json", "--margin", "0.05"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["thresholds"]["margin"] == 0.05
    rows = data["arms"][0]["rows"]
    assert [r["definition"] for r in rows] == list(range(1, 9))
    assert rows[0]["outcome"] == "collapsed" and rows[7]["outcome"] == "not measured"
    assert main(["verdict", str(run), "--tail-share", "2"]) == 2
    assert "'tail_share' must be" in capsys.readouterr().err
    assert collapselab.verdict(run).arms[0].row(2).outcome is Outcome.COLLAPSED


def test_query_has_a_verdicts_view(tmp_path):
    from collapselab.query import query

    loss_run(tmp_path, linear=1.0 + 0.1 * T + noise(0.02), flat=2.0 + noise(0.001))
    frame = query(
        "SELECT v.run_dir, v.outcome FROM verdicts v JOIN runs r USING (run_dir) "
        "WHERE v.definition = 2 ORDER BY v.run_dir",
        tmp_path,
    )
    assert frame.to_dict("records") == [
        {"run_dir": "run/flat", "outcome": "not collapsed"},
        {"run_dir": "run/linear", "outcome": "collapsed"},
    ]
