"""Contracts of collapselab: data kinds, components and their call order.

The chain (see :mod:`collapselab.chain`) calls, for each seed::

    real = data_source.load(n=..., rng=stream(seed, 0, "data"))          # RealData
    model_0 = model.clone().fit(real.train, rng=...)                     # generation 0
    out_0 = model_0.sample(n, rng=...)                                   # its output
    record metric(model_0, out_0, real, rng=...)                         # one row per metric
    for t in 1..G-1:
        train_t = regime(real, [out_0, ..., out_{t-1}], t, rng=...)      # Regime
        model_t = model.clone().fit(train_t, rng=...)                     # fresh, unfitted clone
        out_t = model_t.sample(n, rng=...)
        record metric(model_t, out_t, real, rng=...)

Every metric row at generation ``t`` therefore describes model ``t`` and its own
output; that output is what generation ``t + 1`` trains on.

Components are plain classes in the style of scikit-learn: the keyword-only
constructor stores parameters unchanged, learned state ends in ``_``, ``fit``
returns ``self``, and parameter constraints are data (``parameter_constraints``)
checked in one place with one message template.
"""

from __future__ import annotations

import abc
import enum
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar, Self

import numpy as np

from .errors import DataError, InvalidParameterError, parameter_message


class DataKind(enum.StrEnum):
    """The kinds of data a component consumes or produces."""

    CONTINUOUS = "continuous"  # float array (n, d)
    TOKENS = "tokens"  # int array (n,): one token id per item (categorical draws)
    TEXT = "text"  # list of str, one per document
    IMAGES = "images"  # float array (n, h, w)
    SUPERVISED = "supervised"  # pair (X, y)


class Direction(enum.StrEnum):
    """Which way a metric is healthy: what a reader (and a verdict) may call better.

    No metric may reward collapse: a value that a collapsed chain reaches (variance 0,
    one word left, every token uncovered) must never be the healthy end.
    """

    HIGHER = "higher"  # higher is healthier (tail mass, types, coverage, accuracy)
    LOWER = "lower"  # lower is healthier (a loss on real data, a distance to it)
    TARGET = "target"  # closest to the real data's own value is healthiest (Zipf exponent)
    NEUTRAL = "neutral"  # a diagnostic with no healthy end (kept fraction, a shift of mean)


class Quantity(enum.StrEnum):
    """What a metric measures, so that each definition of collapse finds its statistic."""

    REAL_LOSS = "real_loss"  # loss on held-out real data: NLL, perplexity, test MSE, -ELBO
    FIDELITY = "fidelity"  # distance of the output to the real distribution (W1, KL, TV, FD)
    DIVERSITY = "diversity"  # spread of the output: variance, entropy, types, distinct-n
    TAILS = "tails"  # tail mass, rare-type survival, class coverage
    VALIDITY = "validity"  # share of valid output, accuracy on held-out tasks
    GEN0_LIKELIHOOD = "gen0_likelihood"  # likelihood of the output under generation 0's model
    COLLAPSED = "collapsed"  # a 0/1 state: the chain has reached a collapsed state
    OTHER = "other"


# ---------------------------------------------------------------------------
# Parameter constraints, declared as data and checked in one place.
# ---------------------------------------------------------------------------


class Constraint:
    """A predicate on one parameter value, with a readable description."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def __str__(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real (or integer) number in an interval; ``None`` bounds are infinite."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"
    integer: bool = False

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.integer and not isinstance(value, Integral):
            return False
        if not isinstance(value, Real) or math.isnan(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        what = "an int" if self.integer else "a float"
        if self.high is None and self.low is not None:
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"{what} {op} {self.low:g}"
        if self.low is None and self.high is not None:
            op = "<=" if self.closed in ("both", "right") else "<"
            return f"{what} {op} {self.high:g}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{what} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def is_satisfied_by(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return "one of {" + ", ".join(repr(v) for v in self.values) + "}"


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of one of the given types (``bool`` is never taken for a number)."""

    types: tuple[type, ...]
    description: str

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.description


BOOLEAN = InstanceOf((bool,), "a bool (true or false)")
NONE = Options((None,))


class Component:
    """Base of every registered component: parameters, cloning, validation."""

    #: Parameter name -> constraints; a value must satisfy at least one.
    parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {}
    #: Set by :func:`collapselab.registry.register`.
    registry_id: ClassVar[str] = ""

    def __init__(self) -> None:
        """A component without parameters; others declare theirs keyword-only."""

    @classmethod
    def parameter_names(cls) -> list[str]:
        # Cached per class (not inherited: a subclass may change the constructor);
        # inspect.signature costs more than a batched generation's bookkeeping.
        names = cls.__dict__.get("_parameter_names")
        if names is None:
            sig = inspect.signature(cls.__init__)
            names = [
                n for n, p in sig.parameters.items() if n != "self" and p.kind == p.KEYWORD_ONLY
            ]
            cls._parameter_names = names
        return list(names)

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as stored."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def validate_params(self) -> None:
        """Check every parameter against its declared constraints."""
        for name, constraints in self.parameter_constraints.items():
            value = getattr(self, name)
            if not any(c.is_satisfied_by(value) for c in constraints):
                requirement = " or ".join(str(c) for c in constraints)
                raise InvalidParameterError(
                    parameter_message(type(self).__name__, name, requirement, value)
                )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


# ---------------------------------------------------------------------------
# Data containers and kind-generic helpers used by regimes and curators.
# ---------------------------------------------------------------------------


@dataclass
class SeedBatch:
    """Data of all seeds at once: ``array[s, i, ...]`` is sample ``i`` of seed ``s``."""

    array: np.ndarray

    @property
    def n_seeds(self) -> int:
        return self.array.shape[0]


def length(data: Any) -> int:
    """Number of samples (documents, pairs) in ``data``."""
    if isinstance(data, SeedBatch):
        return data.array.shape[1]
    if isinstance(data, tuple):
        return length(data[0])
    if isinstance(data, np.ndarray):
        return data.shape[0]
    return len(data)


def concat(parts: Sequence[Any]) -> Any:
    """Concatenate datasets of one kind along the sample axis."""
    if not parts:
        raise DataError("nothing to concatenate: a regime produced no training data")
    first = parts[0]
    if isinstance(first, SeedBatch):
        return SeedBatch(np.concatenate([p.array for p in parts], axis=1))
    if isinstance(first, tuple):
        return tuple(concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    out: list[Any] = []
    for p in parts:
        out.extend(p)
    return out


def take(data: Any, index: np.ndarray) -> Any:
    """Select samples by index; for a :class:`SeedBatch`, ``index`` is (seeds, k)."""
    if isinstance(data, SeedBatch):
        arr = data.array
        if index.ndim == 1:  # the same samples of every seed
            return SeedBatch(arr[:, index])
        idx = index.reshape(index.shape + (1,) * (arr.ndim - 2))
        return SeedBatch(np.take_along_axis(arr, idx, axis=1))
    if isinstance(data, tuple):
        return tuple(take(part, index) for part in data)
    if isinstance(data, np.ndarray):
        return data[index]
    return [data[i] for i in index]


def subsample(data: Any, k: int, rng: np.random.Generator) -> Any:
    """``k`` samples drawn without replacement (independently per seed in a batch)."""
    n = length(data)
    if k > n:
        raise DataError(f"cannot subsample {k} samples from {n}")
    batch = data[0] if isinstance(data, tuple) else data  # pairs share one index per seed
    if isinstance(batch, SeedBatch):
        return take(data, choose_rows(rng, batch.n_seeds, n, k))
    return take(data, rng.permutation(n)[:k])


def choose_rows(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """``k`` distinct indices in ``range(n)`` for each of ``rows`` rows, (rows, k).

    Two exact methods, whichever is cheaper: Floyd's algorithm vectorized across
    rows (k steps of O(rows) work: best for a small budget out of a large pool),
    or the k smallest of rows x n random keys (one vectorized pass: best when k is
    a large share of n). The rule compares their measured costs, about 8 us per
    Floyd step against 10 ns per key.
    """
    if k * 800 >= rows * n:
        keys = rng.random((rows, n))
        return np.argpartition(keys, k - 1, axis=1)[:, :k] if k < n else np.argsort(keys, axis=1)
    chosen = np.empty((rows, k), dtype=np.intp)
    taken = np.zeros((rows, n), dtype=bool)
    index = np.arange(rows)
    for i, j in enumerate(range(n - k, n)):
        pick = rng.integers(0, j + 1, size=rows)
        pick = np.where(taken[index, pick], j, pick)
        taken[index, pick] = True
        chosen[:, i] = pick
    return chosen


@dataclass
class RealData:
    """The real data of one seed: training split, held-out test split, known truth.

    ``truth`` holds closed-form facts about the distribution when the source is a
    known ground truth (for a Gaussian: ``mean`` and ``cov``). Metrics prefer the
    truth and fall back to ``train``. ``source`` can draw fresh real samples when
    ``source.can_draw`` (ground truths and scikit-learn generators can; tables cannot).
    """

    train: Any
    test: Any
    kind: DataKind
    truth: dict[str, Any] = field(default_factory=dict)
    source: Any = None
    #: Derived statistics (quantiles, moments) computed once per run by metrics.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def cached(self, key: str, compute: Any) -> Any:
        """``compute(self)`` once, then from the cache."""
        if key not in self.cache:
            self.cache[key] = compute(self)
        return self.cache[key]

    def draw(self, n: int, *, rng: np.random.Generator) -> Any:
        if self.source is None or not getattr(self.source, "can_draw", False):
            name = getattr(self.source, "registry_id", "") or "this data source"
            raise DataError(
                f"data {name!r} cannot draw new real samples (its real data is fixed); "
                "use fresh with source: fixed or resample"
            )
        return self.source.draw(n, rng=rng)


class ReferenceBatch:
    """The real data of every seed on the batched path, with stacked statistics cached."""

    def __init__(self, items: list[RealData]) -> None:
        self.items = items
        self._cache: dict[str, np.ndarray] = {}

    def stacked(self, key: str, compute: Any) -> np.ndarray:
        """``np.stack([compute(ref) for ref in items])``, computed once."""
        if key not in self._cache:
            self._cache[key] = np.stack([np.asarray(compute(ref)) for ref in self.items])
        return self._cache[key]


class DataSource(Component, abc.ABC):
    """A source of real data. Call order: ``load`` once per seed; ``draw`` for fresh data.

    Declared capabilities (class attributes):

    * :attr:`kind`: the data kind it produces.
    * :attr:`can_draw`: ``draw(n, rng=...)`` gives new real samples (ground truths and
      generators can; fixed tables and corpora cannot).
    """

    kind: ClassVar[DataKind] = DataKind.CONTINUOUS
    can_draw: ClassVar[bool] = False

    @abc.abstractmethod
    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        """Real data for one seed; ``n`` is the default training size for generators."""

    def draw(self, n: int, *, rng: np.random.Generator) -> Any:
        """``n`` new real samples; only for sources that declare :attr:`can_draw`."""
        raise DataError(
            f"data {self.registry_id or type(self).__name__!r} cannot draw new real samples"
        )


class GenerativeModel(Component, abc.ABC):
    """A generative model. Call order: ``clone`` -> ``fit`` -> ``sample`` / ``log_prob``.

    ``fit(data, *, rng)`` learns state (attributes ending in ``_``) and returns
    ``self``; ``sample(n, *, rng, decoding=None)`` draws ``n`` items of
    :attr:`kind`; ``log_prob(data)`` gives one log-density (or log-probability)
    per item. A degenerate fit (zero variance, one word) is a legal state, not an
    error: ``log_prob`` then returns ``-inf`` off the support.

    What a model can do beyond these three methods is declared here, as class
    attributes with defaults (as scikit-learn's estimator tags); the chain, the
    config checks, the report and :mod:`collapselab.testing` read only these:

    * :attr:`kind`: the data kind it consumes and produces.
    * :attr:`decoding_controls`: the decoding controls ``sample`` honours (names of
      :class:`collapselab.decoding.Decoding` fields: ``temperature``, ``top_k``,
      ``top_p``, ``bias``); a config that sets any other is refused.
    * :attr:`batched_class`: a class that advances every seed's chain at once
      (parameters with a leading seed axis), or ``None``.
    * :attr:`takes_ancestors`: ``fit`` is called as ``fit(data, *, rng, previous,
      first)`` with the previous generation's and generation 0's fitted models
      (``None`` at generation 0), so a neural network can warm-start from either;
      its clone is still fresh and unfitted.
    * :attr:`fits_moments`: ``fit`` also accepts a pool's sufficient statistics
      (:class:`collapselab.stats.Moments`), so ``accumulate`` keeps memory constant.
    * :attr:`provides`: names of the optional methods it implements, which metrics
      and curators may require (``token_log_probs``, ``moments``, ``coefficients``...).
    * :attr:`closed_form`: the family of closed forms (see :mod:`collapselab.theory`)
      that describes a chain of this model, or ``None``.
    * :attr:`conformance_params`: small parameters for the conformance checks (slow
      neural models); :meth:`conformance_example` may also write files it needs.
    * :attr:`extra`: the optional extra it needs (``"neural"``), named in errors.
    """

    kind: ClassVar[DataKind] = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = frozenset()
    batched_class: ClassVar[type | None] = None
    takes_ancestors: ClassVar[bool] = False
    fits_moments: ClassVar[bool] = False
    provides: ClassVar[frozenset[str]] = frozenset()
    closed_form: ClassVar[str | None] = None
    conformance_params: ClassVar[dict[str, Any]] = {}
    extra: ClassVar[str | None] = None

    @classmethod
    def conformance_example(cls) -> dict[str, Any]:
        """Parameters for the conformance checks (may write fixture files first)."""
        return dict(cls.conformance_params)

    @abc.abstractmethod
    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        """Learn from ``data``; return ``self``."""

    @abc.abstractmethod
    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> Any:
        """``n`` items of :attr:`kind`."""

    @abc.abstractmethod
    def log_prob(self, data: Any) -> np.ndarray:
        """One log-density (or log-probability) per item of ``data``."""

    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))


@dataclass
class Assembled:
    """What a stateful regime returns: the training set, its new state, statistics."""

    data: Any
    state: Any
    stats: dict[str, float] = field(default_factory=dict)


class Regime(Component):
    """Assembles the training set of generation ``t >= 1``.

    ``__call__(real, history, generation, *, rng)`` is pure: ``history`` holds the
    outputs of models ``0..t-1`` (oldest first). :attr:`history_window` says how
    many of the most recent outputs the regime reads (``None``: all), so the chain
    keeps no more in memory or in checkpoints.

    A regime that must remember more than the outputs (a web of pages with their
    provenance) sets :attr:`stateful` and implements ``assemble(real, history,
    generation, *, rng, state) -> Assembled`` instead: the chain passes back the
    state it returned last time (``None`` at generation 1), checkpoints it with
    the chain, and records ``Assembled.stats`` as metrics.
    """

    history_window: ClassVar[int | None] = None
    stateful: ClassVar[bool] = False

    def __call__(
        self, real: RealData, history: Sequence[Any], generation: int, *, rng: np.random.Generator
    ) -> Any:
        raise NotImplementedError

    def assemble(
        self,
        real: RealData,
        history: Sequence[Any],
        generation: int,
        *,
        rng: np.random.Generator,
        state: Any,
    ) -> Assembled:
        raise NotImplementedError


class Metric(Component):
    """A measurement of model ``t`` and its output against the real data.

    ``__call__(model, synthetic, reference, *, rng)`` returns a float (or NaN where
    undefined). ``batched`` may return values for every seed at once (or ``None`` to
    fall back).

    Everything the chain, the report, the theory and the verdicts know about a metric
    is declared here, never kept in a table elsewhere:

    * :attr:`applies_to`: the data kinds it accepts.
    * :attr:`label`: the axis label with its unit, a format string filled with the
      metric's parameters (``"distinct {n}-grams ÷ all {n}-grams"``); see :meth:`describe`.
    * :attr:`direction`: which way is healthy (:class:`Direction`); a metric must never
      call a collapsed chain healthy.
    * :attr:`quantity`: what it measures (:class:`Quantity`), which the definitions of
      collapse read.
    * :attr:`headline`: its rank among the headline numbers (lower first), or ``None``.
    * :attr:`share`: a share in [0, 1] (the conformance suite bound-checks it).
    * :attr:`requires`: the model capabilities (:attr:`GenerativeModel.provides`) it needs.
    * :attr:`theory_quantity`: the closed-form quantity it equals in expectation
      (``"variance"``), looked up in :mod:`collapselab.theory`, or ``None``.
    * :attr:`absorbing`: it never decreases along a chain (``ever_collapsed``).
    * :attr:`uses_model_0`: ``__call__`` (and :meth:`item_values`) also receive
      ``model_0=``, generation 0's model, fitted on the real training data (at
      generation 0, the model itself): a fixed yardstick for every generation, such as
      the perplexity of generated text under the first model (Shumailov et al. 2024).
    * :attr:`per_item`: the metric measures each generated item;
      :meth:`item_values` returns one value per item and the recorded metric is
      :meth:`summarize` of them (their mean by default). The chain keeps the values,
      the runner writes them to ``distributions.parquet`` and the report draws their
      histogram per generation.
    * :attr:`item_label`: the axis label of one item's value (a :attr:`per_item`
      metric's histogram), a format string like :attr:`label`; see :meth:`describe_item`.
    """

    applies_to: ClassVar[frozenset[DataKind]] = frozenset({DataKind.CONTINUOUS})
    label: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    direction: ClassVar[Direction] = Direction.NEUTRAL
    quantity: ClassVar[Quantity] = Quantity.OTHER
    headline: ClassVar[int | None] = None
    share: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    theory_quantity: ClassVar[str | None] = None
    absorbing: ClassVar[bool] = False
    uses_model_0: ClassVar[bool] = False
    per_item: ClassVar[bool] = False
    item_label: ClassVar[str] = ""

    def describe(self) -> str:
        """The axis label, filled with this metric's parameters (its id if none is declared)."""
        return self.label.format(**self.get_params()) if self.label else self.registry_id

    def describe_item(self) -> str:
        """The axis label of one item's value, filled like :meth:`describe`."""
        return self.item_label.format(**self.get_params()) if self.item_label else self.describe()

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> float:
        if self.per_item:
            items = self.item_values(model, synthetic, reference, rng=rng, **kwargs)
            return self.summarize(np.asarray(items, dtype=float))
        raise NotImplementedError

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        return None

    def item_values(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
        **kwargs: Any,
    ) -> np.ndarray:
        """One value per generated item (only for :attr:`per_item` metrics)."""
        raise NotImplementedError

    def min_samples(self) -> int:
        """The fewest generated items per generation on which this metric is defined
        (checked against ``samples_per_generation`` before a run starts)."""
        return 1

    def summarize(self, values: np.ndarray) -> float:
        """The recorded value of a :attr:`per_item` metric: the mean of finite values
        (NaN if there are none)."""
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        return float(finite.mean()) if len(finite) else float("nan")


@dataclass
class Curated:
    """What a curator kept (and at which input positions), and how many items it removed."""

    kept: Any
    removed: int
    stats: dict[str, float] = field(default_factory=dict)
    #: Positions of the kept items in the curator's input, in order.
    index: np.ndarray | None = None


class Curator(Component):
    """Filters synthetic data before it is trained on.

    ``__call__(synthetic, *, reference, rng, model=None, model_0=None) -> Curated``:
    ``model`` generated ``synthetic``; ``model_0`` is generation 0's model, fitted on
    the real training data. Curators compose in order (a list in the config); each
    reports what it removed and, where the truth is known, its precision and recall
    in ``Curated.stats``.
    """

    applies_to: ClassVar[frozenset[DataKind]] = frozenset(DataKind)

    def __call__(
        self,
        synthetic: Any,
        *,
        reference: RealData,
        rng: np.random.Generator,
        model: Any = None,
        model_0: Any = None,
    ) -> Curated:
        raise NotImplementedError


def as_2d(x: Any, name: str = "data") -> np.ndarray:
    """A float (n, d) array, with a clear error for anything else."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (n, d); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty")
    return arr
