"""Loading many seeds at once (``DataSource.load_seeds``) gives every seed the real data
that loading it alone gives, bit for bit: training split, held-out test split, truth."""

import copy
import pickle
from importlib.util import find_spec

import numpy as np
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, _load_reals, load_real, run_batched
from collapselab.rng import streams

SOURCES = [
    ("gaussian", {}),
    ("gaussian", {"dim": 10}),
    (
        "gaussian",
        {"dim": 3, "mean": [1.0, -2.0, 30.0], "cov": [[2, 0.5, 0], [0.5, 1, 0.2], [0, 0.2, 3]]},
    ),
    ("zipf", {"vocabulary": 2}),
    ("zipf", {"vocabulary": 300, "exponent": 1.3}),
    pytest.param(
        "wordfreq-en",
        {"top_n": 50},
        marks=pytest.mark.skipif(not find_spec("wordfreq"), reason="the text extra"),
    ),
    ("moons", {}),  # no batched load: the base class loads seed by seed
]


@pytest.mark.parametrize(("source_id", "params"), SOURCES)
def test_loading_many_seeds_at_once_gives_each_seed_its_own_load(source_id, params):
    source = make("data", source_id, n_test=17, **params)
    together = source.load_seeds(n=40, rngs=streams(3, range(12), 0, "data"))
    assert len(together) == 12
    for seed, real in enumerate(together):
        alone = source.load(
            n=40, rng=np.random.default_rng(np.random.SeedSequence(3, spawn_key=(seed, 0, 0)))
        )
        assert real.train.dtype == alone.train.dtype
        np.testing.assert_array_equal(real.train, alone.train)
        np.testing.assert_array_equal(real.test, alone.test)  # the deferred draw
        assert real.truth.keys() == alone.truth.keys()
        for key, value in alone.truth.items():
            np.testing.assert_array_equal(real.truth[key], value)
        assert real.kind == alone.kind and real.source is source


@pytest.mark.parametrize(("source_id", "params"), SOURCES[:-1])
def test_a_truth_shared_by_every_seed_is_read_only(source_id, params):
    reals = make("data", source_id, n_test=5, **params).load_seeds(
        n=10, rngs=streams(0, range(3), 0, "data")
    )
    arrays = [v for v in reals[0].truth.values() if isinstance(v, np.ndarray)]
    assert arrays
    for value in arrays:
        with pytest.raises(ValueError, match="read-only"):
            value[...] = 0  # a metric writing into it would change every seed's truth
    # a copy, a pickle (a process pool) and a deep copy (a checkpoint) are the same truth
    for real in (pickle.loads(pickle.dumps(reals[1])), copy.deepcopy(reals[2])):
        for key, value in reals[0].truth.items():
            np.testing.assert_array_equal(real.truth[key], value)


def test_the_chain_loads_every_seed_as_load_real_does_and_reuses_a_given_seed_0():
    spec = ChainSpec(
        data=make("data", "gaussian", dim=2, n_test=5),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={"variance": make("metric", "variance")},
        samples_per_generation=20,
        generations=3,
        real_samples=20,
        root_seed=7,
    )
    real_0 = load_real(spec, 0)
    for given in (None, real_0):
        reals = _load_reals(spec, 6, given)
        assert len(reals) == 6
        for seed, real in enumerate(reals):
            np.testing.assert_array_equal(real.train, load_real(spec, seed).train)
    assert _load_reals(spec, 6, real_0)[0] is real_0
    a, b = run_batched(spec, 6), run_batched(spec, 6, real_0=real_0)
    np.testing.assert_array_equal(np.stack(a.values["variance"]), np.stack(b.values["variance"]))


def test_a_covariance_passed_in_stays_the_callers_to_write():
    # the truth's covariance is read-only, but it is the source's own copy, not the
    # array the caller gave (which the caller may still change, or share)
    from collapselab.data.continuous import GaussianTruth

    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    source = GaussianTruth(dim=2, cov=cov, n_test=5)
    (real,) = source.load_seeds(n=10, rngs=streams(0, range(1), 0, "data"))
    assert cov.flags.writeable and not real.truth["cov"].flags.writeable
    np.testing.assert_array_equal(real.truth["cov"], cov)
