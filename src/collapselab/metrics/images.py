"""Metrics of image models (``IMAGES``): fit to the real test images and variety of the output.

* ``nll_bound_real``: minus the mean ELBO of the real test images under model t
  (nats per image, an upper bound on their negative log-likelihood): rises as the
  model forgets the real digits.
* ``latent_std``: the standard deviation, over model t's generated images, of the
  encoder's latent means (averaged over latent dimensions): falls as the output
  collapses onto a few typical digits (Shumailov et al. 2024).
* ``pixel_variance``: each pixel's variance across the generated images, averaged
  over pixels: the output's variety in pixel space.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import DataKind, GenerativeModel, Metric, RealData
from ..registry import register

IMAGES = frozenset({DataKind.IMAGES})


class _NoParams(Metric):
    applies_to = IMAGES

    def __init__(self) -> None:
        pass


@register("metric", "nll_bound_real")
class NLLBoundReal(_NoParams):
    """Mean negative ELBO (nats per image) of the real test images under model t."""

    requires: ClassVar[tuple[str, ...]] = ("log_prob",)

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(-np.mean(model.log_prob(reference.test)))


@register("metric", "latent_std")
class LatentStd(_NoParams):
    """Standard deviation of the latent means of model t's own output, averaged over
    latent dimensions (the model encodes what it generated)."""

    requires: ClassVar[tuple[str, ...]] = ("latent_means",)

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(np.std(model.latent_means(synthetic), axis=0).mean())


@register("metric", "pixel_variance")
class PixelVariance(_NoParams):
    """Variance of each pixel across model t's output, averaged over pixels."""

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        images = np.asarray(synthetic, dtype=float)
        return float(images.reshape(len(images), -1).var(axis=0).mean())
