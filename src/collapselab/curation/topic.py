"""Specialisation: keep the documents on a declared topic.

The essays' mitigation "filtering training data to bias towards the more specialised
tasks": each generation trains only on the part of its output that matches a topic.
A topic is a keyword set (see :func:`collapselab.scores.on_topic`); the
``perplexity_topic`` metric measures what specialising costs off the topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..core import Curated, Curator, DataKind, Interval, RealData
from ..errors import InvalidParameterError, parameter_message
from ..registry import register
from ..scores import DEFAULT_TOPIC, KEYWORDS, keywords_problem, on_topic


@register("curator", "topic-filter")
class TopicFilter(Curator):
    """Keep the documents with at least ``min_count`` words of a keyword topic.

    Records ``on_topic_share``, the share of its input on the topic.

    Parameters
    ----------
    keywords : list of str, optional
        The topic; by default a love topic of Shakespeare's speeches
        (:data:`collapselab.scores.DEFAULT_TOPIC`).
    min_count : int, default 1
        Keywords a document must contain (counting repeats).
    """

    applies_to: ClassVar = frozenset({DataKind.TEXT})
    parameter_constraints: ClassVar = {
        "keywords": [KEYWORDS],
        "min_count": [Interval(1, None, integer=True)],
    }

    def __init__(self, *, keywords: Sequence[str] = DEFAULT_TOPIC, min_count: int = 1) -> None:
        self.keywords = keywords
        self.min_count = min_count

    def validate_params(self) -> None:
        super().validate_params()
        problem = keywords_problem(self.keywords)
        if problem is not None:
            raise InvalidParameterError(
                parameter_message("TopicFilter", "keywords", problem, self.keywords)
            )

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
        keep = on_topic(items, self.keywords, self.min_count)
        return Curated.of(items, keep, {"on_topic_share": float(keep.mean())})
