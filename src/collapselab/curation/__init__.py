"""Curators: filters, verifiers, detectors, simulated raters, provenance and deduplication.

They run on each generation's output (or on a web scrape) before it is trained on,
in the order the config lists them, through :func:`collapselab.core.curate`.
Importing this package registers them.
"""

from . import dedup, detector, filters, provenance

__all__ = ["dedup", "detector", "filters", "provenance"]
