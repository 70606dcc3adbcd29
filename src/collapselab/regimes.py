"""Data regimes: how generation t's training set is assembled.

Small pure pieces compose into the named regimes (optax style):
``accumulate-subsample`` is ``accumulate`` followed by a subsample to a budget, and
``fresh`` mixes a real part into the last output. Each works on per-seed data and on
:class:`~collapselab.core.SeedBatch` data alike, so the batched path reuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .core import (
    BOOLEAN,
    NONE,
    Assembled,
    InstanceOf,
    Interval,
    Options,
    RealData,
    Regime,
    SeedBatch,
    as_2d,
    concat,
    length,
    subsample,
    take,
)
from .errors import ConfigError, DataError
from .registry import register


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a pool of continuous samples, for models that fit from them.

    ``mean`` is (d,) and ``scatter`` (the sum of outer products of deviations from
    the mean) is (d, d); on the batched path both carry a leading seed axis.
    Pools combine exactly (Chan et al.'s pairwise update), so ``accumulate`` needs
    memory constant in the number of generations instead of every sample.
    """

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def of(cls, data: Any) -> Moments:
        """The moments of ``data``: an (n, d) array or a :class:`SeedBatch`."""
        if isinstance(data, SeedBatch):
            x = np.asarray(data.array, dtype=float)
            mean = x.mean(axis=1)
            centered = x - mean[:, None, :]
            return cls(x.shape[1], mean, np.einsum("sni,snj->sij", centered, centered))
        if length(data) == 0:  # an output its curators rejected whole adds nothing
            shape = np.shape(data)
            d = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            return cls(0, np.zeros(d), np.zeros((d, d)))
        x = as_2d(data)
        mean = x.mean(axis=0)
        centered = x - mean
        return cls(x.shape[0], mean, centered.T @ centered)

    def combine(self, other: Moments) -> Moments:
        """The moments of both pools together."""
        count = self.count + other.count
        if not self.count or not other.count:  # an empty pool adds nothing
            return other if not self.count else self
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        outer = delta[..., :, None] * delta[..., None, :]
        scatter = self.scatter + other.scatter + outer * (self.count * other.count / count)
        return Moments(count, mean, scatter)


def pools_moments(regime: Regime, model: Any) -> bool:
    """Whether the chain may keep only the pool's moments for this regime and model."""
    return getattr(regime, "pools_moments", False) and getattr(model, "fits_moments", False)


def pool_history(history: list[Any]) -> list[Any]:
    """Fold a chain's history into ``[Moments of every output, last output]``.

    The chain passes ``[*previous, output]``: either the outputs so far (the first
    generation) or an earlier pooled history followed by the new output.
    """
    if isinstance(history[0], Moments):  # history[1], the previous output, is pooled already
        pooled = history[0].combine(Moments.of(history[-1]))
    else:
        pooled = Moments.of(concat(list(history)))
    return [pooled, history[-1]]


def head(data: Any, k: int) -> Any:
    """The first ``k`` samples (of every seed in a batch)."""
    if isinstance(data, SeedBatch):
        return SeedBatch(data.array[:, :k])
    return take(data, np.arange(k))


@register("regime", "replace")
class Replace(Regime):
    """Train only on the last generation's output (Shumailov et al.'s fully synthetic loop)."""

    history_window = 1

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

    #: With a model that fits from :class:`Moments`, the chain keeps only the pool's moments.
    pools_moments: ClassVar[bool] = True

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        if history and isinstance(history[0], Moments):  # pooled by the chain (pool_history)
            pool = history[0]
            return Moments.of(real.train).combine(pool) if self.include_real else pool
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


@register("regime", "web")
class Web(Regime):
    """A web that humans and the model write to, scraped for training each generation.

    Each generation ``pages`` new pages are published. Each is synthetic (the last
    model's output) with probability ``share_t``, which ramps linearly from
    ``share_start`` to ``share_end`` over ``ramp_generations`` generations and then
    stays there (e.g. reaching 0.74 of new pages). The rest are human pages; of
    those, a fraction ``influence`` copy the model (drawn from its output: a
    mixture of the human and model distributions). Human pages are fresh real
    draws for sources that can draw, otherwise resampled from the real training
    data. The web starts as the real training data. Training scrapes ``budget``
    pages at random from the whole web, then passes them through ``curators``
    (any registered curators, in order), which also see the human pages.

    Records the synthetic share of new pages, of the web and of what was actually
    trained on (after curation), and the share of influenced human pages trained on.

    Parameters
    ----------
    pages : int, optional
        New pages per generation (default: the samples per generation).
    share_start, share_end : float
        Synthetic share of new pages at generation 1 and after the ramp.
    ramp_generations : int
        Generations over which the share ramps up.
    influence : float
        Share of human pages that copy the model.
    budget : int, optional
        Pages scraped per generation (default: the size of the real training data).
    curators : list of {id, params}
        Curators applied to the scraped pages.
    """

    history_window = 1
    stateful = True
    parameter_constraints: ClassVar = {
        "pages": [NONE, Interval(1, None, integer=True)],
        "share_start": [Interval(0, 1)],
        "share_end": [Interval(0, 1)],
        "ramp_generations": [Interval(1, None, integer=True)],
        "influence": [Interval(0, 1)],
        "budget": [NONE, Interval(1, None, integer=True)],
        "curators": [InstanceOf((list,), "a list of {id, params} curators")],
    }

    def __init__(
        self,
        *,
        pages: int | None = None,
        share_start: float = 0.1,
        share_end: float = 0.74,
        ramp_generations: int = 10,
        influence: float = 0.0,
        budget: int | None = None,
        curators: list[Any] | None = None,
    ) -> None:
        self.pages = pages
        self.share_start = share_start
        self.share_end = share_end
        self.ramp_generations = ramp_generations
        self.influence = influence
        self.budget = budget
        self.curators = [] if curators is None else curators

    def validate_params(self) -> None:
        super().validate_params()
        self._curators()  # unknown curator ids fail at config time

    def _curators(self) -> list[Any]:
        from .registry import make

        built = []
        for spec in self.curators:
            spec = {"id": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or "id" not in spec:
                raise ConfigError(
                    f"web curators must be ids or {{id, params}} mappings; got {spec!r}"
                )
            built.append((spec["id"], make("curator", spec["id"], **spec.get("params", {}))))
        return built

    def share(self, generation: int) -> float:
        """Synthetic share of the new pages published at ``generation`` (>= 1)."""
        progress = min((generation - 1) / max(self.ramp_generations - 1, 1), 1.0)
        return self.share_start + (self.share_end - self.share_start) * progress

    def assemble(
        self,
        real: RealData,
        history: Sequence[Any],
        generation: int,
        *,
        rng: np.random.Generator,
        state: Any,
    ) -> Assembled:
        output = history[-1]
        if state is None:  # the web before any model wrote to it: the real data, all human
            state = {"pages": real.train, "origin": np.zeros(length(real.train), dtype=np.int8)}
        pages = min(self.pages or length(output), length(output))
        kinds = rng.choice(
            3, size=pages, p=_origin_probabilities(self.share(generation), self.influence)
        )
        n_model = int(np.sum(kinds != HUMAN))
        n_human = pages - n_model
        from_model = subsample(output, n_model, rng)
        if getattr(real.source, "can_draw", False):
            human = real.draw(n_human, rng=rng)
        else:
            human = take(real.train, rng.integers(0, length(real.train), size=n_human))
        new_pages = concat([human, from_model])
        new_origin = np.r_[np.full(n_human, HUMAN), np.sort(kinds[kinds != HUMAN])].astype(np.int8)
        web = {
            "pages": concat([state["pages"], new_pages]),
            "origin": np.r_[state["origin"], new_origin],
        }
        budget = min(self.budget or length(real.train), length(web["pages"]))
        index = rng.permutation(length(web["pages"]))[:budget]
        scraped, origin = take(web["pages"], index), web["origin"][index]
        stats = {
            "web.new_synthetic_share": float(np.mean(new_origin == SYNTHETIC))
            if pages
            else float("nan"),
            "web.synthetic_share": float(np.mean(web["origin"] == SYNTHETIC)),
        }
        for name, curator in self._curators():
            kept = curator(scraped, reference=real, rng=rng)
            removed = np.ones(len(origin), dtype=bool)
            removed[kept.index] = False
            stats.update({f"web.{name}.{key}": value for key, value in kept.stats.items()})
            # provenance is known here: how much of what the curator removed was synthetic
            stats[f"web.{name}.removed_synthetic_share"] = (
                float(np.mean(origin[removed] == SYNTHETIC)) if removed.any() else float("nan")
            )
            scraped, origin = kept.kept, origin[kept.index]
        if length(scraped) == 0:
            raise DataError("the web curators kept no page: loosen them or raise the budget")
        stats["web.trained_synthetic_share"] = float(np.mean(origin == SYNTHETIC))
        stats["web.trained_influenced_share"] = float(np.mean(origin == INFLUENCED))
        return Assembled(data=scraped, state=web, stats=stats)


HUMAN, INFLUENCED, SYNTHETIC = 0, 1, 2


def _origin_probabilities(share: float, influence: float) -> list[float]:
    return [(1 - share) * (1 - influence), (1 - share) * influence, share]
