"""Generative model families, one module each; importing registers them."""

from . import (  # noqa: F401
    categorical,
    ddpm,
    flow,
    gaussian,
    gmm,
    gpt,
    hf,
    kde,
    linreg,
    ngram,
    subliminal,
    vae,
)
from .categorical import BatchedCategorical, Categorical
from .ddpm import DDPM, DDPMImages
from .flow import Flow
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
    "DDPM",
    "GMM",
    "GPT",
    "KDE",
    "VAE",
    "BatchedCategorical",
    "BatchedGaussian",
    "BatchedLinearRegression",
    "BatchedSubliminalMLP",
    "Categorical",
    "DDPMImages",
    "Flow",
    "Gaussian",
    "HFCausalLM",
    "LinearRegression",
    "NGram",
    "SubliminalMLP",
]
