"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import classifier, continuous, images, supervised, tasks, text

__all__ = ["classifier", "continuous", "images", "supervised", "tasks", "text"]
