"""Multivariate Gaussian with a maximum-likelihood (or unbiased) covariance.

Shumailov et al. (2024) refit the MLE on samples of the previous fit; its variance
shrinks by (n-1)/n per generation in expectation and tends to zero almost surely.
The batched path advances every seed's chain in one vectorized NumPy pass, with the
same fit (:class:`~collapselab.stats.Moments` carry the seed axis).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from ..core import BOOLEAN, BatchedModel, Constraint, DataKind, GenerativeModel, SeedBatch, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import DataError
from ..registry import register
from ..stats import DrawnBatch, Moments, gaussian_log_prob, sqrt_psd


class _GaussianFit:
    """What the per-seed and batched Gaussians share: the parameter and the fit."""

    parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {"unbiased": [BOOLEAN]}

    def __init__(self, *, unbiased: bool = False) -> None:
        self.unbiased = unbiased

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        """Fit on samples ((n, d), or a :class:`SeedBatch`) or on a pool's :class:`Moments`."""
        pool = data if isinstance(data, Moments) else Moments.of(data)
        ddof = 1 if self.unbiased else 0
        if pool.count <= ddof:
            raise DataError(
                f"Gaussian(unbiased={self.unbiased}) needs at least {ddof + 1} sample"
                f"{'s' if ddof else ''} to fit; got {pool.count}"
            )
        self.mean_ = pool.mean
        self.cov_ = pool.scatter / (pool.count - ddof)
        self.n_features_in_ = pool.mean.shape[-1]
        return self

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the fitted distribution (with a seed axis when batched)."""
        return self.mean_, self.cov_


@register("model", "gaussian")
class Gaussian(_GaussianFit, GenerativeModel):
    """Gaussian fitted by maximum likelihood.

    ``fit`` also takes a pool's :class:`~collapselab.stats.Moments` (see ``accumulate``).

    Parameters
    ----------
    unbiased : bool, default False
        Use the n-1 covariance estimator instead of the MLE (divide by n).
    """

    kind = DataKind.CONTINUOUS
    closed_form = "gaussian-mle"
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    fits_moments: ClassVar[bool] = True
    provides: ClassVar[frozenset[str]] = frozenset({"moments", "marginal_cdf"})

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        _, _, root = sqrt_psd(self.cov_)
        z = rng.standard_normal((n, self.n_features_in_))
        bias = sampling_bias(decoding)
        if bias != 1.0:  # Go MAD's lambda: N(mu, lambda^2 Sigma)
            z *= bias
        return self.mean_ + z @ root.T

    def log_prob(self, data: Any) -> np.ndarray:
        return gaussian_log_prob(as_2d(data), self.mean_, self.cov_)

    def marginal_cdf(self, x: np.ndarray) -> np.ndarray:
        """CDF of each coordinate's marginal at ``x`` (n, d)."""
        from scipy.special import ndtr

        sd = np.sqrt(np.diag(self.cov_))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x - self.mean_) / sd
        return np.where(sd > 0, ndtr(z), (x >= self.mean_).astype(float))


class BatchedGaussian(_GaussianFit, BatchedModel):
    """All seeds' Gaussians at once: ``mean_`` is (S, d), ``cov_`` is (S, d, d).

    In one dimension the covariance is a scalar per seed and sampling is a fused
    multiply-add, so a generation costs about one pass over the normal variates. In
    d dimensions a sample carries its moments, computed from the standard normals it
    was drawn from (:class:`~collapselab.stats.DrawnBatch`), so the next fit does not
    centre the samples again.
    """

    provides: ClassVar[frozenset[str]] = frozenset({"moments", "gaussian"})
    #: A square root ``R`` (``R R^T = cov_``) of every seed's covariance, (S, d, d), kept
    #: by :meth:`sufficient_refit`, whose refit's root is the old one times Bartlett's
    #: factor; ``None`` (a fit): factored when needed.
    cov_root_: np.ndarray | None = None

    def _root(self) -> np.ndarray:
        return _batched_root(self.cov_) if self.cov_root_ is None else self.cov_root_

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> SeedBatch:
        s, d = self.mean_.shape
        bias = sampling_bias(decoding)
        if d > 1:  # the next fit's moments come with the draws (see DrawnBatch)
            return DrawnBatch.gaussian(n, self.mean_, self._root(), scale=bias, rng=rng)
        z = rng.standard_normal((s, n, d))
        if bias != 1.0:
            z *= bias
        z *= np.sqrt(np.clip(self.cov_[:, :, 0], 0.0, None))[:, :, None]
        z += self.mean_[:, None, :]
        return SeedBatch(z)

    refits_exactly = True

    def sufficient_refit(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> BatchedGaussian:
        """Every seed refitted on ``n`` of its own samples, drawn through the fit's
        sufficient statistics: the sample mean ~ N(mu, lambda^2 Sigma / n) and, independent
        of it, the scatter ~ lambda^2 Wishart(n - 1, Sigma) (in 1-D, lambda^2 sigma^2
        chi^2(n - 1)), where lambda is the decoding's sampling bias (1 without one)."""
        ddof = 1 if self.unbiased else 0
        if n <= ddof:
            raise DataError(
                f"Gaussian(unbiased={self.unbiased}) needs at least {ddof + 1} samples to fit; "
                f"got {n}"
            )
        s, d = self.mean_.shape
        bias = sampling_bias(decoding)
        if d == 1:  # few passes over S numbers: this path is about the RNG's cost
            var = np.maximum(self.cov_[:, 0, 0], 0.0)
            if bias != 1.0:
                var = var * bias**2
            shift = rng.standard_normal((s,))
            shift *= np.sqrt(var / n)
            mean = self.mean_ + shift[:, None]
            # chi^2(n - 1) = 2 Gamma((n - 1) / 2): the same draws as rng.chisquare
            gamma = rng.standard_gamma((n - 1) / 2, size=s) if n > 1 else np.zeros(s)
            gamma *= 2 * var / (n - ddof)
            cov, root = gamma[:, None, None], None
        else:
            root = self._root()
            if bias != 1.0:
                root = root * bias
            z = rng.standard_normal((s, d, 1))
            mean = self.mean_ + (root @ z)[:, :, 0] / np.sqrt(n)
            factor = root @ _wishart_factor(n - 1, s, d, rng)
            factor /= np.sqrt(n - ddof)
            cov = factor @ np.swapaxes(factor, 1, 2)
            # a square R A is a root of the refit's covariance (lower triangular, so its
            # Cholesky factor, when R is one); below d degrees of freedom it is d x df
            root = factor if factor.shape[2] == d else None
        refit = BatchedGaussian(unbiased=self.unbiased)
        refit.mean_, refit.cov_, refit.cov_root_ = mean, cov, root
        refit.n_features_in_ = d
        return refit

    def unbatch(self, seed: int) -> Gaussian:
        """Seed ``seed``'s model as a plain :class:`Gaussian`."""
        model = Gaussian(unbiased=self.unbiased)
        model.mean_ = self.mean_[seed]
        model.cov_ = self.cov_[seed]
        model.n_features_in_ = self.n_features_in_
        return model


def _batched_root(cov: np.ndarray) -> np.ndarray:
    """A square root ``R`` (``R R^T = cov``) of every seed's covariance: Cholesky
    factors (20x faster than eigendecompositions of a stack of 10 x 10 matrices), or
    the PSD root of :func:`~collapselab.stats.sqrt_psd` when some covariance is
    singular (a collapsed chain), which Cholesky cannot factor."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return sqrt_psd(cov)[2]


def _wishart_factor(df: int, s: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``s`` matrices ``A`` (d x d) with ``A A^T`` ~ Wishart(df, I_d): Bartlett's lower
    triangular factor (chi variates on the diagonal, normals below) where df >= d, and
    the df x d normal matrix itself (a singular Wishart) below that."""
    if df < d:
        return np.swapaxes(rng.standard_normal((s, df, d)), 1, 2)
    factor = np.zeros((s, d * d))  # flat: indexing one axis is cheaper than two
    below = np.tril_indices(d, k=-1)
    factor[:, below[0] * d + below[1]] = rng.standard_normal((s, len(below[0])))
    diagonal = np.arange(d)
    factor[:, diagonal * (d + 1)] = np.sqrt(rng.chisquare(df - diagonal, size=(s, d)))
    return factor.reshape(s, d, d)


Gaussian.batched_class = BatchedGaussian
