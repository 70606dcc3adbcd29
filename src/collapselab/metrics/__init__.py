"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import continuous, fluency, images, supervised, tasks, text

__all__ = ["continuous", "fluency", "images", "supervised", "tasks", "text"]
