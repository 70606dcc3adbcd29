"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import continuous, supervised, tasks, text

__all__ = ["continuous", "supervised", "tasks", "text"]
