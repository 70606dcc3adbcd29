"""Curators: filters, verifiers, detectors, simulated raters and deduplication.

They run on each generation's output before the next generation trains on it, in
the order the config lists them. Importing this package registers them.
"""

from . import dedup, detector, filters

__all__ = ["dedup", "detector", "filters"]
