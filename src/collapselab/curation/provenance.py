"""A provenance filter with declared error rates: an oracle, a watermark or a weak detector."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import Curated, Curator, Interval, RealData
from ..registry import register


@register("curator", "provenance")
class Provenance(Curator):
    """Remove what is known to be model output, with declared error rates.

    Each model-written item is flagged (and removed) with probability
    ``true_positive_rate``, each human item with probability ``false_positive_rate``,
    independently. The defaults are a perfect oracle, "never train on AI data"; a
    watermark that some generations strip, or an imperfect detector, is the same
    curator with other rates, so how good detection is becomes a controlled
    variable. It reads each item's true provenance (see
    :class:`~collapselab.core.Curator`): in a chain every item is model output, so
    it removes a ``true_positive_rate`` share of it; in a ``web`` scrape only the
    synthetic pages are.

    Records ``precision`` (share of the removed items that are model output) and
    ``recall`` (share of the model output removed), NaN where undefined.

    Parameters
    ----------
    true_positive_rate : float, default 1.0
        Chance that a model-written item is flagged.
    false_positive_rate : float, default 0.0
        Chance that a human item is flagged.
    """

    parameter_constraints: ClassVar = {
        "true_positive_rate": [Interval(0, 1)],
        "false_positive_rate": [Interval(0, 1)],
    }

    def __init__(
        self, *, true_positive_rate: float = 1.0, false_positive_rate: float = 0.0
    ) -> None:
        self.true_positive_rate = true_positive_rate
        self.false_positive_rate = false_positive_rate

    def __call__(
        self,
        items: Any,
        *,
        reference: RealData,
        rng: np.random.Generator,
        provenance: np.ndarray,
        model: Any = None,
        model_0: Any = None,
    ) -> Curated:
        synthetic = np.asarray(provenance, dtype=bool)
        rate = np.where(synthetic, self.true_positive_rate, self.false_positive_rate)
        flagged = rng.random(len(synthetic)) < rate
        hits = int(np.sum(flagged & synthetic))
        stats = {
            "precision": hits / flagged.sum() if flagged.any() else float("nan"),
            "recall": hits / synthetic.sum() if synthetic.any() else float("nan"),
        }
        return Curated.of(items, ~flagged, stats)
