"""The second trait of subliminal learning: a classifier's preference for one class on noise.

A teacher fine-tuned to prefer a class on uniform-noise images (``subliminal-mlp``
with ``trait``) carries a trait that its class readout on digits does not show; a
student that never saw a class logit carries it too if it learned subliminally
(Cloud et al. 2025: a teacher's preference passes through unrelated data).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import (
    DataKind,
    Direction,
    Interval,
    Metric,
    Quantity,
    RealData,
    as_2d,
)
from ..registry import register


@register("metric", "preference")
class Preference(Metric):
    """Share of uniform-noise images whose largest class logit is class ``preferred``.

    The images have the width of the real test images, with pixels U(0, 1), drawn
    from the metric's own stream (``n_images`` per seed and generation). A model
    without the trait sends noise to some class of its own, so averaged over seeds
    the share is about 1 / n_classes; a teacher fine-tuned toward ``preferred`` scores
    near 1. A diagnostic of transfer, not health.

    Parameters
    ----------
    preferred : int, default 0
        The preferred class (the teacher's ``trait``).
    n_images : int, default 1000
    """

    applies_to: ClassVar = frozenset({DataKind.SUPERVISED})
    requires: ClassVar[tuple[str, ...]] = ("class_logits",)
    parameter_constraints: ClassVar = {
        "preferred": [Interval(0, None, integer=True)],
        "n_images": [Interval(1, None, integer=True)],
    }
    label = "share of noise images given class {preferred}"
    unit = "share"
    direction = Direction.NEUTRAL
    quantity = Quantity.OTHER
    share = True

    def __init__(self, *, preferred: int = 0, n_images: int = 1000) -> None:
        self.preferred = preferred
        self.n_images = n_images

    def chance(self, reference: RealData) -> float | None:
        """A model without the trait: one class in n_classes of the test labels."""
        classes = np.unique(np.asarray(reference.test[1]))
        return 1.0 / len(classes) if len(classes) else None

    def __call__(
        self,
        model: Any,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        width = as_2d(reference.test[0], "test images").shape[1]
        noise = rng.random((self.n_images, width), dtype=np.float32)
        return float(np.mean(np.argmax(model.class_logits(noise), axis=-1) == self.preferred))
