"""Generative model families, one module each; importing registers them."""

from . import gaussian, gmm, kde  # noqa: F401
from .gaussian import BatchedGaussian, Gaussian
from .gmm import GMM
from .kde import KDE

__all__ = ["GMM", "KDE", "BatchedGaussian", "Gaussian"]
