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
    arms = {arm.name: arm for arm in config.arm_configs()}
    assert set(arms) == {"replace", "real-10pct"}
    assert arms["real-10pct"].regime.params["real_fraction"] == 0.1
    assert config.model.params["mode"] == "prefix"


@pytest.mark.slow
def test_nature_lm_preset_runs_small(tmp_path):
    data = load_config("nature-lm").model_dump(mode="json")
    data.update(seeds=1, generations=2, samples_per_generation=24, real_samples=24)
    data["model"]["params"].update(
        n_layer=1, n_embd=16, n_head=2, block_size=24, steps=4, batch_size=4,
        prefix_length=8, continuation_length=8,
    )  # fmt: skip
    result = run(load_config(data), tmp_path / "nlm", report=False)
    frame = result.metrics()
    assert set(frame["run_id"]) == {"replace", "real-10pct"}
    assert set(frame["generation"]) == {0, 1}
    perplexity = frame[frame["metric"] == "perplexity_real"]["value"].to_numpy()
    # Every test character is in generation 0's vocabulary: finite, covered.
    assert np.all(np.isfinite(perplexity)) and np.all(perplexity > 1)
    assert (frame[frame["metric"] == "coverage_real"]["value"] > 0.99).all()
    # The paper's histogram: every generated document scored by generation 0's model.
    for arm in ("replace", "real-10pct"):
        items = result.arms[0].directory.parent / arm / "distributions.parquet"
        dist = pd.read_parquet(items)
        assert len(dist) == 2 * 24 and set(dist["metric"]) == {"perplexity_gen0"}
        assert np.all(np.isfinite(dist["value"])) and np.all(dist["value"] > 1)
