"""The cache of pretrained results (collapselab.cache) and gpt's generation 0 in it."""

import json

import pytest

from collapselab import cache


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


KEY = {"model": "x", "rng": {"state": 2**100 + 7}, "data": "abc"}


def test_store_then_load_verifies_key_and_checksums(cache_dir):
    assert cache.load("demo", KEY) is None
    cache.store("demo", KEY, {"a.bin": b"\x00\x01", "b.json": b"{}"}, {"what": "demo"})
    assert cache.load("demo", KEY) == {"a.bin": b"\x00\x01", "b.json": b"{}"}
    assert cache.load("demo", {**KEY, "data": "abd"}) is None  # another key: another entry
    (entry,) = cache.entries()
    assert entry.kind == "demo" and entry.info == {"what": "demo"} and entry.bytes > 2
    # a corrupted payload is refused (and removed), so the caller recomputes it
    (entry.path / "a.bin").write_bytes(b"\x00\x02")
    assert cache.load("demo", KEY) is None
    assert not entry.path.exists()


def test_an_entry_whose_key_was_edited_is_refused(cache_dir):
    cache.store("demo", KEY, {"a.bin": b"1"})
    (entry,) = cache.entries()
    meta = json.loads((entry.path / "entry.json").read_text())
    meta["key"]["data"] = "other"
    (entry.path / "entry.json").write_text(json.dumps(meta))
    assert cache.load("demo", KEY) is None


def test_compute_once_computes_on_a_miss_only(cache_dir):
    calls = []

    def compute():
        calls.append(1)
        return {"f": b"result"}

    assert cache.compute_once("demo", KEY, compute) == ({"f": b"result"}, False)
    assert cache.compute_once("demo", KEY, compute) == ({"f": b"result"}, True)
    assert len(calls) == 1


def test_no_cache_switch_reads_and_writes_nothing(cache_dir, monkeypatch):
    cache.store("demo", KEY, {"f": b"1"})
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert not cache.enabled() and cache.load("demo", KEY) is None
    cache.store("demo", {**KEY, "data": "new"}, {"f": b"2"})
    monkeypatch.delenv(cache.NO_CACHE_ENV)
    assert len(cache.entries()) == 1  # only the entry stored while on


def test_clear_by_kind(cache_dir):
    cache.store("a", KEY, {"f": b"1"})
    cache.store("b", KEY, {"f": b"1"})
    assert cache.clear("a") == 1 and [e.kind for e in cache.entries()] == ["b"]
    assert cache.clear() == 1 and cache.entries() == []


# -- gpt's generation 0 ----------------------------------------------------------


TINY_GPT = {
    "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 24, "steps": 3,
    "generation0_steps": 6, "batch_size": 4, "mode": "prefix",
    "prefix_length": 8, "continuation_length": 8, "init": "generation0",
}  # fmt: skip


def tiny_config(name):
    return {
        "name": name,
        "data": {"id": "pydoc", "params": {"unit": "paragraph", "test_fraction": 0.01}},
        "model": {"id": "gpt", "params": TINY_GPT},
        "samples_per_generation": 12,
        "real_samples": 12,
        "generations": 2,
        "seeds": 2,
        "metrics": ["perplexity_real", "perplexity_gen0", "distinct_2"],
        "arms": [{"name": "replace"}, {"name": "accumulate", "regime": {"id": "accumulate"}}],
    }


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.slow
def test_generation0_is_trained_once_and_reused_bit_identically(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from collapselab.experiment.config import load_config
    from collapselab.experiment.runner import run
    from collapselab.models import gpt

    trained = []
    fit_vocabulary = gpt.fit_vocabulary  # called by generation 0's training only
    monkeypatch.setattr(gpt, "fit_vocabulary", lambda d: trained.append(1) or fit_vocabulary(d))

    def values(name):
        result = run(load_config(tiny_config(name)), tmp_path / name)
        frame = result.metrics().sort_values(["run_id", "metric", "seed", "generation"])
        return frame[["run_id", "metric", "seed", "generation", "value"]].reset_index(drop=True)

    first = values("first")
    assert len(trained) == 2  # one generation 0 per seed, shared by both arms
    second = values("second")
    assert len(trained) == 2  # the second run trained no generation 0 at all
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    uncached = values("uncached")
    assert len(trained) == 6  # each arm and seed trains its own
    monkeypatch.delenv(cache.NO_CACHE_ENV)
    assert first.equals(second) and first.equals(uncached)

    # a corrupted entry is refused and recomputed, with the same results
    entry = cache.entries()[0]
    weights = entry.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    again = values("again")
    assert len(trained) == 7 and again.equals(first)
    assert len(cache.entries()) == 2


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.slow
def test_cli_run_no_cache_then_list_and_clear(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import yaml

    from collapselab.cli import main

    config = tiny_config("cli") | {"generations": 1, "seeds": 1}
    config.pop("arms")
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv(cache.NO_CACHE_ENV, "")  # restored after the test
    args = ["run", str(path), "--quiet", "--out"]
    assert main([*args, str(tmp_path / "a"), "--no-cache"]) == 0
    assert cache.entries() == []
    monkeypatch.setenv(cache.NO_CACHE_ENV, "")
    assert main([*args, str(tmp_path / "b")]) == 0
    assert [e.kind for e in cache.entries()] == ["gpt-generation0"]
    capsys.readouterr()
    assert main(["cache", "list"]) == 0
    listed = capsys.readouterr().out
    assert "1 entries" in listed and "gpt-generation0" in listed and "steps=6" in listed
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cache entry" in capsys.readouterr().out
    assert cache.entries() == []
