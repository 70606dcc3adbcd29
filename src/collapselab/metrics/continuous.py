"""Metrics of continuous models: spread, fidelity to the real data, tails, and the
collapsed state (``collapsed_now`` at a generation, ``ever_collapsed`` absorbing).

Each metric describes model ``t`` (and its own output) against the real data of the
same seed. Reference statistics prefer the known ground truth (``RealData.truth``)
and otherwise use the real training split.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.special import ndtr

from ..core import (
    DataKind,
    Direction,
    GenerativeModel,
    Interval,
    Metric,
    Options,
    Quantity,
    RealData,
    ReferenceBatch,
    SeedBatch,
    as_2d,
)
from ..errors import require
from ..registry import register

CONTINUOUS = frozenset({DataKind.CONTINUOUS})


def model_moments(model: Any, synthetic: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the model, from closed form where it offers one."""
    if "moments" in type(model).provides:
        return model.moments()
    x = as_2d(synthetic)
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=0).reshape(x.shape[1], x.shape[1])


def reference_moments(ref: RealData) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the real distribution (truth if known, else training data)."""

    def compute(r: RealData) -> tuple[np.ndarray, np.ndarray]:
        if "mean" in r.truth and "cov" in r.truth:
            return np.asarray(r.truth["mean"]), np.asarray(r.truth["cov"])
        x = as_2d(r.train)
        return x.mean(axis=0), np.cov(x, rowvar=False, ddof=0).reshape(x.shape[1], x.shape[1])

    return ref.cached("moments", compute)


def _logdet(cov: np.ndarray) -> np.ndarray:
    sign, logdet = np.linalg.slogdet(cov)
    return np.where(sign > 0, logdet, -np.inf)


@register("metric", "variance")
class Variance(Metric):
    """Trace of the fitted covariance divided by d (sigma^2 in 1-D)."""

    model_only = frozenset({"moments"})

    applies_to = CONTINUOUS
    label = "variance tr(Σ)/d (data units²)"
    unit = "data units²"
    # Both ends are unhealthy: collapse drives it to 0, a sampling bias above 1 inflates it.
    direction = Direction.TARGET
    quantity = Quantity.DIVERSITY
    headline = 5
    theory_quantity = "variance"

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        _, cov = model_moments(model, synthetic)
        return float(np.trace(cov) / cov.shape[0])

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        _, cov = model.moments()
        if cov.shape[1] == 1:  # the trace of 1 x 1 matrices, for a third of trace's cost
            return cov[:, 0, 0] + 0.0  # the sum trace takes, from 0 (so -0 becomes 0)
        return np.trace(cov, axis1=1, axis2=2) / cov.shape[1]


@register("metric", "log_variance")
class LogVariance(Variance):
    """Natural log of ``variance``; -inf once the model has fully collapsed."""

    label = "log variance ln(tr(Σ)/d)"
    unit = "ln data units²"
    headline = None  # repeats variance
    theory_quantity = "log_variance"

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        with np.errstate(divide="ignore"):
            return float(np.log(super().__call__(model, synthetic, reference, rng=rng)))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        with np.errstate(divide="ignore"):
            return np.log(super().batched(model, synthetic, references, rng=rng))


@register("metric", "mean_shift")
class MeanShift(Metric):
    """Squared distance ||mu_t - mu_real||^2 between the model's and the real mean."""

    model_only = frozenset({"moments"})

    applies_to = CONTINUOUS
    label = "‖μ_t − μ_real‖² (data units²)"
    unit = "data units²"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    headline = 100
    theory_quantity = "mean_shift"

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        mean, _ = model_moments(model, synthetic)
        return float(np.sum((mean - reference_moments(reference)[0]) ** 2))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        mean, _ = model.moments()
        real = references.stacked("mean", lambda r: reference_moments(r)[0])
        return np.sum((mean - real) ** 2, axis=1)


@register("metric", "logdet_ratio")
class LogdetRatio(Metric):
    """log det(Sigma_t) - log det(Sigma_real): 0 when the spread is kept, -> -inf on collapse."""

    model_only = frozenset({"moments"})

    applies_to = CONTINUOUS
    label = "log det Σ_t − log det Σ_real (nats)"
    unit = "nats"
    direction = Direction.TARGET  # 0: the real spread
    quantity = Quantity.DIVERSITY
    headline = 100

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        _, cov = model_moments(model, synthetic)
        return float(_logdet(cov) - _logdet(reference_moments(reference)[1]))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        _, cov = model.moments()
        real = references.stacked("logdet", lambda r: _logdet(reference_moments(r)[1]))
        return _logdet(cov) - real


@register("metric", "nll_real")
class NLLReal(Metric):
    """Mean negative log-likelihood of the held-out real test data under model t."""

    model_only = frozenset()

    applies_to = CONTINUOUS
    label = "NLL of real test data (nats per sample)"
    unit = "nats per sample"
    direction = Direction.LOWER
    quantity = Quantity.REAL_LOSS
    headline = 7

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        return float(-np.mean(model.log_prob(reference.test)))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        mean, cov = model.moments()
        if mean.shape[1] != 1:
            return self._batched_nd(model, mean, cov, references)
        test = references.stacked("test", lambda r: as_2d(r.test))[:, :, 0]
        var = cov[:, 0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            sq = np.mean((test - mean) ** 2, axis=1)
            nll = 0.5 * (np.log(2 * np.pi * var) + sq / var)
        return np.where(var > 0, nll, np.inf)

    def _batched_nd(
        self, model: Any, mean: np.ndarray, cov: np.ndarray, references: ReferenceBatch
    ) -> np.ndarray:
        """Every seed at once through Cholesky factors; a seed whose covariance is not
        positive definite (a collapsed fit) goes through the exact per-seed formula."""
        test = references.stacked("test", lambda r: as_2d(r.test))
        d = mean.shape[1]
        out = np.empty(mean.shape[0])
        eigenvalues = np.linalg.eigvalsh(cov)
        healthy = eigenvalues[:, 0] > 1e-12 * np.maximum(eigenvalues[:, -1], 1e-300)
        if healthy.any():
            chol = np.linalg.cholesky(cov[healthy])
            centred = np.swapaxes(test[healthy] - mean[healthy][:, None, :], 1, 2)
            whitened = np.linalg.solve(chol, centred)  # (s, d, m)
            logdet = 2 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)
            quad = np.mean(np.sum(whitened**2, axis=1), axis=1)
            out[healthy] = 0.5 * (quad + logdet + d * np.log(2 * np.pi))
        for s in np.flatnonzero(~healthy):
            out[s] = -np.mean(model.unbatch(s).log_prob(test[s]))
        return out


@register("metric", "wasserstein")
class Wasserstein(Metric):
    """Wasserstein-1 distance between model t's output and the real test data.

    Exact in 1-D; in more dimensions either sliced or exact optimal transport (POT
    ``emd2``; cubic in the sample size). Sliced W1 is the mean of the exact 1-D W1
    over ``n_projections`` unit directions. The directions are drawn once, from a
    fixed seed, and shared by every seed and generation: each generation is then
    measured by the same yardstick, so trends across generations carry no
    projection noise, and the real data's sorted projections are computed once.
    """

    applies_to = CONTINUOUS
    label = "Wasserstein-1 to real test data (data units; {method} in d > 1)"
    unit = "data units"
    direction = Direction.LOWER
    quantity = Quantity.FIDELITY
    headline = 14
    parameter_constraints: ClassVar = {
        "method": [Options(("sliced", "exact"))],
        "n_projections": [Interval(1, None, integer=True)],
    }

    def __init__(self, *, method: str = "sliced", n_projections: int = 50) -> None:
        self.method = method
        self.n_projections = n_projections

    def _directions(self, d: int) -> np.ndarray:
        directions = np.random.default_rng(20240517).standard_normal((d, self.n_projections))
        return directions / np.linalg.norm(directions, axis=0)

    def _sorted_test(self, reference: RealData) -> np.ndarray:
        """The real test data's sorted projections, (n_projections, m), once per seed."""
        y = as_2d(reference.test)
        key = f"sliced_test_{self.n_projections}"
        return reference.cached(
            key, lambda r: np.sort((y @ self._directions(y.shape[1])).T, axis=1)
        )

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        x, y = as_2d(synthetic), as_2d(reference.test)
        if x.shape[1] == 1:
            return float(wasserstein_1d_rows(x.T, y.T)[0])
        if self.method == "exact":
            ot = require(
                "ot",
                "exact",
                "wasserstein with method: exact in 2 or more dimensions",
                package="POT",
            )
            cost = ot.dist(x, y, metric="euclidean")
            return float(ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)), cost))
        projected = np.sort((x @ self._directions(x.shape[1])).T, axis=1)
        return float(np.mean(wasserstein_sorted_rows(projected, self._sorted_test(reference))))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        x = synthetic.array
        if x.shape[2] == 1:
            test = references.stacked("test", lambda r: as_2d(r.test))
            return wasserstein_1d_rows(x[:, :, 0], test[:, :, 0])
        if self.method == "exact":
            return None
        seeds, n, _ = x.shape
        test = references.stacked(f"sliced_test_{self.n_projections}", self._sorted_test)
        projected = np.sort(np.einsum("snd,dk->skn", x, self._directions(x.shape[2])), axis=2)
        k, m = test.shape[1], test.shape[2]
        distances = wasserstein_sorted_rows(
            projected.reshape(seeds * k, n), test.reshape(seeds * k, m)
        )
        return distances.reshape(seeds, k).mean(axis=1)


def _quantile_merge(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the quantile functions of n and m equally weighted points step: for each
    interval of the merged grid {i/n} U {j/m}, its width and which order statistic of
    each sample holds there. Depends only on (n, m), so it is computed once."""
    key = (n, m)
    if key not in _MERGE_CACHE:
        grid = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
        width = np.diff(np.r_[0.0, grid])
        mid = grid - width / 2
        _MERGE_CACHE[key] = (
            np.minimum((mid * n).astype(np.intp), n - 1),
            np.minimum((mid * m).astype(np.intp), m - 1),
            width,
        )
    return _MERGE_CACHE[key]


_MERGE_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def wasserstein_sorted_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact W1 between each row of sorted ``x`` (r, n) and sorted ``y`` (r, m): the
    integral over u of |F^-1(u) - G^-1(u)|, in O(n + m) per row."""
    a, b, width = _quantile_merge(x.shape[1], y.shape[1])
    out = np.empty(x.shape[0])
    step = 256  # rows per block: the gathered block stays in cache
    for start in range(0, x.shape[0], step):
        rows = slice(start, start + step)
        out[rows] = np.abs(x[rows][:, a] - y[rows][:, b]) @ width
    return out


def wasserstein_1d_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical distributions of each row pair of ``x`` (S, n)
    and ``y`` (S, m): the integral of |F - G| over the merged sorted support."""
    n, m = x.shape[1], y.shape[1]
    values = np.concatenate([x, y], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    merged = np.take_along_axis(values, order, axis=1)
    step = np.where(order < n, 1.0 / n, -1.0 / m)  # F - G jumps at each point
    gap = np.cumsum(step, axis=1)[:, :-1]
    return np.sum(np.abs(gap) * np.diff(merged, axis=1), axis=1)


@register("metric", "tail_mass")
class TailMass(Metric):
    """Mass model t puts in the real data's tails, divided by the real tail mass.

    The tails are beyond the real data's 1% and 99% quantiles, per dimension
    (``marginal``) or beyond its 98% Mahalanobis radius (``radius``); ``auto``
    takes ``marginal`` in 1-D and ``radius`` otherwise. Quantiles and the real tail
    mass come from all real data of the seed (train and test), so 1 means the
    tails are intact and 0 means they have vanished. The model's mass is exact for
    models with marginal CDFs (Gaussian, GMM, Gaussian KDE) and otherwise a Monte
    Carlo estimate from ``n_mc`` fresh samples.
    """

    model_only = frozenset()

    applies_to = CONTINUOUS
    label = "tail mass ÷ real tail mass ({mode})"
    unit = "ratio"
    # 1 is the real tails: 0 once they have vanished, above 1 when they are too heavy.
    direction = Direction.TARGET
    quantity = Quantity.TAILS
    headline = 1
    parameter_constraints: ClassVar = {
        "mode": [Options(("auto", "marginal", "radius"))],
        "n_mc": [Interval(100, None, integer=True)],
    }

    def __init__(self, *, mode: str = "auto", n_mc: int = 20000) -> None:
        self.mode = mode
        self.n_mc = n_mc

    def _mode(self, d: int) -> str:
        return ("marginal" if d == 1 else "radius") if self.mode == "auto" else self.mode

    @staticmethod
    def _bounds(ref: RealData) -> dict[str, Any]:
        # All real data (train and test) fixes the quantiles: the 1% quantile of a
        # small training split alone is little more than its minimum.
        everything = np.concatenate([as_2d(ref.train), as_2d(ref.test)])
        lo, hi = np.quantile(everything, [0.01, 0.99], axis=0)
        mean = everything.mean(axis=0)
        precision = np.linalg.pinv(
            np.cov(everything, rowvar=False, ddof=0).reshape(everything.shape[1], -1)
        )
        all_radius = np.einsum("ni,ij,nj->n", everything - mean, precision, everything - mean)
        r98 = np.quantile(all_radius, 0.98)
        return {
            "lo": lo,
            "hi": hi,
            "mean": mean,
            "precision": precision,
            "r98": r98,
            "marginal_mass": float(np.mean((everything < lo) | (everything > hi))),
            "radius_mass": float(np.mean(all_radius > r98)),
        }

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        b = reference.cached("tail_bounds", self._bounds)
        mode = self._mode(len(b["lo"]))
        if mode == "marginal":
            if "marginal_cdf" in type(model).provides:
                try:
                    low = model.marginal_cdf(b["lo"][None])[0]
                    high = 1.0 - model.marginal_cdf(b["hi"][None])[0]
                    return float(np.mean(low + high) / b["marginal_mass"])
                except NotImplementedError:  # KDE's tophat kernel: no closed form
                    pass
            x = as_2d(model.sample(self.n_mc, rng=rng))
            return float(np.mean((x < b["lo"]) | (x > b["hi"])) / b["marginal_mass"])
        x = as_2d(model.sample(self.n_mc, rng=rng)) - b["mean"]
        radius = np.einsum("ni,ij,nj->n", x, b["precision"], x)
        return float(np.mean(radius > b["r98"]) / b["radius_mass"])

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        from ..stats import sqrt_psd as _sqrt_psd

        if "gaussian" not in type(model).provides:
            return None  # exact only for Gaussians: measure seed by seed
        mean, cov = model.moments()
        seeds, d = mean.shape

        def bound(key: str) -> np.ndarray:
            return references.stacked(
                f"tail_{key}", lambda r: r.cached("tail_bounds", self._bounds)[key]
            )

        if self._mode(d) == "marginal":  # exact: a Gaussian's marginals are Gaussian
            lo, hi = bound("lo"), bound("hi")
            sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
            with np.errstate(divide="ignore", invalid="ignore"):
                low = np.where(sd > 0, ndtr((lo - mean) / sd), (mean < lo).astype(float))
                high = np.where(sd > 0, 1 - ndtr((hi - mean) / sd), (mean > hi).astype(float))
            return (low + high).mean(axis=1) / bound("marginal_mass")
        # Radius: Monte Carlo with the same standard normal draws for every seed
        # (common random numbers), in chunks of seeds to bound memory.
        z = rng.standard_normal((self.n_mc, d))
        _, _, root = _sqrt_psd(cov)
        centre, precision, r98 = bound("mean"), bound("precision"), bound("r98")
        out = np.empty(seeds)
        chunk = max(1, 4_000_000 // (self.n_mc * d))
        for start in range(0, seeds, chunk):
            part = slice(start, start + chunk)
            x = z @ np.swapaxes(root[part], 1, 2) + (mean[part] - centre[part])[:, None, :]
            radius = np.sum((x @ precision[part]) * x, axis=2)  # batched matmul, not einsum
            out[part] = np.mean(radius > r98[part][:, None], axis=1)
        return out / bound("radius_mass")


@register("metric", "collapsed_now")
class CollapsedNow(Metric):
    """1 while the model's ``variance`` is below ``tolerance`` times the real variance, else 0.

    The state at this generation only: a chain that keeps real data in its training
    mix can fall below the threshold and recover, and then reads 0 again. See
    ``ever_collapsed`` for the absorbing state and :func:`first_passage` for the
    generation at which a chain first fell below.
    """

    model_only = frozenset({"moments"})

    applies_to = CONTINUOUS
    label = "collapsed now: tr Σ_t < {tolerance:g} tr Σ_real (0/1)"
    unit = "0/1"
    direction = Direction.LOWER
    quantity = Quantity.COLLAPSED
    share = True
    parameter_constraints: ClassVar = {"tolerance": [Interval(0, 1, closed="neither")]}

    def __init__(self, *, tolerance: float = 1e-3) -> None:
        self.tolerance = tolerance

    def __call__(
        self,
        model: GenerativeModel,
        synthetic: Any,
        reference: RealData,
        *,
        rng: np.random.Generator,
    ) -> float:
        _, cov = model_moments(model, synthetic)
        _, real = reference_moments(reference)
        return float(np.trace(cov) < self.tolerance * np.trace(real))

    def batched(
        self,
        model: Any,
        synthetic: SeedBatch,
        references: ReferenceBatch,
        *,
        rng: np.random.Generator,
    ) -> np.ndarray | None:
        _, cov = model.moments()
        real = references.stacked("trace", lambda r: np.trace(reference_moments(r)[1]))
        return (np.trace(cov, axis1=1, axis2=2) < self.tolerance * real).astype(float)


@register("metric", "ever_collapsed")
class EverCollapsed(CollapsedNow):
    """1 from the first generation at which ``variance`` fell below ``tolerance`` times
    the real variance, whatever it does afterwards (an absorbing state); else 0.

    The chain keeps the running maximum (:attr:`~collapselab.core.Metric.absorbing`),
    so the value at generation t says whether the chain has collapsed by t. In a
    regime that recovers (real data kept), read it beside ``collapsed_now``.
    """

    label = "collapsed by now: tr Σ fell below {tolerance:g} tr Σ_real (0/1)"
    absorbing = True


@register("metric", "collapsed")
def collapsed(*, tolerance: float = 1e-3) -> EverCollapsed:
    """``collapsed`` is ``ever_collapsed`` (the absorbing state), under its older id."""
    return EverCollapsed(tolerance=tolerance)


def first_passage(values: np.ndarray) -> np.ndarray:
    """The first generation at which each row of a 0/1 series (seeds, generations) is 1
    (``collapsed_now`` or ``ever_collapsed``): the collapse onset; NaN where never."""
    hit = np.asarray(values, dtype=float) >= 1
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), np.nan)
