"""Metrics: fidelity, tails and diversity; importing registers them."""

from . import continuous

__all__ = ["continuous"]
