"""Text and categorical chains through the runner: presets, decoding, theory rows."""

import numpy as np
import pytest

from collapselab.experiment.config import load_config
from collapselab.experiment.runner import run


def _tiny(name: str, **overrides):
    config = load_config(name)
    data = config.model_dump(mode="json")
    for arm in data["arms"]:
        arm.update(overrides)
    data.update(overrides)
    return load_config(data)


def test_zipf_tails_preset_runs_small(tmp_path):
    config = _tiny("zipf-tails", seeds=3, generations=3, samples_per_generation=200)
    assert len(config.arms) == 12
    result = run(config, tmp_path / "zt")
    frame = result.metrics()
    sim = frame[frame["source"] == "simulation"]
    assert set(sim["metric"]) >= {"support", "heterozygosity", "rare_survival_k1", "kl_real"}
    assert (
        sim["value"].notna().all() or sim[sim["value"].isna()]["metric"].eq("zipf_exponent").all()
    )
    theory = frame[frame["source"] == "theory"]
    # Closed forms only where they hold: the MLE without truncation; heterozygosity
    # under replace, accumulate and fresh, the real sample's support (generation 0) everywhere.
    drift = set(theory[theory["metric"] == "heterozygosity"]["run_id"])
    regimes = ("replace", "accumulate", "fresh")
    assert drift == {f"{d}-{r}" for d in ("zipf", "wordfreq") for r in regimes}
    assert not any("top-p" in arm for arm in set(theory["run_id"]))
    support = theory[theory["metric"] == "support"].dropna(subset=["value"])
    assert (support["generation"] == 0).all()


@pytest.mark.slow
def test_ngram_shakespeare_preset_runs_small(tmp_path):
    config = _tiny("ngram-shakespeare", seeds=2, generations=3, samples_per_generation=150)
    result = run(config, tmp_path / "ngs")
    frame = result.metrics()
    replace = frame[frame["run_id"] == "replace"]
    for _, rows in replace[replace["metric"] == "rare_support_k5"].groupby("seed"):
        values = rows.sort_values("generation")["value"].to_numpy()
        # Under replace an unsmoothed model never regains a lost word.
        assert np.all(np.diff(values) <= 1e-12)
    assert replace[replace["metric"] == "coverage_real"]["value"].between(0, 1).all()


def _categorical(**extra):
    base = {
        "name": "cat",
        "data": {"id": "zipf", "params": {"vocabulary": 30, "exponent": 1.0, "n_test": 50}},
        "model": {"id": "categorical"},
        "samples_per_generation": 100,
        "generations": 4,
        "seeds": 5,
        "metrics": ["types", "support", "heterozygosity"],
    }
    base.update(extra)
    return load_config(base)


@pytest.mark.parametrize("batched", ["yes", "no"])
def test_greedy_decoding_collapses_at_once(tmp_path, batched):
    config = _categorical(decoding={"top_k": 1}, batched=batched)
    frame = run(config, tmp_path / batched).metrics()
    types = frame[(frame["metric"] == "types") & (frame["source"] == "simulation")]
    assert (types["value"] == 1).all()
    support = frame[(frame["metric"] == "support") & (frame["generation"] >= 1)]
    assert (support["value"] == 1).all()
    assert (frame["source"] == "theory").sum() == 0  # no closed form under truncation


def test_theory_rows_for_categorical_runs(tmp_path):
    frame = run(_categorical(), tmp_path / "t").metrics()
    theory = frame[(frame["source"] == "theory") & (frame["metric"] == "heterozygosity")]
    assert len(theory) == 4 and (theory["seed"] == -1).all()
    assert np.all(np.diff(theory.sort_values("generation")["value"].to_numpy()) < 0)


def test_text_chain_with_fresh_real_data_and_char_model(tmp_path):
    config = load_config(
        {
            "name": "chars",
            "data": {"id": "pydoc", "params": {"test_fraction": 0.02}},
            "model": {"id": "ngram", "params": {"order": 3, "level": "char"}},
            "regime": {"id": "fresh", "params": {"real_fraction": 0.2, "source": "resample"}},
            "samples_per_generation": 40,
            "generations": 3,
            "seeds": 2,
            "metrics": ["perplexity_real", "coverage_real", "types", "distinct_2", "rare_mass"],
        }
    )
    frame = run(config, tmp_path / "c").metrics()
    value = frame.set_index(["metric", "seed", "generation"])["value"]
    assert (value["perplexity_real"] > 1).all() and (value["types"] > 10).all()
    assert value["rare_mass"].isna().all()  # a character model has no word unigrams
