"""Shared judgements of sample quality used by several curators."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import RealData
from ..errors import ConfigError
from ..tokenize import whitespace_words


def item_sizes(items: Any) -> np.ndarray | None:
    """Token counts of text or token-sequence items (``None`` for arrays and pairs)."""
    if isinstance(items, np.ndarray | tuple):
        return None
    if items and isinstance(items[0], str):
        return np.array([max(len(whitespace_words(doc)), 1) for doc in items], dtype=float)
    return np.array([max(len(doc), 1) for doc in items], dtype=float)


def log_likelihood(model: Any, items: Any) -> np.ndarray:
    """Log-likelihood of each item, per token for documents so length does not decide."""
    scores = np.asarray(model.log_prob(items), dtype=float)
    sizes = item_sizes(items)
    return scores if sizes is None else scores / sizes


def truth_log_density(reference: RealData, items: Any) -> np.ndarray:
    source = reference.source
    if source is None or "log_prob" not in type(source).provides:
        raise ConfigError(
            "this curator needs the true density of the data source (a ground truth such as "
            "data id 'gaussian'); use scorer: generation0 or a task source with a verifier"
        )
    return np.asarray(source.log_prob(items), dtype=float)


def is_valid(reference: RealData, items: Any) -> np.ndarray | None:
    """The exact check of a task source (``None`` if the source has none)."""
    source = reference.source
    if source is not None and "verify" in type(source).provides:
        return np.asarray(source.verify(items), dtype=bool)
    return None


def is_good(
    judge: str, quantile: float, reference: RealData, items: Any, model_0: Any
) -> np.ndarray:
    """Which items count as good, by a task's verifier, the true density or generation 0.

    ``density`` and ``likelihood`` call an item bad when its score falls below the
    ``quantile`` of the same score over the real training data: it lies where the
    real data almost never goes.
    """
    if judge == "verifier":
        valid = is_valid(reference, items)
        if valid is not None:
            return valid
        judge = "density"
    if judge == "density":
        real = reference.cached("truth_log_density_train", lambda r: truth_log_density(r, r.train))
        return truth_log_density(reference, items) >= np.quantile(real, quantile)
    if model_0 is None:
        raise ConfigError("judge 'likelihood' needs generation 0's model")
    real = log_likelihood(model_0, reference.train)
    return log_likelihood(model_0, items) >= np.quantile(real, quantile)


def precision_recall(good: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """Share of kept items that are good, and share of good items kept."""
    n_kept, n_good = kept.sum(), good.sum()
    return {
        "precision": float((good & kept).sum() / n_kept) if n_kept else float("nan"),
        "recall": float((good & kept).sum() / n_good) if n_good else float("nan"),
        "good_fraction": float(good.mean()) if len(good) else float("nan"),
    }


def truth_known(reference: RealData | None) -> bool:
    source = reference.source if reference is not None else None
    return source is not None and bool({"verify", "log_prob"} & type(source).provides)


def quality_stats(
    reference: RealData | None, items: Any, kept: np.ndarray, quantile: float = 0.05
) -> dict[str, float]:
    """Precision and recall of a curator's choice against the truth, where the truth is
    known (a task's verifier, or a ground truth's density); otherwise nothing."""
    if not truth_known(reference) or len(kept) == 0:
        return {}
    return precision_recall(is_good("verifier", quantile, reference, items, None), kept)
