"""Metrics of specialisation: perplexity on and off a declared topic, and the output's topic.

A topic is a keyword set (:func:`collapselab.scores.on_topic`). ``perplexity_topic``
is ``perplexity_real`` restricted to the real test documents on the topic
(``side: in``, or the variant ``perplexity_in_topic``) or off it (``side: out``,
``perplexity_out_topic``): specialising a model on a topic should lower the first
and may raise the second. ``topic_share`` is the share of model t's
own documents on the topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..core import (
    DataKind,
    Direction,
    Interval,
    Metric,
    Options,
    Quantity,
    RealData,
)
from ..errors import InvalidParameterError, parameter_message
from ..registry import register
from ..scores import DEFAULT_TOPIC, KEYWORDS, keywords_problem, on_topic
from .text import FLOOR, floored, register_variant

TEXT = frozenset({DataKind.TEXT})


def _example() -> RealData:
    """Short documents, a third of them on the default (love) topic."""
    on = ["my love is a rose", "the lover sighs for love", "a kiss for my sweet love"]
    off = ["the ship sails at dawn", "the king rides to war", "a storm is on the sea"]
    docs = [(on + off + off)[i % 9] for i in range(90)]
    return RealData(train=docs[:60], test=docs[60:], kind=DataKind.TEXT)


class _TopicParams:
    """The keyword topic of a metric and its check."""

    keywords: Any

    def validate_params(self) -> None:
        super().validate_params()  # type: ignore[misc]
        problem = keywords_problem(self.keywords)
        if problem is not None:
            raise InvalidParameterError(
                parameter_message(type(self).__name__, "keywords", problem, self.keywords)
            )


@register("metric", "perplexity_topic")
class PerplexityTopic(_TopicParams, Metric):
    """Perplexity of the real test documents on (``side: in``) or off (``out``) a topic.

    As ``perplexity_real`` (every token charged, a token of probability 0 scored at
    the declared ``floor``), over the test documents with at least ``min_count``
    keywords (``in``) or fewer (``out``). NaN when the test split has no such document.

    Parameters
    ----------
    keywords : list of str, optional
        The topic; by default :data:`collapselab.scores.DEFAULT_TOPIC` (love).
    min_count : int, default 1
    side : {"in", "out"}, default "in"
    floor : float, default 1e-6
    """

    applies_to = TEXT
    requires: ClassVar[tuple[str, ...]] = ("token_log_probs",)
    example = staticmethod(_example)
    parameter_constraints: ClassVar = {
        "keywords": [KEYWORDS],
        "min_count": [Interval(1, None, integer=True)],
        "side": [Options(("in", "out"))],
        "floor": [Interval(0, 1, closed="neither")],
    }
    label = "perplexity of {side}-topic real test documents, floor {floor:g} (per token)"
    unit = "per token"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 9

    def __init__(
        self,
        *,
        keywords: Sequence[str] = DEFAULT_TOPIC,
        min_count: int = 1,
        side: str = "in",
        floor: float = FLOOR,
    ) -> None:
        self.keywords = keywords
        self.min_count = min_count
        self.side = side
        self.floor = floor

    def _documents(self, reference: RealData) -> list[str]:
        def compute(ref: RealData) -> list[str]:
            inside = on_topic(ref.test, self.keywords, self.min_count)
            wanted = inside if self.side == "in" else ~inside
            return [doc for doc, keep in zip(ref.test, wanted, strict=True) if keep]

        key = f"topic_{self.side}_{self.min_count}_{sorted(self.keywords)}"
        return reference.cached(key, compute)

    def __call__(
        self,
        model: Any,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        docs = self._documents(reference)
        if not docs:
            return float("nan")
        logp = floored(np.asarray(model.token_log_probs(docs), dtype=float), self.floor)
        return float(np.exp(-logp.mean()))


register_variant("perplexity_in_topic", PerplexityTopic, side="in")
register_variant("perplexity_out_topic", PerplexityTopic, side="out")


@register("metric", "topic_share")
class TopicShare(_TopicParams, Metric):
    """Share of model t's documents on a topic (at least ``min_count`` keywords).

    A diagnostic: a specialised chain drives it up, which is its purpose, not health.

    Parameters
    ----------
    keywords : list of str, optional
        The topic; by default :data:`collapselab.scores.DEFAULT_TOPIC` (love).
    min_count : int, default 1
    """

    applies_to = TEXT
    example = staticmethod(_example)
    parameter_constraints: ClassVar = {
        "keywords": [KEYWORDS],
        "min_count": [Interval(1, None, integer=True)],
    }
    label = "share of the output on the topic"
    unit = "share"
    direction = Direction.NEUTRAL
    quantity = Quantity.OTHER
    share = True

    def __init__(self, *, keywords: Sequence[str] = DEFAULT_TOPIC, min_count: int = 1) -> None:
        self.keywords = keywords
        self.min_count = min_count

    def __call__(
        self,
        model: Any,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        if not len(synthetic):
            return float("nan")
        return float(on_topic(synthetic, self.keywords, self.min_count).mean())
