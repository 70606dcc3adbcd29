"""Metrics of curation by reward: the reward of the output and the modes it still covers.

``reward`` is the mean of a declared reward (see :mod:`collapselab.scores`) over model
t's output: what a reward-curated chain optimizes, so it has no healthy end (it rises
as the chain collapses onto the reward's maximizers). ``mode_coverage`` is the cost:
the share of the real data's modes that the output still visits.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import (
    NONE,
    DataKind,
    Direction,
    Interval,
    Metric,
    Quantity,
    RealData,
    as_2d,
)
from ..errors import ConfigError, InvalidParameterError, parameter_message
from ..registry import register
from ..scores import DEFAULT_REWARD, REWARD, reward, reward_problem

CONTINUOUS = frozenset({DataKind.CONTINUOUS})


@register("metric", "reward")
class Reward(Metric):
    """Mean declared reward of model t's output (before curation).

    A diagnostic with no healthy end: curation by this reward drives it up while the
    output collapses onto the reward's maximizers (read it beside ``mode_coverage``).

    Parameters
    ----------
    reward : mapping, optional
        The declared reward; by default {kind: distance, target: 0.0}.
    """

    applies_to: ClassVar = CONTINUOUS  # on a task's text the reward is valid_fraction
    parameter_constraints: ClassVar = {"reward": [NONE, REWARD]}
    label = "mean reward of the output (declared reward)"
    unit = "reward"
    direction = Direction.NEUTRAL
    quantity = Quantity.OTHER
    headline = 30

    def __init__(self, *, reward: dict[str, Any] | None = None) -> None:
        self.reward = reward

    def declared_reward(self) -> dict[str, Any]:
        """The reward this metric measures."""
        return DEFAULT_REWARD if self.reward is None else self.reward

    def validate_params(self) -> None:
        super().validate_params()
        problem = reward_problem(self.declared_reward())
        if problem is not None:
            raise InvalidParameterError(parameter_message("Reward", "reward", problem, self.reward))

    def __call__(
        self,
        model: Any,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        return float(np.mean(reward(self.declared_reward(), synthetic, reference)))


def real_modes(reference: RealData, modes: int) -> tuple[np.ndarray, np.ndarray]:
    """The real data's modes: k-means centres of the real training data (fixed seed,
    10 restarts) and each mode's share of it, computed once per seed."""

    def compute(ref: RealData) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import KMeans

        x = as_2d(ref.train, "real training data")
        if len(x) < modes:
            raise ConfigError(
                f"mode_coverage needs at least {modes} real training samples (its 'modes'); "
                f"got {len(x)}"
            )
        fit = KMeans(n_clusters=modes, n_init=10, random_state=0).fit(x)
        return fit.cluster_centers_, np.bincount(fit.labels_, minlength=modes) / len(x)

    return reference.cached(f"real_modes_{modes}", compute)


@register("metric", "mode_coverage")
class ModeCoverage(Metric):
    """Share of the real data's modes that model t's output still covers.

    The modes are ``modes`` k-means centres of the real training data; each output
    point belongs to its nearest centre. A mode is covered when its share of the
    output is at least ``fraction`` times its share of the real data (with 5 equal
    modes and fraction 0.1: 2% of the output). 1: every mode visited; a chain that
    collapses onto one mode scores 1 / modes.

    Parameters
    ----------
    modes : int, default 5
        Number of modes of the real data (the components of its mixture).
    fraction : float, default 0.1
        The share of a mode's real mass the output must keep for it to count.
    """

    applies_to: ClassVar = CONTINUOUS
    parameter_constraints: ClassVar = {
        "modes": [Interval(1, None, integer=True)],
        "fraction": [Interval(0, 1, closed="right")],
    }
    label = "share of the real data's {modes} modes covered by the output"
    unit = "share"
    direction = Direction.HIGHER
    quantity = Quantity.TAILS
    share = True
    headline = 31

    def __init__(self, *, modes: int = 5, fraction: float = 0.1) -> None:
        self.modes = modes
        self.fraction = fraction

    def __call__(
        self,
        model: Any,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        centres, real_share = real_modes(reference, self.modes)
        x = as_2d(synthetic, "output")
        nearest = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(axis=-1), axis=1)
        share = np.bincount(nearest, minlength=self.modes) / len(x)
        return float(np.mean(share >= self.fraction * real_share))
