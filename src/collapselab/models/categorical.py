"""A categorical distribution over a vocabulary of token ids, fitted by counting.

Refitting the maximum-likelihood estimate on ``n`` of its own draws is the
Wright–Fisher model of population genetics: heterozygosity ``1 - sum p^2`` decays by
``(1 - 1/n)`` per generation in expectation and a type that is lost never returns
(see :func:`collapselab.theory.categorical_replace`). Add-k smoothing over a fixed
vocabulary keeps every type alive. The batched path advances every seed's chain in
one vectorized pass with the same fit: ``probs_`` is then (S, V).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from ..core import NONE, BatchedModel, Constraint, DataKind, GenerativeModel, Interval, SeedBatch
from ..decoding import DISCRETE_CONTROLS, Decoding
from ..errors import DataError
from ..registry import register


def as_token_ids(data: Any, vocabulary_size: int | None = None) -> np.ndarray:
    """A 1-D int64 array of token ids, with clear errors for anything else."""
    ids = np.asarray(data)
    if ids.ndim != 1:
        raise DataError(f"token data must be a 1-D array of token ids; got shape {ids.shape}")
    if ids.size == 0:
        raise DataError("token data is empty")
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.all(np.mod(ids, 1) == 0):
            ids = ids.astype(np.int64)
        else:
            raise DataError(f"token ids must be integers; got dtype {ids.dtype}")
    if ids.min() < 0:
        raise DataError(f"token ids must be >= 0; got {int(ids.min())}")
    if vocabulary_size is not None and ids.max() >= vocabulary_size:
        raise DataError(
            f"token id {int(ids.max())} is outside the vocabulary of {vocabulary_size}; "
            "raise the model's vocabulary_size"
        )
    return ids.astype(np.int64, copy=False)


def _decoded(probs: np.ndarray, decoding: Any) -> np.ndarray:
    resolved = Decoding.from_config(decoding)
    return probs if resolved is None or resolved.is_identity else resolved.apply(probs)


def draw_rows(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` i.i.d. ids from each row of ``probs`` (S, V) by inverse CDF, all rows at once.

    Row ``s``'s CDF is shifted by ``s`` so one ``searchsorted`` serves every row.
    """
    s, v = probs.shape
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    offsets = np.arange(s, dtype=float)[:, None]
    flat = (cdf + offsets).ravel()
    pos = np.searchsorted(flat, (rng.random((s, n)) + offsets).ravel(), side="right")
    ids = pos.reshape(s, n) - np.arange(s)[:, None] * v
    return np.clip(ids, 0, v - 1).astype(np.int64)


class _CategoricalFit:
    """What the per-seed and batched categorical models share: parameters and the fit."""

    parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "vocabulary_size": [NONE, Interval(1, None, integer=True)],
        "smoothing": [Interval(0, None)],
    }

    def __init__(self, *, vocabulary_size: int | None = None, smoothing: float = 0.0) -> None:
        self.vocabulary_size = vocabulary_size
        self.smoothing = smoothing

    def _fit_rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts and probabilities (S, V) of (S, n) token ids, every row at once; the
        vocabulary is shared by the rows."""
        s, n = ids.shape
        v = self.vocabulary_size or int(ids.max()) + 1
        flat = (ids + np.arange(s)[:, None] * v).ravel()
        counts = np.bincount(flat, minlength=s * v).reshape(s, v)
        return counts, (counts + self.smoothing) / (n + self.smoothing * v)


@register("model", "categorical")
class Categorical(_CategoricalFit, GenerativeModel):
    """A distribution over token ids ``0..V-1``: counts, optionally add-k smoothed.

    Parameters
    ----------
    vocabulary_size : int, optional
        V. By default one more than the largest id in the training data, so the
        vocabulary shrinks as top ids are lost; set it to smooth over every id.
    smoothing : float, default 0.0
        Pseudo-count k added to every id (0: the maximum-likelihood estimate).
    """

    kind = DataKind.TOKENS
    closed_form = "categorical-mle"
    provides: ClassVar[frozenset[str]] = frozenset(
        {"token_log_probs", "probabilities", "type_probs"}
    )
    decoding_controls: ClassVar[frozenset[str]] = DISCRETE_CONTROLS

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        counts, probs = self._fit_rows(as_token_ids(data, self.vocabulary_size)[None])
        self.counts_, self.probs_ = counts[0], probs[0]
        return self

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> np.ndarray:
        return draw_rows(_decoded(self.probs_, decoding)[None, :], n, rng)[0]

    def log_prob(self, data: Any) -> np.ndarray:
        ids = as_token_ids(data)
        inside = ids < len(self.probs_)
        with np.errstate(divide="ignore"):
            return np.where(inside, np.log(self.probs_[np.where(inside, ids, 0)]), -np.inf)

    def token_log_probs(self, data: Any) -> np.ndarray:
        """Log-probability of every token (here every item is one token)."""
        return self.log_prob(data)

    def probabilities(self) -> np.ndarray:
        """The fitted distribution over ids ``0..V-1``."""
        return self.probs_

    def type_probs(self, types: Any) -> np.ndarray:
        """Probability of each token id in ``types`` (0 outside the vocabulary)."""
        ids = np.asarray(types, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.probs_))
        return np.where(inside, self.probs_[np.where(inside, ids, 0)], 0.0)


class BatchedCategorical(_CategoricalFit, BatchedModel):
    """All seeds' categorical models at once: ``probs_`` is (S, V)."""

    def fit(self, data: SeedBatch, *, rng: np.random.Generator) -> Self:
        ids = data.array
        if ids.ndim != 2:
            raise DataError(f"batched token data must be (seeds, n); got shape {ids.shape}")
        valid = as_token_ids(ids.ravel(), self.vocabulary_size).reshape(ids.shape)
        self.counts_, self.probs_ = self._fit_rows(valid)
        return self

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> SeedBatch:
        return SeedBatch(draw_rows(_decoded(self.probs_, decoding), n, rng))

    refits_exactly = True

    def sufficient_refit(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> BatchedCategorical:
        """Every seed refitted on ``n`` of its own samples (with ``decoding``), drawn
        through the fit's sufficient statistic: the counts ~ Multinomial(n, p)."""
        probs = _decoded(self.probs_, decoding)
        if probs.shape[1] == 2:  # Bernoulli: one binomial per seed, as multinomial draws it
            # (without its per-row setup, and without reductions over a length-2 axis,
            # which cost more than the draws themselves)
            first = rng.binomial(n, probs[:, 0] / (probs[:, 0] + probs[:, 1]))
            counts = np.stack([first, n - first], axis=1)
        else:
            counts = rng.multinomial(n, probs / probs.sum(axis=1, keepdims=True))
        v = counts.shape[1]
        if self.vocabulary_size is None and not counts[:, -1].any():
            # as fitting on the ids: up to the largest one drawn
            v = int(np.flatnonzero(counts.any(axis=0))[-1]) + 1
            counts = counts[:, :v]
        refit = BatchedCategorical(vocabulary_size=self.vocabulary_size, smoothing=self.smoothing)
        refit.counts_ = counts
        refit.probs_ = (counts + self.smoothing) / (n + self.smoothing * v)
        return refit

    def unbatch(self, seed: int) -> Categorical:
        """Seed ``seed``'s model as a plain :class:`Categorical`."""
        model = Categorical(vocabulary_size=self.vocabulary_size, smoothing=self.smoothing)
        model.counts_ = self.counts_[seed]
        model.probs_ = self.probs_[seed]
        return model

    def probabilities(self) -> np.ndarray:
        return self.probs_


Categorical.batched_class = BatchedCategorical
