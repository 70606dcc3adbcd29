"""The web-contamination regime: schedule, provenance, budget and curators."""

import numpy as np
import pytest

import collapselab as cl
from collapselab import make
from collapselab.experiment import load_config


def web_run(tmp_path, seeds=40, generations=8, **params):
    config = load_config(
        {
            "name": "web",
            "data": "gaussian",
            "model": "gaussian",
            "samples_per_generation": 200,
            "generations": generations,
            "seeds": seeds,
            "metrics": ["variance"],
            "regime": {
                "id": "web",
                "params": {"share_start": 0.1, "share_end": 0.7, "ramp_generations": 5, **params},
            },
        }
    )
    frame = cl.run(config, tmp_path / "web", report=False).metrics()
    return frame[frame.source == "simulation"]


def test_schedule_ramps_then_holds():
    web = make("regime", "web", share_start=0.1, share_end=0.7, ramp_generations=5)
    np.testing.assert_allclose(
        [web.share(t) for t in range(1, 9)], [0.1, 0.25, 0.4, 0.55, 0.7, 0.7, 0.7, 0.7]
    )


def test_synthetic_share_follows_its_schedule(tmp_path):
    frame = web_run(tmp_path, influence=0.25)
    web = make("regime", "web", share_start=0.1, share_end=0.7, ramp_generations=5)
    pages, seeds = 200, 40
    for t in range(1, 8):
        at = frame[frame.generation == t]
        new = at[at.metric == "web.new_synthetic_share"].value
        expected = web.share(t)
        se = np.sqrt(expected * (1 - expected) / (pages * seeds))  # binomial over all new pages
        assert abs(new.mean() - expected) < 4 * se, (t, new.mean(), expected)
        influenced = at[at.metric == "web.trained_influenced_share"].value.mean()
        assert influenced == pytest.approx(
            (1 - expected) * 0.25 * _new_share_of_web(t, web), abs=0.03
        )
    gen0 = frame[frame.generation == 0]
    assert (
        gen0[gen0.metric == "web.new_synthetic_share"].value.isna().all()
    )  # generation 0 trains on real data


def _new_share_of_web(t, web, initial=200, pages=200):
    """Share of the web written at generation t or earlier that is influenced, per unit of
    influenced fraction: the web holds the real data plus t generations of pages."""
    weights = [(1 - web.share(j)) / (1 - web.share(t)) for j in range(1, t + 1)]
    return pages * sum(weights) / (initial + pages * t)


def test_trained_share_matches_the_web_share_without_curators(tmp_path):
    frame = web_run(tmp_path)
    last = frame[frame.generation == 7]
    web_share = last[last.metric == "web.synthetic_share"].value.to_numpy()
    trained = last[last.metric == "web.trained_synthetic_share"].value.to_numpy()
    # a random scrape of the web: the difference is sampling noise around zero
    diff = trained - web_share
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(len(diff))


def _late_means(config, tmp_path, first=2):
    frame = cl.run(config, tmp_path / "web", report=False).metrics()
    late = frame[(frame.source == "simulation") & (frame.generation >= first)]
    return late.groupby("metric").value.mean()


def test_detector_on_the_web_removes_mostly_synthetic_pages(tmp_path):
    config = load_config(
        {
            "name": "web-detect",
            "data": "gaussian",
            "model": {"id": "kde", "params": {"bandwidth": 3.0}},  # pages far wider than N(0, 1)
            "samples_per_generation": 200,
            "generations": 4,
            "seeds": 4,
            "metrics": ["variance"],
            "regime": {
                "id": "web",
                "params": {"share_start": 0.5, "share_end": 0.5, "curators": ["detector"]},
            },
        }
    )
    mean = _late_means(config, tmp_path)
    # trained on the pages' true provenance, it separates them well, and what it removes
    # is synthetic far above the base rate
    assert mean["web.detector.auc"] > 0.7  # 0.80 here; 0.60 on the wrong labels
    assert mean["web.detector.removed_synthetic_share"] > 1.5 * mean["web.synthetic_share"]
    assert mean["web.trained_synthetic_share"] < 0.7 * mean["web.synthetic_share"]


def test_the_web_detector_is_not_worse_than_chance_on_the_arithmetic_web(tmp_path):
    """Issue 12 item 2: labelled "everything scraped is synthetic", including copies of
    the real data, the detector of web-contamination scored an AUC of 0.35-0.46 (worse
    than chance). On true labels it is at chance or better (the n-gram's statements end
    where the model ends them, so its output is hard to tell from the real statements);
    test_detector_on_the_web_removes_mostly_synthetic_pages checks separable pages."""
    config = load_config(
        "web-contamination",
        ["seeds=3", "generations=5"],
    )
    config = load_config({**config.model_dump(mode="json"), "arms": [config.arms[1]]})
    mean = _late_means(config, tmp_path, first=1)
    assert mean["web.detector.auc"] > 0.45


def test_a_perfect_provenance_oracle_keeps_every_synthetic_page_out(tmp_path):
    mean = _late_means(
        load_config(
            {
                "name": "web-oracle",
                "data": "gaussian",
                "model": "gaussian",
                "samples_per_generation": 200,
                "generations": 4,
                "seeds": 2,
                "metrics": ["variance"],
                "regime": {
                    "id": "web",
                    "params": {"share_start": 0.5, "share_end": 0.5, "curators": ["provenance"]},
                },
            }
        ),
        tmp_path,
        first=1,
    )
    assert mean["web.trained_synthetic_share"] == 0.0
    assert mean["web.provenance.precision"] == 1.0 and mean["web.provenance.recall"] == 1.0
    assert mean["web.provenance.removed_synthetic_share"] == 1.0


def test_an_imperfect_provenance_curator_has_its_declared_rates():
    rng = np.random.default_rng(0)
    synthetic = rng.random(20_000) < 0.3
    items = np.arange(len(synthetic), dtype=float)[:, None]
    out = make("curator", "provenance", true_positive_rate=0.8, false_positive_rate=0.1)(
        items, reference=None, rng=rng, provenance=synthetic
    )
    removed = np.ones(len(items), bool)
    removed[out.index] = False
    tpr, fpr = removed[synthetic].mean(), removed[~synthetic].mean()
    assert abs(tpr - 0.8) < 4 * np.sqrt(0.8 * 0.2 / synthetic.sum())
    assert abs(fpr - 0.1) < 4 * np.sqrt(0.1 * 0.9 / (~synthetic).sum())
    assert out.stats["recall"] == pytest.approx(tpr)
    assert out.stats["precision"] == pytest.approx(removed[synthetic].sum() / removed.sum())


def test_never_training_on_ai_data_in_a_chain_is_training_on_real_data_alone(tmp_path):
    config = load_config(
        {
            "name": "oracle",
            "data": "gaussian",
            "model": "gaussian",
            "regime": "accumulate",
            "curators": ["provenance"],
            "samples_per_generation": 50,
            "generations": 5,
            "seeds": 3,
            "metrics": ["variance"],
        }
    )
    frame = cl.run(config, tmp_path / "chain", report=False).metrics()
    sim = frame[frame.source == "simulation"]
    variance = sim[sim.metric == "variance"].pivot(
        index="seed", columns="generation", values="value"
    )
    # every generation refits the real training data: the fit of generation 0, exactly
    np.testing.assert_array_equal(variance.to_numpy(), variance[[0] * 5].to_numpy())
    kept = frame[frame.metric == "provenance.kept_fraction"].value
    assert (kept == 0).all()


def test_density_verifier_in_the_web_is_a_clear_error(tmp_path):
    from collapselab.errors import ConfigError

    with pytest.raises(ConfigError, match="needs the model that generated"):
        web_run(tmp_path, seeds=2, generations=3, curators=["verifier"])


def test_web_curators_must_exist():
    from collapselab.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'detector'"):
        make("regime", "web", curators=["detectr"])
