"""Small example data per data kind, on which the conformance checks run.

``EXAMPLE_DATA[kind](rng)`` gives a :class:`~collapselab.core.RealData` of that kind,
small enough that every check stays fast. The examples live here, beside the checks,
so that production code never imports :mod:`collapselab.testing`: a new data kind adds
its example to this table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core import DataKind, RealData
from ..data.images import DigitImages
from ..data.text import PydocCorpus, ZipfTruth, draw_categorical


def _continuous(rng: np.random.Generator) -> RealData:
    train = rng.normal(size=(60, 2)) * [1.0, 2.0] + [0.5, -1.0]
    test = rng.normal(size=(40, 2)) * [1.0, 2.0] + [0.5, -1.0]
    return RealData(train=train, test=test, kind=DataKind.CONTINUOUS)


def _text(rng: np.random.Generator) -> RealData:
    """120 pydoc paragraphs of at least 8 words: 80 to train on, 40 held out."""
    paragraphs = [p for p in PydocCorpus(unit="paragraph").documents() if len(p.split()) >= 8]
    pick = rng.choice(len(paragraphs), size=120, replace=False)
    docs = [paragraphs[i] for i in pick]
    return RealData(train=docs[:80], test=docs[80:], kind=DataKind.TEXT)


def _tokens(rng: np.random.Generator) -> RealData:
    """Draws from a Zipf(1.1) law over 60 ids, with the exact law as the truth."""
    p = ZipfTruth(exponent=1.1, vocabulary=60).probs()
    return RealData(
        train=draw_categorical(p, 400, rng),
        test=draw_categorical(p, 200, rng),
        kind=DataKind.TOKENS,
        truth={"probs": p},
    )


def _images(rng: np.random.Generator) -> RealData:
    """160 of scikit-learn's 8 x 8 digits: 100 to train on, 60 held out."""
    images = DigitImages.images()
    pick = rng.choice(len(images), size=160, replace=False)
    return RealData(train=images[pick[:100]], test=images[pick[100:]], kind=DataKind.IMAGES)


def _supervised(rng: np.random.Generator) -> RealData:
    """Small pairs: 4 features, labels 0..2.

    The labels are class indices, which a classifier reads as classes and a
    regression reads as numbers; the truth gives the best linear predictor so
    regression metrics have a reference.
    """
    means = np.array([[1.5, 0.0, 0.0, 0.5], [0.0, 1.5, 0.0, -0.5], [0.0, 0.0, 1.5, 0.0]])
    y = rng.integers(0, 3, size=100)
    x = means[y] + rng.standard_normal((100, 4))
    coef, *_ = np.linalg.lstsq(x, y.astype(float), rcond=None)
    truth = {"coef": coef, "feature_cov": x[60:].T @ x[60:] / 40, "n_classes": 3}
    return RealData(
        train=(x[:60], y[:60]), test=(x[60:], y[60:]), kind=DataKind.SUPERVISED, truth=truth
    )


#: Small example data per kind: ``EXAMPLE_DATA[kind](rng) -> RealData``.
EXAMPLE_DATA: dict[DataKind, Callable[[np.random.Generator], RealData]] = {
    DataKind.CONTINUOUS: _continuous,
    DataKind.TEXT: _text,
    DataKind.TOKENS: _tokens,
    DataKind.IMAGES: _images,
    DataKind.SUPERVISED: _supervised,
}


def example_data(kind: DataKind, seed: int = 0) -> RealData:
    """The example data of ``kind``, drawn with ``numpy.random.default_rng(seed)``."""
    if kind not in EXAMPLE_DATA:
        raise AssertionError(
            f"no example data for kind {kind}; add one to collapselab.testing.examples.EXAMPLE_DATA"
        )
    return EXAMPLE_DATA[kind](np.random.default_rng(seed))
