"""Closed forms of collapse, written beside the simulation as theory rows where they hold.

A closed form belongs to a model family and a regime: the model declares its family
(:attr:`collapselab.core.GenerativeModel.closed_form`: ``gaussian-mle``,
``categorical-mle``, ``ols``) and :func:`closed_form` registers the derivation of
each (family, regime) pair. :func:`expected` looks the pair up for the components
a run actually uses (:class:`Setting`) and returns a :class:`Theory`: curves keyed
by the quantity a metric declares it estimates
(:attr:`collapselab.core.Metric.theory_quantity`), and for every quantity without a
curve one sentence saying why. Each derivation states its assumptions as checks:
every generated sample is kept (no curators), the model samples its own fit (no
decoding but what the derivation covers), the regime keeps no state beyond the
outputs, and the data source states the truth the formula needs. Where any check
fails there is no theory row: a curve written beside a chain it does not describe
would be a false number.

The Gaussian chain
------------------

Notation: real data N(mu, Sigma) in d dimensions, ``trace = tr(Sigma)``; generation 0
fits ``n0`` real samples; every later generation draws ``n`` samples from the last
model; ``delta`` is the estimator's ddof (0 for the MLE, 1 for ``unbiased``).
Generation ``t`` is fit number ``t + 1``.

replace
    A sample of size m from N(m_prev, S_prev) has E[SS] = (m-1) tr(S_prev), so
    E[tr Sigma_t] = tr Sigma (n0-1)/(n0-delta) ((n-1)/(n-delta))^t, and the mean
    is a martingale with E||mu_t - mu||^2 = tr/n0 + sum_{j<t} E[tr Sigma_j]/n.
    In 1-D, sigma_t^2 = sigma^2 prod chi^2_{m-1}/(m-delta), so
    E[log sigma_t^2] = log sigma^2 + psi((n0-1)/2) + ln(2/(n0-delta))
    + t (psi((n-1)/2) + ln(2/(n-delta))) and Var = psi'((n0-1)/2) + t psi'((n-1)/2).
    For delta=0, n0=n this is E[sigma_t^2] = sigma^2 ((n-1)/n)^(t+1).

accumulate, accumulate-subsample (Gerstgrasser et al. 2024; Kazdan et al. 2024)
    Let the pool at generation t hold P_t = n0 + t n points with total sum of
    squares Q_t (trace). Model t fits a simple random sample of size B_t = min(budget,
    P_t) of the pool (B_t = P_t for accumulate). Without replacement,
    E[tr Sigma_t] = Q_t (B_t-1) / ((P_t-1)(B_t-delta)) and the sample mean's offset
    from the pool mean has E||.||^2 = Q_t/(P_t-1) (1/B_t - 1/P_t) =: D_t.
    Adding n draws of N(mu_t, Sigma_t) to the pool gives, in expectation,
    Q_{t+1} = Q_t + (n-1) E[tr Sigma_t] + (P_t n / P_{t+1}) (E[tr Sigma_t]/n + D_t),
    with Q_0 = (n0-1) tr. Both are linear in Q, so expectations propagate exactly.
    The pool mean is a martingale with increments of E||.||^2 =
    (n/P_{t+1})^2 (E[tr Sigma_t]/n + D_t), and E||mu_t - mu||^2 = E||pool mean - mu||^2 + D_t.
    For accumulate with the MLE this gives E[tr Sigma_t] / E[tr Sigma_{t-1}] =
    1 - n / P_t^2 (with ddof 1: 1 - n / (P_t (P_t - 1))), an infinite product that
    converges because sum 1/t^2 does: the variance stays bounded away from zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import polygamma, psi

from .core import GenerativeModel, Regime
from .decoding import Decoding


def gaussian_replace(
    *,
    n0: int,
    n: int,
    generations: int,
    trace: float,
    dim: int,
    unbiased: bool = False,
    bias: float = 1.0,
) -> dict[str, np.ndarray]:
    """Expected ``variance``, ``mean_shift`` and (1-D) ``log_variance`` per generation.

    ``bias`` is the sampling bias lambda: each generation samples N(mu, lambda^2
    Sigma), which multiplies every step's variance factor by lambda^2.
    """
    delta = 1 if unbiased else 0
    t = np.arange(generations)
    factor = bias**2 * (n - 1) / (n - delta)
    expected_trace = trace * (n0 - 1) / (n0 - delta) * factor**t
    shift = trace / n0 + np.concatenate([[0.0], np.cumsum(bias**2 * expected_trace[:-1] / n)])
    out = {"variance": expected_trace / dim, "mean_shift": shift}
    if dim == 1:
        step = psi((n - 1) / 2) + np.log(2 / (n - delta)) + 2 * np.log(bias)
        first = psi((n0 - 1) / 2) + np.log(2 / (n0 - delta))
        out["log_variance"] = np.log(trace) + first + t * step
    return out


def gaussian_replace_log_variance_sd(*, n0: int, n: int, generations: int) -> np.ndarray:
    """Standard deviation of log sigma_t^2 across seeds (1-D, replace)."""
    t = np.arange(generations)
    return np.sqrt(polygamma(1, (n0 - 1) / 2) + t * polygamma(1, (n - 1) / 2))


def gaussian_pool(
    *,
    n0: int,
    n: int,
    generations: int,
    trace: float,
    dim: int,
    unbiased: bool = False,
    budget: int | None = None,
    bias: float = 1.0,
) -> dict[str, np.ndarray]:
    """Expected ``variance`` and ``mean_shift`` under accumulate (``budget=None``) or
    accumulate-subsample (a fixed ``budget``); new draws have covariance
    ``bias^2 Sigma_t`` (the sampling bias lambda)."""
    delta = 1 if unbiased else 0
    q = (n0 - 1) * trace  # expected pool sum of squares
    pool_shift = trace / n0  # E||pool mean - mu||^2
    variance = np.empty(generations)
    shift = np.empty(generations)
    for t in range(generations):
        p = n0 + t * n
        b = p if budget is None or t == 0 else min(budget, p)
        expected_trace = q * (b - 1) / ((p - 1) * (b - delta))
        offset = q / (p - 1) * (1 / b - 1 / p)
        variance[t] = expected_trace / dim
        shift[t] = pool_shift + offset
        drawn = bias**2 * expected_trace  # E tr of the covariance the new draws come from
        spread = drawn / n + offset  # E||mean of new draws - pool mean||^2
        q += (n - 1) * drawn + p * n / (p + n) * spread
        pool_shift += (n / (p + n)) ** 2 * spread
    return {"variance": variance, "mean_shift": shift}


# ---------------------------------------------------------------------------
# Categorical chains: Wright–Fisher drift
# ---------------------------------------------------------------------------
#
# A categorical MLE refitted on m draws of p has E[1 - sum p_hat^2] = (1 - sum p^2)(1 - 1/m):
# the multinomial counts C satisfy E[sum C_k^2] = m + m(m-1) sum p^2. Generation 0
# fits n0 real draws and generation t >= 1 fits n draws of model t-1, so under
# replace E[H_t] = H (1 - 1/n0)(1 - 1/n)^t; for n0 = n, H (1 - 1/n)^(t+1). Given
# model t-1, the expected number of its types missing from the next n draws is
# sum_k (1 - p_k)^n, and a lost type has probability 0 ever after: loss is absorbing.
#
# Under accumulate the pool of P_t = n0 + t n draws has counts C and S_t = sum C_k^2;
# adding n draws of C/P_t gives E[S_{t+1} | C] = S_t (1 + 2n/P_t + (n^2 - n)/P_t^2) + n,
# linear in S, so E[H_t] = 1 - E[S_t] / P_t^2 propagates exactly from
# E[S_0] = n0 + n0 (n0 - 1) sum p^2.


def categorical_replace(*, probs: np.ndarray, n0: int, n: int, generations: int) -> np.ndarray:
    """E[heterozygosity] of model t under replace with the MLE."""
    h = 1.0 - float(np.dot(probs, probs))
    t = np.arange(generations)
    return h * (1.0 - 1.0 / n0) * (1.0 - 1.0 / n) ** t


def categorical_accumulate(*, probs: np.ndarray, n0: int, n: int, generations: int) -> np.ndarray:
    """E[heterozygosity] of model t under accumulate (real data kept) with the MLE."""
    s = n0 + n0 * (n0 - 1) * float(np.dot(probs, probs))
    out = np.empty(generations)
    for t in range(generations):
        pool = n0 + t * n
        out[t] = 1.0 - s / pool**2
        s = s * (1 + 2 * n / pool + (n * n - n) / pool**2) + n
    return out


def categorical_expected_support(*, probs: np.ndarray, m: int) -> float:
    """E[number of types] of an MLE fitted on m draws of ``probs``: sum_k 1 - (1 - p_k)^m."""
    p = np.asarray(probs, dtype=float)
    return float(np.sum(1.0 - (1.0 - p[p > 0]) ** m))


def categorical_expected_lost(*, probs: np.ndarray, n: int) -> float:
    """E[types of ``probs`` missing from n draws]: sum_k (1 - p_k)^n over its support."""
    p = np.asarray(probs, dtype=float)
    return float(np.sum((1.0 - p[p > 0]) ** n))


# ---------------------------------------------------------------------------
# Linear regression on a fixed design (Gerstgrasser et al. 2024; Dohmatob et al. 2024)
# ---------------------------------------------------------------------------


def linreg_ols(
    *, generations: int, per_noise: float, noise: float, model_noise: float, regime: str
) -> np.ndarray:
    """Expected error of least squares at generations 0..G-1 on a fixed design.

    Fit number n = t + 1 of a chain whose labels are the previous fit's predictions
    plus fresh noise. With e_i = (X^T X)^-1 X^T eps_i the error that fit i's label
    noise alone would cause (independent, mean zero, E e_i^T M e_i = s_i^2 v where
    v = E tr((X^T X)^-1 M), s_0^2 = ``noise`` for the real labels and s_i^2 =
    ``model_noise`` for the model's):

    replace
        each fit adds its own: w_t - w* = e_0 + ... + e_t, so
        E_n = v (sigma^2 + (n - 1) sigma_m^2), which for sigma_m = sigma is
        n sigma^2 v: linear growth, no bound.
    accumulate
        model t fits the t + 1 label sets stacked on copies of the design, i.e. the
        mean of their separate fits; by induction w_t - w* = sum_i e_i / (i + 1), so
        E_n = v (sigma^2 + sigma_m^2 sum_{i=2..n} 1/i^2) < (pi^2/6) v sigma^2 for
        sigma_m = sigma.

    For a T x d standard Gaussian design and M = I, v = d / (T - d - 1) (the mean of
    an inverse Wishart): T=100, d=10, sigma^2=1 give 3.371 (replace) and 0.181
    (accumulate) at n = 30.
    """
    fits = np.arange(1, generations + 1)
    if regime == "replace":
        return per_noise * (noise + (fits - 1) * model_noise)
    if regime == "accumulate":
        later = np.concatenate([[0.0], np.cumsum(1.0 / fits[1:] ** 2)])
        return per_noise * (noise + model_noise * later)
    raise ValueError(f"no closed form for regime {regime!r}")


# ---------------------------------------------------------------------------
# Which closed form describes a run: a registry keyed by (model family, regime)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """The components of one run that a closed form may depend on.

    ``truth`` is the real data's known truth (:attr:`collapselab.core.RealData.truth`
    of seed 0: the source's parameters, the same for every seed); ``curators`` the
    names of the curators applied to each generation's output (oversampling acts only
    through curators, so no closed form needs it).
    """

    model: GenerativeModel
    regime: Regime
    truth: dict[str, Any]
    n0: int
    n: int
    generations: int
    decoding: Decoding | None = None
    curators: tuple[str, ...] = ()


@dataclass
class Theory:
    """Expected curves of a run (one value per generation, keyed by the quantity a
    metric estimates), and why each other quantity of its family has none."""

    closed_form: str | None
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    #: quantity -> one sentence: why no curve is written for it.
    missing: dict[str, str] = field(default_factory=dict)
    #: Why nothing at all applies (every quantity), or None.
    reason: str | None = None

    def why_not(self, quantity: str) -> str:
        """One sentence: why ``quantity`` has no curve in this run."""
        if quantity in self.missing:
            return self.missing[quantity]
        if self.reason is not None:
            return self.reason
        family = self.closed_form or "this model"
        return f"no closed form of {family} gives {quantity}"


class NoClosedForm(Exception):
    """Raised by a derivation whose assumptions a run breaks; the message says which."""


#: (model family, regime id) -> derivation; regime ``"*"``: any other regime.
_DERIVATIONS: dict[tuple[str, str], Callable[[Setting], Theory]] = {}
#: The quantities each family's derivations can give.
QUANTITIES: dict[str, tuple[str, ...]] = {
    "gaussian-mle": ("variance", "mean_shift", "log_variance"),
    "categorical-mle": ("heterozygosity", "support"),
    "ols": ("test_mse", "coef_error"),
}


def closed_form(family: str, regime: str) -> Callable:
    """Register the derivation of a ``family`` chain under ``regime`` (``"*"``: any)."""

    def decorator(fn: Callable[[Setting], Theory]) -> Callable[[Setting], Theory]:
        _DERIVATIONS[(family, regime)] = fn
        return fn

    return decorator


def expected(setting: Setting) -> Theory:
    """The closed-form curves that describe ``setting``, and why the others are absent.

    Curves are written only where every assumption of their derivation holds for
    the components used; otherwise :attr:`Theory.reason` (or
    :attr:`Theory.missing`) says which one fails.
    """
    model, regime = setting.model, setting.regime
    family = type(model).closed_form
    name = model.registry_id or type(model).__name__
    if family is None:
        return Theory(None, reason=f"model {name!r} declares no closed form")
    if setting.curators:
        return Theory(
            family,
            reason=(
                f"curators ({', '.join(setting.curators)}) choose which samples are trained "
                "on; the closed forms assume every generated sample is kept"
            ),
        )
    derive = _DERIVATIONS.get((family, regime.registry_id)) or _DERIVATIONS.get((family, "*"))
    if derive is None:
        return Theory(
            family,
            reason=f"no closed form for a {family} chain under regime {regime.registry_id!r}",
        )
    try:
        theory = derive(setting)
    except NoClosedForm as exc:
        return Theory(family, reason=str(exc))
    theory.closed_form = family
    for quantity in QUANTITIES.get(family, ()):
        if quantity not in theory.curves:
            theory.missing.setdefault(
                quantity,
                f"no closed form for {quantity} of a {family} chain under regime "
                f"{regime.registry_id!r}",
            )
    return theory


def _decoding_changes(setting: Setting) -> set[str]:
    resolved = Decoding.from_config(setting.decoding)
    return set() if resolved is None else resolved.changed()


def _require_identity_decoding(setting: Setting) -> None:
    changed = _decoding_changes(setting)
    if changed:
        raise NoClosedForm(
            f"decoding ({', '.join(sorted(changed))}) samples another distribution than the "
            "model's fit; the closed form assumes the model samples its own fit"
        )


def _gaussian_common(setting: Setting) -> dict[str, Any]:
    if "cov" not in setting.truth:
        raise NoClosedForm("the real data states no covariance (a known Gaussian truth)")
    changed = _decoding_changes(setting) - {"bias"}
    if changed:
        raise NoClosedForm(
            f"decoding ({', '.join(sorted(changed))}) is outside the Gaussian derivation, "
            "which covers only the sampling bias"
        )
    resolved = Decoding.from_config(setting.decoding)
    cov = np.asarray(setting.truth["cov"])
    return {
        "n0": setting.n0,
        "n": setting.n,
        "generations": setting.generations,
        "trace": float(np.trace(cov)),
        "dim": cov.shape[0],
        "unbiased": bool(setting.model.get_params().get("unbiased", False)),
        "bias": 1.0 if resolved is None else resolved.bias,
    }


@closed_form("gaussian-mle", "replace")
def _gaussian_replace(setting: Setting) -> Theory:
    curves = gaussian_replace(**_gaussian_common(setting))
    missing = {}
    if "log_variance" not in curves:
        missing["log_variance"] = "the closed form of log_variance is for 1-D data only"
    return Theory("gaussian-mle", curves, missing)


@closed_form("gaussian-mle", "accumulate")
def _gaussian_accumulate(setting: Setting) -> Theory:
    if not setting.regime.get_params().get("include_real", True):
        raise NoClosedForm("accumulate without the real data has no closed form here")
    return Theory("gaussian-mle", gaussian_pool(**_gaussian_common(setting)))


@closed_form("gaussian-mle", "accumulate-subsample")
def _gaussian_accumulate_subsample(setting: Setting) -> Theory:
    budget = setting.regime.get_params().get("budget") or setting.n0
    return Theory("gaussian-mle", gaussian_pool(**_gaussian_common(setting), budget=budget))


def _categorical_probs(setting: Setting) -> np.ndarray:
    if "probs" not in setting.truth:
        raise NoClosedForm("the real data states no true distribution (probs)")
    if setting.model.get_params().get("smoothing", 0.0) != 0.0:
        raise NoClosedForm("the closed form is for the maximum-likelihood fit (smoothing 0)")
    _require_identity_decoding(setting)
    return np.asarray(setting.truth["probs"], dtype=float)


def _generation0_support(setting: Setting, probs: np.ndarray) -> np.ndarray:
    """E[types] of generation 0, which fits n0 real draws whatever the regime."""
    support = np.full(setting.generations, np.nan)
    support[0] = categorical_expected_support(probs=probs, m=setting.n0)
    return support


@closed_form("categorical-mle", "replace")
def _categorical_replace(setting: Setting) -> Theory:
    probs = _categorical_probs(setting)
    common = {"probs": probs, "n0": setting.n0, "n": setting.n, "generations": setting.generations}
    return Theory(
        "categorical-mle",
        {
            "heterozygosity": categorical_replace(**common),
            "support": _generation0_support(setting, probs),
        },
    )


@closed_form("categorical-mle", "accumulate")
def _categorical_accumulate(setting: Setting) -> Theory:
    probs = _categorical_probs(setting)
    support = {"support": _generation0_support(setting, probs)}
    if not setting.regime.get_params().get("include_real", True):
        reason = "accumulate without the real data has no closed form of heterozygosity here"
        return Theory("categorical-mle", support, {"heterozygosity": reason})
    common = {"probs": probs, "n0": setting.n0, "n": setting.n, "generations": setting.generations}
    return Theory(
        "categorical-mle", {"heterozygosity": categorical_accumulate(**common), **support}
    )


@closed_form("categorical-mle", "*")
def _categorical_generation0(setting: Setting) -> Theory:
    """Any other regime: generation 0 still fits n0 real draws (its expected support)."""
    probs = _categorical_probs(setting)
    return Theory("categorical-mle", {"support": _generation0_support(setting, probs)})


_OLS_FACTORS = ("ols_test_error_per_noise", "ols_coef_error_per_noise", "noise", "design_rows")


def _ols(setting: Setting, regime: str) -> Theory:
    """``test_mse`` and ``coef_error`` of a least-squares chain (see :func:`linreg_ols`).

    It holds for OLS (``alpha`` 0) on a source that states the design's OLS error
    factors, when each generation relabels the whole design once (``n`` equals the
    design's rows). With the noise estimated by the model (``noise`` unset),
    E[sigma_hat^2] = sigma^2 and sigma_hat^2 is independent of the fit, so the replace
    form still holds; under accumulate the pooled residual also holds the spread
    between generations, and no closed form is given.
    """
    truth, params = setting.truth, setting.model.get_params()
    if any(key not in truth for key in _OLS_FACTORS):
        raise NoClosedForm("the data source states no OLS error factors of its design")
    if params.get("alpha", 0.0) != 0:
        raise NoClosedForm("the closed form is for least squares (alpha 0), not ridge")
    if setting.n != truth["design_rows"]:
        raise NoClosedForm(
            f"the closed form relabels the whole design once per generation "
            f"(samples_per_generation {truth['design_rows']}); got {setting.n}"
        )
    if not np.isfinite(truth["ols_test_error_per_noise"]):
        raise NoClosedForm("the design has no finite OLS error (too few rows for its dimension)")
    _require_identity_decoding(setting)
    model_noise = params.get("noise")
    if regime == "accumulate" and model_noise is None:
        raise NoClosedForm(
            "under accumulate with the noise estimated by the model, the pooled residual "
            "also holds the spread between generations: no closed form"
        )
    common = {
        "generations": setting.generations,
        "noise": float(truth["noise"]),
        "model_noise": float(truth["noise"] if model_noise is None else model_noise),
        "regime": regime,
    }
    return Theory(
        "ols",
        {
            "test_mse": linreg_ols(per_noise=truth["ols_test_error_per_noise"], **common),
            "coef_error": linreg_ols(per_noise=truth["ols_coef_error_per_noise"], **common),
        },
    )


@closed_form("ols", "replace")
def _ols_replace(setting: Setting) -> Theory:
    return _ols(setting, "replace")


@closed_form("ols", "accumulate")
def _ols_accumulate(setting: Setting) -> Theory:
    if not setting.regime.get_params().get("include_real", True):
        raise NoClosedForm("accumulate without the real data has no closed form here")
    return _ols(setting, "accumulate")
