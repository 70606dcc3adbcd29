"""Metrics of a verifiable task: accuracy of generated statements and rare coverage."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import DataKind, GenerativeModel, Metric, RealData
from ..errors import ConfigError
from ..registry import register


def _task(reference: RealData) -> Any:
    source = reference.source
    if source is None or not hasattr(source, "verify"):
        raise ConfigError(
            "this metric needs a task data source with an exact check (data id 'arithmetic')"
        )
    return source


def _example() -> RealData:
    from ..data.tasks import Arithmetic

    source = Arithmetic(rare_fraction=0.3)
    return source.load(n=200, rng=np.random.default_rng(0))


@register("metric", "valid_fraction")
class ValidFraction(Metric):
    """Share of model t's output that passes the task's exact check (its accuracy)."""

    applies_to = frozenset({DataKind.TEXT})
    example = staticmethod(_example)

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        return (
            float(np.mean(_task(reference).verify(synthetic))) if len(synthetic) else float("nan")
        )


@register("metric", "rare_operand_coverage")
class RareOperandCoverage(Metric):
    """Share of model t's output that is correct *and* uses a rare operand, divided by
    the same share in the real data: 1 when the rare range is covered as in the real
    data, 0 once it is lost."""

    applies_to = frozenset({DataKind.TEXT})
    example = staticmethod(_example)

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        task = _task(reference)
        real = reference.cached("rare_share", lambda r: float(np.mean(task.is_rare(r.train))))
        if not len(synthetic) or real == 0:
            return float("nan")
        share = np.mean(task.verify(synthetic) & task.is_rare(synthetic))
        return float(share / real)
