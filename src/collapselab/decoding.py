"""Decoding controls of discrete models: temperature, top-k and top-p (nucleus) truncation.

A :class:`Decoding` turns a model's next-token distribution ``p`` into the
distribution it samples from, in the order Hugging Face's samplers use:

1. temperature ``T``: ``p ** (1 / T)``, renormalised (``T = 0`` is greedy decoding:
   the limit ``T -> 0``, uniform over the most probable tokens, ties included);
2. top-k: keep the ``k`` most probable tokens (ties broken by the lower token id);
3. top-p: keep the smallest set of most probable tokens whose mass reaches ``p``
   (the token that crosses ``p`` is kept).

Beam search (``beams`` > 1, with ``length_penalty``) replaces sampling instead of
changing the distribution: the model keeps the ``beams`` most likely continuations
of each prompt and returns the best one (Shumailov et al. 2024 decoded with 5-way
beam search). It excludes the sampling controls above.

Truncation is what speeds up tail loss across generations (Dohmatob et al. 2024,
"A Tale of Tails"): the removed tokens are exactly the rare ones. Both forms work
on any number of leading axes: :meth:`Decoding.apply` on dense rows ``(..., V)``
and :meth:`Decoding.apply_segments` on the rows of a CSR table (an n-gram model's
observed continuations), vectorized over all rows at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .core import NONE, Interval
from .errors import InvalidParameterError, parameter_message

#: Mass within this of ``top_p`` reaches it: ties at the boundary (0.5 + 0.2 vs 0.7) must
#: not depend on rounding, which a cumulative sum over many rows accumulates.
_MASS_TOLERANCE = 1e-9

_CONSTRAINTS = {
    "temperature": [Interval(0, None)],
    "top_k": [NONE, Interval(1, None, integer=True)],
    "top_p": [Interval(0, 1, closed="right")],
    "bias": [Interval(0, None, closed="neither")],
    "beams": [Interval(1, None, integer=True)],
    "length_penalty": [Interval(None, None)],
}

#: Controls of discrete models (their next-token distribution) and of continuous ones.
DISCRETE_CONTROLS = frozenset({"temperature", "top_k", "top_p"})
CONTINUOUS_CONTROLS = frozenset({"bias"})
#: Controls of beam search, for discrete models that implement it.
BEAM_CONTROLS = frozenset({"beams", "length_penalty"})


@dataclass(frozen=True)
class Decoding:
    """How a discrete model samples from its distribution.

    Parameters
    ----------
    temperature : float, default 1.0
        ``>= 0``; below 1 sharpens the distribution, 0 is greedy.
    top_k : int, optional
        Keep only the ``top_k`` most probable tokens.
    top_p : float, default 1.0
        In ``(0, 1]``: keep the smallest set of most probable tokens with mass ``>= top_p``.
    bias : float, default 1.0
        The sampling bias lambda of continuous models (Alemohammad et al., "Go MAD"):
        each sample's deviation from its mode is scaled by ``bias``, so ``bias < 1``
        trades diversity for quality (a Gaussian samples N(mu, bias^2 Sigma)).
    beams : int, default 1
        Beam width; above 1, beam search instead of sampling (no temperature, top-k
        or top-p then).
    length_penalty : float, default 1.0
        Beam search ranks a finished continuation by its log-probability divided by
        its length in tokens to this power (as Hugging Face's ``generate``): above 0
        favours longer text. Only with ``beams`` > 1.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    bias: float = 1.0
    beams: int = 1
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        for name, constraints in _CONSTRAINTS.items():
            value = getattr(self, name)
            if not any(c.is_satisfied_by(value) for c in constraints):
                requirement = " or ".join(str(c) for c in constraints)
                raise InvalidParameterError(parameter_message("Decoding", name, requirement, value))
        sampling = sorted(self.changed() & {"temperature", "top_k", "top_p"})
        if self.beams > 1 and sampling:
            raise InvalidParameterError(
                f"decoding.{sampling[0]} is a sampling control; beam search (beams > 1) "
                "does not sample: leave it out or set beams to 1"
            )
        if self.beams == 1 and self.length_penalty != 1.0:
            raise InvalidParameterError(
                "decoding.length_penalty applies to beam search only: set beams > 1"
            )

    @classmethod
    def from_config(cls, value: Decoding | dict[str, Any] | None) -> Decoding | None:
        """A :class:`Decoding` from a config mapping (``None`` stays ``None``)."""
        if value is None or isinstance(value, Decoding):
            return value
        unknown = set(value) - set(_CONSTRAINTS)
        if unknown:
            raise InvalidParameterError(
                f"decoding got an unexpected parameter {sorted(unknown)[0]!r}. "
                f"Allowed: {', '.join(_CONSTRAINTS)}."
            )
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_identity(self) -> bool:
        """True when sampling from the model's own distribution."""
        return (
            self.temperature == 1.0
            and self.top_k is None
            and self.top_p >= 1.0
            and self.bias == 1.0
            and self.beams == 1
        )

    @property
    def is_beam_search(self) -> bool:
        """True when decoding searches for the most likely continuation (``beams`` > 1)."""
        return self.beams > 1

    def changed(self) -> set[str]:
        """The controls set away from their defaults."""
        return {name for name, default in DEFAULTS.items() if getattr(self, name) != default}

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """The decoded distribution of each row of ``probs`` (last axis), renormalised.

        Rows must be non-negative with a positive sum; zero entries stay zero. Beam
        search leaves the distribution as it is (it ranks continuations instead).
        """
        p = np.asarray(probs, dtype=float)
        p = p / p.sum(axis=-1, keepdims=True)
        if self.is_identity or self.is_beam_search:
            return p
        p = self._temperature(p)
        if self.top_k is not None or self.top_p < 1.0:
            # Rank within each row: descending probability, ties by lower token id.
            order = np.argsort(-p, axis=-1, kind="stable")
            ranked = np.take_along_axis(p, order, axis=-1)
            keep_ranked = self._keep(ranked, np.arange(p.shape[-1]))
            keep = np.empty_like(keep_ranked)
            np.put_along_axis(keep, order, keep_ranked, axis=-1)
            p = np.where(keep, p, 0.0)
            p /= p.sum(axis=-1, keepdims=True)
        return p

    def apply_segments(self, weights: np.ndarray, row_ptr: np.ndarray) -> np.ndarray:
        """Decoded (unnormalised) weights of a CSR table, row by row, vectorized.

        ``weights[row_ptr[r]:row_ptr[r + 1]]`` are row ``r``'s non-negative weights;
        the result has the same layout, each row scaled to sum to 1.
        """
        w = np.asarray(weights, dtype=float)
        row_ptr = np.asarray(row_ptr)
        sizes = np.diff(row_ptr)
        rows = np.repeat(np.arange(len(sizes)), sizes)
        totals = np.add.reduceat(w, row_ptr[:-1]) if len(w) else np.zeros(0)
        totals = np.where(sizes > 0, totals, 1.0)
        p = w / totals[rows]
        if self.is_identity:
            return p
        if self.temperature == 0:
            row_max = np.maximum.reduceat(p, row_ptr[:-1])[rows]
            p = (p == row_max).astype(float)
        elif self.temperature != 1.0:
            row_max = np.maximum.reduceat(p, row_ptr[:-1])[rows]
            p = (p / row_max) ** (1.0 / self.temperature)
        p = p / np.add.reduceat(p, row_ptr[:-1])[rows]
        if self.top_k is not None or self.top_p < 1.0:
            # Sort by (row, descending probability, entry position): a stable lexsort.
            order = np.lexsort((-p, rows))
            ranked = p[order]
            start = row_ptr[:-1][rows]  # rows are contiguous, so order keeps them grouped
            rank = np.arange(len(p)) - start
            cum = np.cumsum(ranked)
            before = cum - ranked - (cum - ranked)[start]  # mass ranked above, within the row
            keep_ranked = np.ones(len(p), dtype=bool)
            if self.top_k is not None:
                keep_ranked &= rank < self.top_k
            if self.top_p < 1.0:
                keep_ranked &= before < self.top_p - _MASS_TOLERANCE
            keep = np.empty_like(keep_ranked)
            keep[order] = keep_ranked
            p = np.where(keep, p, 0.0)
            p = p / np.add.reduceat(p, row_ptr[:-1])[rows]
        return p

    def _temperature(self, p: np.ndarray) -> np.ndarray:
        if self.temperature == 1.0:
            return p
        row_max = p.max(axis=-1, keepdims=True)
        if self.temperature == 0:
            q = (p == row_max).astype(float)
        else:
            # Scaling by the row maximum first keeps p ** (1 / T) away from underflow.
            q = (p / row_max) ** (1.0 / self.temperature)
        return q / q.sum(axis=-1, keepdims=True)

    def _keep(self, ranked: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Which entries of rows sorted in descending order survive truncation."""
        keep = np.ones(ranked.shape, dtype=bool)
        if self.top_k is not None:
            keep &= rank < self.top_k
        if self.top_p < 1.0:
            before = np.cumsum(ranked, axis=-1) - ranked  # mass strictly above each entry
            keep &= before < self.top_p - _MASS_TOLERANCE
        return keep


def decode(probs: np.ndarray, decoding: Decoding | dict[str, Any] | None) -> np.ndarray:
    """``probs`` (rows on the last axis) after ``decoding``; normalised either way."""
    resolved = Decoding.from_config(decoding)
    if resolved is None:
        p = np.asarray(probs, dtype=float)
        return p / p.sum(axis=-1, keepdims=True)
    return resolved.apply(probs)


__all__ = ["BEAM_CONTROLS", "Decoding", "decode"]


DEFAULTS = {
    "temperature": 1.0,
    "top_k": None,
    "top_p": 1.0,
    "bias": 1.0,
    "beams": 1,
    "length_penalty": 1.0,
}


def sampling_bias(decoding: Decoding | dict[str, Any] | None) -> float:
    """The continuous sampling bias lambda of ``decoding`` (1.0 when unset)."""
    resolved = Decoding.from_config(decoding)
    return 1.0 if resolved is None else resolved.bias
