"""Image metrics read through a digit classifier trained on the real training images.

A small multilayer perceptron (scikit-learn's ``MLPClassifier``: pixels -> 128 -> 64
ReLU units -> 10 classes, fixed seed) is trained once per seed on the real training
images and their labels (``RealData.truth["train_labels"]``, which ``digits-images``
and ``mnist-images`` carry), then frozen for the whole chain: every generation's
output is read by the same yardstick. On the 8 x 8 digits it labels about 96% of the
held-out real digits correctly.

* ``class_coverage``: the share of the classes that hold at least ``min_share`` of the
  output's labels: 1 when every digit is still drawn, 0.1 when one is left. Which
  digits vanish first are the tails of an image distribution.
* ``class_entropy``: the entropy (bits) of the output's label distribution: log2 10 =
  3.32 for balanced digits, 0 for one class.
* ``classifier_fd``: the Fréchet distance between Gaussian fits of the classifier's
  64 penultimate features of the output and of the real test images: the same
  formula as FID (Heusel et al. 2017) in a small digit classifier's features instead
  of Inception's, so its values are not FID values and are not comparable with them.
* ``classifier_precision``, ``classifier_recall``, ``classifier_density``,
  ``classifier_coverage``: the k-nearest-neighbour metrics of
  :func:`collapselab.metrics.images.prdc_values` in the same 64 features, against the
  real test images.

Noise images are labelled too (a classifier always answers): read coverage and
entropy with the Fréchet distance and precision, which see that the output stopped
looking like digits.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from ..core import (
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Quantity,
    RealData,
)
from ..errors import DataError
from ..registry import register
from .images import NearestKMetric, prdc_values

IMAGES = frozenset({DataKind.IMAGES})
#: Seed of the classifier's initial weights and batches (it is fitted per seed of the
#: chain, on that seed's real training images).
_CLASSIFIER_SEED = 0xC1A5


class DigitClassifier:
    """A frozen MLP classifier of images and its penultimate-layer features."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits

        self.network = MLPClassifier(
            hidden_layer_sizes=(128, 64), alpha=1e-3, max_iter=200, random_state=_CLASSIFIER_SEED
        )
        # One BLAS thread: on matrices this small more threads cost more than they give
        # (ten times more on a loaded machine).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            # A few hundred digits are fitted before the tolerance is met, or nearly.
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.network.fit(_flat(images), labels)
        self.classes = self.network.classes_

    def features(self, images: Any) -> np.ndarray:
        """The 64 ReLU activations of the last hidden layer of each image."""
        h = _flat(images)
        for weights, bias in zip(
            self.network.coefs_[:-1], self.network.intercepts_[:-1], strict=True
        ):
            h = np.maximum(h @ weights + bias, 0.0)
        return h

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Class labels of images from their :meth:`features`."""
        logits = features @ self.network.coefs_[-1] + self.network.intercepts_[-1]
        return self.classes[np.argmax(logits, axis=1)]

    def predict(self, images: Any) -> np.ndarray:
        return self.predict_features(self.features(images))


def _flat(images: Any) -> np.ndarray:
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim != 3:
        raise DataError(f"images must be an (n, h, w) array; got shape {arr.shape}")
    return arr.reshape(len(arr), -1)


def classifier(reference: RealData) -> DigitClassifier:
    """The seed's classifier, trained on its real training images once and cached."""

    def fit(ref: RealData) -> DigitClassifier:
        if "train_labels" not in ref.truth:
            raise DataError(
                "the classifier metrics need the real images' labels (RealData.truth"
                "['train_labels']): use data digits-images or mnist-images"
            )
        return DigitClassifier(ref.train, ref.truth["train_labels"])

    return reference.cached("digit_classifier", fit)


def real_test_features(reference: RealData) -> np.ndarray:
    """The classifier's features of the real test images, cached per seed."""
    return reference.cached("digit_classifier_test", lambda r: classifier(r).features(r.test))


#: The last output read: (reference, synthetic, features, labels). The metrics of one
#: generation share it; objects are compared by identity and held here, so an id
#: cannot be reused while the entry stands.
_last_read: tuple[Any, Any, np.ndarray, np.ndarray] | None = None


def read_output(reference: RealData, synthetic: Any) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's features and labels of ``synthetic`` (computed once per output)."""
    global _last_read
    last = _last_read
    if last is not None and last[0] is reference and last[1] is synthetic:
        return last[2], last[3]
    model = classifier(reference)
    features = model.features(synthetic)
    labels = model.predict_features(features)
    _last_read = (reference, synthetic, features, labels)
    return features, labels


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2) between Gaussian
    fits of the rows of ``x`` and ``y``; the trace of the root comes from the
    eigenvalues of a symmetric matrix, so it stays real where ``sqrtm`` would not."""
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    cov_x = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    cov_y = np.cov(y, rowvar=False).reshape(y.shape[1], y.shape[1])
    vals, vecs = np.linalg.eigh(cov_x)
    root_x = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    inner = np.linalg.eigvalsh(root_x @ cov_y @ root_x)
    cross = np.sum(np.sqrt(np.clip(inner, 0.0, None)))
    distance = np.sum((mean_x - mean_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * cross
    return float(max(distance, 0.0))


class _ClassifierMetric(Metric):
    applies_to = IMAGES

    @classmethod
    def example(cls) -> RealData:
        """Real digits with their labels, for the conformance checks."""
        from sklearn.datasets import load_digits

        digits = load_digits()
        pick = np.random.default_rng(0).choice(len(digits.images), size=260, replace=False)
        images = (digits.images[pick] / 16.0).astype(np.float32)
        labels = digits.target[pick]
        return RealData(
            train=images[:160],
            test=images[160:],
            kind=DataKind.IMAGES,
            truth={"train_labels": labels[:160], "test_labels": labels[160:]},
        )


@register("metric", "class_coverage")
class ClassCoverage(_ClassifierMetric):
    """Share of the digit classes holding at least ``min_share`` of model t's output.

    Parameters
    ----------
    min_share : float, default 0.01
        A class counts as drawn when at least this share of the output is labelled
        with it (a tenth of its share among balanced digits; a stray misreading of
        one image does not keep a vanished digit alive).
    """

    label = "digit classes with ≥ {min_share:g} of the output ÷ all classes"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.TAILS
    headline = 2
    share = True
    parameter_constraints: ClassVar = {"min_share": [Interval(0, 1, closed="right")]}

    def __init__(self, *, min_share: float = 0.01) -> None:
        self.min_share = min_share

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        _, labels = read_output(reference, synthetic)
        classes = classifier(reference).classes
        shares = np.array([np.mean(labels == c) for c in classes])
        return float(np.mean(shares >= self.min_share))


@register("metric", "class_entropy")
class ClassEntropy(_ClassifierMetric):
    """Entropy (bits) of the classifier's labels of model t's output."""

    label = "entropy of the output's digit classes (bits; 3.32 for 10 balanced)"
    unit = "bits"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        _, labels = read_output(reference, synthetic)
        _, counts = np.unique(labels, return_counts=True)
        p = counts / counts.sum()
        return float(-np.sum(p * np.log2(p)) + 0.0)  # + 0.0: one class gives 0.0, not -0.0


@register("metric", "classifier_fd")
class ClassifierFD(_ClassifierMetric):
    """Fréchet distance between model t's output and the real test images in the
    frozen digit classifier's penultimate features: an FID analogue, not FID."""

    label = "Fréchet distance to real test digits, digit-classifier features (not FID)"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    headline = 1

    def min_samples(self) -> int:
        return 2  # a covariance needs two images

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        features, _ = read_output(reference, synthetic)
        return frechet_distance(features, real_test_features(reference))


class _ClassifierPRDC(_ClassifierMetric, NearestKMetric):
    """One of precision, recall, density and coverage of model t's output against the
    real test images, in the frozen digit classifier's penultimate features.

    Parameters
    ----------
    nearest_k : int, default 5
        k of the k-nearest-neighbour balls.
    max_items : int, default 1000
        At most this many images of each set (a fixed subsample beyond that).
    """

    parameter_constraints: ClassVar = {
        "nearest_k": [Interval(1, None, integer=True)],
        "max_items": [Interval(2, None, integer=True)],
    }
    #: Which of the four values this metric records.
    value: ClassVar[str] = ""

    def __init__(self, *, nearest_k: int = 5, max_items: int = 1000) -> None:
        self.nearest_k = nearest_k
        self.max_items = max_items

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        features, _ = read_output(reference, synthetic)
        # The features are vectors already: the "pixels" embedding only flattens them.
        values = prdc_values(
            None,
            features,
            real_test_features(reference),
            nearest_k=self.nearest_k,
            max_items=self.max_items,
            embedding="pixels",
        )
        return values[self.value]


@register("metric", "classifier_precision")
class ClassifierPrecision(_ClassifierPRDC):
    """Share of generated images inside the k-NN ball of some real test image.

    Neutral, not higher-is-healthier: an output collapsed onto a few typical digits
    keeps (or raises) its precision."""

    label = "precision: output inside real digits' {nearest_k}-NN balls (classifier features)"
    unit = "share"
    direction = Direction.NEUTRAL
    quantity = Quantity.FIDELITY
    share = True
    value = "precision"


@register("metric", "classifier_recall")
class ClassifierRecall(_ClassifierPRDC):
    """Share of real test images inside the k-NN ball of some generated image."""

    label = "recall: real digits inside the output's {nearest_k}-NN balls (classifier features)"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    headline = 3
    share = True
    value = "recall"


@register("metric", "classifier_density")
class ClassifierDensity(_ClassifierPRDC):
    """Mean number of real k-NN balls holding each generated image, divided by k: about
    1 when output and real digits are alike, above 1 when the output crowds the dense
    regions (so closest to the real data's own value is healthiest)."""

    label = "density: real {nearest_k}-NN balls per output image ÷ k (classifier features)"
    direction = Direction.TARGET
    quantity = Quantity.FIDELITY
    value = "density"


@register("metric", "classifier_coverage")
class ClassifierCoverage(_ClassifierPRDC):
    """Share of real test images whose k-NN ball holds a generated image."""

    label = "coverage: real digits whose {nearest_k}-NN ball holds output (classifier features)"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.DIVERSITY
    share = True
    value = "coverage"
