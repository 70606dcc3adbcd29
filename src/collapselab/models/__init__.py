"""Generative model families, one module each; importing registers them."""

from . import categorical, gaussian, gmm, kde, linreg, ngram  # noqa: F401
from .categorical import BatchedCategorical, Categorical
from .gaussian import BatchedGaussian, Gaussian
from .gmm import GMM
from .kde import KDE
from .linreg import BatchedLinearRegression, LinearRegression
from .ngram import NGram

__all__ = [
    "GMM",
    "KDE",
    "BatchedCategorical",
    "BatchedGaussian",
    "BatchedLinearRegression",
    "Categorical",
    "Gaussian",
    "LinearRegression",
    "NGram",
]
