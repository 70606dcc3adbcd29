"""Curators: filters, verifiers, detectors, simulated raters, provenance, deduplication,
choice by reward, correction by an expert and topic filters.

They run on each generation's output (or on a web scrape) before it is trained on,
in the order the config lists them, through :func:`collapselab.core.curate`.
Importing this package registers them.
"""

from . import correct, dedup, detector, filters, provenance, reward, topic

__all__ = ["correct", "dedup", "detector", "filters", "provenance", "reward", "topic"]
