"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import classifier, continuous, diffusion, images, supervised, tasks, text

__all__ = ["classifier", "continuous", "diffusion", "images", "supervised", "tasks", "text"]
