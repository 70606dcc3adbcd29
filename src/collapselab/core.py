"""Contracts of collapselab: data kinds, components and their call order.

The chain (see :mod:`collapselab.chain`) calls, for each seed (or for every seed at
once on the batched path)::

    real = data_source.load(n=..., rng=stream(seed, 0, "data"))          # RealData
    model_0 = model.clone().fit(real.train, rng=...)                     # generation 0
    out_0 = model_0.sample(n, rng=...)                                   # its output
    record metric(model_0, out_0, real, rng=...)                         # one row per metric
    out_0 = curate(curators, out_0, reference=real, rng=...).kept        # Curator, optional
    state = regime.init(real, fits_moments=type(model).fits_moments)     # Regime
    for t in 1..G-1:
        step = regime.update(state, out_{t-1}, t, real=real, rng=...)    # Step
        train_t, state = step.data, step.state                            # step.stats recorded
        model_t = model.clone().fit(train_t, rng=...)                     # fresh, unfitted clone
        out_t = model_t.sample(n, rng=...)
        record metric(model_t, out_t, real, rng=...)
        out_t = curate(curators, out_t, reference=real, rng=...).kept

Every metric row at generation ``t`` therefore describes model ``t`` and its own
output, before curation; the curated output is what generation ``t + 1`` trains on.

Components are abstract base classes in the style of scikit-learn: the keyword-only
constructor stores parameters unchanged, learned state ends in ``_``, ``fit``
returns ``self``, and parameter constraints are data (``parameter_constraints``)
checked in one place with one message template. What a component can do beyond its
required methods is a class attribute declared (with its default) on its base.
"""

from __future__ import annotations

import abc
import enum
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, ClassVar, Self, cast

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
        value = cast(float, value)  # a Real compares as a float does
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
        # The type first: ``==`` on an array is an array, which ``and`` cannot read.
        return any(type(value) is type(v) and value == v for v in self.values)

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
    #: The constructor's parameter names, cached per class by :meth:`parameter_names`.
    _parameter_names: ClassVar[list[str]]

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
        return int(self.array.shape[0])

    @property
    def n_items(self) -> int:
        """Samples per seed (known without the values of a batch that forms them lazily)."""
        return int(self.array.shape[1])


def length(data: Any) -> int:
    """Number of samples (documents, pairs) in ``data``."""
    if isinstance(data, SeedBatch):
        return data.n_items
    if isinstance(data, tuple):
        return length(data[0])
    if isinstance(data, np.ndarray):
        return int(data.shape[0])
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


class Deferred:
    """A value computed on first read: ``RealData(test=Deferred(...))`` draws a held-out
    sample only if a metric reads it (a chain whose metrics never do skips the work).

    Use :meth:`draw` so the deferred sample is the one an eager draw at that point
    would have given.
    """

    def __init__(self, compute: Any, *args: Any, **kwargs: Any) -> None:
        self.compute, self.args, self.kwargs = compute, args, kwargs

    def __call__(self) -> Any:
        return self.compute(*self.args, **self.kwargs)

    @classmethod
    def draw(cls, source: DataSource, n: int, rng: np.random.Generator) -> Deferred:
        """``source.draw(n, rng=rng)`` later, from a copy of ``rng``'s state now."""
        # The state alone: copying it is 10x cheaper than deep-copying the Generator.
        return cls(_draw_from_state, source, n, type(rng.bit_generator), rng.bit_generator.state)


def _draw_from_state(source: DataSource, n: int, kind: type, state: dict[str, Any]) -> Any:
    bit_generator = kind()
    bit_generator.state = state
    return source.draw(n, rng=np.random.Generator(bit_generator))


class _DeferredAttribute:
    """An attribute that computes a :class:`Deferred` value on first read, then keeps it."""

    def __init__(self, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.slot]
        if isinstance(value, Deferred):
            value = obj.__dict__[self.slot] = value()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class RealData:
    """The real data of one seed: training split, held-out test split, known truth.

    ``truth`` holds closed-form facts about the distribution when the source is a
    known ground truth (for a Gaussian: ``mean`` and ``cov``). Metrics prefer the
    truth and fall back to ``train``. ``source`` can draw fresh real samples when
    ``source.can_draw`` (ground truths and scikit-learn generators can; tables cannot).
    ``test`` may be given as a :class:`Deferred`: it is then drawn on first read.
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
        if not isinstance(self.source, DataSource) or not self.source.can_draw:
            name = self.source.registry_id if isinstance(self.source, DataSource) else ""
            raise DataError(
                f"data {name or 'this data source'!r} cannot draw new real samples (its real "
                "data is fixed); "
                "use fresh with source: fixed or resample"
            )
        return self.source.draw(n, rng=rng)


# After the dataclass is built, so that ``test`` stays a required field of __init__.
setattr(RealData, "test", _DeferredAttribute("test"))  # noqa: B010


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
    """A source of real data. Call order: ``load`` once per seed (or ``load_seeds`` once
    for many seeds); ``draw`` for fresh data.

    Declared capabilities (class attributes):

    * :attr:`kind`: the data kind it produces.
    * :attr:`can_draw`: ``draw(n, rng=...)`` gives new real samples (ground truths and
      generators can; fixed tables and corpora cannot).
    * :attr:`provides`: the optional methods it implements, which curators and metrics
      may use: ``log_prob(items)`` (the true log-density of a known ground truth),
      ``verify(items)`` (a task's exact check of each item) and ``documents()`` (every
      document of a finite corpus, for reference models of the whole corpus).

    Declared methods with defaults:

    * :meth:`load_seeds`: many seeds' :meth:`load` at once, with the same values (a
      source overrides it where it can do the seeds' work in one vectorized pass; a
      subclass that changes what :meth:`load` gives changes it too, since the batched
      chain loads through it);

    and, read before a run starts:

    * :meth:`files`: the user files it reads (their content digests go into the run's
      manifest, so a resume or rerun notices edited data);
    * :meth:`item_bytes` and :meth:`fixed_bytes`: what its data take in memory, for
      the run's memory estimate (made before anything is allocated).
    """

    kind: ClassVar[DataKind] = DataKind.CONTINUOUS
    can_draw: ClassVar[bool] = False
    provides: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        """Real data for one seed; ``n`` is the default training size for generators."""

    def load_seeds(self, *, n: int, rngs: Sequence[np.random.Generator]) -> list[RealData]:
        """``[self.load(n=n, rng=rng) for rng in rngs]``: the real data of many seeds, one
        stream each, with the same values as loading them one by one."""
        return [self.load(n=n, rng=rng) for rng in rngs]

    def files(self) -> list[Path]:
        """The user files this source reads (none for built-in and generated data)."""
        return []

    def item_bytes(self) -> int:
        """About how many bytes one item (a sample, a document) takes in memory."""
        return 8

    def fixed_bytes(self) -> int:
        """About how many bytes one seed's data holds besides its training items (a
        held-out test set, a distribution over a vocabulary, a corpus read whole)."""
        return 0

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
    * :attr:`batched_class`: a :class:`BatchedModel` that advances every seed's chain
      at once (parameters with a leading seed axis), or ``None``.
    * :attr:`takes_ancestors`: ``fit`` is called as ``fit(data, *, rng, previous,
      first)`` with the previous generation's and generation 0's fitted models
      (``None`` at generation 0), so a neural network can warm-start from either;
      its clone is still fresh and unfitted.
    * :attr:`fits_moments`: ``fit`` also accepts a pool's sufficient statistics
      (:class:`collapselab.stats.Moments`), so ``accumulate`` keeps memory constant.
    * :attr:`provides`: names of the optional methods it implements, which metrics
      may require (:attr:`Metric.requires`): ``moments``, ``marginal_cdf``,
      ``coefficients``, ``class_logits``, ``latent_means``, ``token_log_probs``,
      ``document_token_log_probs``, ``type_probs``, ``probabilities``... The three
      required methods (:data:`MODEL_METHODS`) need not be listed.
    * :attr:`closed_form`: the family of closed forms (see :mod:`collapselab.theory`)
      that describes a chain of this model, or ``None``.
    * :attr:`conformance_params`: small parameters for the conformance checks (slow
      neural models); :meth:`conformance_example` may also write files it needs.
    * :attr:`extra`: the optional extra it needs (``"neural"``), named in errors.
    """

    kind: ClassVar[DataKind] = DataKind.CONTINUOUS
    decoding_controls: ClassVar[frozenset[str]] = frozenset()
    batched_class: ClassVar[type[BatchedModel] | None] = None
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

    @classmethod
    def lacks(cls, requires: Sequence[str]) -> list[str]:
        """The capabilities in ``requires`` that this model does not declare it provides."""
        return [name for name in requires if name not in cls.provides | MODEL_METHODS]

    def min_samples(self) -> int:
        """The fewest training items ``fit`` accepts with these parameters (checked
        against the config's sample sizes before a run starts)."""
        return 1

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


#: The methods every model has; :attr:`GenerativeModel.provides` lists the others.
MODEL_METHODS: frozenset[str] = frozenset({"fit", "sample", "log_prob"})


class BatchedModel(Component, abc.ABC):
    """Every seed's model at once: parameters with a leading seed axis.

    Built with the parameters of its per-seed model (:attr:`GenerativeModel.batched_class`
    names it). Call order: ``fit(data, *, rng)`` on :class:`SeedBatch` data (a tuple
    of them for pairs), ``sample(n, *, rng, decoding=None)`` for a :class:`SeedBatch`
    of every seed's output, ``unbatch(seed)`` for one seed's fitted model, which
    metrics without a vectorized form measure. A batched class shares its fit with
    the per-seed model (one implementation with a seed axis), never a copy of it.

    :attr:`provides` names the vectorized methods it offers, which batched metrics
    may use (``moments``: every seed's mean and covariance; ``gaussian``: the fitted
    distributions are Gaussian with those moments, so their marginals are exact).
    :attr:`refits_exactly`: :meth:`sufficient_refit` gives every seed's model refitted
    on ``n`` of its own samples without drawing them, through the exact law of the
    fit's sufficient statistics (a Gaussian's mean and scatter, a categorical model's
    counts).
    """

    provides: ClassVar[frozenset[str]] = frozenset()
    refits_exactly: ClassVar[bool] = False

    @abc.abstractmethod
    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        """Learn every seed's model from ``data``; return ``self``."""

    @abc.abstractmethod
    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> Any:
        """``n`` items per seed, as a :class:`SeedBatch` (a tuple of them for pairs)."""

    @abc.abstractmethod
    def unbatch(self, seed: int) -> GenerativeModel:
        """Seed ``seed``'s fitted model as a per-seed model."""

    def sufficient_refit(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> Self:
        """A new model: every seed's refit on ``n`` of its own samples (with ``decoding``),
        drawn in distribution exactly, without the samples (only if :attr:`refits_exactly`)."""
        raise NotImplementedError(f"{type(self).__name__} declares no exact sufficient refit")


@dataclass
class Step:
    """What :meth:`Regime.update` returns: the training set, the new state, statistics."""

    data: Any
    state: Any
    #: Recorded as metrics of the generation (NaN at generation 0, which trains on
    #: the real data alone).
    stats: dict[str, float] = field(default_factory=dict)


class Regime(Component, abc.ABC):
    """Assembles the training set of each generation ``t >= 1``, with explicit state.

    As optax's gradient transformations, a regime is a pair of pure functions over a
    state it never keeps itself. Call order, once per chain (one seed, or every seed
    at once on the batched path, where data are :class:`SeedBatch`)::

        state = regime.init(real, fits_moments=type(model).fits_moments)
        for t in 1..G-1:
            step = regime.update(state, output_{t-1}, t, real=real, rng=stream(seed, t, "regime"))
            train_t, state = step.data, step.state      # step.stats are recorded

    ``output_{t-1}`` is the previous generation's output after curation (possibly
    empty). The state holds what the regime needs of the history (``replace``:
    nothing; ``accumulate``: the pool, or its :class:`~collapselab.stats.Moments`
    when the model fits from moments; ``web``: the pages and their provenance); the
    chain checkpoints it, so it must pickle. ``update`` must not modify its inputs.
    Named regimes are compositions of smaller ones (:func:`collapselab.regimes.compose`).

    Declared capabilities:

    * :attr:`batched`: ``update`` works on :class:`SeedBatch` data of every seed at
      once (a regime whose training sets differ in size between seeds cannot).
    * :attr:`takes_moments`: ``update`` accepts :class:`~collapselab.stats.Moments`
      as its input data (a later stage of a composition, fed by ``accumulate``).
    """

    batched: ClassVar[bool] = True
    takes_moments: ClassVar[bool] = False

    def held_items(self, real: int, n: int, generations: int, *, fits_moments: bool) -> int:
        """About how many items the regime holds at once (state and training set) in a
        chain of ``generations`` with ``real`` real items and ``n`` generated per
        generation: the run's memory estimate reads it before anything is allocated."""
        return real + n

    def init(self, real: RealData, *, fits_moments: bool = False) -> Any:
        """The state before generation 1 (``None`` for a regime without one).

        ``fits_moments``: whoever trains on this regime's data accepts
        :class:`~collapselab.stats.Moments` in place of samples.
        """
        return None

    @abc.abstractmethod
    def update(
        self, state: Any, output: Any, generation: int, *, real: RealData, rng: np.random.Generator
    ) -> Step:
        """Generation ``generation``'s training set from the last ``output`` and ``state``."""


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
    * :attr:`model_only`: the model capabilities (:attr:`GenerativeModel.provides`)
      with which it is computed from the fitted model and the real data alone, never
      reading the generated items (``frozenset()``: with any model; ``None``, the
      default: it reads them). The exact sufficient-statistic chain
      (:func:`collapselab.chain.run_sufficient`), which draws no items, runs only such
      metrics.
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
    model_only: ClassVar[frozenset[str] | None] = None

    @staticmethod
    def example() -> RealData | None:
        """Real data for the conformance checks, for a metric that needs a particular
        source (a task with a verifier); ``None``: the example data of its kind."""
        return None

    def chance(self, reference: RealData) -> float | None:
        """The value a model that ignores its input reaches on ``reference`` (an
        accuracy's constant guess), drawn as the chance line and stored as rows of
        source ``chance``; ``None`` (the default) where no such level exists."""
        return None

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
    """What a curator kept: the items, their positions in its input, and its statistics.

    Build it with :meth:`of`; :attr:`removed` and :attr:`kept_fraction` follow from
    the positions, so no curator computes them.
    """

    kept: Any
    #: Positions of the kept items in the curator's input, in order.
    index: np.ndarray
    #: Items the curator was given.
    total: int
    stats: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Any, keep: np.ndarray, stats: Mapping[str, float] | None = None) -> Curated:
        """The items of ``items`` where the boolean mask ``keep`` is true."""
        index = np.flatnonzero(keep)
        return cls(take(items, index), index, length(items), dict(stats or {}))

    @property
    def removed(self) -> int:
        return self.total - len(self.index)

    @property
    def kept_fraction(self) -> float:
        return len(self.index) / self.total if self.total else float("nan")


class Curator(Component, abc.ABC):
    """Filters items (synthetic or scraped) before they are trained on.

    ``__call__(items, *, reference, rng, provenance, model=None, model_0=None) ->
    Curated``. ``provenance`` is a boolean array, true where an item was generated by
    a model (in a chain every item is; a web scrape mixes human and model pages);
    most curators do not read it, a provenance oracle or a detector trained on true
    labels does. ``model`` generated the items (``None`` for a web scrape);
    ``model_0`` is generation 0's model, fitted on the real training data. Curators
    compose in order through :func:`curate`; each reports in ``Curated.stats`` what
    it measured and, where the truth is known, its precision and recall.

    Declared capabilities: :attr:`applies_to`, the data kinds it accepts;
    :attr:`edits`, whether it may return edited items (a corrector moving samples
    toward the truth): ``Curated.kept[i]`` is then the edited form of input item
    ``Curated.index[i]``, otherwise it is that item unchanged.
    """

    applies_to: ClassVar[frozenset[DataKind]] = frozenset(DataKind)
    edits: ClassVar[bool] = False

    @abc.abstractmethod
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
        """What to keep of ``items``."""


def curate(
    curators: Mapping[str, Curator],
    items: Any,
    *,
    reference: RealData,
    rng: np.random.Generator,
    provenance: np.ndarray | None = None,
    model: Any = None,
    model_0: Any = None,
) -> Curated:
    """Run ``curators`` in order, each on what the previous one kept.

    Returns the survivors with their positions in ``items`` and every curator's
    statistics, named ``<curator name>.<stat>``, its ``kept_fraction`` included. A
    curator after one that kept nothing is skipped (nothing is left to judge; its
    statistics are not recorded). ``provenance`` (true where an item is model
    output) defaults to "every item is model output", as in a chain; given, each
    curator also records ``input_synthetic_share`` and ``removed_synthetic_share``,
    the share of model output in what it was given (the base rate) and in what it
    removed (NaN if it removed nothing).
    """
    track = provenance is not None
    origin = np.ones(length(items), dtype=bool) if provenance is None else provenance
    kept, index = items, np.arange(length(items))
    stats: dict[str, float] = {}
    for name, curator in curators.items():
        if length(kept) == 0:
            break
        result = curator(
            kept,
            reference=reference,
            rng=rng,
            provenance=origin,
            model=model,
            model_0=model_0,
        )
        stats[f"{name}.kept_fraction"] = result.kept_fraction
        stats.update({f"{name}.{key}": float(value) for key, value in result.stats.items()})
        if track:
            stats[f"{name}.input_synthetic_share"] = float(np.mean(origin))
            removed = np.ones(len(origin), dtype=bool)
            removed[result.index] = False
            stats[f"{name}.removed_synthetic_share"] = (
                float(np.mean(origin[removed])) if removed.any() else float("nan")
            )
        kept, index, origin = result.kept, index[result.index], origin[result.index]
    return Curated(kept, index, length(items), stats)


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
