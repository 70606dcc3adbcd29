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

fresh (a real part in every training set: Shumailov et al.'s 10%; Alemohammad et al.)
    Each training set of n holds n_r = round(f n) real samples R and n_s = n - n_r
    draws of model t-1, N(mu, lambda^2 S). Its scatter is SS_R + SS_draws +
    (n_r n_s / n) ||m_R - m_draws||^2, with E SS_R = (n_r - 1) tr, E SS_draws =
    (n_s - 1) lambda^2 tr S and E||m_R - m_draws||^2 = D + ||mu - c||^2 + lambda^2 tr S / n_s
    for a reference point c and D = E||m_R - c||^2: c = m_R itself for the fixed
    source (D = 0), the true mean for new draws (D = tr / n_r), the real training
    mean for a resampled part (D = tr (1/n_r - 1/n0)). The new mean moves as
    mu_t - c = (n_r / n)(m_R - c) + (n_s / n)(m_draws - c). So a_t = E tr Sigma_t and
    e_t = E||mu_t - c||^2 follow one exact linear recursion,
    a_t = [(n_r - 1) tr + (n_r n_s / n)(D + e_{t-1}) + ((n_s - 1) + n_r / n) lambda^2 a_{t-1}]
    / (n - delta), e_t = (n_r / n)^2 D + (n_s / n)^2 e_{t-1} + (n_s / n^2) lambda^2 a_{t-1},
    from a_0 = tr (n0 - 1)/(n0 - delta) and e_0 = tr (n0 - n_r)/(n0 n_r) (fixed), tr / n0
    (new) or 0 (resample). Its fixed point is the level the chain settles at: with the
    fixed source and the MLE, E tr Sigma_inf = (n_r - 1) tr / (n_r + n_s / (n + n_s)),
    so two real samples already hold the expected variance at about 40% of the
    truth's. Every training set of the fixed source contains R, so every fit's
    variance is at least tr SS_R / (n - delta): a bound that holds for each chain, not
    only in expectation (:func:`gaussian_fresh_protected_share`).
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
# fresh: a real part in every training set, its fixed point and its threshold
# ---------------------------------------------------------------------------


def fresh_real_count(*, real_fraction: float, n: int, n0: int, source: str) -> int:
    """Real samples in each training set of ``fresh``, as the regime counts them:
    round(real_fraction n), at most the n0 real training samples unless ``source`` is new."""
    count = round(real_fraction * n)
    return count if source == "new" else min(count, n0)


def _gaussian_fresh_system(
    *,
    n0: int,
    n: int,
    real: int,
    trace: float,
    unbiased: bool,
    bias: float,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact linear recursion x_t = M x_{t-1} + v of x_t = (E tr Sigma_t, E||mu_t - c||^2)
    under ``fresh``, and x_0 (see the module docstring): (M, v, x_0)."""
    delta = 1 if unbiased else 0
    lam2 = bias**2
    if source == "fixed" and real == 0:
        source = "new"  # no real part: every source is replace
    n_r, n_s = real, n - real
    scatter = max(n_r - 1, 0) * trace  # E tr SS of the real part
    # spread = n_r D, where D = E||m_R - c||^2 (0 without a real part)
    if source == "fixed":  # c = m_R, the mean of the kept real part
        spread, start = 0.0, trace * (n0 - n_r) / (n0 * n_r)
    elif source == "new":  # c = mu, the true mean; D = tr / n_r
        spread, start = (trace if n_r else 0.0), trace / n0
    else:  # resample: c = the real training mean; D = tr (1/n_r - 1/n0) (a subsample)
        spread, start = trace * (1 - n_r / n0), 0.0
    between = n_s / n * spread  # (n_r n_s / n) D: the real part's offset from the draws
    drift = n_r / n**2 * spread  # (n_r / n)^2 D
    own = (max(n_s - 1, 0) + (n_r / n if n_s else 0.0)) * lam2  # SS of the draws + their offset
    matrix = np.array(
        [
            [own / (n - delta), n_r * n_s / n / (n - delta)],
            [n_s / n**2 * lam2, (n_s / n) ** 2],
        ]
    )
    offset = np.array([(scatter + between) / (n - delta), drift])
    first = np.array([trace * (n0 - 1) / (n0 - delta), start])
    return matrix, offset, first


def gaussian_fresh(
    *,
    n0: int,
    n: int,
    generations: int,
    trace: float,
    dim: int,
    real_fraction: float,
    source: str = "fixed",
    unbiased: bool = False,
    bias: float = 1.0,
) -> dict[str, np.ndarray]:
    """Expected ``variance`` and ``mean_shift`` per generation under ``fresh``: each
    training set of n holds n_r = :func:`fresh_real_count` real samples and n - n_r
    draws of the last model (with sampling bias lambda = ``bias``)."""
    real = fresh_real_count(real_fraction=real_fraction, n=n, n0=n0, source=source)
    matrix, offset, x = _gaussian_fresh_system(
        n0=n0, n=n, real=real, trace=trace, unbiased=unbiased, bias=bias, source=source
    )
    variance, shift = np.empty(generations), np.empty(generations)
    fixed = source == "fixed" and real > 0
    cross = -(n0 - real) / n0 * trace / real if fixed else 0.0  # E[(mu_t - m_R).(m_R - mu)]
    for t in range(generations):
        variance[t] = x[0] / dim
        if fixed:
            shift[t] = x[1] + 2 * cross + trace / real
            cross *= (n - real) / n
        else:
            shift[t] = x[1] + (trace / n0 if source == "resample" else 0.0)
        x = matrix @ x + offset
    return {"variance": variance, "mean_shift": shift}


def gaussian_fresh_fixed_point(
    *,
    n: int,
    real: int,
    n0: int | None = None,
    source: str = "fixed",
    unbiased: bool = False,
    bias: float = 1.0,
) -> float:
    """lim E[tr Sigma_t] / tr Sigma under ``fresh`` with ``real`` of the n samples real.

    The limit of the exact recursion (its initial state is forgotten): inf where it
    diverges (a sampling bias above 1 with too small a real part), 0 under the MLE
    without a real part. For the MLE, one real sample and the fixed source,
    E[tr Sigma_t] -> 0 too. With the fixed source and n_r >= 2 real samples the limit
    is E[SS_R] / (n_r + n_s / (n + n_s)) = (n_r - 1) / (n_r + n_s / (n + n_s)) for the
    MLE: the training set always holds the real part, so every fit's variance is at
    least SS_R / (n - delta) (see :func:`gaussian_fresh_protected_share`). An
    expectation that stays up does not prove every chain does: with ``unbiased`` and
    no real part the expectation is constant while every chain collapses.
    """
    n0 = n if n0 is None else n0
    matrix, offset, _ = _gaussian_fresh_system(
        n0=max(n0, real, 1), n=n, real=real, trace=1.0, unbiased=unbiased, bias=bias, source=source
    )
    if real == 0:  # replace: the variance alone, multiplied by a constant factor
        factor = matrix[0, 0]
        return 0.0 if factor < 1 else (1.0 if factor == 1 else float("inf"))
    if np.max(np.abs(np.linalg.eigvals(matrix))) >= 1:
        return float("inf")
    return float(np.linalg.solve(np.eye(2) - matrix, offset)[0])


def gaussian_fresh_threshold(
    *,
    n: int,
    tolerance: float = 0.1,
    source: str = "fixed",
    unbiased: bool = False,
    bias: float = 1.0,
) -> float:
    """The smallest real share n_r / n of ``fresh`` whose expected variance does not
    fall below ``tolerance`` times the true variance in the limit
    (:func:`gaussian_fresh_fixed_point`); 1.0 if none does short of all real data.

    For the MLE with the fixed source it is 2 / n for any tolerance below
    1 / (2 + (n - 2) / (2n - 2)) (about 0.4): two real samples hold the expected
    variance up. It is the share at which collapse stops *in expectation*; where
    single chains still dip below the tolerance, :func:`gaussian_fresh_protected_share`
    gives the share of seeds that provably never do.
    """
    # no real part is replace, under which every chain collapses (for bias <= 1) even
    # where the expectation does not (the unbiased estimator)
    for real in range(1, n + 1):
        limit = gaussian_fresh_fixed_point(
            n=n, real=real, source=source, unbiased=unbiased, bias=bias
        )
        if limit >= tolerance:
            return real / n
    return 1.0


def gaussian_fresh_protected_share(
    *, n: int, real: int, tolerance: float = 0.1, dim: int = 1, unbiased: bool = False
) -> float:
    """Share of seeds whose fixed real part alone keeps every fit's variance at or above
    ``tolerance`` times the true variance (isotropic truth, fixed source).

    Every training set holds the same n_r real samples, and a set's scatter is at
    least its subset's, so tr Sigma_t >= tr SS_R / (n - delta) at every generation.
    With tr SS_R ~ sigma^2 chi^2 with d (n_r - 1) degrees of freedom, the share is
    P(chi^2_{d (n_r - 1)} >= tolerance d (n - delta)): a lower bound on the share of
    seeds that never collapse, however long the chain.
    """
    from scipy.stats import chi2

    if real < 2:
        return 0.0
    delta = 1 if unbiased else 0
    return float(chi2.sf(tolerance * dim * (n - delta), dim * (real - 1)))


def gaussian_fresh_protected_threshold(
    *, n: int, tolerance: float = 0.1, share: float = 0.5, dim: int = 1, unbiased: bool = False
) -> float:
    """The smallest real share n_r / n of ``fresh`` (fixed source) at which at least
    ``share`` of the seeds are protected (:func:`gaussian_fresh_protected_share`): their
    variance can never fall below ``tolerance`` times the truth's.

    With :func:`gaussian_fresh_threshold` it brackets the share at which a chain stops
    collapsing: below 2 / n every chain's expected variance tends to 0, so in a long
    enough chain every seed collapses; at this share at least ``share`` of them never
    do. A bisection over the real share for "the share of seeds ever collapsed falls
    below ``share``" must land in between (as the chain grows long).
    """
    for real in range(2, n + 1):
        protected = gaussian_fresh_protected_share(
            n=n, real=real, tolerance=tolerance, dim=dim, unbiased=unbiased
        )
        if protected >= share:
            return real / n
    return 1.0


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


def categorical_fresh(
    *, probs: np.ndarray, n0: int, n: int, generations: int, real_fraction: float, source: str
) -> np.ndarray:
    """E[heterozygosity] of model t under ``fresh`` (sources fixed and new) with the MLE.

    Each training set holds n_r real draws with counts c and n_s = n - n_r draws of
    model t-1, so E[S_t | p_{t-1}] = (sum c^2 + 2 n_s sum_k c_k p_k + n_s
    + n_s (n_s - 1) S_{t-1}) / n^2 for S = sum p^2. With the fixed source c is the
    same every generation and u_t = E sum_k c_k p_{t,k} follows
    u_t = (E sum c^2 + n_s u_{t-1}) / n from u_0 = (E sum c^2 + n_r (n0 - n_r) sum pi^2)
    / n0 (generation 0 fitted the n0 real draws, c the first n_r of them); with new
    draws E sum_k c_k p_k = n_r sum_k pi_k p_k, and v_t = E sum_k pi_k p_{t,k} follows
    v_t = (n_r sum pi^2 + n_s v_{t-1}) / n from v_0 = sum pi^2. Throughout
    E sum c^2 = n_r + n_r (n_r - 1) sum pi^2.
    """
    purity = float(np.dot(probs, probs))
    n_r = fresh_real_count(real_fraction=real_fraction, n=n, n0=n0, source=source)
    n_s = n - n_r
    real_square = n_r + n_r * (n_r - 1) * purity
    s = (n0 + n0 * (n0 - 1) * purity) / n0**2
    if source == "fixed":
        u = (real_square + n_r * (n0 - n_r) * purity) / n0
    else:
        u = n_r * purity  # n_r v_0
    out = np.empty(generations)
    for t in range(generations):
        out[t] = 1.0 - s
        s = (real_square + 2 * n_s * u + n_s + n_s * (n_s - 1) * s) / n**2
        u = (real_square + n_s * u) / n if source == "fixed" else (n_r**2 * purity + n_s * u) / n
    return out


def categorical_fresh_fixed_point(*, probs: np.ndarray, n: int, real: int) -> dict[str, float]:
    """The limits of E[heterozygosity] and E[support] under ``fresh`` with the fixed source.

    ``heterozygosity``: the fixed point of :func:`categorical_fresh`,
    1 - (E sum c^2 (1 + 2 n_s / n_r) + n_s) / (n^2 - n_s (n_s - 1)). ``support``: the
    types the kept real part holds are in every training set and never lost, and
    every other type is fed by the model's own draws only, a share that shrinks in
    expectation (E p_{t,k} = (n_s / n) p_{t-1,k}) and is lost sooner or later; so the support tends to
    the types of the n_r real draws, E = sum_k 1 - (1 - pi_k)^n_r.
    """
    p = np.asarray(probs, dtype=float)
    purity = float(np.dot(p, p))
    if real == 0:
        return {"heterozygosity": 0.0, "support": 0.0}
    n_s = n - real
    real_square = real + real * (real - 1) * purity
    square = (real_square * (1 + 2 * n_s / real) + n_s) / (n**2 - n_s * (n_s - 1))
    return {
        "heterozygosity": 1.0 - square,
        "support": categorical_expected_support(probs=p, m=real),
    }


def categorical_fresh_threshold(
    *,
    probs: np.ndarray,
    n: int,
    tolerance: float = 0.5,
    quantity: str = "support",
    n0: int | None = None,
) -> float:
    """The smallest real share n_r / n of ``fresh`` (fixed source) at which the limit of
    ``quantity`` (``support`` or ``heterozygosity``, :func:`categorical_fresh_fixed_point`)
    keeps at least ``tolerance`` of generation 0's expected value (n0 real draws,
    by default n: sum_k 1 - (1 - pi_k)^n0 types, or (1 - sum pi^2)(1 - 1/n0)); 1.0 if
    no share short of all real data does."""
    p = np.asarray(probs, dtype=float)
    n0 = n if n0 is None else n0
    if quantity == "support":
        start = categorical_expected_support(probs=p, m=n0)
    else:
        start = (1.0 - float(np.dot(p, p))) * (1 - 1 / n0)
    for real in range(1, n + 1):
        if categorical_fresh_fixed_point(probs=p, n=n, real=real)[quantity] >= tolerance * start:
            return real / n
    return 1.0


# ---------------------------------------------------------------------------
# Linear regression on a fixed design (Gerstgrasser et al. 2024; Dohmatob et al. 2024)
# ---------------------------------------------------------------------------


def linreg_ols(
    *,
    generations: int,
    per_noise: float,
    noise: float,
    model_noise: float,
    regime: str,
    bias: float = 0.0,
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

    Strong model collapse (Dohmatob, Feng, Subramonyam and Kempe 2024): when some of
    the real labels were written by a biased w_s, the first fit carries a bias
    b = (X^T X)^-1 X_s^T X_s (w_s - w*) beside e_0, with E b^T M b = ``bias`` (for the
    isotropic design see :func:`collapselab.data.supervised.strong_collapse_bias`).
    Both recursions above move w_t - w* by label-noise terms alone, which have mean
    zero given the design, so b stays in every later fit and E_n gains ``bias`` at
    every generation.
    """
    fits = np.arange(1, generations + 1)
    if regime == "replace":
        return bias + per_noise * (noise + (fits - 1) * model_noise)
    if regime == "accumulate":
        later = np.concatenate([[0.0], np.cumsum(1.0 / fits[1:] ** 2)])
        return bias + per_noise * (noise + model_noise * later)
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


@closed_form("gaussian-mle", "fresh")
def _gaussian_fresh(setting: Setting) -> Theory:
    params = setting.regime.get_params()
    common = _gaussian_common(setting)
    if params["source"] == "fixed" and setting.n0 < 1:
        raise NoClosedForm("the fixed source needs real training data")
    return Theory(
        "gaussian-mle",
        gaussian_fresh(**common, real_fraction=params["real_fraction"], source=params["source"]),
        {"log_variance": "no closed form for log_variance under fresh"},
    )


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


@closed_form("categorical-mle", "fresh")
def _categorical_fresh(setting: Setting) -> Theory:
    probs = _categorical_probs(setting)
    params = setting.regime.get_params()
    support = {"support": _generation0_support(setting, probs)}
    if params["source"] == "resample":
        reason = "no closed form of heterozygosity under fresh with a resampled real part"
        return Theory("categorical-mle", support, {"heterozygosity": reason})
    heterozygosity = categorical_fresh(
        probs=probs,
        n0=setting.n0,
        n=setting.n,
        generations=setting.generations,
        real_fraction=params["real_fraction"],
        source=params["source"],
    )
    return Theory("categorical-mle", {"heterozygosity": heterozygosity, **support})


@closed_form("categorical-mle", "*")
def _categorical_generation0(setting: Setting) -> Theory:
    """Any other regime: generation 0 still fits n0 real draws (its expected support)."""
    probs = _categorical_probs(setting)
    return Theory("categorical-mle", {"support": _generation0_support(setting, probs)})


_OLS_FACTORS = ("ols_test_error_per_noise", "ols_coef_error_per_noise", "noise", "design_rows")


def _ols(setting: Setting, regime: str) -> Theory:
    """``test_mse`` and ``coef_error`` of a least-squares chain (see :func:`linreg_ols`).

    It holds for OLS (``alpha`` 0) on a source that states the design's OLS error
    factors. Generation 0 fits the real data whatever follows; the later
    generations need each generation to relabel the whole design once (``n`` equals
    the design's rows) from the model's own fit (no decoding). With the noise
    estimated by the model (``noise`` unset), E[sigma_hat^2] = sigma^2 and sigma_hat^2
    is independent of the fit, so the replace form still holds; under accumulate the
    pooled residual also holds the spread between generations, and where some real
    labels are synthetic (a bias) the residual holds their misfit, which depends on
    the design: no closed form after generation 0 in either case.
    """
    truth, params = setting.truth, setting.model.get_params()
    if any(key not in truth for key in _OLS_FACTORS):
        raise NoClosedForm("the data source states no OLS error factors of its design")
    if params.get("alpha", 0.0) != 0:
        raise NoClosedForm("the closed form is for least squares (alpha 0), not ridge")
    if not np.isfinite(truth["ols_test_error_per_noise"]):
        raise NoClosedForm("the design has no finite OLS error (too few rows for its dimension)")
    biased = "ols_bias_test_error" in truth
    model_noise = params.get("noise")
    if setting.generations > 1:
        if setting.n != truth["design_rows"]:
            raise NoClosedForm(
                f"the closed form relabels the whole design once per generation "
                f"(samples_per_generation {truth['design_rows']}); got {setting.n}"
            )
        _require_identity_decoding(setting)
        if regime == "accumulate" and model_noise is None:
            raise NoClosedForm(
                "under accumulate with the noise estimated by the model, the pooled residual "
                "also holds the spread between generations: no closed form"
            )
        if biased and model_noise is None:
            raise NoClosedForm(
                "with synthetic rows in the real data and the noise estimated by the model, "
                "the residual holds their misfit, which depends on the design: no closed "
                "form after generation 0 (set the model's noise)"
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
            "test_mse": linreg_ols(
                per_noise=truth["ols_test_error_per_noise"],
                bias=float(truth.get("ols_bias_test_error", 0.0)),
                **common,
            ),
            "coef_error": linreg_ols(
                per_noise=truth["ols_coef_error_per_noise"],
                bias=float(truth.get("ols_bias_coef_error", 0.0)),
                **common,
            ),
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
