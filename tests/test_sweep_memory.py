"""Memory of long accumulate chains: a Gaussian gets the pool's moments, so the chain's
state (and each checkpoint) stays the same size however many generations pass."""

import pickle

import numpy as np
import pytest

import collapselab as cl
from collapselab.chain import ChainState, run_batched, run_seed
from collapselab.core import SeedBatch
from collapselab.experiment import load_config
from collapselab.experiment.runner import make_spec
from collapselab.experiment.storage import read_metrics
from collapselab.models.gaussian import BatchedGaussian, Gaussian
from collapselab.regimes import Moments


def config(generations, model="gaussian", seeds=4):
    return load_config(
        {
            "name": "mem",
            "data": {"id": "gaussian", "params": {"dim": 2}},
            "model": {"id": model, "params": {"bandwidth": 0.5} if model == "kde" else {}},
            "regime": {"id": "accumulate"},
            "samples_per_generation": 30,
            "generations": generations,
            "seeds": seeds,
            "metrics": ["variance", "mean_shift"],
            "checkpoint_every": 1,
        }
    )


def test_pooled_moments_equal_the_moments_of_the_concatenation():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3)) * (i + 1) + i for i, n in enumerate([5, 40, 1, 17])]
    pooled = Moments.of(parts[0])
    for part in parts[1:]:
        pooled = pooled.combine(Moments.of(part))
    whole = np.concatenate(parts)
    direct = Moments.of(whole)
    assert pooled.count == len(whole)
    np.testing.assert_allclose(pooled.mean, direct.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pooled.scatter, direct.scatter, rtol=1e-12)
    for unbiased in (False, True):
        a = Gaussian(unbiased=unbiased).fit(pooled, rng=rng)
        b = Gaussian(unbiased=unbiased).fit(whole, rng=rng)
        np.testing.assert_allclose(a.cov_, b.cov_, rtol=1e-12)
    batches = [SeedBatch(rng.normal(size=(4, n, 2))) for n in (7, 9)]
    pooled = Moments.of(batches[0]).combine(Moments.of(batches[1]))
    both = SeedBatch(np.concatenate([b.array for b in batches], axis=1))
    fitted = BatchedGaussian().fit(pooled, rng=rng)
    np.testing.assert_allclose(fitted.cov_, BatchedGaussian().fit(both, rng=rng).cov_, rtol=1e-12)


def state_bytes(spec, generations, batched):
    spec.generations = generations
    state = run_batched(spec, 4) if batched else run_seed(spec, 0)
    state.values = {}  # one float per generation and metric is not the memory at stake
    return len(pickle.dumps(state))


@pytest.mark.parametrize("batched", [True, False])
def test_state_of_a_pooled_accumulate_chain_does_not_grow(batched):
    spec = make_spec(config(5))
    short, long = state_bytes(spec, 5, batched), state_bytes(spec, 60, batched)
    assert long <= short + 64  # constant in the generations (a few bytes of ints)
    # The same regime with a model that needs every sample keeps them all: the
    # check above would fail without pooling.
    kde = make_spec(config(5, model="kde"))
    assert state_bytes(kde, 20, False) > 3 * state_bytes(kde, 5, False)


def test_pooled_accumulate_resumes_bit_identical(tmp_path):
    cfg = config(12)
    cl.run(cfg, tmp_path / "clean", report=False)

    def interrupt(event):
        if event.generation == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(cfg, tmp_path / "resumed", on_generation=interrupt, report=False)
    result = cl.run(cfg, tmp_path / "resumed", report=False)
    assert result.arms[0].resumed and result.arms[0].execution == "batched"
    a = (tmp_path / "clean" / "mem" / "metrics.parquet").read_bytes()
    assert a == (tmp_path / "resumed" / "mem" / "metrics.parquet").read_bytes()
    frame = read_metrics(tmp_path / "clean" / "mem" / "metrics.parquet")
    assert frame.query("source == 'simulation'").generation.max() == 11


def test_pooled_and_full_pool_chains_agree():
    """The pooled path is the same chain: fits agree to rounding with full history."""
    spec = make_spec(config(8))
    pooled = run_seed(spec, 1)
    Gaussian.fits_moments = False
    try:
        full = run_seed(spec, 1, ChainState())
    finally:
        Gaussian.fits_moments = True
    for name in ("variance", "mean_shift"):
        np.testing.assert_allclose(pooled.values[name], full.values[name], rtol=1e-9)
