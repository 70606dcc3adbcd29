"""The diffusion models (``ddpm``, ``ddpm-images``): training, the sampler, the ELBO."""

import pickle
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from collapselab import make  # noqa: E402
from collapselab.chain import ChainSpec, run_seed  # noqa: E402
from collapselab.core import DataKind, RealData  # noqa: E402
from collapselab.decoding import Decoding  # noqa: E402
from collapselab.errors import MissingDependencyError  # noqa: E402
from collapselab.models import ddpm as ddpm_module  # noqa: E402
from collapselab.models.ddpm import DDPM, DDPMImages, quantile_timesteps  # noqa: E402
from collapselab.neural import torch_generator  # noqa: E402
from collapselab.testing import example_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN = np.array([0.5, -1.0])
COV = np.array([[1.0, 0.6], [0.6, 2.0]])
SMALL = {
    "hidden": 32,
    "layers": 2,
    "steps": 400,
    "batch_size": 128,
    "learning_rate": 3e-3,
    "train_timesteps": 200,
    "sampling_steps": 50,
    "elbo_timesteps": 32,
}


@pytest.fixture(scope="module")
def gaussian_data():
    return np.random.default_rng(0).multivariate_normal(MEAN, COV, size=1000)


@pytest.fixture(scope="module")
def fitted(gaussian_data):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return DDPM(**SMALL).fit(gaussian_data, rng=np.random.default_rng(1))
    finally:
        torch.set_num_threads(before)


def test_denoising_loss_falls(fitted):
    # Predicting the noise by zero costs 1 per coordinate; the trained denoiser less.
    assert fitted.losses_[:10].mean() > 0.8
    assert fitted.losses_[-50:].mean() < 0.6


def test_samples_follow_the_data(fitted):
    x = fitted.sample(3000, rng=np.random.default_rng(2))
    np.testing.assert_allclose(x.mean(axis=0), MEAN, atol=0.2)
    np.testing.assert_allclose(np.cov(x, rowvar=False), COV, atol=0.4)


def test_log_prob_is_a_lower_bound_on_the_true_density(fitted):
    from scipy.stats import multivariate_normal

    test = np.random.default_rng(3).multivariate_normal(MEAN, COV, size=1000)
    elbo = fitted.log_prob(test)
    true = multivariate_normal(MEAN, COV).logpdf(test)
    # The mean gap E[log p - ELBO] is a KL divergence plus the fit's error: it is
    # positive, and for a fitted model of a Gaussian a few nats at most. Its standard
    # error over 1,000 points is below 0.1 nats.
    gap = np.mean(true - elbo)
    assert 0.1 < gap < 3.0
    np.testing.assert_array_equal(elbo, fitted.log_prob(test))  # a fixed noise stream


def test_quantile_timesteps_follow_the_weights():
    weights = np.array([6.0, 2.0, 1.0, 1.0])
    picked = quantile_timesteps(weights, 10)
    assert list(np.bincount(picked, minlength=5)) == [0, 6, 2, 1, 1]


def test_elbo_estimate_agrees_with_the_full_sum(fitted, gaussian_data):
    # With one timestep per weight quantile the estimate is close to using many more.
    coarse = fitted.log_prob(gaussian_data[:300]).mean()
    fitted.elbo_timesteps = 1000
    try:
        fine = fitted.log_prob(gaussian_data[:300]).mean()
    finally:
        fitted.elbo_timesteps = SMALL["elbo_timesteps"]
    assert coarse == pytest.approx(fine, abs=0.15)


def test_ddim_with_eta_one_is_the_ddpm_sampler(fitted):
    # The sampler runs diffusers' DDIMScheduler; with eta = 1 its steps are DDPM's
    # ancestral steps (Song et al. 2021). Replay DDPMScheduler.step on the same noise.
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    n = 200
    ours = fitted.sample(n, rng=np.random.default_rng(4))
    generator = torch_generator(np.random.default_rng(4))  # as sample() derives it
    scheduler = DDPMScheduler(**fitted._scheduler_config())
    scheduler.set_timesteps(fitted.sampling_steps)
    x = torch.randn((n, 2), generator=generator)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = fitted.network_(x, t.expand(n))
            # ours draws each step's noise before the step; DDPMScheduler inside it
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
    np.testing.assert_allclose(ours, fitted._inverse(x.numpy()), atol=2e-4)


def test_sampling_bias_narrows_the_output(fitted):
    wide = fitted.sample(2000, rng=np.random.default_rng(5))
    narrow = fitted.sample(2000, rng=np.random.default_rng(5), decoding=Decoding(bias=0.5))
    assert np.all(narrow.var(axis=0) < 0.6 * wide.var(axis=0))


def test_fit_and_sample_are_deterministic(gaussian_data):
    params = {**SMALL, "steps": 10}
    a = DDPM(**params).fit(gaussian_data, rng=np.random.default_rng(6))
    b = DDPM(**params).fit(gaussian_data, rng=np.random.default_rng(6))
    c = DDPM(**params).fit(gaussian_data, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.losses_, b.losses_)
    np.testing.assert_array_equal(
        a.sample(30, rng=np.random.default_rng(0)), b.sample(30, rng=np.random.default_rng(0))
    )
    assert not np.array_equal(a.losses_, c.losses_)


def test_pickles_weights_as_safetensors_bytes(fitted, gaussian_data):
    assert isinstance(fitted.__getstate__()["network_"], bytes)
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        copy.sample(20, rng=np.random.default_rng(0)),
        fitted.sample(20, rng=np.random.default_rng(0)),
    )


def test_warm_start_keeps_the_ancestor(fitted):
    other = np.random.default_rng(9).normal(size=(100, 2)) * 3.0
    warm = DDPM(**{**SMALL, "steps": 0, "init": "previous"}).fit(
        other, rng=np.random.default_rng(0), previous=fitted, first=None
    )
    np.testing.assert_array_equal(
        warm.sample(20, rng=np.random.default_rng(1)),
        fitted.sample(20, rng=np.random.default_rng(1)),
    )


def test_chain_resumes_bit_identical():
    spec = ChainSpec(
        data=make("data", "blobs", centers=2, n_test=100),
        model=DDPM(**{**SMALL, "steps": 10, "sampling_steps": 10, "init": "generation0"}),
        regime=make("regime", "accumulate"),
        metrics={
            "nll_real": make("metric", "nll_real"),
            "wasserstein": make("metric", "wasserstein"),
        },
        samples_per_generation=60,
        generations=3,
        real_samples=60,
    )
    whole = run_seed(spec, 0)
    saved = []
    run_seed(
        ChainSpec(**{**vars(spec), "generations": 2}),
        0,
        on_generation=lambda s: saved.append(pickle.dumps(s)),
    )
    resumed = run_seed(spec, 0, pickle.loads(saved[-1]))
    assert resumed.values == whole.values
    assert np.all(np.isfinite(whole.values["nll_real"]))


@pytest.mark.parametrize("denoiser", ["unet", "mlp"])
def test_image_model_samples_images_in_range(denoiser):
    real = example_data(DataKind.IMAGES)
    params = {**SMALL, "steps": 5, "sampling_steps": 5, "elbo_timesteps": 4, "channels": 8}
    model = DDPMImages(denoiser=denoiser, **params).fit(real.train, rng=np.random.default_rng(0))
    a = model.sample(12, rng=np.random.default_rng(1))
    assert a.shape == (12, 8, 8) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, model.sample(12, rng=np.random.default_rng(1)))
    narrow = model.sample(12, rng=np.random.default_rng(1), decoding=Decoding(bias=0.1))
    assert not np.array_equal(a, narrow)
    elbo = model.log_prob(real.test)
    assert elbo.shape == (len(real.test),) and np.all(np.isfinite(elbo))


def test_sampling_steps_cannot_exceed_training_timesteps():
    from collapselab.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="sampling_steps"):
        DDPM(train_timesteps=10, sampling_steps=20).fit(np.zeros((5, 2)), rng=None)


def test_missing_diffusers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # any import of diffusers fails
    ddpm_module._diffusers.cache_clear()
    ddpm_module._network_classes.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r'pip install "collapselab\[neural\]"'):
            DDPM(steps=1).fit(np.zeros((10, 2)), rng=np.random.default_rng(0))
    finally:
        ddpm_module._diffusers.cache_clear()
        ddpm_module._network_classes.cache_clear()


def test_denoising_loss_of_real_data_falls_with_training(fitted, gaussian_data):
    untrained = DDPM(**{**SMALL, "steps": 0}).fit(gaussian_data, rng=np.random.default_rng(1))
    test = np.random.default_rng(3).multivariate_normal(MEAN, COV, size=500)
    metric = make("metric", "denoising_loss_real")
    real = RealData(train=gaussian_data, test=test, kind=DataKind.CONTINUOUS)
    trained_loss = metric(fitted, None, real, rng=None)
    assert trained_loss == pytest.approx(np.mean(fitted.denoising_loss(test)))
    # Predicting the noise from an untrained network costs about 1 per coordinate.
    assert trained_loss < 0.7 * metric(untrained, None, real, rng=None)
