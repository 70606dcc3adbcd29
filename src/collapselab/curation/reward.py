"""Curation by reward: one item kept of every K candidates, chosen by a Bradley–Terry choice.

Ferbach, Bertrand, Bose and Gidel (2024, "Self-Consuming Generative Models with
Curated Data Provably Optimize Human Preferences") model the curation of a
generative model's output by users as a choice among K candidates with the
Bradley–Terry (Luce) law: candidate i is kept with probability
exp(beta r(x_i)) / sum_j exp(beta r(x_j)). Retrained on what is kept, the model's
expected reward rises generation after generation and its mass collapses onto the
reward's maximizers; mixing real data back in keeps it near the real distribution.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import NONE, Curated, Curator, DataKind, Interval, RealData, length
from ..errors import InvalidParameterError, parameter_message
from ..registry import register
from ..scores import DEFAULT_REWARD, REWARD, reward, reward_problem


def bradley_terry_choice(
    rewards: np.ndarray, candidates: int, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """Positions of the chosen items: one per consecutive group of ``candidates``.

    Within a group, item i is chosen with probability proportional to
    exp(strength r_i); a last, smaller group (when the items do not divide evenly)
    is a choice among fewer. An item of reward -inf is never chosen unless all of
    its group are, and then the choice is uniform. One uniform draw per group.
    """
    n = len(rewards)
    starts = np.arange(0, n, candidates)
    chosen = np.empty(len(starts), dtype=np.intp)
    draws = rng.random(len(starts))
    sizes = np.minimum(candidates, n - starts)
    for size in (int(k) for k in np.unique(sizes)):
        which = np.flatnonzero(sizes == size)
        index = starts[which, None] + np.arange(size)
        logits = strength * rewards[index]
        top = np.max(logits, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            weights = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
        weights = np.where(np.isfinite(top), weights, 1.0)  # a group all -inf: uniform
        cumulative = np.cumsum(weights, axis=1)
        pick = np.sum(cumulative < draws[which, None] * cumulative[:, -1:], axis=1)
        chosen[which] = index[np.arange(len(which)), np.minimum(pick, size - 1)]
    return chosen


@register("curator", "reward-choice")
class RewardChoice(Curator):
    """Keep one of every ``candidates`` items, chosen by a Bradley–Terry choice on a reward.

    The items are taken in order in groups of K = ``candidates`` (set the run's
    ``oversample`` to K so that every generation keeps ``samples_per_generation``
    items). The reward is declared as data (see :mod:`collapselab.scores`): the
    distance to a target point, a task's exact check, or the true log-density.
    Records the mean reward of all candidates (``mean_reward``: the model's own
    output) and of those kept (``kept_reward``).

    Parameters
    ----------
    candidates : int, default 4
        K, the candidates per choice; 1 keeps everything (no curation).
    reward : mapping, optional
        The declared reward r; by default {kind: distance, target: 0.0}.
    strength : float, default 1.0
        beta, the inverse temperature of the choice: 0 chooses uniformly, a large
        value always takes the best of the K.
    """

    applies_to: ClassVar = frozenset({DataKind.CONTINUOUS, DataKind.TEXT})
    parameter_constraints: ClassVar = {
        "candidates": [Interval(1, None, integer=True)],
        "reward": [NONE, REWARD],
        "strength": [Interval(0, None)],
    }

    def __init__(
        self,
        *,
        candidates: int = 4,
        reward: dict[str, Any] | None = None,
        strength: float = 1.0,
    ) -> None:
        self.candidates = candidates
        self.reward = reward
        self.strength = strength

    def declared_reward(self) -> dict[str, Any]:
        """The reward this curator chooses by."""
        return DEFAULT_REWARD if self.reward is None else self.reward

    def validate_params(self) -> None:
        super().validate_params()
        problem = reward_problem(self.declared_reward())
        if problem is not None:
            raise InvalidParameterError(
                parameter_message("RewardChoice", "reward", problem, self.reward)
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
        rewards = reward(self.declared_reward(), items, reference)
        keep = np.zeros(length(items), dtype=bool)
        keep[bradley_terry_choice(rewards, self.candidates, self.strength, rng)] = True
        stats = {
            "mean_reward": float(np.mean(rewards)),
            "kept_reward": float(np.mean(rewards[keep])),
        }
        return Curated.of(items, keep, stats)
