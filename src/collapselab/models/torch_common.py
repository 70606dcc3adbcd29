"""What the continuous neural models (``flow``, ``ddpm``, ``ddpm-images``) share.

* :func:`resolve_device`: the ``device`` parameter (``auto`` takes the GPU when torch
  sees one, else the CPU).
* :func:`seeded_construction`: build a torch module whose layers draw their initial
  weights from torch's default generator (zuko's and diffusers' layers do), seeded
  from the ``rng`` passed to ``fit`` and restored afterwards, so each library keeps its
  own initialization and no global random state leaks out.
* :func:`starting_model`: which earlier model ``init: generation0 | previous`` starts
  from.
* :class:`Standardizer`: the per-feature affine map that puts the training data at
  zero mean and unit variance, with its log-Jacobian for exact densities.
* :class:`NetworkPickling`: a model's ``network_`` pickles as safetensors bytes (tensors
  only, never pickled torch objects), so the runner's checksummed checkpoints hold it.

Nothing here imports torch at module import time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..neural import import_torch, weights_from_bytes, weights_to_bytes
from ..rng import child_seed

#: Values of the ``init`` parameter of neural models.
INITS = ("scratch", "generation0", "previous")
#: Values of the ``device`` parameter.
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``cuda`` or ``cpu``: ``auto`` takes the GPU where torch sees one."""
    torch = import_torch("a neural model")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def seeded_construction(rng: np.random.Generator) -> Iterator[None]:
    """Construct modules inside this block: their default initialization draws from
    torch's CPU generator, seeded from ``rng`` (one draw) and restored on exit."""
    torch = import_torch("a neural model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(child_seed(rng))
        yield


def starting_model(init: str, previous: Any, first: Any) -> Any:
    """The fitted model whose weights a new fit starts from, or ``None`` (scratch, or
    generation 0, which has no ancestors)."""
    return {"generation0": first, "previous": previous}.get(init)


@dataclass(frozen=True)
class Standardizer:
    """``z = (x - shift) / scale`` per feature; ``log_det`` is ``-sum(log scale)``."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Standardizer:
        """Zero mean and unit variance on ``x``. A feature with no spread (a collapsed
        output) keeps a tiny scale: its density is sharp, not undefined."""
        shift = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.maximum(scale, 1e-6 * np.maximum(1.0, np.abs(shift)))
        return cls(shift=shift, scale=scale)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.shift) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale + self.shift

    @property
    def log_det(self) -> float:
        """log |dz/dx|: added to a density of ``z`` to give the density of ``x``."""
        return float(-np.sum(np.log(self.scale)))


class NetworkPickling:
    """Pickle ``network_`` as safetensors bytes; rebuild it with ``_new_network()``."""

    #: The device the model was asked for (``auto``, ``cpu`` or ``cuda``); set by the model.
    device: str

    def _new_network(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if "network_" in state:
            state["network_"] = weights_to_bytes(state["network_"].to("cpu"))
            self.network_.to(self.device_)  # .to moves in place: put it back
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("network_")
        vars(self).update(state)
        if isinstance(blob, bytes):
            network = self._new_network()
            weights_from_bytes(network, blob)
            network.eval()
            # A checkpoint written on a GPU resumes on a CPU-only machine, and back.
            self.device_ = resolve_device(self.device)
            self.network_ = network.to(self.device_)


__all__ = [
    "DEVICES",
    "INITS",
    "NetworkPickling",
    "Standardizer",
    "resolve_device",
    "seeded_construction",
    "starting_model",
]


def start_network(
    build: Callable[[], Any], start: Any, device: Any, rng: np.random.Generator
) -> Any:
    """A new network from ``build`` (its initialization drawn from ``rng``, see
    :func:`seeded_construction`), with ``start``'s weights where a fit starts from an
    earlier model (:func:`starting_model`), on ``device``."""
    with seeded_construction(rng):
        network = build()
    if start is not None:
        network.load_state_dict(start.network_.state_dict())
    return network.to(device)
