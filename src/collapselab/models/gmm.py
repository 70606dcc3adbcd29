"""Gaussian mixture model (scikit-learn ``GaussianMixture``), as in Shumailov et al."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Self

import numpy as np

from ..core import DataKind, GenerativeModel, Interval, Options, as_2d
from ..decoding import CONTINUOUS_CONTROLS, sampling_bias
from ..errors import DataError
from ..registry import register
from ..rng import child_seed


@register("model", "gmm")
class GMM(GenerativeModel):
    """Gaussian mixture fitted by EM.

    Parameters
    ----------
    n_components : int, default 2
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 1e-6
        Added to covariance diagonals; keeps a collapsing mixture fittable.
    max_iter : int, default 100
    tol : float, default 1e-3
        EM's convergence threshold on the lower bound's gain (scikit-learn's default;
        the Shumailov et al. notebook uses 1e-5).
    n_init : int, default 1
    init_params : {"k-means++", "kmeans", "random_from_data", "random"}, default "k-means++"
        How EM starts. ``k-means++`` seeding costs a fraction of a full k-means
        run and matters little here: each generation starts from data that the
        previous mixture generated.
    """

    kind = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = CONTINUOUS_CONTROLS
    provides: ClassVar[frozenset[str]] = frozenset({"moments", "marginal_cdf"})
    parameter_constraints: ClassVar = {
        "n_components": [Interval(1, None, integer=True)],
        "covariance_type": [Options(("full", "tied", "diag", "spherical"))],
        "reg_covar": [Interval(0, None)],
        "max_iter": [Interval(1, None, integer=True)],
        "tol": [Interval(0, None, closed="neither")],
        "n_init": [Interval(1, None, integer=True)],
        "init_params": [Options(("k-means++", "kmeans", "random_from_data", "random"))],
    }

    def __init__(
        self,
        *,
        n_components: int = 2,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        tol: float = 1e-3,
        n_init: int = 1,
        init_params: str = "k-means++",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params

    def min_samples(self) -> int:
        return self.n_components

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        x = as_2d(data)
        if x.shape[0] < self.n_components:
            raise DataError(
                f"GMM with n_components={self.n_components} needs at least that many samples; "
                f"got {x.shape[0]}"
            )
        gm = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=self.n_init,
            init_params=self.init_params,
            random_state=child_seed(rng),
        )
        with warnings.catch_warnings():
            # A collapsing chain converges to duplicate points; that is a result.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(x)
        self.mixture_ = gm
        self.weights_ = gm.weights_
        self.means_ = gm.means_
        self.covariances_ = self._full_covariances(gm, x.shape[1])
        return self

    def _full_covariances(self, gm: Any, d: int) -> np.ndarray:
        k = self.n_components
        cov = gm.covariances_
        if self.covariance_type == "full":
            return cov
        if self.covariance_type == "tied":
            return np.broadcast_to(cov, (k, d, d)).copy()
        if self.covariance_type == "diag":
            return np.stack([np.diag(c) for c in cov])
        return np.stack([np.eye(d) * c for c in cov])

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        bias = sampling_bias(decoding)
        counts = rng.multinomial(n, self.weights_ / self.weights_.sum())
        parts = []
        for k, count in enumerate(counts):
            chol = np.linalg.cholesky(self.covariances_[k])
            z = rng.standard_normal((count, self.means_.shape[1]))
            if bias != 1.0:  # Go MAD's lambda: shrink toward each component's mode
                z *= bias
            parts.append(self.means_[k] + z @ chol.T)
        out = np.concatenate(parts, axis=0)
        return out[rng.permutation(n)]

    def log_prob(self, data: Any) -> np.ndarray:
        return self.mixture_.score_samples(as_2d(data))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the mixture (law of total covariance)."""
        w = self.weights_
        mean = w @ self.means_
        dev = self.means_ - mean
        cov = np.einsum("k,kij->ij", w, self.covariances_) + np.einsum("k,ki,kj->ij", w, dev, dev)
        return mean, cov

    def marginal_cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr

        sd = np.sqrt(np.einsum("kii->ki", self.covariances_))  # (k, d)
        z = (x[:, None, :] - self.means_[None]) / sd[None]
        return np.einsum("k,nkd->nd", self.weights_, ndtr(z))
