"""The debate's presets: each loads, runs small, and shows the direction of its claim
(at sizes far below the presets' own; the numbers of full runs are in the README)."""

import numpy as np
import pandas as pd
import pytest

import collapselab as cl
from collapselab.experiment import load_config

NEW = [
    "strong-collapse",
    "ferbach-curation",
    "self-correction",
    "self-correction-gaussian",
    "specialise-topic",
    "subliminal-families",
]


@pytest.mark.parametrize("name", NEW)
def test_presets_are_valid_configs_with_their_claim(name):
    config = load_config(name)
    assert "claim" in config.description and len(config.arm_configs()) >= 3
    config.components()  # every component builds and fits its data kind


def _last(frame, metric, arm=None):
    rows = frame[(frame["metric"] == metric) & (frame["source"] == "simulation")]
    if arm is not None:
        rows = rows[rows["arm"] == arm]
    return rows[rows["generation"] == rows["generation"].max()]["value"].mean()


def _run(tmp_path, name, **overrides):
    sets = [f"{k}={v}" for k, v in overrides.items()]
    config = load_config(name, overrides=sets)
    result = cl.run(config, tmp_path / name, report=False)
    return pd.concat([arm.frame.assign(arm=arm.name) for arm in result.arms], ignore_index=True)


def test_strong_collapse_plateaus_at_the_synthetic_share(tmp_path):
    frame = _run(tmp_path, "strong-collapse", seeds=10, **{"data.params.n_samples": 5000})
    mse = {arm: _last(frame, "test_mse", arm) for arm in ("p0", "p0.1", "p0.5")}
    # expected 0.0020, 0.0120 and 0.252: d / n against the plateaus p^2 ||w_s - w*||^2
    assert mse["p0"] < 0.004 < 0.008 < mse["p0.1"] < 0.02 < 0.2 < mse["p0.5"] < 0.3
    theory = frame[(frame["source"] == "theory") & (frame["metric"] == "test_mse")]
    assert set(theory["arm"]) == {"p0", "p0.01", "p0.1", "p0.5"}


def test_reward_curation_raises_reward_and_loses_modes_unless_real_data_stays(tmp_path):
    frame = _run(tmp_path, "ferbach-curation", seeds=2, generations=6, samples_per_generation=300)
    assert _last(frame, "reward", "curated") > _last(frame, "reward", "uncurated") + 3
    assert _last(frame, "mode_coverage", "curated") < 0.5
    assert _last(frame, "mode_coverage", "curated-half-real") == 1.0


def test_correction_raises_validity(tmp_path):
    frame = _run(tmp_path, "self-correction", seeds=2, generations=3, samples_per_generation=300)
    assert _last(frame, "valid_fraction", "gamma-1") > _last(frame, "valid_fraction", "gamma-0")


def test_langevin_correction_keeps_the_variance(tmp_path):
    frame = _run(tmp_path, "self-correction-gaussian", seeds=10, generations=40)
    assert _last(frame, "variance", "gamma-0.25") > 0.3 > _last(frame, "variance", "gamma-0")


@pytest.mark.slow
def test_specialisation_and_subliminal_presets_run_small(tmp_path):
    topic = _run(tmp_path, "specialise-topic", seeds=1, generations=2, samples_per_generation=200)
    assert _last(topic, "topic_share", "specialised") > _last(topic, "topic_share", "general")
    families = _run(
        tmp_path,
        "subliminal-families",
        seeds=1,
        generations=3,
        samples_per_generation=300,
        **{"model.params.epochs": 1, "model.params.distill_epochs": 1},
    )
    assert np.isfinite(families[families["source"] == "simulation"]["value"]).all()
