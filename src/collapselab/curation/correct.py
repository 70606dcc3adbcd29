"""Correction and tool use: an expert moves a share of the samples toward the truth.

Gillman et al. (ICML 2024, "Self-Correcting Self-Consuming Loops for Generative Model
Training") stabilise a self-consuming loop by passing synthetic samples through a
correction function that maps them toward the data distribution; with strength
gamma the training distribution is (1 - gamma) p_theta + gamma Pi(p_theta), Pi the
correction (their Pi_lambda with lambda = gamma / (1 - gamma)). The essays' version
is tool use: a model that is given a calculator and biased toward its output. Two
experts:

* ``calculator`` (text: arithmetic statements ``a+b=c``): reads the question
  ``a+b=`` and writes the result the calculator computes, whatever the model wrote;
  a statement whose question it cannot read is dropped (the tool call fails);
* ``langevin`` (continuous data with a known Gaussian truth): a few steps of the
  unadjusted Langevin algorithm on the true log-density,
  x <- x + (eps / 2) grad log p(x) + sqrt(eps) xi.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ..core import Curated, Curator, DataKind, Interval, Options, RealData, as_2d, length
from ..errors import ConfigError
from ..registry import register

#: The question of an arithmetic statement, as the calculator reads it: ``a+b=`` or ``a-b=``.
QUESTION = re.compile(r"^\s*(\d{1,6})\s*([+-])\s*(\d{1,6})\s*=")


def calculator(statement: str) -> str | None:
    """``a op b=`` followed by the calculator's result, or ``None`` if it cannot read one."""
    match = QUESTION.match(statement)
    if match is None:
        return None
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    return f"{a}{op}{b}={a + b if op == '+' else a - b}"


def langevin(
    x: np.ndarray,
    mean: np.ndarray,
    cov: np.ndarray,
    *,
    steps: int,
    step_size: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``steps`` unadjusted Langevin steps on the log-density of N(mean, cov) from ``x``."""
    precision = np.linalg.inv(cov)
    for _ in range(steps):
        gradient = -(x - mean) @ precision  # grad log p, row by row (precision is symmetric)
        x = x + 0.5 * step_size * gradient + np.sqrt(step_size) * rng.standard_normal(x.shape)
    return x


@register("curator", "correct")
class Correct(Curator):
    """Send each item, with probability ``strength``, to an expert that corrects it.

    The others pass unchanged. Records the share sent to the expert
    (``corrected_share``), of those the share it changed (``changed_share``: for the
    calculator, the wrong results) and the share it could not read and dropped
    (``unreadable_share``).

    Parameters
    ----------
    strength : float, default 0.5
        gamma, the share of items corrected: 0 is no correction, 1 corrects all.
    expert : {"calculator", "langevin"}, default "calculator"
        The calculator fixes arithmetic statements (text); Langevin dynamics on the
        true density corrects points of a known Gaussian truth (data id ``gaussian``).
    steps : int, default 10
        Langevin steps per corrected point.
    step_size : float, default 0.1
        eps of each Langevin step, in squared data units (stable below twice the
        truth's smallest variance).
    """

    edits = True
    applies_to: ClassVar = frozenset({DataKind.TEXT, DataKind.CONTINUOUS})
    parameter_constraints: ClassVar = {
        "strength": [Interval(0, 1)],
        "expert": [Options(("calculator", "langevin"))],
        "steps": [Interval(1, None, integer=True)],
        "step_size": [Interval(0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        strength: float = 0.5,
        expert: str = "calculator",
        steps: int = 10,
        step_size: float = 0.1,
    ) -> None:
        self.strength = strength
        self.expert = expert
        self.steps = steps
        self.step_size = step_size

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
        n = length(items)
        chosen = rng.random(n) < self.strength
        keep = np.ones(n, dtype=bool)
        if self.expert == "calculator":
            if isinstance(items, np.ndarray | tuple):
                raise ConfigError("the calculator corrects text statements (data id 'arithmetic')")
            edited = list(items)
            changed = np.zeros(n, dtype=bool)
            for i in np.flatnonzero(chosen):
                fixed = calculator(items[i])
                if fixed is None:
                    keep[i] = False
                else:
                    changed[i] = fixed != items[i].strip()
                    edited[i] = fixed
            result: Any = edited
        else:
            if not isinstance(items, np.ndarray):
                raise ConfigError("Langevin correction moves points (continuous data), not text")
            if "mean" not in reference.truth or "cov" not in reference.truth:
                raise ConfigError(
                    "Langevin correction needs a known Gaussian truth (data id 'gaussian')"
                )
            x = as_2d(items, "items")
            moved = x.copy()
            moved[chosen] = langevin(
                x[chosen],
                np.asarray(reference.truth["mean"], dtype=float),
                np.asarray(reference.truth["cov"], dtype=float),
                steps=self.steps,
                step_size=self.step_size,
                rng=rng,
            )
            changed = chosen.copy()
            result = moved.reshape(items.shape)
        sent = int(chosen.sum())
        stats = {
            "corrected_share": sent / n if n else float("nan"),
            "changed_share": float(changed[chosen].mean()) if sent else float("nan"),
            "unreadable_share": float(np.mean(~keep[chosen])) if sent else float("nan"),
        }
        return Curated.of(result, keep, stats)
