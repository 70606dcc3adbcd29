"""Linear regression on a fixed design: least squares or ridge, relabelling its design.

The setting of Gerstgrasser et al. (2024) and Dohmatob et al. (2024, "Model Collapse
Demystified"): the inputs X stay fixed and each generation's labels are the
previous model's predictions plus fresh noise, y_{t+1} = X w_t + N(0, sigma^2). The
model fits on pairs ``(X, y)`` and its output is ``(X, X w + noise)`` on the design it
was fitted on. Under ``replace`` the test error of ordinary least squares grows
linearly in the number of fits; under ``accumulate`` it stays below pi^2/6 times the
first fit's (see :mod:`collapselab.theory`).

Every computation carries a leading seed axis, so the per-seed model and the
batched model (all seeds in one vectorized pass) share one implementation.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from ..core import NONE, DataKind, GenerativeModel, Interval, SeedBatch, as_2d
from ..errors import DataError
from ..registry import register

LOG_2PI = np.log(2 * np.pi)


def _pairs(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """One seed's ``(X, y)`` as float (n, d) and (n,) arrays."""
    if not isinstance(data, tuple) or len(data) != 2:
        raise DataError("linreg trains on supervised pairs (X, y); got " + type(data).__name__)
    x = as_2d(data[0], "X")
    y = np.asarray(data[1], dtype=float)
    if y.shape != (x.shape[0],):
        raise DataError(f"y must hold one number per row of X ({x.shape[0]}); got shape {y.shape}")
    return x, y


def design_block(x: np.ndarray) -> np.ndarray:
    """The shortest block of rows that every seed's training design repeats.

    ``x`` is (S, n, d). Under ``accumulate`` the training design is the real design
    stacked with its relabelled copies, and the block is the design itself; under
    ``replace`` it is the whole design (duplicate rows of a real table kept). A
    subsampled pool repeats no block, and the model relabels the rows it trained on.
    """
    n = x.shape[1]
    again = np.flatnonzero(np.all(x[0, 1:] == x[0, 0], axis=-1))  # row 0 seen again, seed 0
    for shift in again + 1:
        if n % shift == 0 and np.array_equal(x[:, shift:], x[:, :-shift]):
            return x[:, :shift]
    return x


def fit_arrays(
    x: np.ndarray, y: np.ndarray, *, alpha: float, alpha_exponent: float, noise: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (S, d) and label-noise variances (S,) fitted on (S, n, d), (S, n)."""
    _, n, d = x.shape
    gram = np.matmul(x.transpose(0, 2, 1), x)
    moment = np.matmul(x.transpose(0, 2, 1), y[..., None])
    penalty = alpha * n ** (-alpha_exponent) * n  # lambda per sample, times n
    regularized = gram + penalty * np.eye(d) if penalty > 0 else gram
    try:
        coef = np.linalg.solve(regularized, moment)[..., 0]
    except np.linalg.LinAlgError:  # fewer independent rows than features: minimum-norm fit
        coef = np.matmul(np.linalg.pinv(regularized), moment)[..., 0]
    if noise is not None:
        return coef, np.full(x.shape[0], float(noise))
    # sigma^2 = RSS / (n - df), with df = tr(hat matrix), unbiased for least squares.
    residual = y - np.matmul(x, coef[..., None])[..., 0]
    if penalty > 0:
        df = np.trace(np.linalg.solve(regularized, gram), axis1=1, axis2=2)
    else:
        df = np.linalg.matrix_rank(gram).astype(float)
    dof = n - df
    if np.any(dof <= 0):
        raise DataError(
            f"linreg cannot estimate the label noise from {n} rows and {d} features; "
            "set the model parameter 'noise'"
        )
    return coef, np.sum(residual**2, axis=1) / dof


@register("model", "linreg")
class LinearRegression(GenerativeModel):
    """Least squares or ridge regression whose output relabels its own design.

    ``fit`` solves w = argmin ||y - X w||^2 / T + lambda ||w||^2 on the T training
    pairs; ``sample(n)`` returns ``(X, X w + N(0, sigma^2))`` on the design it was
    fitted on (see :func:`design_block`), in order, cycled if ``n`` exceeds its rows:
    with ``samples_per_generation`` equal to the design's T rows, every generation
    relabels the same design once, as in the papers.

    Parameters
    ----------
    alpha : float, default 0.0
        Ridge strength: lambda = alpha * T^(-alpha_exponent) per sample. 0 gives
        ordinary least squares (minimum-norm when X^T X is singular).
    alpha_exponent : float, default 0.0
        0 keeps lambda fixed. A positive exponent shrinks lambda as the training set
        grows: Dohmatob et al.'s adaptive regularization, lambda = T^(-l), with l the
        exponent that balances bias and variance for the covariance spectrum (their
        l_crit); under ``accumulate`` the training set, and so lambda, changes every
        generation.
    noise : float, optional
        sigma^2 of the labels the model generates. By default it is estimated from
        the fit, RSS / (T - df) (unbiased for least squares), so a chain needs no
        knowledge of the truth; set it to the data's noise to reproduce the papers'
        setting, where every generation adds the same noise.
    """

    kind = DataKind.SUPERVISED
    parameter_constraints: ClassVar = {
        "alpha": [Interval(0, None)],
        "alpha_exponent": [Interval(0, None)],
        "noise": [NONE, Interval(0, None)],
    }

    def __init__(
        self, *, alpha: float = 0.0, alpha_exponent: float = 0.0, noise: float | None = None
    ) -> None:
        self.alpha = alpha
        self.alpha_exponent = alpha_exponent
        self.noise = noise

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        x, y = _pairs(data)
        coef, noise = fit_arrays(
            x[None],
            y[None],
            alpha=self.alpha,
            alpha_exponent=self.alpha_exponent,
            noise=self.noise,
        )
        self.coef_ = coef[0]
        self.noise_ = float(noise[0])
        self.design_ = design_block(x[None])[0].copy()
        self.n_features_in_ = x.shape[1]
        return self

    def sample(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        x = self.design_[np.arange(n) % len(self.design_)]
        return x, x @ self.coef_ + np.sqrt(self.noise_) * rng.standard_normal(n)

    def log_prob(self, data: Any) -> np.ndarray:
        """Gaussian log-density of each label given its inputs."""
        x, y = _pairs(data)
        residual = y - x @ self.coef_
        if self.noise_ == 0:  # noiseless labels: a point mass on the regression line
            return np.where(residual == 0, np.inf, -np.inf)
        return -0.5 * (residual**2 / self.noise_ + np.log(self.noise_) + LOG_2PI)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return as_2d(x, "X") @ self.coef_

    def coefficients(self) -> np.ndarray:
        """The fitted coefficients w (d,)."""
        return self.coef_


class BatchedLinearRegression:
    """All seeds' regressions at once: ``coef_`` is (S, d), ``design_`` (S, D, d).

    Trains on a pair of :class:`SeedBatch` (X (S, n, d), y (S, n)) and returns one.
    """

    def __init__(
        self, *, alpha: float = 0.0, alpha_exponent: float = 0.0, noise: float | None = None
    ) -> None:
        self.alpha = alpha
        self.alpha_exponent = alpha_exponent
        self.noise = noise

    def fit(self, data: tuple[SeedBatch, SeedBatch], *, rng: np.random.Generator) -> Self:
        x = np.asarray(data[0].array, dtype=float)
        y = np.asarray(data[1].array, dtype=float)
        self.coef_, self.noise_ = fit_arrays(
            x, y, alpha=self.alpha, alpha_exponent=self.alpha_exponent, noise=self.noise
        )
        self.design_ = design_block(x).copy()
        return self

    def sample(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> tuple[SeedBatch, SeedBatch]:
        x = self.design_[:, np.arange(n) % self.design_.shape[1]]
        y = np.matmul(x, self.coef_[..., None])[..., 0]
        y += np.sqrt(self.noise_)[:, None] * rng.standard_normal(y.shape)
        return SeedBatch(x), SeedBatch(y)

    def unbatch(self, seed: int) -> LinearRegression:
        """Seed ``seed``'s model as a plain :class:`LinearRegression`."""
        model = LinearRegression(
            alpha=self.alpha, alpha_exponent=self.alpha_exponent, noise=self.noise
        )
        model.coef_ = self.coef_[seed]
        model.noise_ = float(self.noise_[seed])
        model.design_ = self.design_[seed]
        model.n_features_in_ = self.coef_.shape[1]
        return model

    def coefficients(self) -> np.ndarray:
        return self.coef_


LinearRegression.batched_class = BatchedLinearRegression
