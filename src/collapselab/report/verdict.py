"""Did it collapse, and by which definition? One verdict per arm and definition.

Schaeffer, Kazdan, Arulandu and Koyejo ("Position: Model Collapse Does Not Mean What
You Think", 2025) count eight definitions of model collapse in the literature; most
disagreements about collapse are disagreements about which one is meant. For every
arm of a run, :func:`verdict` says which of them the arm meets: for each definition
the statistic it reads, its value with a 95% interval over seeds, the verdict
(``collapsed``, ``not collapsed``, ``inconclusive``, or ``not measured`` with what it
would need) and the onset generation where it is collapsed (:data:`DEFINITIONS`
states each in one sentence, with its source).

Which metric a definition reads comes only from the metrics' declarations
(:class:`~collapselab.core.Metric`: ``quantity`` and ``direction``), never from
their ids; where several qualify, the one with the lowest declared ``headline`` rank
(then the first recorded) is used, and the row names it.

Statistics, over seeds (every seed is one independent chain), of the *typical* seed:

* a change is taken per seed (paired: the seed's own generation 0, or the baseline
  arm's run of the same seed), and so is a ratio to generation 0 (tails, multiples of
  the loss); from 6 seeds the statistic is their median with its distribution-free
  order-statistic (sign-test) interval, since per-seed values of collapsing chains
  spread over decades and a mean is then one seed's value (:func:`typical`); with
  fewer seeds, where no 95% interval of a median exists, the mean with a Student t
  interval (n - 1 degrees of freedom);
* a trend is the least-squares slope of each seed's series over the last half of the
  chain (``window``), and its deceleration the slope over the window's second half
  minus ``deceleration`` times the slope over its first half, summarized as above;
* a share of seeds in a 0/1 state (``collapsed_now``) has a Wilson interval;
* a scaling exponent (definition 8) is the least-squares slope of log mean loss
  against log data size over the larger half of the sizes, with a normal interval
  from each size's standard error (delta method).

A verdict is ``collapsed`` when the interval lies wholly on the collapsed side of the
definition's threshold, ``not collapsed`` when it lies wholly on the other side (for
a change: below ``margin`` times generation 0's value, an equivalence margin), and
``inconclusive`` otherwise: more seeds decide it. Every threshold is a field of
:class:`Thresholds`, with its default documented there.

The decision of one definition for one arm is :func:`judge`, which a sweep over a
real-data share can call point by point to find where a definition stops firing.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats as st

from .. import registry
from ..core import Direction, Metric, Quantity
from ..errors import CollapseLabError, ResultsError
from ..experiment.storage import read_json
from .runs import Arm, Run, load

# ---------------------------------------------------------------------------
# Definitions, thresholds and results
# ---------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    """The verdict of one definition for one arm."""

    COLLAPSED = "collapsed"
    NOT_COLLAPSED = "not collapsed"
    INCONCLUSIVE = "inconclusive"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Definition:
    """One definition of model collapse: its number, short name, sentence and source."""

    number: int
    name: str
    sentence: str
    source: str
    #: A column header of a few characters.
    short: str


#: The eight definitions (Schaeffer et al. 2025's taxonomy), in the order of issue 16.
DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        1,
        "any rise in real test loss",
        "The loss on held-out real data at the last generation exceeds generation 0's "
        "(paired over seeds).",
        "Shumailov et al. 2024 (Nature): later generations' test perplexity rises",
        "rise",
    ),
    Definition(
        2,
        "divergence",
        "The loss on held-out real data grows without bound: its slope over the last half of "
        "the chain is positive and not decelerating, or it exceeds a stated multiple of "
        "generation 0's.",
        "Gerstgrasser et al. 2024: under replace the test error grows linearly, under "
        "accumulate it stays bounded",
        "diverges",
    ),
    Definition(
        3,
        "worse than real data alone",
        "The loss exceeds that of a model trained only on the real data available to that "
        "generation (a real-only baseline arm, or generation 0 where the real data is fixed).",
        "Kazdan et al. 2024, 'Collapse or Thrive?'",
        "vs real",
    ),
    Definition(
        4,
        "diversity to zero",
        "Variance, entropy, types or distinct-n trend to zero (a falling, non-decelerating "
        "log-scale trend over the last half) or fall below a share of generation 0's "
        "(diversity_share: a twentieth by default), "
        "or most seeds reach the collapsed state.",
        "Shumailov et al. 2024 (the Gaussian's variance vanishes); Alemohammad et al. 2024 "
        "(diversity loss)",
        "diversity",
    ),
    Definition(
        5,
        "tails lost",
        "Tail mass, rare-type survival or coverage fall below a stated share of generation 0's.",
        "Dohmatob et al. 2024, 'A Tale of Tails'",
        "tails",
    ),
    Definition(
        6,
        "mode seeking",
        "The output becomes more likely under generation 0's model while the loss on real "
        "data rises.",
        "Shumailov et al. 2024, Fig. 1b",
        "mode seeking",
    ),
    Definition(
        7,
        "nonsense",
        "The validity of the output falls (task validity, held-out accuracy).",
        "Alemohammad et al. 2024 (quality falls: 'MAD')",
        "nonsense",
    ),
    Definition(
        8,
        "scaling breaks",
        "Over a sweep of data sizes, more data stops reducing the loss on real data.",
        "Dohmatob et al. 2024, 'Strong Model Collapse'",
        "scaling",
    ),
)

#: Sweep axes read as the data size when definition 8 is not told which (``size_key``).
SIZE_KEYS = ("samples_per_generation", "real_samples", "data.params.n_samples")


@dataclass(frozen=True)
class Thresholds:
    """Every threshold of the verdicts, with its default.

    Attributes
    ----------
    level : float, default 0.95
        Confidence level of every interval.
    margin : float, default 0.01
        Equivalence margin for ``not collapsed``: a change smaller than this share of
        generation 0's mean value (of the loss, validity or gen-0 perplexity; on a log
        scale for diversity: 0.01 is about 1%) is no change.
    flatness : float, default 0.05
        A trend is *flat* (not collapsed) when, at the upper end of its interval, it
        changes the value by less than this share of generation 0's mean over the window
        (for diversity, on a log scale: 0.05 nats, about 5%).
    window : float, default 0.5
        Share of the chain, at its end, over which trends are fitted (definitions 2, 4).
    deceleration : float, default 0.7
        A trend is *not decelerating* when its slope over the second half of the window
        is at least this share of its slope over the first half. Over a window [a, 2a]
        the share is 1 for linear growth, 0.85 for sqrt(t), ln(4/3)/ln(3/2) = 0.71 for
        logarithmic growth (unbounded, barely), 0.5 for a bounded approach to a limit as
        1/t (accumulate's Σ 1/k²) and near 0 for a saturating exponential: 0.7 calls
        growth divergent when it slows no faster than logarithmic growth does.
    divergence_multiple : float, default 2.0
        Definition 2 also fires when the loss at the last generation exceeds this
        multiple of generation 0's (per seed; for perplexities, a ratio of perplexities).
    tail_share : float, default 0.5
        Definition 5: tails are lost below this share of generation 0's value.
    collapsed_share : float, default 0.5
        Definition 4: more than this share of seeds in the recorded collapsed state.
    diversity_share : float, default 0.05
        Definition 4 also fires when the diversity at the last generation is below this
        share of generation 0's (per seed): a chain that lost 95% of its diversity and
        then stopped falling (565 types down to 4 under top-p truncation) has
        collapsed, though its trend is flat by then.
    scaling_exponent : float, default 0.1
        Definition 8: scaling holds while the loss still falls at least as fast as
        n^-scaling_exponent over the larger half of the sizes.
    """

    level: float = 0.95
    margin: float = 0.01
    flatness: float = 0.05
    window: float = 0.5
    deceleration: float = 0.7
    divergence_multiple: float = 2.0
    tail_share: float = 0.5
    collapsed_share: float = 0.5
    diversity_share: float = 0.05
    scaling_exponent: float = 0.1

    #: name -> (low, high, closed ends) of each field's valid range, checked by :meth:`check`.
    RANGES: ClassVar[dict[str, tuple[float, float | None, str]]] = {
        "level": (0.5, 1.0, "neither"),
        "margin": (0.0, None, "left"),
        "flatness": (0.0, None, "left"),
        "window": (0.0, 1.0, "right"),
        "deceleration": (0.0, None, "left"),
        "divergence_multiple": (1.0, None, "neither"),
        "tail_share": (0.0, 1.0, "neither"),
        "collapsed_share": (0.0, 1.0, "right"),
        "diversity_share": (0.0, 1.0, "neither"),
        "scaling_exponent": (0.0, None, "left"),
    }

    def check(self) -> Thresholds:
        """Refuse a threshold outside its range, in one line naming it; return ``self``."""
        for name, (low, high, closed) in self.RANGES.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
            if ok:
                ok = (value >= low if closed in ("left", "both") else value > low) and (
                    high is None or (value <= high if closed in ("right", "both") else value < high)
                )
            if not ok:
                left = "[" if closed in ("left", "both") else "("
                right = "]" if closed in ("right", "both") else ")"
                span = f"{left}{low:g}, {'inf' if high is None else f'{high:g}'}{right}"
                raise CollapseLabError(
                    f"verdict threshold {name!r} must be a number in {span}; got {value!r}"
                )
        return self


@dataclass(frozen=True)
class Estimate:
    """A statistic over seeds: its value, a two-sided interval, how many seeds, and how."""

    value: float
    low: float
    high: float
    n: int
    method: str


@dataclass
class Row:
    """One definition for one arm."""

    definition: int
    outcome: Outcome
    metric: str = ""
    statistic: str = ""
    estimate: Estimate | None = None
    #: The first generation from which the definition holds at every later one (for
    #: definition 8, the data size); ``None`` where not collapsed or not defined.
    onset: int | None = None
    #: What a ``not measured`` row would need.
    need: str = ""
    #: Secondary numbers and the reasoning, in words.
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcome"] = str(self.outcome)
        out["name"] = DEFINITIONS[self.definition - 1].name
        return out


@dataclass
class ArmVerdict:
    """Every definition's row for one arm (of one run, or of one point of a sweep)."""

    run: str
    arm: str
    rows: list[Row]
    directory: Path | None = None

    def row(self, definition: int) -> Row:
        return self.rows[definition - 1]


@dataclass
class Verdict:
    """The verdicts of a run (or of every point of a sweep) and the thresholds used."""

    directory: Path
    thresholds: Thresholds
    arms: list[ArmVerdict]
    baseline: str | None = None
    sweep: bool = False
    size_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: definitions, thresholds and one entry per arm."""
        return {
            "directory": str(self.directory),
            "sweep": self.sweep,
            "size_key": self.size_key,
            "baseline": self.baseline,
            "thresholds": {f.name: getattr(self.thresholds, f.name) for f in fields(Thresholds)},
            "definitions": [asdict(d) for d in DEFINITIONS],
            "arms": [
                {"run": a.run, "arm": a.arm, "rows": [r.to_dict() for r in a.rows]}
                for a in self.arms
            ],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per (arm, definition), flat: for tables and the ``verdicts`` view."""
        records = []
        for a in self.arms:
            for r in a.rows:
                e = r.estimate
                records.append(
                    {
                        "run": a.run,
                        "arm": a.arm,
                        "definition": r.definition,
                        "name": DEFINITIONS[r.definition - 1].name,
                        "outcome": str(r.outcome),
                        "metric": r.metric,
                        "statistic": r.statistic,
                        "value": e.value if e else math.nan,
                        "low": e.low if e else math.nan,
                        "high": e.high if e else math.nan,
                        "seeds": e.n if e else 0,
                        "method": e.method if e else "",
                        "onset": math.nan if r.onset is None else float(r.onset),
                        "need": r.need,
                        "detail": r.detail,
                    }
                )
        return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------------------
# Statistics over seeds
# ---------------------------------------------------------------------------


def estimate(values: Any, level: float = 0.95) -> Estimate:
    """Mean with a t interval over the finite values; the median with its order-statistic
    interval when some are infinite. NaN values (halted seeds) are left out."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "no seeds")
    if np.isfinite(x).all():
        mean = float(x.mean())
        if n == 1:
            return Estimate(mean, math.nan, math.nan, 1, "one seed: no interval")
        half = float(st.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
        return Estimate(mean, mean - half, mean + half, n, f"mean over {n} seeds, t interval")
    return _median(x, level)


#: From this many seeds a 95% interval of the median exists (order statistics).
ROBUST_SEEDS = 6


def typical(values: Any, level: float = 0.95) -> Estimate:
    """The typical seed: the median with its order-statistic interval from
    :data:`ROBUST_SEEDS` seeds (with fewer, no such interval exists at 95%: the mean with
    a t interval). NaN values (halted seeds) are left out.

    Per-seed values of collapsing chains spread over decades (a Gaussian's NLL after
    1000 refits: 10 in one seed, 10^5 in another), so a mean is one seed's value and its
    t interval is too wide to decide anything; the median and its distribution-free
    interval describe the typical chain, infinite values included.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = int((~np.isnan(x)).sum())
    if n < ROBUST_SEEDS:
        return estimate(x, level)
    return _median(x[~np.isnan(x)], level)


def _median(x: np.ndarray, level: float) -> Estimate:
    """Median of ``x`` (no NaN) with the order-statistic interval."""
    n = len(x)
    xs = np.sort(x)
    lo_mid, hi_mid = xs[(n - 1) // 2], xs[n // 2]
    with np.errstate(invalid="ignore"):
        median = float((lo_mid + hi_mid) / 2) if lo_mid != hi_mid else float(lo_mid)
    if math.isnan(median):  # -inf and inf in the middle
        median = float(lo_mid)
    # The interval [x_(j), x_(n-j+1)] covers the median with probability 1 - 2 P(B <= j-1),
    # B ~ Binomial(n, 1/2): take the largest j that keeps it at least `level`.
    j = int(st.binom.ppf((1 - level) / 2, n, 0.5))
    while j > 0 and 2 * st.binom.cdf(j - 1, n, 0.5) > 1 - level:
        j -= 1
    low, high = (float(xs[j - 1]), float(xs[n - j])) if j > 0 else (-math.inf, math.inf)
    infinite = int((~np.isfinite(x)).sum())
    extra = f" ({infinite} infinite)" if infinite else ""
    return Estimate(median, low, high, n, f"median over {n} seeds{extra}, order-statistic interval")


def per_seed_ratios(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` seed by seed, NaN where the denominator is not positive."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def share_estimate(states: Any, level: float = 0.95) -> Estimate:
    """Share of seeds whose 0/1 state is 1, with a Wilson interval."""
    x = np.asarray(states, dtype=float).ravel()
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "no seeds")
    k = int((x >= 1).sum())
    ci = st.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return Estimate(k / n, float(ci.low), float(ci.high), n, f"{k} of {n} seeds, Wilson interval")


def difference_estimate(a: Any, b: Any, level: float = 0.95) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` over independent seeds (Welch t interval); the
    difference of medians without an interval when a value is infinite."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "no seeds")
    n = len(x) + len(y)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        with np.errstate(invalid="ignore"):
            value = float(np.median(x) - np.median(y))
        return Estimate(value, -math.inf, math.inf, n, "difference of medians (infinite values)")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Estimate(diff, math.nan, math.nan, n, "too few seeds for an interval")
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(diff, diff, diff, n, "difference of means (no spread)")
    df = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(st.t.ppf((1 + level) / 2, df) * se)
    return Estimate(diff, diff - half, diff + half, n, "difference of means, Welch t interval")


def ratio_estimate(numerator: Any, denominator: Any, level: float = 0.95) -> Estimate:
    """Ratio of means of paired values (seed by seed), with a delta-method t interval;
    the median of the per-seed ratios with its order-statistic interval when a value is
    infinite. Pairs with a NaN are left out.

    The ratio of means is steadier than the mean of per-seed ratios, whose denominators
    (a tail mass of one seed's generation 0) can be near zero.
    """
    a = np.asarray(numerator, dtype=float).ravel()
    b = np.asarray(denominator, dtype=float).ravel()
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = len(a)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, "no seeds")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or b.mean() <= 0:
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed = estimate(a / b, level)
        return replace(per_seed, method=per_seed.method.replace("median", "median ratio"))
    ratio = float(a.mean() / b.mean())
    if n == 1:
        return Estimate(ratio, math.nan, math.nan, 1, "one seed: no interval")
    # Delta method: the residuals a - R b carry the ratio's sampling error.
    se = float((a - ratio * b).std(ddof=1) / math.sqrt(n) / b.mean())
    half = float(st.t.ppf((1 + level) / 2, n - 1) * se)
    return Estimate(
        ratio,
        ratio - half,
        ratio + half,
        n,
        f"ratio of means over {n} seeds, delta-method t interval",
    )


def _slopes(values: np.ndarray, generations: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``values`` against ``generations``; +inf for a
    row with +inf in it (a diverged seed), NaN for one with NaN or -inf."""
    x = generations - generations.mean()
    out = np.full(values.shape[0], np.nan)
    finite = np.isfinite(values).all(axis=1)
    out[finite] = values[finite] @ x / (x @ x)
    out[np.isposinf(values).any(axis=1) & ~np.isnan(values).any(axis=1)] = np.inf
    return out


def _onset(flags: list[bool], generations: list[int]) -> int | None:
    """The first generation from which every later flag holds (``None`` if the last fails)."""
    if not flags or not flags[-1]:
        return None
    onset = generations[-1]
    for flag, generation in zip(reversed(flags), reversed(generations), strict=True):
        if not flag:
            break
        onset = generation
    return onset


def _fmt(x: float) -> str:
    if x != x:
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def interval_text(e: Estimate) -> str:
    """``value [low, high]``, or the value alone where there is no interval."""
    if e.low != e.low:
        return _fmt(e.value)
    return f"{_fmt(e.value)} [{_fmt(e.low)}, {_fmt(e.high)}]"


# ---------------------------------------------------------------------------
# What an arm recorded
# ---------------------------------------------------------------------------


@dataclass
class _Series:
    """One metric of one arm: ``values[s, g]`` for seed ``seeds[s]`` at generation ``g``."""

    metric: str
    seeds: np.ndarray
    values: np.ndarray

    @property
    def last(self) -> int:
        """The last generation with a value (-1 if none)."""
        recorded = ~np.isnan(self.values).all(axis=0)
        return int(np.flatnonzero(recorded)[-1]) if recorded.any() else -1


class _Recorded:
    """An arm's simulated series by metric, each built once, and its declarations."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        sim = arm.frame[arm.frame["source"] == "simulation"]
        self.order = [str(m) for m in dict.fromkeys(sim["metric"])]
        self._frames = {str(k): v for k, v in sim.groupby("metric", sort=False)}
        self._series: dict[str, _Series] = {}

    def series(self, metric: str) -> _Series:
        if metric not in self._series:
            frame = self._frames.get(metric)
            if frame is None or frame.empty:
                self._series[metric] = _Series(metric, np.array([], int), np.empty((0, 0)))
            else:
                seeds, row = np.unique(frame["seed"].to_numpy(), return_inverse=True)
                generation = frame["generation"].to_numpy()
                values = np.full((len(seeds), int(generation.max()) + 1), np.nan)
                values[row, generation] = frame["value"].to_numpy(dtype=float)
                self._series[metric] = _Series(metric, seeds, values)
        return self._series[metric]

    def pick(
        self,
        quantity: Quantity,
        directions: tuple[Direction, ...],
        usable: Any = None,
        by_direction: bool = False,
    ) -> str | None:
        """The recorded metric that declares ``quantity`` and one of ``directions``: the
        lowest headline rank, then the first recorded (``usable`` filters further; with
        ``by_direction``, the earlier of ``directions`` comes first)."""
        ranked = []
        for order, name in enumerate(self.order):
            declared = self.arm.describe(name)
            if not declared.is_metric or declared.quantity != quantity:
                continue
            if declared.direction not in directions:
                continue
            if usable is not None and not usable(self.series(name)):
                continue
            rank = declared.headline if declared.headline is not None else math.inf
            first = directions.index(declared.direction) if by_direction else 0
            ranked.append((first, rank, order, name))
        return min(ranked)[-1] if ranked else None


def _need(quantity: Quantity, directions: tuple[Direction, ...], what: str) -> str:
    """What a not-measured row needs: the quantity, and the registered metrics declaring it."""
    ids = []
    for metric_id in registry.list_ids("metric"):
        factory = registry.get("metric", metric_id)
        if isinstance(factory, type) and issubclass(factory, Metric):
            if factory.quantity == quantity and factory.direction in directions:
                ids.append(metric_id)
    known = f" (e.g. {', '.join(ids)})" if ids else ""
    return f"{what}: a metric declaring quantity {quantity.value!r}{known}"


LOSS = (Quantity.REAL_LOSS, (Direction.LOWER,))
DIVERSITY = (Quantity.DIVERSITY, (Direction.HIGHER, Direction.TARGET))
TAILS = (Quantity.TAILS, (Direction.HIGHER, Direction.TARGET))
#: The validity of the output itself (declared without a healthy end, as valid_fraction:
#: an output collapsed onto a few correct statements is all valid) before an accuracy on
#: held-out tasks (healthy when higher), which definition 7 reads only without the first.
VALIDITY = (Quantity.VALIDITY, (Direction.NEUTRAL, Direction.HIGHER))
GEN0 = (Quantity.GEN0_LIKELIHOOD, tuple(Direction))


def _scale(values: np.ndarray) -> float:
    """|mean| of the finite values: the unit of the equivalence margin."""
    finite = values[np.isfinite(values)]
    return float(abs(finite.mean())) if len(finite) else math.nan


def _config_regime(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    regime = config.get("regime") or {}
    if isinstance(regime, str):
        return regime, {}
    return str(regime.get("id", "replace")), dict(regime.get("params") or {})


def is_real_only(config: dict[str, Any]) -> bool:
    """Whether an arm trains every generation on real data only: regime ``fresh`` with
    ``real_fraction: 1`` (the baseline of definition 3 that :func:`verdict` recognises)."""
    regime, params = _config_regime(config)
    return regime == "fresh" and params.get("real_fraction") == 1


def real_data_is_fixed(config: dict[str, Any]) -> bool:
    """Whether the real data available to every generation is generation 0's training set:
    every regime except ``fresh`` with ``source: new`` and ``web`` (which draw new real data)."""
    regime, params = _config_regime(config)
    return not (regime == "web" or (regime == "fresh" and params.get("source") == "new"))


# ---------------------------------------------------------------------------
# The definitions
# ---------------------------------------------------------------------------


@dataclass
class _Context:
    thresholds: Thresholds
    baseline: Arm | None = None
    #: How the baseline was found: named (``--baseline``) or recognised.
    explicit: bool = False
    scaling: Row | None = None


def _changes(
    series: _Series, reference: _Series | None = None
) -> tuple[list[int], list[np.ndarray]]:
    """Per generation t >= 1 (up to the last), each seed's value at t minus its reference
    at t (``reference``, matched by seed) or, without one, minus its own generation 0."""
    generations = list(range(1, series.last + 1))
    if reference is None:
        with np.errstate(invalid="ignore"):
            return generations, [series.values[:, t] - series.values[:, 0] for t in generations]
    _, ia, ib = np.intersect1d(series.seeds, reference.seeds, return_indices=True)
    generations = [t for t in generations if t <= reference.last]
    with np.errstate(invalid="ignore"):
        diffs = [series.values[ia, t] - reference.values[ib, t] for t in generations]
    return generations, diffs


def _rise(
    number: int,
    series: _Series,
    thresholds: Thresholds,
    statistic: str,
    reference: _Series | None = None,
    detail: str = "",
) -> Row:
    """A definition that fires on a rise: collapsed when the interval of the paired
    change at the last generation is above 0; not collapsed when it is below the margin."""
    generations, diffs = _changes(series, reference)
    if not generations:
        return Row(number, Outcome.NOT_MEASURED, series.metric, need="at least 2 generations")
    estimates = [typical(d, thresholds.level) for d in diffs]
    last = estimates[-1]
    margin = thresholds.margin * _scale(series.values[:, 0])
    if last.low > 0:
        outcome = Outcome.COLLAPSED
    elif last.high < margin:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    onset = _onset([e.low > 0 for e in estimates], generations)
    note = f"margin {_fmt(margin)} ({thresholds.margin:g} of generation 0's mean)"
    return Row(
        number,
        outcome,
        series.metric,
        statistic,
        last,
        onset if outcome is Outcome.COLLAPSED else None,
        detail="; ".join(p for p in (detail, note) if p),
    )


def _trend(
    series: _Series, values: np.ndarray, thresholds: Thresholds, scale: float
) -> tuple[Outcome, Estimate, Estimate, str] | None:
    """The slope over the last ``window`` of the chain and its deceleration, per seed.

    Returns the outcome (collapsed: rising and not decelerating; not collapsed: falling,
    clearly decelerating, or flat within ``flatness`` times ``scale`` over the window),
    the slope, the deceleration statistic (the slope over the window's second half
    minus ``deceleration`` times the slope over its first half) and the window, or
    ``None`` when the window holds fewer than 3 generations.
    """
    last = series.last
    start = math.floor(last * (1 - thresholds.window))
    window = np.arange(start, last + 1)
    if len(window) < 3:
        return None
    early = window[: (len(window) + 1) // 2]
    late = window[len(window) // 2 :]
    level = thresholds.level
    slope = typical(_slopes(values[:, window], window.astype(float)), level)
    s_early = _slopes(values[:, early], early.astype(float))
    s_late = _slopes(values[:, late], late.astype(float))
    with np.errstate(invalid="ignore"):
        bending = s_late - thresholds.deceleration * s_early
    bending[np.isposinf(s_late)] = np.inf
    bend = typical(bending, level)
    flat = slope.high * (last - start) <= thresholds.flatness * scale
    if slope.low > 0 and bend.low > 0:
        outcome = Outcome.COLLAPSED
    elif slope.high <= 0 or bend.high < 0 or flat:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    return outcome, slope, bend, f"generations {start}-{last}"


def _loss_missing(number: int) -> Row:
    return Row(number, Outcome.NOT_MEASURED, need=_need(*LOSS, "a loss on held-out real data"))


def _definition_1(data: _Recorded, ctx: _Context) -> Row:
    metric = data.pick(*LOSS)
    if metric is None:
        return _loss_missing(1)
    return _rise(
        1,
        data.series(metric),
        ctx.thresholds,
        "loss at the last generation minus generation 0's, per seed",
    )


def _definition_2(data: _Recorded, ctx: _Context) -> Row:
    metric = data.pick(*LOSS)
    if metric is None:
        return _loss_missing(2)
    t = ctx.thresholds
    series = data.series(metric)
    first = series.values[:, 0]
    trend = _trend(series, series.values, t, _scale(first))
    # The multiple of generation 0's loss, per seed, where that loss is positive.
    ratios: list[tuple[int, Estimate]] = []
    finite_first = first[np.isfinite(first)]
    if series.last >= 1 and len(finite_first) and (finite_first > 0).all():
        for g in range(1, series.last + 1):
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios.append((g, typical(per_seed_ratios(series.values[:, g], first), t.level)))
    ratio = ratios[-1][1] if ratios else None
    if trend is None and ratio is None:
        return Row(2, Outcome.NOT_MEASURED, metric, need="at least 3 generations")
    over = ratio is not None and ratio.low > t.divergence_multiple
    under = ratio is None or ratio.high < t.divergence_multiple
    parts = []
    trend_outcome = Outcome.INCONCLUSIVE
    if trend is not None:
        trend_outcome, slope, bend, window = trend
        parts.append(
            f"slope over {window} {interval_text(slope)} per generation; second-half slope "
            f"minus {t.deceleration:g} x first-half slope {interval_text(bend)}"
        )
    if ratio is not None:
        parts.append(
            f"last ÷ generation 0 {interval_text(ratio)} against {t.divergence_multiple:g}x"
        )
    if trend_outcome is Outcome.COLLAPSED or over:
        outcome = Outcome.COLLAPSED
    elif trend_outcome is Outcome.NOT_COLLAPSED and under:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    onset = None
    if over:
        onset = _onset([e.low > t.divergence_multiple for _, e in ratios], [g for g, _ in ratios])
    shown: Estimate | None
    if trend is not None and (trend_outcome is Outcome.COLLAPSED or not over):
        statistic = "least-squares slope of the loss over the last half, per seed"
        shown = trend[1]
    else:
        statistic = "loss at the last generation ÷ generation 0's, per seed"
        shown = ratio
    return Row(2, outcome, metric, statistic, shown, onset, detail="; ".join(parts))


def _definition_3(data: _Recorded, ctx: _Context) -> Row:
    metric = data.pick(*LOSS)
    if metric is None:
        return _loss_missing(3)
    arm, series, base = data.arm, data.series(metric), ctx.baseline
    if base is not None and base.name == arm.name:
        return Row(3, Outcome.NOT_MEASURED, metric, need="another arm: this arm is the baseline")
    same = base is not None and all(
        arm.config.get(k) == base.config.get(k) for k in ("data", "real_samples", "root_seed")
    )
    if base is not None and not same and ctx.explicit:
        return Row(
            3,
            Outcome.NOT_MEASURED,
            metric,
            need=f"a baseline on the same real data (data, real_samples and root_seed of "
            f"{base.name!r} differ from this arm's)",
        )
    if base is not None and same:
        reference = _Recorded(base).series(metric)
        if reference.last < 1:
            return Row(
                3, Outcome.NOT_MEASURED, metric, need=f"{metric!r} recorded by {base.name!r}"
            )
        how = "named with --baseline" if ctx.explicit else "recognised: fresh, real_fraction 1"
        return _rise(
            3,
            series,
            ctx.thresholds,
            f"loss minus the real-only arm {base.name!r}'s at the last generation, per seed",
            reference=reference,
            detail=f"baseline {base.name!r} ({how})",
        )
    if real_data_is_fixed(arm.config):
        return _rise(
            3,
            series,
            ctx.thresholds,
            "loss at the last generation minus generation 0's, per seed",
            detail="the real data is fixed, so the real-only model is generation 0's: here "
            "this definition coincides with definition 1",
        )
    return Row(
        3,
        Outcome.NOT_MEASURED,
        metric,
        need="a real-only baseline (--baseline ARM, or an arm with regime fresh and "
        "real_fraction: 1): this arm draws new real data",
    )


def _positive(series: _Series) -> bool:
    """A diversity that can trend to zero: never negative, positive at generation 0."""
    values = series.values[np.isfinite(series.values)]
    first = series.values[:, 0]
    first = first[~np.isnan(first)]
    return bool(len(values) and len(first) and (values >= 0).all() and (first > 0).all())


def _state(data: _Recorded, t: Thresholds) -> tuple[str, list[int], list[Estimate]] | None:
    """The recorded 0/1 collapsed state, share of seeds per generation (the current
    state in preference to the absorbing one, which overstates collapse where real data
    lets a chain recover)."""
    names = [
        name
        for name in data.order
        if data.arm.describe(name).is_metric
        and data.arm.describe(name).quantity == Quantity.COLLAPSED
    ]
    if not names:
        return None
    metrics = data.arm.metrics
    current = [n for n in names if n in metrics and not metrics[n].absorbing]
    name = (current or names)[0]
    series = data.series(name)
    generations = list(range(series.last + 1))
    return name, generations, [share_estimate(series.values[:, g], t.level) for g in generations]


def state_outcome(share: Estimate, t: Thresholds) -> Outcome:
    """Collapsed where the share of seeds in the collapsed state lies wholly above
    ``collapsed_share``, not where wholly below, else inconclusive."""
    if share.low > t.collapsed_share:
        return Outcome.COLLAPSED
    if share.high < t.collapsed_share:
        return Outcome.NOT_COLLAPSED
    return Outcome.INCONCLUSIVE


def _below_share(
    series: _Series, share: float, level: float
) -> tuple[Outcome, Estimate, int | None] | None:
    """The typical seed's value at the last generation as a share of its generation 0's,
    against ``share`` (definitions 4 and 5): collapsed where the interval lies wholly
    below it, not collapsed where wholly at or above, else inconclusive; with the
    estimate and, where collapsed, the onset. ``None`` with a single generation."""
    first = series.values[:, 0]
    generations = list(range(1, series.last + 1))
    if not generations:
        return None
    ratios = [typical(per_seed_ratios(series.values[:, g], first), level) for g in generations]
    last = ratios[-1]
    if last.high < share:
        outcome = Outcome.COLLAPSED
    elif last.low >= share:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    onset = _onset([e.high < share for e in ratios], generations)
    return outcome, last, onset if outcome is Outcome.COLLAPSED else None


def _definition_4(data: _Recorded, ctx: _Context) -> Row:
    t = ctx.thresholds
    metric = data.pick(*DIVERSITY, usable=_positive)
    state = _state(data, t)
    if metric is None and state is None:
        return Row(
            4,
            Outcome.NOT_MEASURED,
            need=_need(*DIVERSITY, "a diversity, positive at generation 0")
            + "; or a collapsed state (quantity 'collapsed')",
        )
    outcomes, parts = [], []
    shown, statistic, used, onset = None, "", "", None
    trend = None
    if metric is not None:
        series = data.series(metric)
        with np.errstate(divide="ignore", invalid="ignore"):
            minus_log = -np.log(series.values)  # diversity 0 is +inf: a diverged seed
        trend = _trend(series, minus_log, t, 1.0)
        if trend is not None:
            outcome, slope, bend, window = trend
            outcomes.append(outcome)
            # Shown as the slope of ln(diversity) itself: negative is falling.
            shown = Estimate(-slope.value, -slope.high, -slope.low, slope.n, slope.method)
            statistic = f"least-squares slope of ln {metric} over the last half, per seed"
            used = metric
            parts.append(
                f"ln {metric}: slope over {window} {interval_text(shown)} per generation; "
                f"deceleration statistic {interval_text(bend)}"
            )
    if state is not None:
        name, generations, shares = state
        now = shares[-1]
        parts.append(f"{name} at the last generation: {interval_text(now)} ({now.method})")
        outcomes.append(state_outcome(now, t))
        if outcomes[-1] is Outcome.COLLAPSED:
            onset = _onset([e.low > t.collapsed_share for e in shares], generations)
            if Outcome.COLLAPSED not in outcomes[:-1]:  # the state decides: show it
                shown, used = now, name
                statistic = f"share of seeds in the state {name} at the last generation"
        if shown is None:
            shown, used = now, name
            statistic = f"share of seeds in the state {name} at the last generation"
    if trend is not None and metric is not None:  # three generations or more
        # the level, not only the trend: a diversity that fell to a few percent of
        # generation 0's and then stopped falling has a flat trend, and is gone; shown
        # only where neither the trend nor the collapsed state decides
        below = _below_share(series, t.diversity_share, t.level)
        if below is not None:
            level, last, level_onset = below
            parts.append(
                f"{metric} at the last generation ÷ generation 0's: {interval_text(last)} "
                f"against {t.diversity_share:g}"
            )
            if level is Outcome.COLLAPSED and Outcome.COLLAPSED not in outcomes:
                shown, used = last, metric
                statistic = f"{metric} at the last generation ÷ generation 0's, per seed"
                onset = level_onset
            outcomes.append(level)
    if not outcomes:
        return Row(4, Outcome.NOT_MEASURED, metric or "", need="at least 3 generations")
    if Outcome.COLLAPSED in outcomes:
        verdict = Outcome.COLLAPSED
    elif all(o is Outcome.NOT_COLLAPSED for o in outcomes):
        verdict = Outcome.NOT_COLLAPSED
    else:
        verdict = Outcome.INCONCLUSIVE
    return Row(
        4,
        verdict,
        used,
        statistic,
        shown,
        onset if verdict is Outcome.COLLAPSED else None,
        detail="; ".join(parts),
    )


def _definition_5(data: _Recorded, ctx: _Context) -> Row:
    t = ctx.thresholds
    metric = data.pick(*TAILS)
    if metric is None:
        return Row(5, Outcome.NOT_MEASURED, need=_need(*TAILS, "a tail measure"))
    below = _below_share(data.series(metric), t.tail_share, t.level)
    if below is None:
        return Row(5, Outcome.NOT_MEASURED, metric, need="at least 2 generations")
    outcome, last, onset = below
    return Row(
        5,
        outcome,
        metric,
        "value at the last generation ÷ generation 0's, per seed",
        last,
        onset,
        detail=f"threshold {t.tail_share:g} of generation 0's",
    )


def _definition_6(data: _Recorded, ctx: _Context) -> Row:
    t = ctx.thresholds
    gen0, loss = data.pick(*GEN0), data.pick(*LOSS)
    if gen0 is None or loss is None:
        missing = [] if gen0 is not None else [_need(*GEN0, "the output's loss under generation 0")]
        missing += [] if loss is not None else [_need(*LOSS, "a loss on held-out real data")]
        return Row(6, Outcome.NOT_MEASURED, gen0 or loss or "", need="; ".join(missing))
    g, r = data.series(gen0), data.series(loss)
    g_generations, g_diffs = _changes(g)
    r_generations, r_diffs = _changes(r)
    g_est = {x: typical(d, t.level) for x, d in zip(g_generations, g_diffs, strict=True)}
    r_est = {x: typical(d, t.level) for x, d in zip(r_generations, r_diffs, strict=True)}
    common = [x for x in g_generations if x in r_est]
    if not common:
        return Row(6, Outcome.NOT_MEASURED, gen0, need="at least 2 generations")
    ge, re_ = g_est[common[-1]], r_est[common[-1]]
    g_margin = t.margin * _scale(g.values[:, 0])
    r_margin = t.margin * _scale(r.values[:, 0])
    if ge.high < 0 and re_.low > 0:
        outcome = Outcome.COLLAPSED
    elif ge.low > -g_margin or re_.high < r_margin:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    onset = _onset([g_est[x].high < 0 and r_est[x].low > 0 for x in common], common)
    return Row(
        6,
        outcome,
        f"{gen0} & {loss}",
        f"{gen0} at the last generation minus generation 0's, per seed (a loss under "
        "generation 0's model: falling is more likely)",
        ge,
        onset if outcome is Outcome.COLLAPSED else None,
        detail=f"{loss} change {interval_text(re_)}",
    )


def _definition_7(data: _Recorded, ctx: _Context) -> Row:
    t = ctx.thresholds
    metric = data.pick(*VALIDITY, by_direction=True)
    if metric is None:
        return Row(
            7,
            Outcome.NOT_MEASURED,
            need=_need(*VALIDITY, "a validity of the output")
            + "; for text, a share of generated n-grams never seen in real data (no metric "
            "records it yet)",
        )
    series = data.series(metric)
    generations, diffs = _changes(series)
    if not generations:
        return Row(7, Outcome.NOT_MEASURED, metric, need="at least 2 generations")
    estimates = [typical(d, t.level) for d in diffs]
    last = estimates[-1]
    margin = t.margin * _scale(series.values[:, 0])
    if last.high < 0:
        outcome = Outcome.COLLAPSED
    elif last.low > -margin:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    onset = _onset([e.high < 0 for e in estimates], generations)
    return Row(
        7,
        outcome,
        metric,
        "validity at the last generation minus generation 0's, per seed",
        last,
        onset if outcome is Outcome.COLLAPSED else None,
        detail=f"margin {_fmt(margin)} ({t.margin:g} of generation 0's mean)",
    )


def _definition_8(data: _Recorded, ctx: _Context) -> Row:
    if ctx.scaling is not None:
        return ctx.scaling
    return Row(
        8,
        Outcome.NOT_MEASURED,
        need="a sweep over data size ('collapselab sweep CONFIG --grid "
        "samples_per_generation=...'), then 'collapselab verdict SWEEP_DIR'",
    )


_JUDGES = {
    1: _definition_1,
    2: _definition_2,
    3: _definition_3,
    4: _definition_4,
    5: _definition_5,
    6: _definition_6,
    7: _definition_7,
    8: _definition_8,
}


def judge(
    arm: Arm,
    definition: int,
    thresholds: Thresholds | None = None,
    *,
    baseline: Arm | None = None,
) -> Row:
    """The verdict of one definition for one arm (8 only says what it needs: it is
    measured on a sweep, see :func:`verdict`).

    Parameters
    ----------
    arm : Arm
        One arm as :func:`collapselab.report.runs.load` reads it.
    definition : int
        The definition's number in :data:`DEFINITIONS`.
    thresholds : Thresholds, optional
        The defaults of :class:`Thresholds` when omitted.
    baseline : Arm, optional
        The real-only arm definition 3 compares with.

    Returns
    -------
    Row
    """
    if definition not in _JUDGES:
        raise CollapseLabError(f"definition must be one of 1-8; got {definition!r}")
    t = (thresholds or Thresholds()).check()
    ctx = _Context(t, baseline, explicit=baseline is not None)
    return _JUDGES[definition](_Recorded(arm), ctx)


# ---------------------------------------------------------------------------
# Runs and sweeps
# ---------------------------------------------------------------------------


def _baseline(arms: list[Arm], name: str | None) -> Arm | None:
    """The arm named ``name``, else the first real-only arm (:func:`is_real_only`)."""
    if name is not None:
        found = [a for a in arms if a.name == name]
        if not found:
            known = ", ".join(a.name for a in arms)
            raise CollapseLabError(f"--baseline {name!r} is not an arm of this run; arms: {known}")
        return found[0]
    return next((a for a in arms if is_real_only(a.config)), None)


def run_verdicts(
    run: Run,
    thresholds: Thresholds | None = None,
    baseline: str | None = None,
    scaling: dict[str, Row] | None = None,
) -> tuple[list[ArmVerdict], str | None]:
    """Every definition's row for every arm of a loaded run, and the baseline arm used
    (``scaling``: definition 8's row by arm, from :func:`scaling_rows`)."""
    t = (thresholds or Thresholds()).check()
    base = _baseline(run.arms, baseline)
    out = []
    for arm in run.arms:
        ctx = _Context(t, base, baseline is not None, (scaling or {}).get(arm.name))
        data = _Recorded(arm)
        rows = [_JUDGES[d.number](data, ctx) for d in DEFINITIONS]
        out.append(ArmVerdict(run.name, arm.name, rows, arm.directory))
    return out, base.name if base is not None else None


def _size_axis(axes: list[dict[str, Any]], size_key: str | None) -> str | None:
    keys = [str(a.get("key")) for a in axes]
    if size_key is not None:
        if size_key not in keys:
            raise CollapseLabError(
                f"--size-key {size_key!r} is not an axis of this sweep; axes: {', '.join(keys)}"
            )
        return size_key
    known = [k for k in keys if k in SIZE_KEYS]
    return known[0] if known else None


def scaling_rows(
    directory: str | Path, thresholds: Thresholds | None = None, size_key: str | None = None
) -> tuple[str | None, dict[tuple[str, str], Row]]:
    """Definition 8 on a sweep folder: per arm and value of the other axes, whether more
    data stops reducing the real-data loss at the last generation.

    Returns the size axis (``None`` if the sweep has none) and ``(point, arm) -> Row``.
    """
    t = (thresholds or Thresholds()).check()
    directory = Path(directory)
    manifest = read_json(directory / "sweep.json")
    if not isinstance(manifest, dict):
        raise ResultsError(f"{str(directory)!r} is not a sweep folder (no readable sweep.json)")
    axes = manifest.get("axes") or []
    key = _size_axis(axes, size_key)
    if key is None:
        return None, {}
    lines: dict[tuple[str, str], list[tuple[float, str, Arm]]] = {}
    for point in manifest.get("points") or []:
        point_dir = directory / str(point["name"])
        if not (point_dir / "manifest.json").is_file():
            continue
        others = json.dumps(
            {k: v for k, v in sorted(point["values"].items()) if k != key}, default=str
        )
        for arm in load(point_dir).arms:
            size = point["values"].get(key)
            if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0:
                lines.setdefault((arm.name, others), []).append((float(size), point["name"], arm))
    rows: dict[tuple[str, str], Row] = {}
    for (arm_name, _), members in lines.items():
        members.sort(key=lambda m: m[0])
        row = _scaling(members, t, key)
        for _, point_name, _ in members:
            rows[(point_name, arm_name)] = row
    return key, rows


def _scaling(members: list[tuple[float, str, Arm]], t: Thresholds, key: str) -> Row:
    metric = _Recorded(members[0][2]).pick(*LOSS)
    if metric is None:
        return Row(8, Outcome.NOT_MEASURED, need=_need(*LOSS, "a loss on held-out real data"))
    if len({m[0] for m in members}) < 3:
        return Row(8, Outcome.NOT_MEASURED, metric, need=f"at least 3 values of {key}")
    sizes, means, variances = [], [], []
    for size, _, arm in members:
        series = _Recorded(arm).series(metric)
        last = series.values[:, series.last] if series.last >= 0 else np.array([])
        last = last[~np.isnan(last)]
        if len(last) < 2 or not np.isfinite(last).all() or last.mean() <= 0:
            return Row(
                8,
                Outcome.NOT_MEASURED,
                metric,
                need=f"a positive, finite loss over at least 2 seeds at every {key}",
            )
        sizes.append(size)
        means.append(last.mean())
        variances.append(last.var(ddof=1) / len(last) / last.mean() ** 2)  # var of ln mean
    upper = slice(len(sizes) // 2, None)
    x = np.log(np.asarray(sizes)[upper])
    y = np.log(np.asarray(means)[upper])
    v = np.asarray(variances)[upper]
    centred = x - x.mean()
    slope = float(centred @ y / (centred @ centred))
    se = float(math.sqrt((centred**2) @ v) / (centred @ centred))
    z = float(st.norm.ppf((1 + t.level) / 2))
    shown = Estimate(
        slope,
        slope - z * se,
        slope + z * se,
        len(x),
        f"least squares over {len(x)} sizes, delta-method normal interval",
    )
    floor = -t.scaling_exponent
    if shown.low > floor:
        outcome = Outcome.COLLAPSED
    elif shown.high < floor:
        outcome = Outcome.NOT_COLLAPSED
    else:
        outcome = Outcome.INCONCLUSIVE
    listed = ", ".join(f"{s:g}: {_fmt(m)}" for s, m in zip(sizes, means, strict=True))
    return Row(
        8,
        outcome,
        metric,
        f"slope of ln(mean loss at the last generation) against ln {key} over the larger half "
        "of the sizes",
        shown,
        None,
        detail=f"scaling holds below a slope of {floor:g}; mean loss by {key}: {listed}",
    )


def thresholds_of(**thresholds: float) -> Thresholds:
    """:class:`Thresholds` with these fields changed; an unknown name or a value out of
    range is refused in one line."""
    allowed = {f.name for f in fields(Thresholds)}
    unknown = sorted(set(thresholds) - allowed)
    if unknown:
        raise CollapseLabError(
            f"unknown verdict threshold {unknown[0]!r}; thresholds: {', '.join(sorted(allowed))}"
        )
    return replace(Thresholds(), **thresholds).check()


def verdict(
    directory: str | Path,
    *,
    baseline: str | None = None,
    size_key: str | None = None,
    **thresholds: float,
) -> Verdict:
    """Every definition's verdict for every arm of a run, or of every point of a sweep.

    Parameters
    ----------
    directory : path
        A run directory (or one arm's), or a sweep folder (``sweep.json``), where
        definition 8 is measured too.
    baseline : str, optional
        The arm definition 3 compares with (a model trained on real data only). By
        default an arm with regime ``fresh`` and ``real_fraction: 1``; without one,
        arms whose real data is fixed compare with their own generation 0.
    size_key : str, optional
        The sweep axis that is the data size (definition 8); by default the first of
        :data:`SIZE_KEYS` among the axes.
    **thresholds : float
        Fields of :class:`Thresholds` (``margin=0.02``, ``tail_share=0.3``...).

    Returns
    -------
    Verdict

    Raises
    ------
    CollapseLabError
        On an unknown threshold, a threshold out of range, or a baseline that is not an arm.
    ResultsError
        If ``directory`` is neither a finished run nor a sweep.
    """
    t = thresholds_of(**thresholds)
    directory = Path(directory)
    if (directory / "sweep.json").is_file():
        key, scaling = scaling_rows(directory, t, size_key)
        manifest = read_json(directory / "sweep.json") or {}
        arms: list[ArmVerdict] = []
        for point in manifest.get("points") or []:
            point_dir = directory / str(point["name"])
            if not (point_dir / "manifest.json").is_file():
                continue
            per_arm = {a: r for (p, a), r in scaling.items() if p == point["name"]}
            found, _ = run_verdicts(load(point_dir), t, baseline, per_arm)
            for item in found:
                item.run = str(point["name"])
            arms += found
        if key is None:
            for item in arms:
                item.rows[7] = Row(
                    8,
                    Outcome.NOT_MEASURED,
                    need=f"a sweep axis that is a data size ({', '.join(SIZE_KEYS)}) or --size-key",
                )
        return Verdict(directory, t, arms, baseline, sweep=True, size_key=key)
    found, base = run_verdicts(load(directory), t, baseline)
    return Verdict(directory, t, found, base)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

#: Cell text of each outcome in the matrix: the answer to "did it collapse by this one?".
SHORT = {
    Outcome.COLLAPSED: "yes",
    Outcome.NOT_COLLAPSED: "no",
    Outcome.INCONCLUSIVE: "?",
    Outcome.NOT_MEASURED: "–",
}
#: The colour of each outcome in the terminal and in the report.
COLOURS = {
    Outcome.COLLAPSED: "red",
    Outcome.NOT_COLLAPSED: "green",
    Outcome.INCONCLUSIVE: "yellow",
    Outcome.NOT_MEASURED: "dim",
}
#: What the matrix's cells mean.
MATRIX_KEY = (
    "yes: collapsed by that definition (gN: from generation N on); no: not collapsed; "
    "?: inconclusive (the interval straddles the threshold: more seeds decide it); "
    "–: not measured (the run records no metric it reads)"
)


def cell(row: Row) -> str:
    """The matrix cell of one row: ``yes g12``, ``no``, ``?`` or ``–``."""
    return SHORT[row.outcome] + (f" g{row.onset}" if row.onset is not None else "")


def print_verdict(result: Verdict, *, rows: bool = True, console: Any = None) -> None:
    """The matrix (arms x definitions) and, with ``rows``, each arm's rows, with rich."""
    from rich.table import Table
    from rich.text import Text

    from .summary import stdout_console

    console = console or stdout_console()
    matrix = Table(
        title=f"did it collapse? {result.directory} (arms x definitions)", title_justify="left"
    )
    matrix.add_column("arm", no_wrap=True)
    for d in DEFINITIONS:
        matrix.add_column(f"{d.number}\n{d.short}", justify="center", overflow="fold")
    for a in result.arms:
        name = f"{a.run}/{a.arm}" if result.sweep else a.arm
        matrix.add_row(name, *[Text(cell(r), COLOURS[r.outcome]) for r in a.rows])
    console.print(matrix)
    console.print(MATRIX_KEY, style="dim")
    if rows:
        for a in result.arms:
            table = Table(
                title=f"{a.run}/{a.arm}" if result.sweep else a.arm,
                title_justify="left",
                show_lines=True,
            )
            table.add_column("definition")
            table.add_column("metric")
            table.add_column("value [95% interval]", justify="right")
            table.add_column("verdict")
            table.add_column("statistic; why", style="dim", ratio=1)
            for r in a.rows:
                value = interval_text(r.estimate) if r.estimate else ""
                verdict_text = str(r.outcome) + (
                    f" from generation {r.onset}" if r.onset is not None else ""
                )
                how = f"{r.statistic} ({r.estimate.method})" if r.estimate else r.statistic
                why = r.need if r.outcome is Outcome.NOT_MEASURED else r.detail
                table.add_row(
                    f"{r.definition} {DEFINITIONS[r.definition - 1].name}",
                    r.metric,
                    value,
                    Text(verdict_text, COLOURS[r.outcome]),
                    "; ".join(p for p in (how, why) if p),
                )
            console.print(table)
    console.print(definitions_text(), style="dim")


def definitions_text() -> str:
    """Each definition in one sentence with its source, and the taxonomy's source."""
    lines = [f"{d.number}. {d.name}: {d.sentence} ({d.source})" for d in DEFINITIONS]
    lines.append(
        "The taxonomy: Schaeffer, Kazdan, Arulandu and Koyejo (2025), 'Position: Model "
        "Collapse Does Not Mean What You Think'."
    )
    return "\n".join(lines)


def cmd_verdict(args: argparse.Namespace) -> int:
    thresholds = {
        f.name: getattr(args, f.name)
        for f in fields(Thresholds)
        if getattr(args, f.name) is not None
    }
    if args.threshold_of is not None:
        from .threshold import print_threshold, threshold_of

        found = threshold_of(
            args.run_dir,
            args.threshold_of,
            arm=args.arm,
            definition=args.definition,
            low=args.range[0],
            high=args.range[1],
            steps=args.steps,
            out=args.out,
            workers=args.workers,
            state_only=args.state_only,
            **thresholds,
        )
        if args.json:
            print(json.dumps(plain(found.to_dict()), indent=2))
        else:
            print_threshold(found)
        return 0
    result = verdict(args.run_dir, baseline=args.baseline, size_key=args.size_key, **thresholds)
    if args.json:
        print(json.dumps(plain(result.to_dict()), indent=2))
    else:
        print_verdict(result, rows=not args.matrix)
    return 0


def plain(value: Any) -> Any:
    """``value`` as strict JSON data: NaN as null, infinities as ``"inf"`` / ``"-inf"``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, (np.integer, np.floating)):
        return plain(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def add_parser(sub: Any) -> None:
    """Add ``collapselab verdict`` to the CLI's subcommands."""
    p = sub.add_parser(
        "verdict", help="which definitions of collapse each arm meets, with 95%% intervals"
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, or a sweep folder")
    p.add_argument("--baseline", metavar="ARM", help="the real-only arm definition 3 compares with")
    p.add_argument("--size-key", metavar="KEY", help="the sweep axis that is the data size")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--matrix", action="store_true", help="print only the arms x definitions matrix")
    g = p.add_argument_group(
        "how much real data is enough (issue 16f): bisect a field of one arm for where a "
        "definition stops firing; each value tried is a run of its own under --out"
    )
    g.add_argument(
        "--threshold-of",
        metavar="FIELD",
        help="e.g. regime.params.real_fraction (or samples_per_generation, real_samples)",
    )
    g.add_argument("--arm", help="the arm to rerun (default: the run's first)")
    g.add_argument("--definition", type=int, default=4, help="definition 1-7 (default 4)")
    g.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=(0.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="the values searched (default 0 1)",
    )
    g.add_argument("--steps", type=int, default=6, help="halvings of the bracket (default 6)")
    g.add_argument("--out", help="folder of the runs tried (default RUN_DIR-threshold)")
    g.add_argument("--workers", type=int, default=1, help="worker processes per run")
    g.add_argument(
        "--state-only",
        action="store_true",
        help="judge definition 4 by the collapsed state alone (what the closed forms bound)",
    )
    defaults = Thresholds()
    for f in fields(Thresholds):
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=float,
            metavar="X",
            help=f"threshold (default {getattr(defaults, f.name):g}; see Thresholds)",
        )
    p.set_defaults(func=cmd_verdict)
