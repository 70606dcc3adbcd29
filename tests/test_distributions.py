"""Per-item metrics measured against generation 0's model, their distributions on disk,
and their histograms in the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, run_batched, run_seed
from collapselab.core import Metric
from collapselab.experiment.config import Config
from collapselab.experiment.runner import run
from collapselab.report.html import write_report_safely


def _ngram_spec(generations: int = 3, metrics: dict | None = None) -> ChainSpec:
    return ChainSpec(
        data=make("data", "pydoc", unit="paragraph"),
        model=make("model", "ngram", order=1, level="char", smoothing="add-k"),
        regime=make("regime", "replace"),
        metrics=metrics or {"perplexity_gen0": make("metric", "perplexity_gen0")},
        samples_per_generation=40,
        generations=generations,
        real_samples=60,
    )


def test_perplexity_gen0_is_per_document_perplexity_under_the_first_model():
    spec = _ngram_spec()
    state = run_seed(spec, 0)
    values = state.distributions["perplexity_gen0"]
    assert [len(v) for v in values] == [40, 40, 40]
    # Score documents by hand, token by token, under generation 0's model; every token
    # is charged at p + floor (the declared unknown-token probability, 1e-6).
    metric = make("metric", "perplexity_gen0")
    docs = ["a tiny document", "another one, longer than the first"]
    model_0 = state.model_0

    def floored(logp):
        return np.log(np.exp(logp) + 1e-6)

    expected = [np.exp(-floored(model_0.document_token_log_probs([d])[0]).mean()) for d in docs]
    by_hand = [
        np.exp(-np.mean(floored(model_0.token_log_probs([d])))) for d in docs
    ]  # the same tokens, scored one document at a time
    got = metric.item_values(state.model, docs, None, rng=None, model_0=model_0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, by_hand, rtol=1e-12)
    # The recorded value is the median of the per-document values, every generation.
    for t, items in enumerate(values):
        assert state.values["perplexity_gen0"][t] == pytest.approx(np.median(items))


def test_the_yardstick_is_generation_0_not_the_current_model():
    spec = _ngram_spec()
    state = run_seed(spec, 0)
    docs = ["the quick brown fox jumps over the lazy dog"]
    metric = make("metric", "perplexity_gen0")
    under_first = metric.item_values(state.model, docs, None, rng=None, model_0=state.model_0)
    under_last = metric.item_values(state.model, docs, None, rng=None, model_0=state.model)
    assert under_first[0] != under_last[0]  # two different models give different scores


class _Model0Mean(Metric):
    """A test metric: generation 0's fitted mean, once per generated item."""

    uses_model_0 = True
    per_item = True

    def __init__(self) -> None:
        pass

    def item_values(self, model, synthetic, reference, *, rng, model_0=None, **kwargs):
        return np.full(len(synthetic), float(model_0.mean_[0]))


@pytest.mark.parametrize("path", ["per-seed", "batched"])
def test_model_0_reaches_metrics_on_both_paths(path):
    spec = ChainSpec(
        data=make("data", "gaussian", dim=1),
        model=make("model", "gaussian"),
        regime=make("regime", "replace"),
        metrics={"m0": _Model0Mean()},
        samples_per_generation=5,
        generations=4,
        real_samples=5,
    )
    if path == "per-seed":
        state = run_seed(spec, 0)
        first = state.distributions["m0"][0]
        assert all(np.array_equal(v, first) for v in state.distributions["m0"])
        assert state.values["m0"] == [first[0]] * 4
    else:
        state = run_batched(spec, 3)
        per_gen = state.distributions["m0"]
        assert len(per_gen) == 4 and all(len(seeds) == 3 for seeds in per_gen)
        for s in range(3):
            expected = float(state.model_0.unbatch(s).mean_[0])
            assert all(np.all(g[s] == expected) for g in per_gen)
        # the seeds' chains differ, so their generation-0 means differ
        assert len({float(per_gen[0][s][0]) for s in range(3)}) == 3


def _config(**overrides) -> Config:
    raw = {
        "name": "dist",
        "data": {"id": "pydoc", "params": {"unit": "paragraph"}},
        "model": {"id": "ngram", "params": {"order": 1, "level": "char", "smoothing": "add-k"}},
        "regime": {"id": "replace"},
        "real_samples": 60,
        "samples_per_generation": 30,
        "generations": 3,
        "seeds": 3,
        "metrics": ["perplexity_gen0", "types"],
        **overrides,
    }
    return Config.model_validate(raw)


def test_runner_writes_distributions_and_the_report_draws_them(tmp_path):
    result = run(_config(), tmp_path / "a", reporter=write_report_safely)
    arm = tmp_path / "a" / "dist"
    frame = pd.read_parquet(arm / "distributions.parquet")
    assert list(frame.columns) == ["run_id", "seed", "generation", "metric", "value"]
    assert len(frame) == 3 * 3 * 30
    assert set(frame["metric"]) == {"perplexity_gen0"}
    medians = frame.groupby(["seed", "generation"])["value"].median()
    metrics = (
        result.arms[0]
        .frame.set_index(["metric", "seed", "generation"])
        .loc["perplexity_gen0", "value"]
    )
    np.testing.assert_allclose(medians.sort_index().to_numpy(), metrics.sort_index().to_numpy())
    assert (tmp_path / "a" / "figures" / "distributions-dist.png").is_file()
    html = (tmp_path / "a" / "report.html").read_text()
    assert 'id="distributions"' in html
    # Process pool and serial runs give identical per-item values.
    run(_config(), tmp_path / "b", workers=2)
    other = pd.read_parquet(tmp_path / "b" / "dist" / "distributions.parquet")
    pd.testing.assert_frame_equal(frame, other)


def test_runs_without_per_item_metrics_write_no_distributions(tmp_path):
    run(_config(metrics=["types"]), tmp_path)
    assert not (tmp_path / "dist" / "distributions.parquet").exists()


def test_a_checkpoint_of_an_older_layout_is_redone_to_the_same_results(tmp_path):
    """A checkpoint written by an older collapselab (before the regime's state replaced
    the output history) is not resumed: its chain starts over and ends identical."""
    from collapselab.experiment.storage import load_checkpoint, save_checkpoint

    config = _config(seeds=2, checkpoint_every=1)
    clean = run(config, tmp_path / "clean")

    def stop(event):
        if event.seed == 1 and event.generation == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "old", on_generation=stop)
    path = tmp_path / "old" / "dist" / "checkpoints" / "seed-00001.ckpt"
    saved = load_checkpoint(path)
    older = {k: v for k, v in saved.items() if k != "layout"}  # as written before layouts
    vars(older["state"])["history"] = [vars(older["state"]).pop("output")]
    save_checkpoint(path, older)
    seen = []
    again = run(
        config,
        tmp_path / "old",
        on_generation=lambda e: seen.append((e.seed, e.generation)),
    )
    assert (1, 0) in seen  # seed 1 started over
    pd.testing.assert_frame_equal(clean.arms[0].frame, again.arms[0].frame)
