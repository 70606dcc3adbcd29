import pytest


@pytest.fixture
def one_torch_thread():
    """Pin torch to one thread: float sums depend on how work is split across threads,
    so exact repeats need the same split (use with ``pytest.mark.usefixtures``)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_config():
    """A fast config with two arms: a batched Gaussian and a per-seed KDE."""
    return {
        "name": "small",
        "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 200}},
        "model": {"id": "gaussian"},
        "regime": {"id": "replace"},
        "samples_per_generation": 30,
        "generations": 8,
        "seeds": 5,
        "metrics": [
            "variance",
            "log_variance",
            "mean_shift",
            "nll_real",
            "wasserstein",
            "tail_mass",
            "collapsed",
        ],
        "checkpoint_every": 1,
        "arms": [
            {"name": "gauss-replace"},
            {
                "name": "kde-accumulate",
                "model": {"id": "kde", "params": {"bandwidth": 0.3}},
                "regime": "accumulate",
            },
        ],
    }


@pytest.fixture(autouse=True)
def no_result_cache(monkeypatch):
    """Tests train what they test: the cache of pretrained results (collapselab.cache)
    is off unless a test turns it on (tests/test_cache.py)."""
    monkeypatch.setenv("COLLAPSELAB_NO_CACHE", "1")
