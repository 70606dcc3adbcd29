"""Continuous data: a Gaussian ground truth, scikit-learn's shapes and real tables.

Every source returns a :class:`~collapselab.core.RealData` per seed, with a training
split that generation 0 fits and a held-out test split that metrics use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from ..core import NONE, DataKind, DataSource, Deferred, InstanceOf, Interval, RealData
from ..errors import InvalidParameterError, parameter_message
from ..registry import register
from ..rng import child_seed

NUMBER_OR_LIST = InstanceOf((int, float, list), "a number or a list of numbers")


@register("data", "gaussian")
class GaussianTruth(DataSource):
    """Samples from a known Gaussian N(mean, cov).

    Parameters
    ----------
    dim : int, default 1
    mean : float or list of float, default 0.0
    std : float, default 1.0
        Isotropic standard deviation, used when ``cov`` is not given.
    cov : list of lists, optional
        Full covariance (dim x dim), symmetric positive definite.
    n_test : int, default 1000
        Size of the held-out real test split.
    """

    kind = DataKind.CONTINUOUS
    can_draw = True
    provides: ClassVar[frozenset[str]] = frozenset({"log_prob"})
    parameter_constraints: ClassVar = {
        "dim": [Interval(1, None, integer=True)],
        "mean": [NUMBER_OR_LIST],
        "std": [Interval(0, None, closed="neither")],
        "cov": [NONE, InstanceOf((list,), "a list of lists (dim x dim)")],
        "n_test": [Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        dim: int = 1,
        mean: float | list[float] = 0.0,
        std: float = 1.0,
        cov: list[list[float]] | None = None,
        n_test: int = 1000,
    ) -> None:
        self.dim = dim
        self.mean = mean
        self.std = std
        self.cov = cov
        self.n_test = n_test

    def validate_params(self) -> None:
        super().validate_params()
        if np.ndim(self.mean) != 0 and np.shape(self.mean) != (self.dim,):
            raise InvalidParameterError(
                parameter_message(
                    "GaussianTruth", "mean", f"a number or a list of {self.dim} numbers", self.mean
                )
            )
        if self.cov is not None:
            cov = np.asarray(self.cov, dtype=float)
            ok = cov.shape == (self.dim, self.dim) and np.allclose(cov, cov.T)
            if ok:
                ok = bool(np.all(np.linalg.eigvalsh(cov) > 0))
            if not ok:
                raise InvalidParameterError(
                    parameter_message(
                        "GaussianTruth",
                        "cov",
                        f"a symmetric positive definite {self.dim}x{self.dim} matrix",
                        self.cov,
                    )
                )

    def item_bytes(self) -> int:
        return 8 * self.dim

    def fixed_bytes(self) -> int:  # the test split, the covariance and its factor
        return 8 * self.dim * (self.n_test + 2 * self.dim)

    @property
    def mean_vector(self) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.mean, dtype=float), (self.dim,)).copy()

    @property
    def cov_matrix(self) -> np.ndarray:
        if self.cov is not None:
            return np.asarray(self.cov, dtype=float)
        return np.eye(self.dim) * self.std**2

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """The true log-density of each row of ``x`` (used by verifiers and raters)."""
        from ..stats import gaussian_log_prob

        return gaussian_log_prob(
            np.asarray(x, dtype=float).reshape(len(x), -1), self.mean_vector, self.cov_matrix
        )

    def _factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The mean, the covariance and its Cholesky factor are pure functions of the
        # parameters: computed once, not per seed or per draw. The covariance is a copy:
        # load_seeds makes it read-only, which must not reach a ``cov`` array passed in.
        if getattr(self, "_factor", None) is None:
            cov = np.array(self.cov_matrix)
            self._factor = (self.mean_vector, np.linalg.cholesky(cov), cov)
        return self._factor

    def draw(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        mean, root, _ = self._factors()
        return mean + rng.standard_normal((n, self.dim)) @ root.T

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        return self.load_seeds(n=n, rngs=[rng])[0]

    def load_seeds(self, *, n: int, rngs: Sequence[np.random.Generator]) -> list[RealData]:
        """Every seed's :meth:`load` at once: each stream fills its seed's normals (the
        values of :meth:`draw`), then one stacked product transforms them all (a batched
        BLAS product multiplies each seed's matrix alone, with the same rounding)."""
        mean, root, cov = self._factors()
        # every seed's truth holds these: read-only, so no metric can change another's
        mean.flags.writeable = cov.flags.writeable = False
        z = np.empty((len(rngs), n, self.dim))
        for rng, part in zip(rngs, z, strict=True):
            rng.standard_normal(out=part)
        train = mean + z @ root.T
        return [
            RealData(
                train=x,
                test=Deferred.draw(self, self.n_test, rng),  # drawn only if a metric reads it
                kind=self.kind,
                truth={"mean": mean, "cov": cov},
                source=self,
            )
            for x, rng in zip(train, rngs, strict=True)
        ]


def _moons(n: int, seed: int, noise: float, **_: Any) -> np.ndarray:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=n, noise=noise, random_state=seed)[0]


def _circles(n: int, seed: int, noise: float, factor: float, **_: Any) -> np.ndarray:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, noise=noise, factor=factor, random_state=seed)[0]


def _blobs(n: int, seed: int, noise: float, centers: int, dim: int, **_: Any) -> np.ndarray:
    from sklearn.datasets import make_blobs

    # Fixed centres (seed 0) so every seed and every draw shares one ground truth.
    locations = np.random.default_rng(0).uniform(-10, 10, size=(centers, dim))
    return make_blobs(
        n_samples=n, centers=locations, cluster_std=noise, n_features=dim, random_state=seed
    )[0]


def _swiss_roll(n: int, seed: int, noise: float, **_: Any) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    return make_swiss_roll(n_samples=n, noise=noise, random_state=seed)[0]


class ShapeSource(DataSource):
    """scikit-learn's generated shapes; fresh draws come from the same generator."""

    kind = DataKind.CONTINUOUS
    can_draw = True
    generator: ClassVar[Callable[..., np.ndarray]]
    default_noise: ClassVar[float] = 0.1
    parameter_constraints: ClassVar = {
        "noise": [NONE, Interval(0, None)],
        "n_test": [Interval(1, None, integer=True)],
    }

    def __init__(self, *, noise: float | None = None, n_test: int = 1000) -> None:
        self.noise = noise  # None: the shape's customary default
        self.n_test = n_test

    def _extra(self) -> dict[str, Any]:
        return {}

    def item_bytes(self) -> int:
        return 8 * int(self._extra().get("dim", 3))  # 2-D shapes, 3-D swiss roll

    def fixed_bytes(self) -> int:
        return self.n_test * self.item_bytes()

    def draw(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        noise = type(self).default_noise if self.noise is None else self.noise
        return type(self).generator(n, child_seed(rng), noise=noise, **self._extra())

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        train = self.draw(n, rng=rng)
        test = Deferred.draw(self, self.n_test, rng)  # drawn only if a metric reads it
        return RealData(train=train, test=test, kind=self.kind, source=self)


@register("data", "moons")
class Moons(ShapeSource):
    """Two interleaving half circles in 2-D (``sklearn.datasets.make_moons``)."""

    generator = staticmethod(_moons)


@register("data", "circles")
class Circles(ShapeSource):
    """A circle inside a circle in 2-D (``make_circles``); ``factor`` is the radius ratio."""

    generator = staticmethod(_circles)
    default_noise = 0.05
    parameter_constraints: ClassVar = {
        **ShapeSource.parameter_constraints,
        "factor": [Interval(0, 1, closed="neither")],
    }

    def __init__(
        self, *, noise: float | None = None, factor: float = 0.5, n_test: int = 1000
    ) -> None:
        super().__init__(noise=noise, n_test=n_test)
        self.factor = factor

    def _extra(self) -> dict[str, Any]:
        return {"factor": self.factor}


@register("data", "blobs")
class Blobs(ShapeSource):
    """Isotropic Gaussian blobs (``make_blobs``) around fixed centres; ``noise`` is their std."""

    generator = staticmethod(_blobs)
    default_noise = 1.0
    parameter_constraints: ClassVar = {
        "noise": [NONE, Interval(0, None, closed="neither")],
        "n_test": [Interval(1, None, integer=True)],
        "centers": [Interval(1, None, integer=True)],
        "dim": [Interval(1, None, integer=True)],
    }

    def __init__(
        self, *, noise: float | None = None, centers: int = 1, dim: int = 2, n_test: int = 1000
    ) -> None:
        super().__init__(noise=noise, n_test=n_test)
        self.centers = centers
        self.dim = dim

    def _extra(self) -> dict[str, Any]:
        return {"centers": self.centers, "dim": self.dim}


@register("data", "swiss_roll")
class SwissRoll(ShapeSource):
    """The 3-D swiss roll (``make_swiss_roll``)."""

    generator = staticmethod(_swiss_roll)
    default_noise = 0.0


class TableSource(DataSource):
    """A real table bundled with scikit-learn, standardized with training statistics."""

    kind = DataKind.CONTINUOUS
    loader_name: ClassVar[str]
    parameter_constraints: ClassVar = {"test_fraction": [Interval(0, 1, closed="neither")]}

    def __init__(self, *, test_fraction: float = 0.25) -> None:
        self.test_fraction = test_fraction

    def load(self, *, n: int, rng: np.random.Generator) -> RealData:
        import sklearn.datasets

        x = getattr(sklearn.datasets, type(self).loader_name)().data.astype(float)
        order = rng.permutation(x.shape[0])
        n_test = max(1, round(self.test_fraction * x.shape[0]))
        test, train = x[order[:n_test]], x[order[n_test:]]
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std == 0] = 1.0
        return RealData(
            train=(train - mean) / std, test=(test - mean) / std, kind=self.kind, source=self
        )


@register("data", "iris")
class Iris(TableSource):
    """Fisher's iris measurements: 150 rows, 4 features."""

    loader_name = "load_iris"


@register("data", "wine")
class Wine(TableSource):
    """UCI wine recognition: 178 rows, 13 features."""

    loader_name = "load_wine"


@register("data", "breast_cancer")
class BreastCancer(TableSource):
    """Wisconsin diagnostic breast cancer: 569 rows, 30 features."""

    loader_name = "load_breast_cancer"
