"""Real data sources and synthetic ground truths; importing registers them."""

from . import continuous, images, supervised, tasks, text, vectors  # noqa: F401
from .continuous import GaussianTruth, ShapeSource, TableSource

__all__ = ["GaussianTruth", "ShapeSource", "TableSource"]
