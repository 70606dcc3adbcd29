import numpy as np
import pytest

from collapselab import make
from collapselab.core import DataKind, RealData, SeedBatch
from collapselab.data import GaussianTruth
from collapselab.errors import DataError


def real_data(n=10, draw=False):
    train = np.arange(n, dtype=float)[:, None] + 1000  # real values are >= 1000
    source = GaussianTruth() if draw else None
    return RealData(train=train, test=train, kind=DataKind.CONTINUOUS, source=source)


def outputs(sizes):
    return [np.full((n, 1), float(i)) for i, n in enumerate(sizes)]


def test_replace_returns_last_output():
    history = outputs([5, 5, 5])
    out = make("regime", "replace")(real_data(), history, 3, rng=np.random.default_rng(0))
    assert out is history[-1]


def test_accumulate_pools_real_and_all_outputs():
    out = make("regime", "accumulate")(
        real_data(10), outputs([5, 5]), 2, rng=np.random.default_rng(0)
    )
    assert out.shape == (20, 1)
    assert (out >= 1000).sum() == 10
    no_real = make("regime", "accumulate", include_real=False)(
        real_data(10), outputs([5, 5]), 2, rng=None
    )
    assert no_real.shape == (10, 1) and (no_real < 1000).all()


def test_accumulate_subsample_keeps_budget_without_replacement():
    real = RealData(train=np.arange(10.0)[:, None], test=None, kind=DataKind.CONTINUOUS)
    history = [np.arange(10.0, 20.0)[:, None], np.arange(20.0, 30.0)[:, None]]
    regime = make("regime", "accumulate-subsample")
    out = regime(real, history, 2, rng=np.random.default_rng(0))
    assert out.shape == (10, 1)  # default budget: the real data's size
    assert len(np.unique(out)) == 10
    # each pooled point is equally likely to be kept
    counts = np.zeros(30)
    for s in range(3000):
        counts[regime(real, history, 2, rng=np.random.default_rng(s)).astype(int)[:, 0]] += 1
    freq = counts / 3000
    np.testing.assert_allclose(freq, 1 / 3, atol=4 * np.sqrt(1 / 3 * 2 / 3 / 3000))


@pytest.mark.parametrize("source", ["fixed", "resample", "new"])
def test_fresh_mixes_the_requested_real_fraction(source):
    real = real_data(50, draw=True)
    history = outputs([40, 40])
    regime = make("regime", "fresh", real_fraction=0.25, source=source)
    out = regime(real, history, 2, rng=np.random.default_rng(0))
    assert out.shape == (40, 1)
    synthetic = (out == 1.0).sum()
    assert synthetic == 30
    if source == "fixed":
        np.testing.assert_array_equal(np.sort(out[out >= 1000]), 1000 + np.arange(10))
        again = regime(real, history, 5, rng=np.random.default_rng(9))
        np.testing.assert_array_equal(np.sort(again[again >= 1000]), 1000 + np.arange(10))
    if source == "new":
        assert not np.any(out >= 1000)  # fresh draws from N(0, 1), not the stored data


def test_fresh_new_needs_a_generative_source():
    regime = make("regime", "fresh", source="new")
    with pytest.raises(DataError, match="cannot draw new real samples"):
        regime(real_data(10), outputs([10]), 1, rng=np.random.default_rng(0))


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
        out = make("regime", regime_id)(real, history, 2, rng=rng)
        assert isinstance(out, SeedBatch) and out.array.shape == (3, size, 1)
    out = make("regime", "accumulate-subsample")(real, history, 2, rng=rng)
    pool = np.concatenate([real.train.array, *[h.array for h in history]], axis=1)
    for s in range(3):  # each seed's subsample comes from its own pool, without repeats
        assert set(out.array[s, :, 0]) <= set(pool[s, :, 0])
        assert len(set(out.array[s, :, 0])) == 8
