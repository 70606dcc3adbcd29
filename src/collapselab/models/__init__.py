"""Generative model families, one module each; importing registers them."""

from . import categorical, gaussian, gmm, gpt, hf, kde, linreg, ngram, subliminal, vae  # noqa: F401
from .categorical import BatchedCategorical, Categorical
from .gaussian import BatchedGaussian, Gaussian
from .gmm import GMM
from .gpt import GPT
from .hf import HFCausalLM
from .kde import KDE
from .linreg import BatchedLinearRegression, LinearRegression
from .ngram import NGram
from .subliminal import BatchedSubliminalMLP, SubliminalMLP
from .vae import VAE

__all__ = [
    "GMM",
    "GPT",
    "KDE",
    "VAE",
    "BatchedCategorical",
    "BatchedGaussian",
    "BatchedLinearRegression",
    "BatchedSubliminalMLP",
    "Categorical",
    "Gaussian",
    "HFCausalLM",
    "LinearRegression",
    "NGram",
    "SubliminalMLP",
]
