"""Data regimes: how generation t's training set is assembled.

Small pure pieces compose into the named regimes (optax style):
``accumulate-subsample`` is ``accumulate`` followed by a subsample to a budget, and
``fresh`` mixes a real part into the last output. Each works on per-seed data and on
:class:`~collapselab.core.SeedBatch` data alike, so the batched path reuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .core import (
    BOOLEAN,
    NONE,
    Interval,
    Options,
    RealData,
    Regime,
    SeedBatch,
    concat,
    length,
    subsample,
    take,
)
from .registry import register


def head(data: Any, k: int) -> Any:
    """The first ``k`` samples (of every seed in a batch)."""
    if isinstance(data, SeedBatch):
        return SeedBatch(data.array[:, :k])
    return take(data, np.arange(k))


@register("regime", "replace")
class Replace(Regime):
    """Train only on the last generation's output (Shumailov et al.'s fully synthetic loop)."""

    history_window = 1

    def __init__(self) -> None:
        pass

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        return history[-1]


@register("regime", "accumulate")
class Accumulate(Regime):
    """Train on the real data plus every synthetic set so far (Gerstgrasser et al. 2024).

    Parameters
    ----------
    include_real : bool, default True
        Keep the original real training data in the pool.
    """

    history_window = None
    parameter_constraints: ClassVar = {"include_real": [BOOLEAN]}

    def __init__(self, *, include_real: bool = True) -> None:
        self.include_real = include_real

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        return concat(([real.train] if self.include_real else []) + list(history))


@register("regime", "accumulate-subsample")
class AccumulateSubsample(Regime):
    """The accumulated pool, subsampled without replacement to a fixed budget each generation.

    Kazdan et al. (2024) show a fixed budget sits between replace and accumulate.

    Parameters
    ----------
    budget : int, optional
        Training-set size; by default the size of the real training data.
    """

    history_window = None
    parameter_constraints: ClassVar = {"budget": [NONE, Interval(1, None, integer=True)]}

    def __init__(self, *, budget: int | None = None) -> None:
        self.budget = budget

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        pool = Accumulate()(real, history, generation, rng=rng)
        budget = length(real.train) if self.budget is None else self.budget
        return subsample(pool, min(budget, length(pool)), rng)


@register("regime", "fresh")
class Fresh(Regime):
    """A given fraction of each training set is real, the rest the last generation's output.

    Parameters
    ----------
    real_fraction : float, default 0.1
        Share of real samples in each training set (Shumailov et al. kept 10%).
    source : {"fixed", "resample", "new"}, default "fixed"
        ``fixed``: the same part of the original training data every generation;
        ``resample``: a new random part of the original training data each generation;
        ``new``: newly drawn real samples (the "fresh data loop" of Alemohammad et
        al.), for sources that can draw.
    """

    history_window = 1
    parameter_constraints: ClassVar = {
        "real_fraction": [Interval(0, 1)],
        "source": [Options(("fixed", "resample", "new"))],
    }

    def __init__(self, *, real_fraction: float = 0.1, source: str = "fixed") -> None:
        self.real_fraction = real_fraction
        self.source = source

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        last = history[-1]
        size = length(last)
        n_real = round(self.real_fraction * size)
        if self.source == "new":
            real_part = real.draw(n_real, rng=rng)
        else:
            available = length(real.train)
            n_real = min(n_real, available)
            real_part = (
                head(real.train, n_real)
                if self.source == "fixed"
                else subsample(real.train, n_real, rng)
            )
        synthetic_part = subsample(last, size - n_real, rng)
        return concat([real_part, synthetic_part])
