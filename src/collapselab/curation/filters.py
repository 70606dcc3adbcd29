"""Likelihood filter, exact verifier and simulated human rater."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import NONE, Curated, Curator, Interval, Options, RealData, length
from ..errors import ConfigError
from ..registry import register
from .scoring import (
    is_good,
    is_valid,
    log_likelihood,
    precision_recall,
    quality_stats,
    truth_log_density,
)


def _keep(
    items: Any, mask: np.ndarray, stats: dict[str, float], reference: RealData | None = None
) -> Curated:
    return Curated.of(items, mask, {**quality_stats(reference, items, mask), **stats})


@register("curator", "likelihood-filter")
class LikelihoodFilter(Curator):
    """Keep the samples a reference model finds most likely.

    A common filter in practice ("keep what the model is confident about"), and a
    cautionary one: the least likely samples are exactly the tails, so filtering
    by likelihood removes the tails every generation and *speeds up* collapse. The
    stat ``tail_share_removed`` shows it: the share of removed samples lying
    beyond the real data's 1% and 99% quantiles (continuous data).

    Parameters
    ----------
    keep : float, default 0.8
        Fraction of samples kept (the most likely), when ``threshold`` is not set.
    threshold : float, optional
        Keep samples whose log-likelihood (per token for documents) is at least this.
    scorer : {"generation0", "truth"}, default "generation0"
        Generation 0's model (fitted on the real data) or the true density.
    """

    parameter_constraints: ClassVar = {
        "keep": [Interval(0, 1, closed="right")],
        "threshold": [NONE, Interval(None, None)],
        "scorer": [Options(("generation0", "truth"))],
    }

    def __init__(
        self, *, keep: float = 0.8, threshold: float | None = None, scorer: str = "generation0"
    ) -> None:
        self.keep = keep
        self.threshold = threshold
        self.scorer = scorer

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
        if self.scorer == "truth":
            scores = truth_log_density(reference, items)
        else:
            scores = log_likelihood(model_0, items)
        if self.threshold is not None:
            mask = scores >= self.threshold
        else:
            n_keep = round(self.keep * len(scores))
            mask = np.zeros(len(scores), dtype=bool)
            # stable order: ties keep the earlier sample, so the result is deterministic
            mask[np.argsort(-scores, kind="stable")[:n_keep]] = True
        stats = {}
        if isinstance(items, np.ndarray):
            everything = np.concatenate(
                [
                    np.asarray(reference.train, float).reshape(len(reference.train), -1),
                    np.asarray(reference.test, float).reshape(len(reference.test), -1),
                ]
            )
            lo, hi = np.quantile(everything, [0.01, 0.99], axis=0)
            x = items.reshape(len(items), -1)
            in_tail = np.any((x < lo) | (x > hi), axis=1)
            removed = ~mask
            stats["tail_share_removed"] = float(in_tail[removed].mean()) if removed.any() else 0.0
        return _keep(items, mask, stats, reference)


@register("curator", "verifier")
class Verifier(Curator):
    """Keep samples that pass an exact check.

    For a task source (one with ``verify``, e.g. arithmetic statements) it keeps the
    correct items: a perfect verifier keeps only valid samples. For a known
    ground-truth density it rejects by density ratio: a sample x of model q is kept
    with probability p(x) / (M q(x)), M the largest ratio in the batch, so what is
    kept is (up to M's estimate) a sample of the true distribution p.
    """

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
        valid = is_valid(reference, items)
        if valid is not None:
            return _keep(
                items,
                valid,
                {"valid_fraction": float(valid.mean()) if len(valid) else float("nan")},
            )
        if model is None:
            raise ConfigError(
                "the density verifier needs the model that generated the samples, which a web "
                "scrape does not know; use the detector or a task source with an exact check"
            )
        log_ratio = truth_log_density(reference, items) - np.asarray(
            model.log_prob(items), dtype=float
        )
        finite = np.isfinite(log_ratio)
        ceiling = log_ratio[finite].max() if finite.any() else 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            accept = np.where(finite, np.exp(log_ratio - ceiling), log_ratio > 0)
        mask = rng.random(length(items)) < accept
        return _keep(items, mask, {"acceptance": float(mask.mean())}, reference)


@register("curator", "human-rater")
class HumanRater(Curator):
    """Simulated human curation: keep a good sample with probability ``good_keep`` and a
    bad one with probability ``bad_keep``.

    What counts as bad is decided by ``judge``: ``verifier`` (a task's exact check,
    or the true density for a ground truth), ``density`` (the true density) or
    ``likelihood`` (generation 0's model); the last two call a sample bad when it
    scores below the ``bad_quantile`` of the real training data's scores. Records
    precision (share of kept samples that are good) and recall (share of good
    samples kept).
    """

    parameter_constraints: ClassVar = {
        "good_keep": [Interval(0, 1)],
        "bad_keep": [Interval(0, 1)],
        "judge": [Options(("verifier", "density", "likelihood"))],
        "bad_quantile": [Interval(0, 1, closed="neither")],
    }

    def __init__(
        self,
        *,
        good_keep: float = 0.95,
        bad_keep: float = 0.2,
        judge: str = "verifier",
        bad_quantile: float = 0.05,
    ) -> None:
        self.good_keep = good_keep
        self.bad_keep = bad_keep
        self.judge = judge
        self.bad_quantile = bad_quantile

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
        good = is_good(self.judge, self.bad_quantile, reference, items, model_0)
        mask = rng.random(len(good)) < np.where(good, self.good_keep, self.bad_keep)
        return _keep(items, mask, precision_recall(good, mask))
