"""Data regimes: how each generation's training set is assembled from the last output.

Every regime follows :class:`~collapselab.core.Regime`'s protocol: ``init`` gives its
state, ``update`` the next training set and state. Small pieces compose through
:func:`compose` (as ``optax.chain``): ``accumulate-subsample`` is :class:`Accumulate`
followed by :class:`Subsample` to a budget, and ``fresh`` mixes a real part into the
last output. Every regime but ``web`` works on per-seed data and on
:class:`~collapselab.core.SeedBatch` data alike, so the batched path uses the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .core import (
    BOOLEAN,
    NONE,
    Curator,
    InstanceOf,
    Interval,
    Options,
    RealData,
    Regime,
    SeedBatch,
    Step,
    concat,
    curate,
    length,
    subsample,
    take,
)
from .errors import ConfigError, DataError
from .registry import make, register
from .stats import Moments


def head(data: Any, k: int) -> Any:
    """The first ``k`` samples (of every seed in a batch)."""
    if isinstance(data, SeedBatch):
        return SeedBatch(data.array[:, :k])
    return take(data, np.arange(k))


class Composition(Regime):
    """Regimes run in order, each on the training set the one before returned.

    The state is the tuple of the parts' states; their statistics are merged. A part
    may hand :class:`~collapselab.stats.Moments` to the next only where that part
    declares :attr:`~collapselab.core.Regime.takes_moments`. The parts must work on
    the batched path (``web`` cannot be a part).

    Parameters
    ----------
    parts : list of Regime
        The regimes, first to last; build one with :func:`compose`.
    """

    parameter_constraints: ClassVar = {"parts": [InstanceOf((list, tuple), "a list of regimes")]}

    def __init__(self, *, parts: Sequence[Regime] = ()) -> None:
        self.parts = parts

    def stages(self) -> Sequence[Regime]:
        """The regimes this one runs, in order."""
        return self.parts

    def held_items(self, real: int, n: int, generations: int, *, fits_moments: bool) -> int:
        # each part holds its own state; the largest bounds the chain's memory
        return max(
            (p.held_items(real, n, generations, fits_moments=fits_moments) for p in self.stages()),
            default=real + n,
        )

    def validate_params(self) -> None:
        super().validate_params()
        for part in self.stages():
            if not isinstance(part, Regime) or not type(part).batched:
                raise ConfigError(f"a composition's parts must be batched regimes; got {part!r}")

    def init(self, real: RealData, *, fits_moments: bool = False) -> tuple[Any, ...]:
        stages = list(self.stages())
        # A part may return moments only if whatever consumes its data accepts them.
        accepts = [fits_moments] * len(stages)
        for i in range(len(stages) - 2, -1, -1):
            accepts[i] = type(stages[i + 1]).takes_moments and accepts[i + 1]
        return tuple(
            part.init(real, fits_moments=ok) for part, ok in zip(stages, accepts, strict=True)
        )

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        data, states, stats = output, [], {}
        for part, part_state in zip(self.stages(), state, strict=True):
            step = part.update(part_state, data, generation, real=real, rng=rng)
            data = step.data
            states.append(step.state)
            stats.update(step.stats)
        return Step(data, tuple(states), stats)


def compose(*parts: Regime) -> Composition:
    """One regime that runs ``parts`` in order (as ``optax.chain``)."""
    composition = Composition(parts=list(parts))
    composition.validate_params()
    return composition


@register("regime", "replace")
class Replace(Regime):
    """Train only on the last generation's output (Shumailov et al.'s fully synthetic loop)."""

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        return Step(output, None)


@register("regime", "accumulate")
class Accumulate(Regime):
    """Train on the real data plus every synthetic set so far (Gerstgrasser et al. 2024).

    The state is the pool of outputs; for a model that fits from moments, only the
    pool's :class:`~collapselab.stats.Moments`, so memory and checkpoints stay
    constant in the number of generations.

    Parameters
    ----------
    include_real : bool, default True
        Keep the original real training data in the pool.
    """

    parameter_constraints: ClassVar = {"include_real": [BOOLEAN]}

    def __init__(self, *, include_real: bool = True) -> None:
        self.include_real = include_real

    def held_items(self, real: int, n: int, generations: int, *, fits_moments: bool) -> int:
        # the pool: every output so far (a model that fits moments keeps only their sums)
        return real + n if fits_moments else 2 * real + generations * n

    def init(self, real: RealData, *, fits_moments: bool = False) -> Moments | tuple[Any, ...]:
        # an empty pool of moments (combining with it returns the other pool)
        return Moments(0, np.zeros(0), np.zeros((0, 0))) if fits_moments else ()

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        if isinstance(state, Moments):
            pool = state.combine(Moments.of(output))
            data = Moments.of(real.train).combine(pool) if self.include_real else pool
            return Step(data, pool)
        outputs = (*state, output)
        return Step(concat(([real.train] if self.include_real else []) + list(outputs)), outputs)


class Subsample(Regime):
    """A subsample without replacement of its input to a fixed budget.

    Parameters
    ----------
    budget : int, optional
        Training-set size; by default the size of the real training data. An input
        smaller than the budget is kept whole.
    """

    parameter_constraints: ClassVar = {"budget": [NONE, Interval(1, None, integer=True)]}

    def __init__(self, *, budget: int | None = None) -> None:
        self.budget = budget

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        budget = length(real.train) if self.budget is None else self.budget
        return Step(subsample(output, min(budget, length(output)), rng), None)


@register("regime", "accumulate-subsample")
class AccumulateSubsample(Composition):
    """The accumulated pool, subsampled without replacement to a fixed budget each generation:
    ``compose(Accumulate(), Subsample(budget=budget))``.

    Kazdan et al. (2024) show a fixed budget sits between replace and accumulate.

    Parameters
    ----------
    budget : int, optional
        Training-set size; by default the size of the real training data.
    """

    parameter_constraints: ClassVar = Subsample.parameter_constraints

    def __init__(self, *, budget: int | None = None) -> None:
        self.budget = budget

    def stages(self) -> Sequence[Regime]:
        return (Accumulate(), Subsample(budget=self.budget))


@register("regime", "fresh")
class Fresh(Regime):
    """A real part mixed into the last output: a given fraction of each training set is
    real, the rest a subsample of the last generation's output.

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

    parameter_constraints: ClassVar = {
        "real_fraction": [Interval(0, 1)],
        "source": [Options(("fixed", "resample", "new"))],
    }

    def __init__(self, *, real_fraction: float = 0.1, source: str = "fixed") -> None:
        self.real_fraction = real_fraction
        self.source = source

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        size = length(output)
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
        synthetic_part = subsample(output, size - n_real, rng)
        return Step(concat([real_part, synthetic_part]), None)


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
    (any registered curators, in order, through :func:`~collapselab.core.curate`).

    The state is the web: its pages and the origin of each (human, influenced
    human, synthetic). The curators get each scraped page's true provenance
    (synthetic pages are model output; influenced pages were published by humans),
    so a detector trains on true labels and a ``provenance`` curator knows what it
    may remove. Records the synthetic share of new pages, of the web and of what
    was trained on (after curation), the share of influenced human pages trained
    on, and per curator the synthetic share of what it removed beside that of what
    it was given, its base rate.

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

    # Pages arrive at random: each seed's web, and so its training set, has its own size.
    batched = False
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
        self.built_curators()  # unknown curator ids fail at config time

    def held_items(self, real: int, n: int, generations: int, *, fits_moments: bool) -> int:
        # the web grows by `pages` a generation and is kept whole
        return 2 * real + generations * (self.pages or n) + (self.budget or real)

    def built_curators(self) -> dict[str, Curator]:
        """The curators, built from their ids and parameters (named as in a chain's config)."""
        built: dict[str, Curator] = {}
        for i, spec in enumerate(self.curators):
            spec = {"id": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or "id" not in spec:
                raise ConfigError(
                    f"web curators must be ids or {{id, params}} mappings; got {spec!r}"
                )
            name = spec["id"] if spec["id"] not in built else f"{spec['id']}#{i}"
            built[name] = make("curator", spec["id"], **spec.get("params", {}))
        return built

    def share(self, generation: int) -> float:
        """Synthetic share of the new pages published at ``generation`` (>= 1)."""
        progress = min((generation - 1) / max(self.ramp_generations - 1, 1), 1.0)
        return self.share_start + (self.share_end - self.share_start) * progress

    def init(self, real: RealData, *, fits_moments: bool = False) -> dict[str, Any]:
        # the web before any model wrote to it: the real data, all human
        return {"pages": real.train, "origin": np.zeros(length(real.train), dtype=np.int8)}

    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        pages = min(self.pages or length(output), length(output))
        kinds = rng.choice(
            3, size=pages, p=_origin_probabilities(self.share(generation), self.influence)
        )
        n_model = int(np.sum(kinds != HUMAN))
        n_human = pages - n_model
        from_model = subsample(output, n_model, rng)
        if real.source is not None and real.source.can_draw:
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
        curators = self.built_curators()
        if curators:
            result = curate(
                curators, scraped, reference=real, rng=rng, provenance=origin == SYNTHETIC
            )
            stats.update({f"web.{name}": value for name, value in result.stats.items()})
            scraped, origin = result.kept, origin[result.index]
        if length(scraped) == 0:
            raise DataError("the web curators kept no page: loosen them or raise the budget")
        stats["web.trained_synthetic_share"] = float(np.mean(origin == SYNTHETIC))
        stats["web.trained_influenced_share"] = float(np.mean(origin == INFLUENCED))
        return Step(scraped, web, stats)


HUMAN, INFLUENCED, SYNTHETIC = 0, 1, 2


def _origin_probabilities(share: float, influence: float) -> list[float]:
    return [(1 - share) * (1 - influence), (1 - share) * influence, share]
