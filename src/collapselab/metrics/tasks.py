"""Metrics of a verifiable task: validity of the output, coverage of its rare range, and
accuracy on held-out prompts.

``valid_fraction`` checks the model's own output, which a collapsed model repeating
one correct statement passes in full; ``heldout_accuracy`` asks the model to answer
held-out real prompts (``37+48=`` -> its result), the test on which the claim that
curated synthetic data improves a model rests (Feng et al. 2024); read both beside
the diversity of the output (``types``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .. import registry
from ..core import (
    BOOLEAN,
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Quantity,
    RealData,
)
from ..decoding import Decoding
from ..errors import ConfigError
from ..registry import register

TEXT = frozenset({DataKind.TEXT})


def _task(reference: RealData) -> Any:
    source = reference.source
    if source is None or "verify" not in type(source).provides:
        raise ConfigError(
            "this metric needs a task data source with an exact check (data id 'arithmetic')"
        )
    return source


def _example() -> RealData:
    source = registry.make("data", "arithmetic", rare_fraction=0.3)
    return source.load(n=200, rng=np.random.default_rng(0))


@register("metric", "valid_fraction")
class ValidFraction(Metric):
    """Share of model t's output that passes the task's exact check.

    No healthy end on its own: a model that has collapsed onto a few correct
    statements scores 1 (verifier-arith: 0.107 -> 1.0 while types fall 319 -> 90). Read
    it beside ``heldout_accuracy`` and ``types``.
    """

    applies_to = TEXT
    example = staticmethod(_example)
    label = "share of the output that is a correct statement"
    unit = "share"
    direction = Direction.NEUTRAL
    quantity = Quantity.VALIDITY
    share = True
    headline = 4

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
    """Share of the rare operand range covered by model t's correct output.

    The rare range is the operands ``(max_operand, rare_max]`` of the task; a value is
    covered when it is an operand of at least one correct statement of the output. It
    lies in [0, 1] (1: every rare operand still appears in a correct statement) and
    depends on the output's size, as ``types`` does: with 500 statements of which 10%
    are rare, at most 50 of the 900 rare values can appear.
    """

    applies_to = TEXT
    example = staticmethod(_example)
    label = "share of the rare operand range in correct output"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.TAILS
    share = True
    headline = 100

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        task = _task(reference)
        if not len(synthetic):
            return float("nan")
        low, high = task.rare_range
        operands = task.operands(synthetic)[task.verify(synthetic)].ravel()
        rare = np.unique(operands[(operands >= low) & (operands <= high)])
        return float(len(rare) / (high - low + 1))


@register("metric", "heldout_accuracy")
class HeldoutAccuracy(Metric):
    """Share of held-out real prompts (``37+48=``) that model t completes correctly.

    The prompts are the real test statements whose question never occurs in the real
    training data (at most ``n_prompts`` of them, in test order); the model continues
    each one up to the end token it samples (its ``complete`` capability), and a
    completion counts when it is exactly the answer. ``greedy`` takes the most
    probable continuation (temperature 0: "its answer"); otherwise the completion is
    sampled from the model, and the value estimates its probability of answering
    correctly. NaN when no prompt is held out.
    """

    applies_to = TEXT
    requires: ClassVar[tuple[str, ...]] = ("complete",)
    example = staticmethod(_example)
    parameter_constraints: ClassVar = {
        "n_prompts": [Interval(1, None, integer=True)],
        "greedy": [BOOLEAN],
    }
    label = "accuracy on held-out prompts (a+b= -> answer)"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.VALIDITY
    share = True
    headline = 3

    def __init__(self, *, n_prompts: int = 200, greedy: bool = True) -> None:
        self.n_prompts = n_prompts
        self.greedy = greedy

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        task = _task(reference)
        prompts, answers = reference.cached("heldout_prompts", task.heldout_prompts)
        prompts, answers = prompts[: self.n_prompts], answers[: self.n_prompts]
        if not prompts:
            return float("nan")
        decoding = Decoding(temperature=0.0) if self.greedy else None
        completions = model.complete(prompts, rng=rng, decoding=decoding)
        return float(np.mean([c.strip() == a for c, a in zip(completions, answers, strict=True)]))
