"""Metrics of denoising diffusion models (``ddpm``, ``ddpm-images``).

* ``denoising_loss_real``: the diffusion training objective (mean squared error of
  the predicted noise, per coordinate, over evenly spread timesteps) on the held-out
  real test data under model t: the real test loss Gerstgrasser et al. (2024) follow
  for their diffusion model. It rises as the model forgets the real data. The ELBO
  (``nll_bound_real`` on images, ``nll_real`` on vectors, both upper bounds on the
  negative log-likelihood) weighs the timesteps by the bound's weights instead, and
  with a cosine schedule its last timestep dominates it.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np

from ..core import DataKind, Direction, GenerativeModel, Metric, Quantity, RealData
from ..registry import register


@register("metric", "denoising_loss_real")
class DenoisingLossReal(Metric):
    """Mean denoising loss of the real test data under model t (noise-prediction MSE)."""

    applies_to = frozenset({DataKind.CONTINUOUS, DataKind.IMAGES})
    label = "denoising loss on real test data (noise-prediction MSE per coordinate)"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 1
    requires: ClassVar[tuple[str, ...]] = ("denoising_loss",)

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        return float(np.mean(cast(Any, model).denoising_loss(reference.test)))
