"""A verifiable task domain: short arithmetic statements such as ``37+48=85``.

Feng et al. (2024, "Beyond Model Collapse") show that synthetic data stops causing
collapse when a verifier keeps only correct samples. Here a text model learns
correct statements; its output is checked exactly by :meth:`Arithmetic.verify`.
Most operands lie in ``[0, max_operand]``; a ``rare_fraction`` of statements has an
operand in the rare range ``(max_operand, rare_max]``, the tail whose survival the
``rare_operand_coverage`` metric follows. :meth:`Arithmetic.heldout_prompts` turns
the held-out real statements into prompts (``37+48=``) and their answers, on which
``heldout_accuracy`` scores a model's completions.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ..core import DataKind, DataSource, Interval, Options, RealData
from ..registry import register

STATEMENT = re.compile(r"^(\d{1,6})([+-])(\d{1,6})=(-?\d{1,7})$")


@register("data", "arithmetic")
class Arithmetic(DataSource):
    """Correct statements ``a+b=c`` (or ``a-b=c``), one per document.

    Parameters
    ----------
    max_operand : int, default 99
        Common operands are drawn uniformly from ``[0, max_operand]``.
    rare_max : int, default 999
        Rare operands are drawn uniformly from ``(max_operand, rare_max]``.
    rare_fraction : float, default 0.05
        Share of statements with one rare operand.
    operations : {"+", "+-"}, default "+"
    n_test : int, default 500
    """

    kind = DataKind.TEXT
    can_draw = True
    provides: ClassVar[frozenset[str]] = frozenset({"verify"})
    parameter_constraints: ClassVar = {
        "max_operand": [Interval(1, None, integer=True)],
        "rare_max": [Interval(2, None, integer=True)],
        "rare_fraction": [Interval(0, 1)],
        "operations": [Options(("+", "+-"))],
        "n_test": [Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        max_operand: int = 99,
        rare_max: int = 999,
        rare_fraction: float = 0.05,
        operations: str = "+",
        n_test: int = 500,
    ) -> None:
        self.max_operand = max_operand
        self.rare_max = rare_max
        self.rare_fraction = rare_fraction
        self.operations = operations
        self.n_test = n_test

    def draw(self, n: int, *, rng: np.random.Generator) -> list[str]:
        a = rng.integers(0, self.max_operand + 1, size=n)
        b = rng.integers(0, self.max_operand + 1, size=n)
        rare = rng.random(n) < self.rare_fraction
        which = rng.integers(0, 2, size=n)  # which operand is the rare one
        big = rng.integers(self.max_operand + 1, self.rare_max + 1, size=n)
        a = np.where(rare & (which == 0), big, a)
        b = np.where(rare & (which == 1), big, b)
        ops = rng.choice(list(self.operations), size=n)
        results = np.where(ops == "+", a + b, a - b)
        return [f"{x}{op}{y}={z}" for x, op, y, z in zip(a, ops, b, results, strict=True)]

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        return RealData(
            train=self.draw(n, rng=rng),
            test=self.draw(self.n_test, rng=rng),
            kind=self.kind,
            source=self,
        )

    def verify(self, items: Any) -> np.ndarray:
        """True for each well-formed, correct statement."""
        return np.array([_check(item) for item in items], dtype=bool)

    @property
    def rare_range(self) -> tuple[int, int]:
        """The rare operands: ``(low, high)`` inclusive, ``(max_operand + 1, rare_max)``."""
        return self.max_operand + 1, self.rare_max

    def operands(self, items: Any) -> np.ndarray:
        """The two operands of each statement, (n, 2); -1 for a malformed statement."""
        out = np.full((len(items), 2), -1, dtype=np.int64)
        for i, item in enumerate(items):
            match = STATEMENT.match(item.strip())
            if match:
                out[i] = int(match.group(1)), int(match.group(3))
        return out

    def heldout_prompts(self, real: RealData) -> tuple[list[str], list[str]]:
        """Prompts ``a+b=`` of the real test statements whose prompt is not in the real
        training data, and their correct answers ``c`` (in test order)."""
        seen = {item.strip().partition("=")[0] for item in real.train}
        prompts, answers = [], []
        for item in real.test:
            question, _, answer = item.strip().partition("=")
            if question not in seen:
                prompts.append(question + "=")
                answers.append(answer)
        return prompts, answers

    def is_rare(self, items: Any) -> np.ndarray:
        """True for each well-formed statement with an operand in the rare range."""
        out = []
        for item in items:
            match = STATEMENT.match(item.strip())
            out.append(
                bool(match) and max(int(match.group(1)), int(match.group(3))) > self.max_operand
            )
        return np.array(out, dtype=bool)


def _check(item: str) -> bool:
    match = STATEMENT.match(item.strip())
    if match is None:
        return False
    a, op, b, c = int(match.group(1)), match.group(2), int(match.group(3)), int(match.group(4))
    return (a + b if op == "+" else a - b) == c
