"""The diffusion and flow presets run end to end at their smallest size."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zuko")
pytest.importorskip("diffusers")

from collapselab.experiment.config import load_config
from collapselab.experiment.runner import run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "flow": {"transforms": 1, "hidden": 8, "steps": 5},
    "ddpm": {"hidden": 16, "layers": 1, "steps": 5, "sampling_steps": 5, "elbo_timesteps": 4},
    "ddpm-images": {
        "hidden": 16,
        "layers": 1,
        "steps": 5,
        "sampling_steps": 5,
        "elbo_timesteps": 4,
    },
}


def shrink(name):
    data = load_config(name).model_dump(mode="json")
    data.update(seeds=1, generations=2, samples_per_generation=60, real_samples=60)
    data["model"]["params"].update(TINY[data["model"]["id"]])
    for arm in data["arms"]:
        arm.pop("samples_per_generation", None)  # bertrand's larger synthetic shares
        if "model" in arm:
            arm["model"]["params"].update(TINY[arm["model"]["id"]])
    return load_config(data)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mad-ddpm", "bertrand-stability", "gerstgrasser-diffusion"])
def test_preset_runs_small(name, tmp_path):
    config = shrink(name)
    frame = run(config, tmp_path / name).metrics()
    assert set(frame["run_id"]) == {arm["name"] for arm in config.arms}
    assert set(frame["metric"]) == {m.id for m in config.metrics}
    assert set(frame["generation"]) == {0, 1}
    assert np.isfinite(frame["value"]).all()
