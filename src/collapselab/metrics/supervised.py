"""Metrics of supervised models: regression error against the truth, classification accuracy.

``test_mse`` and ``coef_error`` read the true coefficients from
:attr:`RealData.truth` (sources ``linear`` and ``diabetes`` put them there);
``accuracy`` scores a classifier's class logits on the real held-out split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import (
    DataKind,
    Direction,
    GenerativeModel,
    Metric,
    Quantity,
    RealData,
    ReferenceBatch,
    SeedBatch,
    as_2d,
)
from ..registry import register

SUPERVISED = frozenset({DataKind.SUPERVISED})


def _feature_cov(ref: RealData) -> np.ndarray:
    """E[x x^T] of the test inputs: the truth's, else the test split's second moment."""
    if "feature_cov" in ref.truth:
        return np.asarray(ref.truth["feature_cov"], dtype=float)
    x = as_2d(ref.test[0], "X")
    return x.T @ x / x.shape[0]


def _true_coef(ref: RealData) -> np.ndarray:
    return np.asarray(ref.truth.get("coef", np.nan), dtype=float)


@register("metric", "test_mse")
class TestMSE(Metric):
    """Noise-free test error E_x[(x^T w_t - x^T w*)^2] = (w_t - w*)^T E[x x^T] (w_t - w*).

    The error of model t's predictions against the true regression function, on the
    test input distribution (exact for ``linear``, the test split's second moment for
    tables). Without known coefficients in the truth, it is the ordinary mean
    squared error against the held-out labels, noise included.
    """

    applies_to = SUPERVISED
    requires = ("coefficients",)
    label = "test MSE, against the true function where known (label units²)"
    unit = "label units²"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 12
    theory_quantity = "test_mse"

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        coef = np.asarray(model.coefficients(), dtype=float)
        if "coef" not in reference.truth:
            x, y = as_2d(reference.test[0], "X"), np.asarray(reference.test[1], dtype=float)
            return float(np.mean((x @ coef - y) ** 2))
        gap = coef - _true_coef(reference)
        cov = reference.cached("feature_cov", _feature_cov)
        return float(gap @ cov @ gap)

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        if "coef" not in references.items[0].truth:
            return None
        gap = model.coefficients() - references.stacked("coef", _true_coef)
        cov = references.stacked("feature_cov", _feature_cov)
        return np.einsum("si,sij,sj->s", gap, cov, gap)


@register("metric", "coef_error")
class CoefError(Metric):
    """Squared distance ||w_t - w*||^2 between model t's and the true coefficients.

    NaN where the truth holds no coefficients (a real table with real labels).
    """

    applies_to = SUPERVISED
    requires = ("coefficients",)
    label = "‖w_t − w*‖² (coefficient units²)"
    unit = "coefficient units²"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    headline = 13
    theory_quantity = "coef_error"

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        gap = np.asarray(model.coefficients(), dtype=float) - _true_coef(reference)
        return float(gap @ gap)

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        gap = model.coefficients() - references.stacked("coef", _true_coef)
        return np.sum(gap**2, axis=1)


@register("metric", "accuracy")
class Accuracy(Metric):
    """Share of the real held-out examples whose argmax class logit is the true label.

    In the subliminal-learning chain, generation 0 is the teacher and generation 1
    the student, which never saw a digit or a class logit.
    """

    applies_to = SUPERVISED
    requires = ("class_logits",)
    label = "accuracy on real test data"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.VALIDITY
    share = True
    headline = 100

    def chance(self, reference: RealData) -> float | None:
        """Always guessing the test set's most common class."""
        _, counts = np.unique(np.asarray(reference.test[1]), return_counts=True)
        return float(counts.max() / counts.sum()) if counts.size else None

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        x, y = reference.test
        predicted = np.argmax(model.class_logits(x), axis=-1)
        return float(np.mean(predicted == np.asarray(y)))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        x = references.stacked("test_x", lambda r: r.test[0])
        y = references.stacked("test_y", lambda r: r.test[1])
        return np.mean(np.argmax(model.class_logits(x), axis=-1) == y, axis=1)
