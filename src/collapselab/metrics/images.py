"""Metrics of image models (``IMAGES``): fit to the real test images and variety of the output.

* ``nll_bound_real``: minus the mean ELBO of the real test images under model t
  (nats per image, an upper bound on their negative log-likelihood): rises as the
  model forgets the real digits.
* ``latent_std``: the standard deviation, over model t's generated images, of the
  encoder's latent means (averaged over latent dimensions): falls as the output
  collapses onto a few typical digits (Shumailov et al. 2024).
* ``latent_std_0``: the same with generation 0's encoder, a fixed yardstick fitted to
  the real digits (Shumailov et al. show the latents of the generated data "as
  perceived by the original encoder").
* ``pixel_variance``: each pixel's variance across the generated images, averaged
  over pixels: the output's variety in pixel space.
* ``prdc_precision``, ``prdc_recall``, ``prdc_density``, ``prdc_coverage``: the
  k-nearest-neighbour precision and recall (Kynkäänniemi et al. 2019) and density
  and coverage (Naeem et al. 2020, the ``prdc`` package) of model t's generated
  images against the real test images. Precision and density measure fidelity (do
  generated images lie among real ones?), recall and coverage variety (are the real
  images' neighbourhoods reached?): a collapsing chain keeps some precision while
  its recall and coverage fall. Both sets are embedded by generation 0's encoder
  (its latent means; ``embedding: generation0``), fitted to the real training
  images and the same yardstick at every generation, or compared as raw pixels
  (``embedding: pixels``).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, ClassVar

import numpy as np

from ..core import (
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Options,
    Quantity,
    RealData,
)
from ..errors import InvalidParameterError, parameter_message, require
from ..registry import register

IMAGES = frozenset({DataKind.IMAGES})


class _ImageMetric(Metric):
    applies_to = IMAGES


@register("metric", "nll_bound_real")
class NLLBoundReal(_ImageMetric):
    """Mean negative ELBO (nats per image) of the real test images under model t."""

    requires: ClassVar[tuple[str, ...]] = ("log_prob",)
    label = "−ELBO of real test images (nats per image)"
    unit = "nats per image"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 10

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(-np.mean(model.log_prob(reference.test)))


@register("metric", "latent_std")
class LatentStd(_ImageMetric):
    """Standard deviation of the latent means of model t's own output, averaged over
    latent dimensions (the model encodes what it generated)."""

    requires: ClassVar[tuple[str, ...]] = ("latent_means",)
    label = "std of latent means of the output (own encoder)"
    unit = "latent units"
    direction = Direction.TARGET  # the real images' spread: collapse shrinks it
    quantity = Quantity.DIVERSITY
    headline = 11

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        return float(np.std(model.latent_means(synthetic), axis=0).mean())


@register("metric", "latent_std_0")
class LatentStd0(_ImageMetric):
    """Standard deviation of generation 0's latent means of model t's output, averaged
    over latent dimensions (the first encoder, fitted to the real digits, encodes what
    model t generated)."""

    requires: ClassVar[tuple[str, ...]] = ("latent_means",)
    uses_model_0: ClassVar[bool] = True
    label = "std of latent means of the output (generation-0 encoder)"
    unit = "latent units"
    direction = Direction.TARGET
    quantity = Quantity.DIVERSITY
    headline = 100

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: Any,
        model_0: GenerativeModel,
    ) -> float:
        return float(np.std(model_0.latent_means(synthetic), axis=0).mean())


@register("metric", "pixel_variance")
class PixelVariance(_ImageMetric):
    """Variance of each pixel across model t's output, averaged over pixels."""

    label = "pixel variance across the output (pixel units²)"
    unit = "pixel units²"
    direction = Direction.TARGET
    quantity = Quantity.DIVERSITY
    headline = 100

    def __call__(
        self, model: GenerativeModel, synthetic: Any, reference: RealData, *, rng: Any
    ) -> float:
        images = np.asarray(synthetic, dtype=float)
        return float(images.reshape(len(images), -1).var(axis=0).mean())


#: Seed of the subsample of ``max_items`` images (a fixed stream, shared by the four
#: prdc metrics so that one computation serves all of them; the test images are in a
#: per-seed order and generated images are independent draws, so a fixed choice of
#: positions is a random subsample).
_SUBSAMPLE_SEED = 0x9D0C

#: The last prdc computation: (model_0, synthetic, test, settings, values). The four
#: prdc metrics of one generation share it; objects are compared by identity and held
#: here, so an id cannot be reused while its entry stands.
_last_prdc: tuple[Any, Any, Any, tuple[Any, ...], dict[str, float]] | None = None


def _subsample(x: np.ndarray, max_items: int) -> np.ndarray:
    if len(x) <= max_items:
        return x
    keep = np.random.default_rng(_SUBSAMPLE_SEED).choice(len(x), size=max_items, replace=False)
    return x[np.sort(keep)]


def prdc_values(
    model_0: GenerativeModel | None,
    synthetic: Any,
    test: Any,
    *,
    nearest_k: int = 5,
    max_items: int = 1000,
    embedding: str = "generation0",
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``synthetic`` against ``test`` images.

    At most ``max_items`` images of each set (a fixed subsample); NaN for all four
    when either set has no more than ``nearest_k`` images.
    """
    global _last_prdc
    settings = (nearest_k, max_items, embedding)
    last = _last_prdc
    if (
        last is not None
        and last[0] is model_0
        and last[1] is synthetic
        and last[2] is test
        and last[3] == settings
    ):
        return last[4]
    fake = _subsample(np.asarray(synthetic, dtype=float), max_items)
    real = _subsample(np.asarray(test, dtype=float), max_items)
    if min(len(fake), len(real)) <= nearest_k:
        values = dict.fromkeys(("precision", "recall", "density", "coverage"), float("nan"))
    else:
        if embedding == "generation0":
            fake, real = model_0.latent_means(fake), model_0.latent_means(real)
        else:
            fake, real = fake.reshape(len(fake), -1), real.reshape(len(real), -1)
        compute_prdc = require("prdc", "prdc", "the prdc_* metrics").compute_prdc
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
            result = compute_prdc(real_features=real, fake_features=fake, nearest_k=nearest_k)
        values = {key: float(value) for key, value in result.items()}
    _last_prdc = (model_0, synthetic, test, settings, values)
    return values


class NearestKMetric(Metric):
    """A metric of k-nearest-neighbour balls (``nearest_k``) over at most ``max_items``
    items a side: the prdc metrics here and the classifier's in
    :mod:`collapselab.metrics.classifier`. A run's samples must outnumber k, and so must
    ``max_items``; both are checked with the config, before a run starts."""

    nearest_k: int
    max_items: int

    def validate_params(self) -> None:
        super().validate_params()
        if self.max_items <= self.nearest_k:
            raise InvalidParameterError(
                parameter_message(
                    type(self).__name__,
                    "max_items",
                    f"> nearest_k={self.nearest_k}",
                    self.max_items,
                )
            )

    def min_samples(self) -> int:
        return self.nearest_k + 1


class _PRDC(NearestKMetric):
    """One of precision, recall, density and coverage of model t's output against the
    real test images, in generation 0's latent space (or in pixel space).

    Parameters
    ----------
    nearest_k : int, default 5
        k of the k-nearest-neighbour balls around each real (and generated) image.
    max_items : int, default 1000
        At most this many images of each set (a fixed subsample beyond that): the
        cost grows with the square of the number of images.
    embedding : {"generation0", "pixels"}, default "generation0"
        Compare the latent means of generation 0's encoder, or the raw pixels.
    """

    applies_to = IMAGES
    uses_model_0: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("latent_means",)
    parameter_constraints: ClassVar = {
        "nearest_k": [Interval(1, None, integer=True)],
        "max_items": [Interval(2, None, integer=True)],
        "embedding": [Options(("generation0", "pixels"))],
    }
    #: Which of the four values this metric records.
    value: ClassVar[str] = ""
    headline = 100

    def __init__(
        self, *, nearest_k: int = 5, max_items: int = 1000, embedding: str = "generation0"
    ) -> None:
        self.nearest_k = nearest_k
        self.max_items = max_items
        self.embedding = embedding

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: Any,
        model_0: GenerativeModel,
    ) -> float:
        values = prdc_values(
            model_0,
            synthetic,
            reference.test,
            nearest_k=self.nearest_k,
            max_items=self.max_items,
            embedding=self.embedding,
        )
        return values[self.value]


@register("metric", "prdc_precision")
class PRDCPrecision(_PRDC):
    """Share of generated images inside the k-NN ball of some real test image.

    No healthy end on its own: a chain collapsing onto typical images keeps or raises
    its precision; read it beside recall and coverage."""

    value = "precision"
    label = "precision: share of the output near real images ({embedding})"
    direction = Direction.NEUTRAL
    quantity = Quantity.FIDELITY
    share = True


@register("metric", "prdc_recall")
class PRDCRecall(_PRDC):
    """Share of real test images inside the k-NN ball of some generated image."""

    value = "recall"
    label = "recall: share of real images near the output ({embedding})"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    share = True


@register("metric", "prdc_density")
class PRDCDensity(_PRDC):
    """Mean number of real k-NN balls holding each generated image, divided by k
    (about 1 when generated and real images are alike; above 1 when the output
    crowds the dense regions)."""

    value = "density"
    label = "density: real {nearest_k}-NN balls per generated image ÷ {nearest_k} ({embedding})"
    direction = Direction.TARGET  # about 1 when generated and real images are alike
    quantity = Quantity.FIDELITY


@register("metric", "prdc_coverage")
class PRDCCoverage(_PRDC):
    """Share of real test images whose k-NN ball holds a generated image."""

    value = "coverage"
    label = "coverage: share of real images with the output nearby ({embedding})"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    share = True
