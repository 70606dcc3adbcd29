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
        if isinstance(data, DrawnBatch):
            return data.moments
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


class DrawnBatch(SeedBatch):
    """Samples of every seed ``mean + z @ root^T`` drawn from standard normals ``z``,
    with their :class:`Moments` computed from ``z`` as they were drawn, and the values
    themselves formed only when :attr:`array` is first read.

    The moments are those of ``array`` up to rounding, and better conditioned: ``z``
    is centred at 0 with unit scale whatever the model's mean and spread, so no
    cancellation occurs, even for a chain collapsed far below its mean's magnitude
    (``array`` itself is rounded at the mean's scale). Computing them from ``z``
    also spares the two passes over ``array`` that centring it took (its mean, then
    the deviations).

    A chain whose next fit reads only the moments (the ``replace`` regime) and whose
    metrics read only the model never reads ``array``: it then costs neither the
    product ``z @ root^T`` nor the added mean (a sixth of a generation at S = 1000,
    n = 100, d = 10). Read (by a metric of the samples, a snapshot, a saved
    generation), ``array`` holds the same values as when it was formed eagerly,
    and is read-only, so it cannot drift from its moments; forming it then reads
    ``z`` back from memory, about 4 ms more than forming it while ``z`` was in
    cache (3% of such a generation with ``wasserstein``). A pickled batch (a
    checkpoint) keeps ``z`` or the values, whichever it holds.
    """

    def __init__(
        self, normals: np.ndarray, mean: np.ndarray, root: np.ndarray, moments: Moments
    ) -> None:
        self.moments = moments
        self._normals: np.ndarray | None = normals
        self._mean, self._root = mean, root
        self._array: np.ndarray | None = None
        self._shape = normals.shape

    @property
    def array(self) -> np.ndarray:  # type: ignore[override]  # SeedBatch's field, formed on read
        if self._array is None:
            assert self._normals is not None
            x = self._normals @ np.swapaxes(self._root, 1, 2)
            x += self._mean[:, None, :]
            x.flags.writeable = False
            self._array, self._normals = x, None  # z is not needed again
        return self._array

    @property
    def n_seeds(self) -> int:
        return int(self._shape[0])

    @property
    def n_items(self) -> int:
        return int(self._shape[1])

    @classmethod
    def gaussian(
        cls, n: int, mean: np.ndarray, root: np.ndarray, *, scale: float, rng: np.random.Generator
    ) -> DrawnBatch:
        """``n`` samples ``mean[s] + scale z @ root[s]^T`` of every seed ``s`` (``mean``
        (S, d), ``root`` (S, d, d)), ``z`` standard normal: the same values, in the same
        order, as drawing ``z`` (S, n, d) at once. Seed ``s``'s moments are
        ``mean[s] + root[s] zbar`` and ``root[s] (Z^T Z - n zbar zbar^T) root[s]^T``
        (with ``scale z`` for ``z``).

        Seeds go in blocks of :data:`_BLOCK_VALUES` normals: each block is drawn and
        reduced while it is in a core's cache, not in one pass over every seed's
        normals per step.
        """
        s, d = mean.shape
        z = np.empty((s, n, d))
        scatter = np.empty((s, d, d))
        zbar = np.empty((s, 1, d))
        rows = max(1, _BLOCK_VALUES // max(1, n * d))
        ones = np.ones((1, n))
        for start in range(0, s, rows):
            seeds = slice(start, min(start + rows, s))
            block = z[seeds]
            rng.standard_normal(out=block)
            if scale != 1.0:
                block *= scale
            np.matmul(ones, block, out=zbar[seeds])  # a batched product: 7x a strided sum
            np.matmul(np.swapaxes(block, 1, 2), block, out=scatter[seeds])
        zbar /= n
        scatter -= n * (np.swapaxes(zbar, 1, 2) * zbar)
        scatter = root @ scatter @ np.swapaxes(root, 1, 2)
        scatter += np.swapaxes(scatter, 1, 2)  # exactly symmetric, as a covariance is
        scatter *= 0.5
        moments = Moments(n, mean + (zbar @ np.swapaxes(root, 1, 2))[:, 0, :], scatter)
        return cls(z, mean, root, moments)


#: Values per block of :meth:`DrawnBatch.gaussian`: 512 KiB of float64 (half a core's L2 cache).
_BLOCK_VALUES = 65_536


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
