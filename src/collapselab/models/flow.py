"""A normalizing flow of continuous data (``flow``), built on ``zuko``.

Bertrand et al. ("On the Stability of Iterative Retraining of Generative Models on
their own Data", ICLR 2024) retrain normalizing flows on a mix of real data and
their own samples and prove the loop stable when the real share is large enough.
This model is theirs at small scale: a neural spline flow (Durkan et al. 2019) or a
masked autoregressive flow (Papamakarios et al. 2017) from ``zuko``, trained by
maximum likelihood with Adam on data standardized per feature (the splines act on
[-5, 5]). ``log_prob`` is exact (nats, in the data's own units: the standardization's
Jacobian is included), so ``nll_real`` is a true negative log-likelihood.

Sampling draws the base variable from N(0, λ² I) and maps it through the inverse
flow: ``decoding: {bias: λ}`` is the sampling bias (temperature) λ of Alemohammad
et al. ("Go MAD", 2024); below 1 it trades variety for typical samples.

Initialization across generations (``init``): ``scratch`` trains each generation from
new random weights; ``generation0`` starts from generation 0's trained weights;
``previous`` continues from the last generation's weights (fine-tuning). A warm start
also keeps its start model's standardization, so the weights mean what they meant.

Randomness: initial weights come from a scoped torch seed derived from ``rng`` (see
:func:`~collapselab.models.torch_common.seeded_construction`), batches and base draws
from ``rng`` itself: a fit is a deterministic function of ``rng`` for a fixed torch
thread count on CPU. Weights pickle as safetensors bytes.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Self

import numpy as np

from ..core import NONE, DataKind, GenerativeModel, Interval, Options, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import require
from ..neural import import_torch, matching_threads
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

#: Rows per forward pass in ``log_prob`` and ``sample`` (bounds memory, not results).
_CHUNK = 8192


@functools.cache
def _zuko() -> Any:
    import_torch("the 'flow' model")
    return require("zuko", "neural", "the 'flow' model")


@register("model", "flow")
class Flow(NetworkPickling, GenerativeModel):
    """Normalizing flow (neural spline or masked autoregressive) over (n, d) data.

    Parameters
    ----------
    flow : {"nsf", "maf"}, default "nsf"
        Rational-quadratic spline transforms (``zuko.flows.NSF``) or affine ones
        (``zuko.flows.MAF``).
    transforms : int, default 3
        Autoregressive transforms stacked (feature order reversed between them).
    hidden : int, default 64
        Width of each hidden layer of the masked networks.
    layers : int, default 2
        Hidden layers of each masked network.
    bins : int, default 8
        Spline bins (``nsf`` only).
    passes : int or None, default None
        Sequential passes of each transform's inverse: ``None`` is fully
        autoregressive, ``2`` is a coupling flow (sampling 64-D data is then about
        30 times faster, at some cost in fit).
    steps : int, default 1000
        Adam steps per generation.
    batch_size : int, default 256
    learning_rate : float, default 1e-3
    init : {"scratch", "generation0", "previous"}, default "scratch"
        Weights each generation starts from (see the module docstring).
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``auto`` trains on the GPU where torch sees one.

    Attributes
    ----------
    dim_ : int
    standardizer_ : Standardizer
        The per-feature standardization the flow acts after.
    network_ : zuko.flows.Flow
    losses_ : numpy.ndarray
        Negative log-likelihood per sample (nats, standardized units) at each step.
    device_ : str
    """

    kind = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    #: The chain passes ``previous=`` (model t-1) and ``first=`` (model 0) to ``fit``.
    takes_ancestors: ClassVar[bool] = True
    # Read by chain.py until it reads ``takes_ancestors`` (the same declaration).
    conformance_params: ClassVar[dict[str, Any]] = {
        "transforms": 1,
        "hidden": 8,
        "steps": 5,
        "batch_size": 16,
    }
    extra: ClassVar[str | None] = "neural"
    parameter_constraints: ClassVar = {
        "flow": [Options(("nsf", "maf"))],
        "transforms": [Interval(1, None, integer=True)],
        "hidden": [Interval(1, None, integer=True)],
        "layers": [Interval(1, None, integer=True)],
        "bins": [Interval(2, None, integer=True)],
        "passes": [NONE, Interval(1, None, integer=True)],
        "steps": [Interval(0, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "init": [Options(INITS)],
        "device": [Options(DEVICES)],
    }

    def __init__(
        self,
        *,
        flow: str = "nsf",
        transforms: int = 3,
        hidden: int = 64,
        layers: int = 2,
        bins: int = 8,
        passes: int | None = None,
        steps: int = 1000,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        init: str = "scratch",
        device: str = "auto",
    ) -> None:
        self.flow = flow
        self.transforms = transforms
        self.hidden = hidden
        self.layers = layers
        self.bins = bins
        self.passes = passes
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.init = init
        self.device = device

    def _new_network(self) -> Any:
        flows = _zuko().flows
        kwargs = {
            "transforms": self.transforms,
            "hidden_features": (self.hidden,) * self.layers,
            "passes": self.passes,
        }
        if self.flow == "nsf":
            return flows.NSF(self.dim_, bins=self.bins, **kwargs)
        return flows.MAF(self.dim_, **kwargs)

    def fit(
        self,
        data: Any,
        *,
        rng: np.random.Generator,
        previous: Flow | None = None,
        first: Flow | None = None,
    ) -> Self:
        """Train on ``data`` by maximum likelihood.

        With ``init="generation0"`` (or ``"previous"``) the weights and the
        standardization start from ``first`` (or ``previous``), given by the chain
        from generation 1 on; without them this fit starts from scratch.
        """
        self.validate_params()
        torch = import_torch("the 'flow' model")
        x = as_2d(data)
        start = starting_model(self.init, previous, first)
        if start is not None and start.dim_ != x.shape[1]:
            raise ValueError(f"the start model has {start.dim_} features; the data {x.shape[1]}")
        self.dim_ = x.shape[1]
        self.device_ = resolve_device(self.device)
        self.standardizer_ = start.standardizer_ if start is not None else Standardizer.of(x)
        z_all = torch.from_numpy(self.standardizer_.forward(x).astype(np.float32))
        z_all = z_all.to(self.device_)
        with matching_threads():
            network = start_network(self._new_network, start, self.device_, rng)
            optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate, fused=True)
            batch = min(self.batch_size, len(x))
            rows = torch.from_numpy(rng.integers(0, len(x), size=(self.steps, batch)))
            rows = rows.to(self.device_)
            losses = np.full(self.steps, np.nan)
            network.train()
            for step in range(self.steps):
                z = z_all[rows[step]]
                loss = -network().log_prob(z).mean()
                if not torch.isfinite(loss):  # a collapsed pool can drive it to -inf
                    break
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
        """Exact log-density of each row (nats, in the data's units)."""
        torch = import_torch("the 'flow' model")
        z = self.standardizer_.forward(as_2d(data)).astype(np.float32)
        out = np.empty(len(z))
        with torch.no_grad(), matching_threads():
            distribution = self.network_()
            for start in range(0, len(z), _CHUNK):
                part = torch.from_numpy(z[start : start + _CHUNK]).to(self.device_)
                out[start : start + _CHUNK] = distribution.log_prob(part).double().cpu().numpy()
        return out + self.standardizer_.log_det

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        """``n`` draws: base N(0, λ² I) through the inverse flow (λ = ``decoding.bias``)."""
        torch = import_torch("the 'flow' model")
        base = sampling_bias(decoding) * rng.standard_normal((n, self.dim_))
        base = base.astype(np.float32)
        out = np.empty((n, self.dim_))
        with torch.no_grad(), matching_threads():
            transform = self.network_().transform
            for start in range(0, n, _CHUNK):
                part = torch.from_numpy(base[start : start + _CHUNK]).to(self.device_)
                out[start : start + _CHUNK] = transform.inv(part).double().cpu().numpy()
        return self.standardizer_.inverse(out)
