"""Images as continuous vectors, for density models of (n, d) data (``flow``, ``ddpm``).

``digits-vectors`` are scikit-learn's 1,797 handwritten 8 x 8 digits as 64-D rows,
split per seed into training and held-out test rows as ``digits-images`` splits them.
Their pixels take 17 gray levels; a density model of such data can pile unbounded
density on the levels, so by default each pixel is dequantized (Theis et al. 2016):
level v becomes (v + u) / 17 with u uniform in [0, 1), drawn once at load from the
seed's stream, so every value lies in [0, 1) and the data have a proper density.
The labels ride along in ``RealData.truth`` (``train_labels``, ``test_labels``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..core import BOOLEAN, DataKind, DataSource, Interval, RealData
from ..registry import register


@register("data", "digits-vectors")
class DigitVectors(DataSource):
    """scikit-learn's 8 x 8 digits as 64-D continuous rows in [0, 1].

    Parameters
    ----------
    test_fraction : float, default 0.25
        Share of the 1,797 digits held out as ``test_real``; the training rows are
        the first ``n`` (the run's ``real_samples``) of the rest, in a per-seed order.
    dequantize : bool, default True
        Spread each of the 17 gray levels uniformly over its bin (else level / 16).
    """

    kind = DataKind.CONTINUOUS
    can_draw = False
    parameter_constraints: ClassVar = {
        "test_fraction": [Interval(0, 1, closed="neither")],
        "dequantize": [BOOLEAN],
    }

    def __init__(self, *, test_fraction: float = 0.25, dequantize: bool = True) -> None:
        self.test_fraction = test_fraction
        self.dequantize = dequantize

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = rng.permutation(len(digits.data))
        n_test = max(1, round(self.test_fraction * len(order)))
        test, train = order[:n_test], order[n_test : n_test + n]
        levels = digits.data
        if self.dequantize:
            rows = (levels + rng.random(levels.shape)) / 17.0
        else:
            rows = levels / 16.0
        labels = digits.target.astype(np.int64)
        truth = {"train_labels": labels[train], "test_labels": labels[test]}
        return RealData(
            train=rows[train], test=rows[test], kind=self.kind, truth=truth, source=self
        )
