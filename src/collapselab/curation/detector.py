"""A real-versus-synthetic detector that drops what it flags."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..core import Curated, Curator, Interval, RealData, length, take
from ..registry import register
from ..rng import child_seed
from .scoring import quality_stats


def features(items: Any) -> Any:
    """Detector features for any data kind: quadratic features of vectors, hashed
    character n-grams of documents, hashed token n-grams of token sequences, and
    one-hot token ids of categorical draws."""
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    if isinstance(items, np.ndarray) and items.ndim == 1 and items.dtype.kind in "iu":
        return sparse.csr_matrix(
            (np.ones(len(items)), (np.arange(len(items)), items)), shape=(len(items), 2**20)
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


@register("curator", "detector")
class Detector(Curator):
    """Logistic regression of real against synthetic, retrained every generation.

    Real training data and the generation's output are split in two folds; each
    fold is scored by a detector trained on the other (cross-fitting), so every
    sample gets an out-of-sample score and the AUC is honest. Samples scored as
    synthetic (probability above ``threshold``) are dropped. ``max_accuracy``
    caps the detector's held-out accuracy by flipping a random share of its
    decisions, to model a weaker detector than the one this data allows.

    Records ``auc``, ``accuracy`` (after the cap) and ``flagged_fraction``.
    """

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
        synthetic: Any,
        *,
        reference: RealData,
        rng: np.random.Generator,
        model: Any = None,
        model_0: Any = None,
    ) -> Curated:
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.preprocessing import StandardScaler

        real = reference.train
        n_real, n_syn = length(real), length(synthetic)
        if isinstance(synthetic, np.ndarray) and synthetic.dtype.kind == "f":
            x = np.vstack([features(np.asarray(real, dtype=float)), features(synthetic)])
        else:
            x = sparse.vstack([features(real), features(synthetic)]).tocsr()
        y = np.r_[np.zeros(n_real), np.ones(n_syn)]
        fold = np.r_[rng.permutation(n_real) % 2, rng.permutation(n_syn) % 2]
        score = np.empty(n_real + n_syn)
        for k in (0, 1):
            train, test = fold != k, fold == k
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
        auc = float(roc_auc_score(y, score))
        drop = flagged[n_real:]
        index = np.flatnonzero(~drop)
        kept = take(synthetic, index)
        stats = {
            **quality_stats(reference, synthetic, ~drop),
            "auc": auc,
            "accuracy": accuracy,
            "flagged_fraction": float(drop.mean()),
            "kept_fraction": float(1 - drop.mean()),
        }
        return Curated(kept=kept, removed=int(drop.sum()), stats=stats, index=index)
