"""The nature-lm preset runs end to end at its smallest size."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from collapselab.experiment.config import load_config  # noqa: E402
from collapselab.experiment.runner import run  # noqa: E402


def test_nature_lm_preset_is_valid():
    config = load_config("nature-lm")
    assert config.description
    assert config.generations == 10  # generation 0 and nine generations after it
    arms = {arm.name: arm for arm in config.arm_configs()}
    assert set(arms) == {"replace-beam", "replace-sample", "real-10pct-beam", "accumulate-beam"}
    assert arms["real-10pct-beam"].regime.params["real_fraction"] == 0.1
    assert arms["accumulate-beam"].regime.id == "accumulate"
    # the paper's decoding (5-way beam search), and sampling beside it
    assert arms["replace-beam"].decoding.beams == 5 and arms["replace-sample"].decoding.beams == 1
    assert config.model.params["mode"] == "prefix"
    metrics = {m.id for m in config.metrics}
    assert {"perplexity_reference", "english_words", "repetition", "perplexity_gen0"} <= metrics


@pytest.mark.slow
def test_nature_lm_preset_runs_small(tmp_path):
    data = load_config("nature-lm").model_dump(mode="json")
    data.update(seeds=1, generations=2, samples_per_generation=24, real_samples=24)
    data["model"]["params"].update(
        n_layer=1, n_embd=16, n_head=2, block_size=24, steps=4, generation0_steps=4,
        batch_size=4, prefix_length=8, continuation_length=8,
    )  # fmt: skip
    data["arms"] = [arm for arm in data["arms"] if arm["name"].startswith("replace")]
    result = run(load_config(data), tmp_path / "nlm")
    frame = result.metrics()
    assert set(frame["run_id"]) == {"replace-beam", "replace-sample"}
    assert set(frame["generation"]) == {0, 1}
    perplexity = frame[frame["metric"] == "perplexity_real"]["value"].to_numpy()
    # Every test character is in generation 0's vocabulary: finite, covered.
    assert np.all(np.isfinite(perplexity)) and np.all(perplexity > 1)
    assert (frame[frame["metric"] == "coverage_real"]["value"] > 0.99).all()
    english = frame[frame["metric"] == "english_words"]["value"].to_numpy()
    assert np.all((english >= 0) & (english <= 1))
    # The paper's histogram: every generated document scored by generation 0's model,
    # and by the fixed reference model.
    for arm in ("replace-beam", "replace-sample"):
        items = result.arms[0].directory.parent / arm / "distributions.parquet"
        dist = pd.read_parquet(items)
        assert set(dist["metric"]) == {"perplexity_gen0", "perplexity_reference"}
        assert len(dist) == 2 * 2 * 24
        assert np.all(np.isfinite(dist["value"])) and np.all(dist["value"] > 1)
