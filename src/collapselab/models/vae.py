"""A variational autoencoder of small images (Kingma and Welling 2014), on CPU.

Shumailov et al. (2024) retrained a VAE on its own samples and saw the generated
digits lose their variety within a few generations. This one is two small
multilayer perceptrons: the encoder maps an image to the mean and log-variance of
a Gaussian over ``latent_dim`` latent variables; the decoder maps a latent vector
to one Bernoulli mean per pixel (pixels are intensities in [0, 1], scored by
binary cross-entropy). ``sample`` decodes latents drawn from the prior N(0, I) and
draws each pixel from its Bernoulli distribution (``pixels: mean`` returns the
means instead); ``decoding: {bias: λ}`` draws the latents from N(0, λ² I) (below 1
trades variety for typical digits). On 28 x 28 MNIST, ``hidden: 256`` and 500
steps give blurry but recognizable digits in a few seconds on one core.

``log_prob`` is the evidence lower bound (ELBO) of each image, in nats: a lower
bound on its log-likelihood, estimated with ``elbo_samples`` latent draws from a
fixed stream so that it is a deterministic function of the weights.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Self

import numpy as np

from ..core import DataKind, GenerativeModel, Interval, Options
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import DataError
from ..neural import (
    PRECISIONS,
    autocast,
    import_torch,
    matching_threads,
    torch_generator,
    use_bf16,
    weights_from_bytes,
    weights_to_bytes,
)
from ..registry import register

#: Seed of the latent draws of ``log_prob`` (a fixed stream: scores must not vary).
_ELBO_SEED = 0x5EED


@functools.cache
def _network_class() -> type:
    torch = import_torch("the 'vae' model")
    nn, F = torch.nn, torch.nn.functional

    class Network(nn.Module):
        tied_parameters = ()

        def __init__(self, pixels: int, hidden: int, latent_dim: int) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU())
            self.mean = nn.Linear(hidden, latent_dim)
            self.log_var = nn.Linear(hidden, latent_dim)
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels)
            )

        def encode(self, x: Any) -> tuple[Any, Any]:
            h = self.encoder(x)
            return self.mean(h), self.log_var(h)

        def elbo(self, x: Any, noise: Any) -> Any:
            """ELBO of each row of ``x`` (nats), averaged over the draws ``noise`` (k, n, d)."""
            mean, log_var = self.encode(x)
            z = mean + (0.5 * log_var).exp() * noise  # the reparameterization trick
            logits = self.decoder(z)
            target = x.expand(noise.shape[0], *x.shape)
            recon = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
            kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
            return recon.mean(0) - kl

    return Network


def _images(data: Any) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(f"images must be a non-empty (n, h, w) array; got shape {arr.shape}")
    return arr


@register("model", "vae")
class VAE(GenerativeModel):
    """Variational autoencoder with MLP encoder and decoder over (n, h, w) images.

    Parameters
    ----------
    latent_dim : int, default 8
    hidden : int, default 128
        Width of the hidden layer of the encoder and of the decoder.
    steps : int, default 500
        Adam steps per generation.
    batch_size : int, default 64
    learning_rate : float, default 3e-3
    elbo_samples : int, default 8
        Latent draws per image when ``log_prob`` estimates the ELBO.
    pixels : {"bernoulli", "mean"}, default "bernoulli"
        What ``sample`` returns per pixel: a 0/1 draw from the decoder's Bernoulli
        distribution (sampling the model), or its mean, a gray level (the expected
        image: generations trained on means lose all variety within a few
        generations, as the variance of the data shrinks at every step).
    precision : {"auto", "bf16", "fp32"}, default "auto"

    Attributes
    ----------
    shape_ : tuple of int
        (h, w) of the images.
    network_ : torch.nn.Module
    losses_ : numpy.ndarray
        Negative ELBO per image (nats) at each step.
    """

    kind = DataKind.IMAGES
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    conformance_params: ClassVar[dict[str, Any]] = {"hidden": 16, "steps": 5, "batch_size": 16}
    parameter_constraints: ClassVar = {
        "latent_dim": [Interval(1, None, integer=True)],
        "hidden": [Interval(1, None, integer=True)],
        "steps": [Interval(0, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "elbo_samples": [Interval(1, None, integer=True)],
        "pixels": [Options(("mean", "bernoulli"))],
        "precision": [Options(PRECISIONS)],
    }

    def __init__(
        self,
        *,
        latent_dim: int = 8,
        hidden: int = 128,
        steps: int = 500,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        elbo_samples: int = 8,
        pixels: str = "bernoulli",
        precision: str = "auto",
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.elbo_samples = elbo_samples
        self.pixels = pixels
        self.precision = precision

    def _new_network(self) -> Any:
        h, w = self.shape_
        return _network_class()(h * w, self.hidden, self.latent_dim)

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        self.validate_params()
        torch = import_torch("the 'vae' model")
        images = _images(data)
        self.shape_ = tuple(int(s) for s in images.shape[1:])
        x_all = torch.from_numpy(np.clip(images, 0.0, 1.0).reshape(len(images), -1))
        generator = torch_generator(rng)
        with matching_threads():
            network = self._new_network()
            # PyTorch's default uniform(+-1/sqrt(fan_in)) weights, drawn from our generator
            # (no global seeding); small biases.
            for p in network.parameters():
                bound = 1.0 / np.sqrt(p.shape[-1]) if p.dim() > 1 else 0.01
                torch.nn.init.uniform_(p, -bound, bound, generator=generator)
            optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
            batch = min(self.batch_size, len(images))
            rows = rng.integers(0, len(images), size=(self.steps, batch))
            losses = np.empty(self.steps)
            bf16 = use_bf16(self.precision)
            for step in range(self.steps):
                x = x_all[torch.from_numpy(rows[step])]
                noise = torch.randn(1, batch, self.latent_dim, generator=generator)
                with autocast(bf16):
                    loss = -network.elbo(x, noise).float().mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[step] = loss.item()
            optimizer.zero_grad(set_to_none=True)  # no gradients kept with the model
        network.eval()
        self.network_ = network
        self.losses_ = losses
        return self

    def log_prob(self, data: Any) -> np.ndarray:
        """ELBO of each image (nats): a lower bound on its log-likelihood."""
        torch = import_torch("the 'vae' model")
        images = _images(data)
        x = torch.from_numpy(np.clip(images, 0.0, 1.0).reshape(len(images), -1))
        generator = torch.Generator().manual_seed(_ELBO_SEED)
        noise = torch.randn(self.elbo_samples, len(images), self.latent_dim, generator=generator)
        with torch.no_grad(), matching_threads():
            return self.network_.elbo(x, noise).double().numpy()

    def latent_means(self, data: Any) -> np.ndarray:
        """The encoder's mean latent vector of each image, (n, latent_dim)."""
        torch = import_torch("the 'vae' model")
        images = _images(data)
        x = torch.from_numpy(np.clip(images, 0.0, 1.0).reshape(len(images), -1))
        with torch.no_grad(), matching_threads():
            return self.network_.encode(x)[0].double().numpy()

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        torch = import_torch("the 'vae' model")
        z = sampling_bias(decoding) * rng.standard_normal((n, self.latent_dim))
        with torch.no_grad(), matching_threads():
            means = torch.sigmoid(self.network_.decoder(torch.from_numpy(z.astype(np.float32))))
        images = means.numpy().astype(np.float64)
        if self.pixels == "bernoulli":
            images = (rng.random(images.shape) < images).astype(np.float64)
        return images.reshape(n, *self.shape_)

    # -- pickling: weights as safetensors, never pickled torch objects ----------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if "network_" in state:
            state["network_"] = weights_to_bytes(state["network_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("network_")
        vars(self).update(state)
        if isinstance(blob, bytes):
            network = self._new_network()
            weights_from_bytes(network, blob)
            network.eval()
            self.network_ = network
