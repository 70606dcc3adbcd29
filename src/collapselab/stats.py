"""Shared statistics: pooled moments, a PSD square root and the Gaussian log-density.

A leaf module: models (Gaussian), data sources (Gaussian truths), metrics and regimes
(``accumulate`` keeps a pool's :class:`Moments`) use these without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import SeedBatch, as_2d, length

LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a pool of continuous samples, for models that fit from them.

    ``mean`` is (d,) and ``scatter`` (the sum of outer products of deviations from
    the mean) is (d, d); on the batched path both carry a leading seed axis.
    Pools combine exactly (Chan et al.'s pairwise update), so ``accumulate`` needs
    memory constant in the number of generations instead of every sample.
    """

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, data: Any) -> Moments:
        """The moments of ``data``: an (n, d) array or a :class:`~collapselab.core.SeedBatch`."""
        if isinstance(data, SeedBatch):
            x = np.asarray(data.array, dtype=float)
            mean = x.mean(axis=1)
            centered = x - mean[:, None, :]
            if x.shape[2] == 1:  # as fast as matmul in 1-D, and the same bits as ever
                scatter = np.einsum("sni,snj->sij", centered, centered)
            else:  # batched BLAS: an unoptimized einsum was 8x slower at d = 10
                scatter = np.swapaxes(centered, 1, 2) @ centered
            return cls(x.shape[1], mean, scatter)
        if length(data) == 0:  # an output its curators rejected whole adds nothing
            shape = np.shape(data)
            d = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            return cls(0, np.zeros(d), np.zeros((d, d)))
        x = as_2d(data)
        mean = x.mean(axis=0)
        centered = x - mean
        return cls(x.shape[0], mean, centered.T @ centered)

    def combine(self, other: Moments) -> Moments:
        """The moments of both pools together."""
        count = self.count + other.count
        if not self.count or not other.count:  # an empty pool adds nothing
            return other if not self.count else self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        outer = delta[..., :, None] * delta[..., None, :]
        scatter = self.scatter + other.scatter + outer * (self.count * other.count / count)
        return Moments(count, mean, scatter)


def sqrt_psd(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0), eigenvectors and a square root of a PSD matrix
    (or of a stack of them, along the leading axes)."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    root = vecs * np.sqrt(vals)[..., None, :]
    return vals, vecs, root


def gaussian_log_prob(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log-density of rows of ``x``; a singular covariance gives -inf off its support."""
    vals, vecs, _ = sqrt_psd(cov)
    z = (x - mean) @ vecs  # coordinates in the eigenbasis
    positive = vals > 0
    if positive.all():
        quad = np.sum(z**2 / vals, axis=-1)
        return np.asarray(-0.5 * (quad + np.sum(np.log(vals)) + x.shape[-1] * LOG_2PI))
    # Degenerate (collapsed) fit: the density lives on the support of the positive
    # eigen-directions; any real point off it has log-density -inf.
    off = np.any(np.abs(z[:, ~positive]) > 0, axis=-1)
    quad = np.sum(z[:, positive] ** 2 / vals[positive], axis=-1)
    out = -0.5 * (quad + np.sum(np.log(vals[positive])) + positive.sum() * LOG_2PI)
    return np.where(off, -np.inf, np.inf if positive.sum() == 0 else out)
