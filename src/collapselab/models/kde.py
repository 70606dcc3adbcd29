"""Kernel density estimate (scikit-learn ``KernelDensity``).

A KDE's samples are training points plus kernel noise, so its variance grows by
h^2 per generation under ``replace`` while its support drifts: collapse shows up as
lost tails and lost modes rather than shrinking variance.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from ..core import DataKind, GenerativeModel, Interval, Options, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..registry import register


@register("model", "kde")
class KDE(GenerativeModel):
    """Gaussian (or top-hat) kernel density estimate.

    Parameters
    ----------
    bandwidth : float or {"scott", "silverman"}, default "scott"
    kernel : {"gaussian", "tophat"}, default "gaussian"
    """

    kind = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    #: ``marginal_cdf`` has a closed form for the Gaussian kernel only; with
    #: ``kernel: tophat`` it raises ``NotImplementedError`` (callers fall back to sampling).
    provides: ClassVar[frozenset[str]] = frozenset({"moments", "marginal_cdf"})
    parameter_constraints: ClassVar = {
        "bandwidth": [Interval(0, None, closed="neither"), Options(("scott", "silverman"))],
        "kernel": [Options(("gaussian", "tophat"))],
    }

    def __init__(self, *, bandwidth: float | str = "scott", kernel: str = "gaussian") -> None:
        self.bandwidth = bandwidth
        self.kernel = kernel

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        from sklearn.neighbors import KernelDensity

        x = as_2d(data)
        kde = KernelDensity(bandwidth=self.bandwidth, kernel=self.kernel).fit(x)
        self.density_ = kde
        self.bandwidth_ = float(kde.bandwidth_)
        self.data_ = x
        return self

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        x = self.data_
        centers = x[rng.integers(0, x.shape[0], size=n)]
        d = x.shape[1]
        h = self.bandwidth_ * sampling_bias(decoding)  # lambda shrinks toward each centre
        if self.kernel == "gaussian":
            return centers + h * rng.standard_normal((n, d))
        # Uniform in the ball of radius h: direction times radius h * U^(1/d).
        direction = rng.standard_normal((n, d))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = h * rng.random(n) ** (1.0 / d)
        return centers + direction * radius[:, None]

    def log_prob(self, data: Any) -> np.ndarray:
        return self.density_.score_samples(as_2d(data))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the KDE: data covariance plus the kernel's."""
        x = self.data_
        d = x.shape[1]
        mean = x.mean(axis=0)
        cov = np.cov(x, rowvar=False, ddof=0).reshape(d, d)
        kernel_var = (
            self.bandwidth_**2 if self.kernel == "gaussian" else self.bandwidth_**2 / (d + 2)
        )
        return mean, cov + kernel_var * np.eye(d)

    def marginal_cdf(self, x: np.ndarray) -> np.ndarray:
        if self.kernel != "gaussian":
            raise NotImplementedError
        from scipy.special import ndtr

        return ndtr((x[:, None, :] - self.data_[None]) / self.bandwidth_).mean(axis=1)
