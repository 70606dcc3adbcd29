import pickle

import numpy as np
import pytest

from collapselab import make
from collapselab.core import DataKind, RealData, SeedBatch, Step
from collapselab.data import GaussianTruth
from collapselab.errors import ConfigError, DataError
from collapselab.regimes import Accumulate, Composition, Subsample, compose
from collapselab.stats import Moments


def real_data(n=10, draw=False):
    train = np.arange(n, dtype=float)[:, None] + 1000  # real values are >= 1000
    source = GaussianTruth() if draw else None
    return RealData(train=train, test=train, kind=DataKind.CONTINUOUS, source=source)


def outputs(sizes):
    return [np.full((n, 1), float(i)) for i, n in enumerate(sizes)]


def train_sets(regime, real, history, seed=0, fits_moments=False):
    """The training sets of generations 1..len(history), fed the outputs in turn."""
    state = regime.init(real, fits_moments=fits_moments)
    out = []
    for t, output in enumerate(history, start=1):
        step = regime.update(state, output, t, real=real, rng=np.random.default_rng(seed + t))
        assert isinstance(step, Step)
        state = step.state
        out.append(step.data)
    return out


def test_replace_returns_last_output():
    history = outputs([5, 5, 5])
    out = train_sets(make("regime", "replace"), real_data(), history)
    assert all(a is b for a, b in zip(out, history, strict=True))


def test_accumulate_pools_real_and_all_outputs():
    out = train_sets(make("regime", "accumulate"), real_data(10), outputs([5, 5]))[-1]
    assert out.shape == (20, 1)
    assert (out >= 1000).sum() == 10
    no_real = train_sets(
        make("regime", "accumulate", include_real=False), real_data(10), outputs([5, 5])
    )[-1]
    assert no_real.shape == (10, 1) and (no_real < 1000).all()


def test_accumulate_keeps_only_moments_for_a_model_that_fits_them():
    rng = np.random.default_rng(3)
    real = RealData(train=rng.normal(size=(30, 2)), test=None, kind=DataKind.CONTINUOUS)
    history = [rng.normal(size=(20, 2)) for _ in range(4)]
    regime = make("regime", "accumulate")
    samples = train_sets(regime, real, history)
    pooled = train_sets(regime, real, history, fits_moments=True)
    for data, moments in zip(samples, pooled, strict=True):
        assert isinstance(moments, Moments)
        exact = Moments.of(data)
        assert moments.count == exact.count
        np.testing.assert_allclose(moments.mean, exact.mean, atol=1e-12)
        np.testing.assert_allclose(moments.scatter, exact.scatter, atol=1e-10)
    # the state holds the pool's moments, not the samples: constant in the generations
    state = regime.init(real, fits_moments=True)
    for t, output in enumerate(history, start=1):
        state = regime.update(state, output, t, real=real, rng=None).state
    assert isinstance(state, Moments) and state.count == 80


def test_accumulate_subsample_keeps_budget_without_replacement():
    real = RealData(train=np.arange(10.0)[:, None], test=None, kind=DataKind.CONTINUOUS)
    history = [np.arange(10.0, 20.0)[:, None], np.arange(20.0, 30.0)[:, None]]
    regime = make("regime", "accumulate-subsample")
    out = train_sets(regime, real, history)[-1]
    assert out.shape == (10, 1)  # default budget: the real data's size
    assert len(np.unique(out)) == 10
    # each pooled point is equally likely to be kept
    counts = np.zeros(30)
    for s in range(3000):
        counts[train_sets(regime, real, history, seed=s)[-1].astype(int)[:, 0]] += 1
    freq = counts / 3000
    np.testing.assert_allclose(freq, 1 / 3, atol=4 * np.sqrt(1 / 3 * 2 / 3 / 3000))


def test_accumulate_subsample_is_the_composition_of_its_parts():
    real = real_data(10)
    history = outputs([8, 8, 8])
    named = train_sets(make("regime", "accumulate-subsample", budget=7), real, history)
    composed = train_sets(compose(Accumulate(), Subsample(budget=7)), real, history)
    for a, b in zip(named, composed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(make("regime", "accumulate-subsample"), Composition)
    # the subsample needs samples, so the accumulated pool is not reduced to moments
    state = make("regime", "accumulate-subsample").init(real, fits_moments=True)
    assert state[0] == ()


def test_a_composition_refuses_a_regime_that_cannot_run_batched():
    with pytest.raises(ConfigError, match="batched regimes"):
        compose(Accumulate(), make("regime", "web"))


@pytest.mark.parametrize("source", ["fixed", "resample", "new"])
def test_fresh_mixes_the_requested_real_fraction(source):
    real = real_data(50, draw=True)
    history = outputs([40, 40])
    regime = make("regime", "fresh", real_fraction=0.25, source=source)
    out = train_sets(regime, real, history)[-1]
    assert out.shape == (40, 1)
    synthetic = (out == 1.0).sum()
    assert synthetic == 30
    if source == "fixed":
        np.testing.assert_array_equal(np.sort(out[out >= 1000]), 1000 + np.arange(10))
        again = train_sets(regime, real, history, seed=9)[-1]
        np.testing.assert_array_equal(np.sort(again[again >= 1000]), 1000 + np.arange(10))
    if source == "new":
        assert not np.any(out >= 1000)  # fresh draws from N(0, 1), not the stored data


def test_fresh_new_needs_a_generative_source():
    regime = make("regime", "fresh", source="new")
    with pytest.raises(DataError, match="cannot draw new real samples"):
        train_sets(regime, real_data(10), outputs([10]))


def test_a_resumed_state_gives_the_same_training_sets():
    """The chain checkpoints the regime's state: a pickled state resumes identically."""
    real = real_data(20)
    history = outputs([10, 10, 10, 10])
    for regime_id in ("replace", "accumulate", "accumulate-subsample", "fresh", "web"):
        regime = make("regime", regime_id)
        whole = train_sets(regime, real, history)
        state = regime.init(real)
        for t, output in enumerate(history[:2], start=1):
            state = regime.update(state, output, t, real=real, rng=np.random.default_rng(t)).state
        state = pickle.loads(pickle.dumps(state))
        for t, output in enumerate(history[2:], start=3):
            step = regime.update(state, output, t, real=real, rng=np.random.default_rng(t))
            state = step.state
            np.testing.assert_array_equal(step.data, whole[t - 1], err_msg=regime_id)


def test_regimes_work_on_seed_batches():
    rng = np.random.default_rng(0)
    real = RealData(
        train=SeedBatch(rng.normal(size=(3, 8, 1))), test=None, kind=DataKind.CONTINUOUS
    )
    history = [SeedBatch(rng.normal(size=(3, 8, 1))) for _ in range(2)]
    for regime_id, size in [
        ("replace", 8),
        ("accumulate", 24),
        ("accumulate-subsample", 8),
        ("fresh", 8),
    ]:
        out = train_sets(make("regime", regime_id), real, history)[-1]
        assert isinstance(out, SeedBatch) and out.array.shape == (3, size, 1)
    out = train_sets(make("regime", "accumulate-subsample"), real, history)[-1]
    pool = np.concatenate([real.train.array, *[h.array for h in history]], axis=1)
    for s in range(3):  # each seed's subsample comes from its own pool, without repeats
        assert set(out.array[s, :, 0]) <= set(pool[s, :, 0])
        assert len(set(out.array[s, :, 0])) == 8
    assert not type(make("regime", "web")).batched  # each seed's web grows its own way
