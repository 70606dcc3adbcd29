"""A real-versus-synthetic detector that drops what it flags."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import Curated, Curator, DataKind, Interval, RealData, length
from ..registry import register
from ..rng import child_seed
from .scoring import quality_stats


def features(items: Any) -> Any:
    """Detector features for any data kind: quadratic features of vectors, hashed
    character n-grams of documents, hashed token n-grams of token sequences, and
    one-hot token ids of categorical draws."""
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    if _token_ids(items):
        # one column per id up to the largest (a fixed 2^20 made each fit seconds slower)
        width = int(items.max()) + 1 if len(items) else 1
        return sparse.csr_matrix(
            (np.ones(len(items)), (np.arange(len(items)), items)), shape=(len(items), width)
        )
    if isinstance(items, np.ndarray):
        x = items.reshape(len(items), -1).astype(float)
        upper = np.triu_indices(x.shape[1])
        return np.hstack([x, (x[:, :, None] * x[:, None, :])[:, upper[0], upper[1]]])
    if items and isinstance(items[0], str):
        vectorizer = HashingVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), n_features=2**18, alternate_sign=False
        )
        return vectorizer.transform(items)
    documents = [" ".join(map(str, doc)) for doc in items]
    vectorizer = HashingVectorizer(
        token_pattern=r"\S+", ngram_range=(1, 2), n_features=2**18, alternate_sign=False
    )
    return vectorizer.transform(documents)


def _token_ids(items: Any) -> bool:
    return isinstance(items, np.ndarray) and items.ndim == 1 and items.dtype.kind in "iu"


@register("curator", "detector")
class Detector(Curator):
    """Logistic regression of human against model-written items, retrained every generation.

    Its training labels are true: the real training data is human, and each item has
    its provenance (in a chain every item is the model's output; in a web scrape
    only the synthetic pages are). Real data and items are split in two folds; each
    fold is scored by a detector trained on the other (cross-fitting), so every
    sample gets an out-of-sample score and the AUC is honest. Items scored as
    synthetic (probability above ``threshold``) are dropped. ``max_accuracy``
    caps the detector's held-out accuracy by flipping a random share of its
    decisions, to model a weaker detector than the one this data allows (or use the
    ``provenance`` curator with declared error rates).

    Records ``auc`` (NaN where only one class is present), ``accuracy`` (after the
    cap) and ``flagged_fraction``.
    """

    # features exist for vectors, images, documents and token ids (not for pairs)
    applies_to = frozenset({DataKind.CONTINUOUS, DataKind.IMAGES, DataKind.TEXT, DataKind.TOKENS})
    parameter_constraints: ClassVar = {
        "threshold": [Interval(0, 1, closed="neither")],
        "max_accuracy": [Interval(0.5, 1)],
        "C": [Interval(0, None, closed="neither")],
    }

    def __init__(
        self, *, threshold: float = 0.5, max_accuracy: float = 1.0, C: float = 1.0
    ) -> None:
        self.threshold = threshold
        self.max_accuracy = max_accuracy
        self.C = C

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
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.preprocessing import StandardScaler

        real = reference.train
        n_real, n_items = length(real), length(items)
        if isinstance(items, np.ndarray) and items.dtype.kind == "f":
            x = np.vstack([features(np.asarray(real, dtype=float)), features(items)])
        elif _token_ids(items):  # one id space for both
            x = features(np.concatenate([np.asarray(real), items]))
        else:
            x = sparse.vstack([features(real), features(items)]).tocsr()
        # true labels: the real training data is human, each item has its provenance
        y = np.r_[np.zeros(n_real), np.asarray(provenance, dtype=float)]
        fold = np.r_[rng.permutation(n_real) % 2, rng.permutation(n_items) % 2]
        score = np.empty(n_real + n_items)
        for k in (0, 1):
            train, test = fold != k, fold == k
            if len(np.unique(y[train])) < 2:  # nothing to tell apart: a constant score
                score[test] = y[train].mean() if train.any() else 0.0
                continue
            xt, xs = x[train], x[test]
            if isinstance(x, np.ndarray):
                scaler = StandardScaler().fit(xt)
                xt, xs = scaler.transform(xt), scaler.transform(xs)
            # liblinear: ten times faster than lbfgs on hashed sparse n-gram features
            clf = LogisticRegression(
                C=self.C,
                solver="liblinear",
                max_iter=1000,
                class_weight="balanced",
                random_state=child_seed(rng),
            )
            clf.fit(xt, y[train])
            score[test] = clf.predict_proba(xs)[:, 1]
        flagged = score > self.threshold
        accuracy = float(np.mean(flagged == (y == 1)))
        if accuracy > self.max_accuracy:
            # flip decisions at random so the expected accuracy equals the cap
            flip = (accuracy - self.max_accuracy) / (2 * accuracy - 1)
            flagged ^= rng.random(len(flagged)) < flip
            accuracy = float(np.mean(flagged == (y == 1)))
        auc = float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan")
        drop = flagged[n_real:]
        stats = {
            **quality_stats(reference, items, ~drop),
            "auc": auc,
            "accuracy": accuracy,
            "flagged_fraction": float(drop.mean()),
        }
        return Curated.of(items, ~drop, stats)
