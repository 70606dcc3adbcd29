"""Denoising diffusion models (Ho et al. 2020) of vectors (``ddpm``) and images
(``ddpm-images``), built on ``diffusers``.

Alemohammad et al. ("Self-Consuming Generative Models Go MAD", ICLR 2024) retrain
DDPMs on their own samples; Bertrand et al. (ICLR 2024) and Gerstgrasser et al. (2024)
do too. This is their model at CPU scale. Training follows diffusers'
``DDPMScheduler``: a clean item x0, a timestep t and Gaussian noise ε give
x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε, and the denoiser learns to predict ε (mean
squared error, Adam). The denoiser is a residual MLP with a sinusoidal timestep
embedding (diffusers' ``Timesteps`` and ``TimestepEmbedding``) for vectors, and
diffusers' ``UNet2DModel`` (or the same MLP over flattened pixels) for images.

Sampling runs diffusers' ``DDIMScheduler`` for ``sampling_steps`` steps: with
``eta = 1`` its update is DDPM's ancestral sampler (Song et al. 2021, η = 1; the
tests check it against ``DDPMScheduler.step``), with ``eta = 0`` the deterministic
DDIM sampler. The sampling bias λ (``decoding: {bias: λ}``, the declared decoding
control) scales all the noise the sampler injects: the initial x_T ~ N(0, λ² I) and
each step's noise. Below 1 it draws typical items with less variety (Alemohammad et
al.'s biased sampling; with ``eta = 0`` only the initial noise is scaled).

``log_prob`` is **not** an exact log-density: it is the evidence lower bound (ELBO)
of the discrete-time diffusion (Ho et al. eq. 5), in nats in the data's own units:
the prior term KL(q(x_T | x0) || N(0, I)), the Gaussian decoder term at t = 1 (variance
β_1) and the T - 1 denoising KL terms (variance β̃_t, the scheduler's
``fixed_small``), the last estimated from ``elbo_timesteps`` timesteps at the quantiles of
their weights (stratified importance sampling) with noise from a fixed stream, so it is a deterministic function of the weights.
Metrics built on it (``nll_real``, ``nll_bound_real``) are upper bounds on the
negative log-likelihood.

Vectors are standardized per feature before training (as the flow's); images in [0, 1]
are mapped to [-1, 1] (with the scheduler's clipping of predicted x0 to that range) and
samples mapped back and clipped to [0, 1]. ``init`` (``scratch | generation0 |
previous``) and randomness are as for ``flow``: weights from a scoped torch seed
derived from ``rng``, batches, timesteps and noise from ``rng``; deterministic for a
fixed torch thread count on CPU. ``device: auto`` trains on the GPU where torch sees one.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import Any, ClassVar, Self

import numpy as np

from ..core import DataKind, GenerativeModel, Interval, Options, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import DataError, InvalidParameterError, parameter_message, require
from ..neural import import_torch, matching_threads, torch_generator
from ..registry import register
from .torch_common import (
    DEVICES,
    INITS,
    NetworkPickling,
    Standardizer,
    resolve_device,
    start_network,
    starting_model,
)

#: Seeds of the noise of ``log_prob`` and ``denoising_loss`` (fixed streams: scores
#: must not vary).
_ELBO_SEED = 0xE1B0
_LOSS_SEED = 0x1055
#: Items per denoiser pass in ``sample`` and ``log_prob`` (bounds memory, not results).
_CHUNK = 2048
BETA_SCHEDULES = ("linear", "squaredcos_cap_v2")


@functools.cache
def _diffusers() -> SimpleNamespace:
    """The diffusers pieces used here (imported from their modules: the package's
    top-level import resolves every pipeline and costs seconds more)."""
    import_torch("the 'ddpm' model")
    require("diffusers", "neural", "the 'ddpm' model")
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps
    from diffusers.models.unets.unet_2d import UNet2DModel
    from diffusers.schedulers.scheduling_ddim import DDIMScheduler
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return SimpleNamespace(
        DDIMScheduler=DDIMScheduler,
        DDPMScheduler=DDPMScheduler,
        TimestepEmbedding=TimestepEmbedding,
        Timesteps=Timesteps,
        UNet2DModel=UNet2DModel,
    )


@functools.cache
def _network_classes() -> SimpleNamespace:
    torch = import_torch("the 'ddpm' model")
    nn = torch.nn
    library = _diffusers()

    class Block(nn.Module):  # type: ignore[name-defined]
        """h + W2 silu(W1 silu(h) + E e): a residual block conditioned on the time e."""

        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.inner = nn.Linear(hidden, hidden)
            self.time = nn.Linear(hidden, hidden)
            self.outer = nn.Linear(hidden, hidden)

        def forward(self, h: Any, e: Any) -> Any:
            act = nn.functional.silu
            return h + self.outer(act(self.inner(act(h)) + self.time(e)))

    class MLPDenoiser(nn.Module):  # type: ignore[name-defined]
        """Predicts the noise of (n, dim) items at timesteps (n,)."""

        tied_parameters = ()

        def __init__(self, dim: int, hidden: int, layers: int) -> None:
            super().__init__()
            self.time_projection = library.Timesteps(
                hidden, flip_sin_to_cos=True, downscale_freq_shift=0
            )
            self.time_embedding = library.TimestepEmbedding(hidden, hidden)
            self.embed = nn.Linear(dim, hidden)
            self.blocks = nn.ModuleList(Block(hidden) for _ in range(layers))
            self.head = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

        def forward(self, x: Any, t: Any) -> Any:
            e = nn.functional.silu(self.time_embedding(self.time_projection(t)))
            h = self.embed(x.flatten(1))
            for block in self.blocks:
                h = block(h, e)
            return self.head(h).view_as(x)

    class UNetDenoiser(nn.Module):  # type: ignore[name-defined]
        """diffusers' ``UNet2DModel`` on (n, 1, h, w) images, two resolutions."""

        tied_parameters = ()

        def __init__(self, size: int, channels: int) -> None:
            super().__init__()
            self.unet = library.UNet2DModel(
                sample_size=size,
                in_channels=1,
                out_channels=1,
                block_out_channels=(channels, 2 * channels),
                down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D"),
                layers_per_block=1,
                norm_num_groups=min(8, channels),
            )

        def forward(self, x: Any, t: Any) -> Any:
            return self.unet(x, t).sample

    return SimpleNamespace(MLPDenoiser=MLPDenoiser, UNetDenoiser=UNetDenoiser)


@register("model", "ddpm")
class DDPM(NetworkPickling, GenerativeModel):
    """Denoising diffusion model of (n, d) vectors with a residual MLP denoiser.

    Parameters
    ----------
    hidden : int, default 128
        Width of the denoiser (and of its timestep embedding).
    layers : int, default 3
        Residual blocks of the denoiser.
    steps : int, default 2000
        Adam steps per generation.
    batch_size : int, default 256
    learning_rate : float, default 1e-3
    train_timesteps : int, default 1000
        Timesteps T of the forward diffusion.
    beta_schedule : {"linear", "squaredcos_cap_v2"}, default "linear"
        Noise schedule: Ho et al.'s linear betas (1e-4 to 0.02) or the cosine one.
    sampling_steps : int, default 100
        Denoising steps when sampling (at most ``train_timesteps``).
    eta : float in [0, 1], default 1.0
        1: DDPM's ancestral sampler; 0: deterministic DDIM.
    elbo_timesteps : int, default 64
        Timesteps of the stratified estimate of the ELBO's denoising terms (and of
        :meth:`denoising_loss`).
    init : {"scratch", "generation0", "previous"}, default "scratch"
    device : {"auto", "cpu", "cuda"}, default "auto"

    Attributes
    ----------
    shape_ : tuple of int
        The shape of one item.
    standardizer_ : Standardizer
        Per-feature standardization (vectors only; ``None`` for images).
    network_ : torch.nn.Module
        The denoiser.
    losses_ : numpy.ndarray
        Denoising loss (mean squared error of the predicted noise) at each step.
    device_ : str
    """

    kind = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    #: The chain passes ``previous=`` (model t-1) and ``first=`` (model 0) to ``fit``.
    takes_ancestors: ClassVar[bool] = True
    # Read by chain.py until it reads ``takes_ancestors`` (the same declaration).
    provides: ClassVar[frozenset[str]] = frozenset({"denoising_loss"})
    conformance_params: ClassVar[dict[str, Any]] = {
        "hidden": 16,
        "layers": 1,
        "steps": 5,
        "batch_size": 16,
        "train_timesteps": 50,
        "sampling_steps": 5,
        "elbo_timesteps": 4,
    }
    extra: ClassVar[str | None] = "neural"
    parameter_constraints: ClassVar = {
        "hidden": [Interval(1, None, integer=True)],
        "layers": [Interval(1, None, integer=True)],
        "steps": [Interval(0, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "train_timesteps": [Interval(2, None, integer=True)],
        "beta_schedule": [Options(BETA_SCHEDULES)],
        "sampling_steps": [Interval(1, None, integer=True)],
        "eta": [Interval(0, 1)],
        "elbo_timesteps": [Interval(1, None, integer=True)],
        "init": [Options(INITS)],
        "device": [Options(DEVICES)],
    }

    def __init__(
        self,
        *,
        hidden: int = 128,
        layers: int = 3,
        steps: int = 2000,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        sampling_steps: int = 100,
        eta: float = 1.0,
        elbo_timesteps: int = 64,
        init: str = "scratch",
        device: str = "auto",
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.train_timesteps = train_timesteps
        self.beta_schedule = beta_schedule
        self.sampling_steps = sampling_steps
        self.eta = eta
        self.elbo_timesteps = elbo_timesteps
        self.init = init
        self.device = device

    def validate_params(self) -> None:
        super().validate_params()
        if self.sampling_steps > self.train_timesteps:
            raise InvalidParameterError(
                parameter_message(
                    type(self).__name__,
                    "sampling_steps",
                    f"<= train_timesteps={self.train_timesteps}",
                    self.sampling_steps,
                )
            )

    # -- the data's model space: standardized vectors (images override) ------------

    #: Whether the scheduler clips its predicted x0 to [-1, 1] (images live there).
    _clip_sample: ClassVar[bool] = False

    def _prepare(self, data: Any, start: DDPM | None) -> np.ndarray:
        """Set the item shape (and the standardization) and return the data in model space."""
        x = as_2d(data)
        self.shape_: tuple[int, ...] = (x.shape[1],)
        self.standardizer_: Standardizer = (
            start.standardizer_ if start is not None else Standardizer.of(x)
        )
        return self._forward(x)

    def _forward(self, data: Any) -> np.ndarray:
        """Data -> model space, float32 (n, *shape_)."""
        return self.standardizer_.forward(as_2d(data)).astype(np.float32)

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        """Model space -> data."""
        return self.standardizer_.inverse(z.astype(np.float64))

    def _log_det(self) -> float:
        """log |d model space / d data|, added to a density of model space."""
        return self.standardizer_.log_det

    def _new_network(self) -> Any:
        return _network_classes().MLPDenoiser(self.shape_[0], self.hidden, self.layers)

    # -- schedulers -------------------------------------------------------------------

    def _scheduler_config(self) -> dict[str, Any]:
        return {
            "num_train_timesteps": self.train_timesteps,
            "beta_schedule": self.beta_schedule,
            "clip_sample": self._clip_sample,
            "prediction_type": "epsilon",
        }

    def _training_scheduler(self) -> Any:
        return _diffusers().DDPMScheduler(**self._scheduler_config())

    def _sampling_scheduler(self) -> Any:
        scheduler = _diffusers().DDIMScheduler(**self._scheduler_config())
        scheduler.set_timesteps(self.sampling_steps)
        return scheduler

    # -- fitting -------------------------------------------------------------------

    def fit(
        self,
        data: Any,
        *,
        rng: np.random.Generator,
        previous: DDPM | None = None,
        first: DDPM | None = None,
    ) -> Self:
        """Train the denoiser on ``data``.

        With ``init="generation0"`` (or ``"previous"``) the weights and the data scaling
        start from ``first`` (or ``previous``), given by the chain from generation 1 on.
        """
        self.validate_params()
        torch = import_torch(f"the {self.registry_id!r} model")
        start = starting_model(self.init, previous, first)
        x_all = torch.from_numpy(self._prepare(data, start))
        self.device_ = resolve_device(self.device)
        x_all = x_all.to(self.device_)
        if start is not None and start.shape_ != self.shape_:
            raise DataError(f"the start model's items are {start.shape_}; the data's {self.shape_}")
        scheduler = self._training_scheduler()
        generator = torch_generator(rng)
        with matching_threads():
            network = start_network(self._new_network, start, self.device_, rng)
            optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate, fused=True)
            batch = min(self.batch_size, len(x_all))
            rows = torch.from_numpy(rng.integers(0, len(x_all), size=(self.steps, batch)))
            times = torch.from_numpy(
                rng.integers(0, self.train_timesteps, size=(self.steps, batch))
            )
            rows, times = rows.to(self.device_), times.to(self.device_)
            losses = np.empty(self.steps)
            network.train()
            for step in range(self.steps):
                x0 = x_all[rows[step]]
                # Noise is drawn on the CPU (one generator, the same draws on any device).
                noise = torch.randn(x0.shape, generator=generator).to(self.device_)
                noisy = scheduler.add_noise(x0, noise, times[step])
                predicted = network(noisy, times[step])
                loss = torch.nn.functional.mse_loss(predicted, noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[step] = loss.item()
            optimizer.zero_grad(set_to_none=True)  # no gradients kept with the model
        network.eval()
        self.network_ = network
        self.losses_ = losses
        return self

    # -- sampling ------------------------------------------------------------------

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        """``n`` items from the reverse diffusion, all injected noise scaled by λ."""
        torch = import_torch(f"the {self.registry_id!r} model")
        bias = sampling_bias(decoding)
        generator = torch_generator(rng)
        scheduler = self._sampling_scheduler()
        parts = []
        with torch.no_grad(), matching_threads():
            for start in range(0, n, _CHUNK):
                shape = (min(_CHUNK, n - start), *self._model_shape())
                # Noise is drawn on the CPU (one generator, the same draws on any device).
                x = (bias * torch.randn(shape, generator=generator)).to(self.device_)
                for t in scheduler.timesteps:
                    eps = self.network_(x, t.expand(len(x)).to(self.device_))
                    noise = (bias * torch.randn(shape, generator=generator)).to(self.device_)
                    x = scheduler.step(eps, t, x, eta=self.eta, variance_noise=noise).prev_sample
                parts.append(x.cpu().numpy())
        return self._inverse(np.concatenate(parts).reshape(n, *self._model_shape()))

    def _model_shape(self) -> tuple[int, ...]:
        """The shape of one item as the denoiser sees it."""
        return self.shape_

    # -- the evidence lower bound -----------------------------------------------------

    def log_prob(self, data: Any) -> np.ndarray:
        """The ELBO of each item (nats, in the data's units): a **lower bound** on its
        log-density, not the log-density itself (see the module docstring)."""
        torch = import_torch(f"the {self.registry_id!r} model")
        z = self._forward(data).reshape(-1, *self._model_shape())
        scheduler = self._training_scheduler()
        abar = scheduler.alphas_cumprod.double().numpy()
        beta = scheduler.betas.double().numpy()
        alpha = 1.0 - beta
        d = math.prod(self._model_shape())
        flat = z.reshape(len(z), -1).astype(np.float64)
        # KL(q(x_T | x0) || N(0, I)), exact.
        prior = 0.5 * np.sum((1 - abar[-1]) + abar[-1] * flat**2 - 1 - np.log(1 - abar[-1]), axis=1)
        generator = torch.Generator().manual_seed(_ELBO_SEED)
        with torch.no_grad(), matching_threads():
            # -log N(x0; mu(x_1), beta_1 I) = d/2 log(2 pi beta_1) + |eps - eps_hat|^2 / (2 alpha_1)
            decoder = 0.5 * d * np.log(2 * np.pi * beta[0])
            decoder = decoder + self._noise_error(z, 0, scheduler, generator) / (2 * alpha[0])
            # The T - 1 denoising terms: sum over t >= 1 of w_t |eps - eps_hat|^2, with
            # w_t = beta_t / (2 alpha_t (1 - abar_{t-1})), about 1/(2t) for the linear
            # schedule: most of the bound sits at small t, so the timesteps are the
            # midpoint quantiles of w (stratified importance sampling), each term
            # weighted sum(w) / k. An even grid of t would miss the small-t mass.
            weights = beta[1:] / (2 * alpha[1:] * (1 - abar[:-1]))
            denoising = np.zeros(len(z))
            for t in quantile_timesteps(weights, self.elbo_timesteps):
                denoising += self._noise_error(z, int(t), scheduler, generator)
            denoising *= weights.sum() / self.elbo_timesteps
        return -(prior + decoder + denoising) + self._log_det()

    def denoising_loss(self, data: Any) -> np.ndarray:
        """The training objective on each item: the mean squared error of the predicted
        noise per coordinate, averaged over ``elbo_timesteps`` evenly spread timesteps
        (the uniform t of training) with noise from a fixed stream. Unlike the ELBO it
        weighs every timestep alike, as training does, so no single step dominates it."""
        torch = import_torch(f"the {self.registry_id!r} model")
        z = self._forward(data).reshape(-1, *self._model_shape())
        scheduler = self._training_scheduler()
        k = self.elbo_timesteps
        grid = np.floor((np.arange(k) + 0.5) * self.train_timesteps / k).astype(int)
        generator = torch.Generator().manual_seed(_LOSS_SEED)
        total = np.zeros(len(z))
        with torch.no_grad(), matching_threads():
            for t in grid:
                total += self._noise_error(z, int(t), scheduler, generator)
        return total / (k * math.prod(self._model_shape()))

    def _noise_error(self, z: np.ndarray, t: int, scheduler: Any, generator: Any) -> np.ndarray:
        """|eps - eps_hat(x_t, t)|^2 per item, with eps drawn from ``generator``."""
        torch = import_torch(f"the {self.registry_id!r} model")
        out = np.empty(len(z))
        for start in range(0, len(z), _CHUNK):
            x0 = torch.from_numpy(z[start : start + _CHUNK])
            noise = torch.randn(x0.shape, generator=generator)
            times = torch.full((len(x0),), t, dtype=torch.long)
            noisy = scheduler.add_noise(x0, noise, times)
            eps = self.network_(noisy.to(self.device_), times.to(self.device_)).cpu()
            out[start : start + _CHUNK] = ((eps - noise) ** 2).flatten(1).sum(1).double().numpy()
        return out


@register("model", "ddpm-images")
class DDPMImages(DDPM):
    """Denoising diffusion model of (n, h, w) images in [0, 1], with a small UNet.

    Parameters
    ----------
    denoiser : {"unet", "mlp"}, default "unet"
        diffusers' ``UNet2DModel`` (two resolutions, one ResNet layer each), or the
        residual MLP over flattened pixels (several times faster on a CPU).
    channels : int, default 32
        Channels of the UNet's first resolution (doubled at the second).
    hidden, layers, ... :
        As for :class:`DDPM` (``hidden`` and ``layers`` size the MLP denoiser only).
    """

    kind = DataKind.IMAGES
    _clip_sample: ClassVar[bool] = True
    conformance_params: ClassVar[dict[str, Any]] = {
        **DDPM.conformance_params,
        "channels": 8,
    }
    parameter_constraints: ClassVar = {
        **DDPM.parameter_constraints,
        "denoiser": [Options(("unet", "mlp"))],
        "channels": [Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        denoiser: str = "unet",
        channels: int = 32,
        hidden: int = 256,
        layers: int = 3,
        steps: int = 2000,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        train_timesteps: int = 1000,
        beta_schedule: str = "linear",
        sampling_steps: int = 100,
        eta: float = 1.0,
        elbo_timesteps: int = 64,
        init: str = "scratch",
        device: str = "auto",
    ) -> None:
        super().__init__(
            hidden=hidden,
            layers=layers,
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            train_timesteps=train_timesteps,
            beta_schedule=beta_schedule,
            sampling_steps=sampling_steps,
            eta=eta,
            elbo_timesteps=elbo_timesteps,
            init=init,
            device=device,
        )
        self.denoiser = denoiser
        self.channels = channels

    def _prepare(self, data: Any, start: DDPM | None) -> np.ndarray:
        self.shape_ = _images(data).shape[1:]
        self.standardizer_ = None  # type: ignore[assignment]  # pixels are scaled, not standardized
        return self._forward(data)

    def _forward(self, data: Any) -> np.ndarray:
        images = np.clip(_images(data), 0.0, 1.0)
        return (2.0 * images - 1.0).astype(np.float32)[:, None]

    def _inverse(self, z: np.ndarray) -> np.ndarray:
        return np.clip((z[:, 0].astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)

    def _log_det(self) -> float:
        return math.prod(self.shape_) * math.log(2.0)  # x -> 2x - 1 per pixel

    def _model_shape(self) -> tuple[int, ...]:
        return (1, *self.shape_)

    def _new_network(self) -> Any:
        classes = _network_classes()
        if self.denoiser == "mlp":
            return classes.MLPDenoiser(math.prod(self.shape_), self.hidden, self.layers)
        h, w = self.shape_
        if h != w or h % 2:
            raise DataError(f"the unet denoiser needs square images of even size; got {h} x {w}")
        return classes.UNetDenoiser(h, self.channels)


def quantile_timesteps(weights: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` timesteps (1-based: ``weights[i]`` is timestep ``i + 1``) at the
    midpoint quantiles of ``weights``: a timestep carrying a share s of the weight is
    picked about k * s times."""
    cumulative = np.cumsum(weights)
    targets = (np.arange(k) + 0.5) / k * cumulative[-1]
    return 1 + np.searchsorted(cumulative, targets)


def _images(data: Any) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(f"images must be a non-empty (n, h, w) array; got shape {arr.shape}")
    return arr
