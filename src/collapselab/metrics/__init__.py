"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import continuous, images, supervised, tasks, text

__all__ = ["continuous", "images", "supervised", "tasks", "text"]
