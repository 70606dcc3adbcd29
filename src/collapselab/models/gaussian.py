"""Multivariate Gaussian with a maximum-likelihood (or unbiased) covariance.

Shumailov et al. (2024) refit the MLE on samples of the previous fit; its variance
shrinks by (n-1)/n per generation in expectation and tends to zero almost surely.
The batched path advances every seed's chain in one vectorized NumPy pass.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from ..core import BOOLEAN, DataKind, GenerativeModel, SeedBatch, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import DataError
from ..regimes import Moments
from ..registry import register

LOG_2PI = np.log(2 * np.pi)


def _sqrt_psd(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0), eigenvectors and a square root of a PSD matrix."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    root = vecs * np.sqrt(vals)[..., None, :]
    return vals, vecs, root


def gaussian_log_prob(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log-density of rows of ``x``; a singular covariance gives -inf off its support."""
    vals, vecs, _ = _sqrt_psd(cov)
    z = (x - mean) @ vecs  # coordinates in the eigenbasis
    positive = vals > 0
    if positive.all():
        quad = np.sum(z**2 / vals, axis=-1)
        return -0.5 * (quad + np.sum(np.log(vals)) + x.shape[-1] * LOG_2PI)
    # Degenerate (collapsed) fit: the density lives on the support of the positive
    # eigen-directions; any real point off it has log-density -inf.
    off = np.any(np.abs(z[:, ~positive]) > 0, axis=-1)
    quad = np.sum(z[:, positive] ** 2 / vals[positive], axis=-1)
    out = -0.5 * (quad + np.sum(np.log(vals[positive])) + positive.sum() * LOG_2PI)
    out = np.where(off, -np.inf, np.inf if positive.sum() == 0 else out)
    return out


@register("model", "gaussian")
class Gaussian(GenerativeModel):
    """Gaussian fitted by maximum likelihood.

    Parameters
    ----------
    unbiased : bool, default False
        Use the n-1 covariance estimator instead of the MLE (divide by n).
    """

    kind = DataKind.CONTINUOUS
    closed_form = "gaussian-mle"
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    parameter_constraints: ClassVar = {"unbiased": [BOOLEAN]}

    def __init__(self, *, unbiased: bool = False) -> None:
        self.unbiased = unbiased

    #: ``fit`` also takes a pool's :class:`~collapselab.regimes.Moments` (see ``accumulate``).
    fits_moments: ClassVar[bool] = True

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        pool = data if isinstance(data, Moments) else Moments.of(data)
        ddof = 1 if self.unbiased else 0
        if pool.count <= ddof:
            raise DataError(f"Gaussian(unbiased=True) needs at least 2 samples; got {pool.count}")
        self.mean_ = pool.mean
        self.cov_ = pool.scatter / (pool.count - ddof)
        self.n_features_in_ = pool.mean.shape[-1]
        return self

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        _, _, root = _sqrt_psd(self.cov_)
        z = rng.standard_normal((n, self.n_features_in_))
        bias = sampling_bias(decoding)
        if bias != 1.0:  # Go MAD's lambda: N(mu, lambda^2 Sigma)
            z *= bias
        return self.mean_ + z @ root.T

    def log_prob(self, data: Any) -> np.ndarray:
        return gaussian_log_prob(as_2d(data), self.mean_, self.cov_)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the fitted distribution."""
        return self.mean_, self.cov_

    def marginal_cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of each coordinate's marginal at ``x`` (n, d)."""
        from scipy.special import ndtr

        sd = np.sqrt(np.diag(self.cov_))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x - self.mean_) / sd
        return np.where(sd > 0, ndtr(z), (x >= self.mean_).astype(float))


class BatchedGaussian:
    """All seeds' Gaussians at once: ``mean_`` is (S, d), ``cov_`` is (S, d, d).

    In one dimension the covariance is a scalar per seed and sampling is a fused
    multiply-add, so a generation costs about one pass over the normal variates.
    """

    def __init__(self, *, unbiased: bool = False) -> None:
        self.unbiased = unbiased

    fits_moments: ClassVar[bool] = True

    def fit(self, data: SeedBatch | Moments, *, rng: np.random.Generator) -> Self:
        pool = data if isinstance(data, Moments) else Moments.of(data)
        ddof = 1 if self.unbiased else 0
        if pool.count <= ddof:
            raise DataError(f"Gaussian(unbiased=True) needs at least 2 samples; got {pool.count}")
        self.mean_ = pool.mean
        self.cov_ = pool.scatter / (pool.count - ddof)
        return self

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> SeedBatch:
        s, d = self.mean_.shape
        z = rng.standard_normal((s, n, d))
        bias = sampling_bias(decoding)
        if bias != 1.0:
            z *= bias
        if d == 1:
            z *= np.sqrt(np.clip(self.cov_[:, :, 0], 0.0, None))[:, :, None]
        else:
            _, _, root = _sqrt_psd(self.cov_)
            z = np.einsum("snj,sij->sni", z, root)
        z += self.mean_[:, None, :]
        return SeedBatch(z)

    def unbatch(self, seed: int) -> Gaussian:
        """Seed ``seed``'s model as a plain :class:`Gaussian`."""
        model = Gaussian(unbiased=self.unbiased)
        model.mean_ = self.mean_[seed]
        model.cov_ = self.cov_[seed]
        model.n_features_in_ = self.mean_.shape[1]
        return model

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean_, self.cov_


Gaussian.batched_class = BatchedGaussian
