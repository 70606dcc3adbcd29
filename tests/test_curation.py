"""Each curator on data where its output is known, and curation inside the chain."""

import numpy as np
import pytest

from collapselab import make
from collapselab.core import DataKind, RealData
from collapselab.data import GaussianTruth
from collapselab.models import Gaussian


def generated(items):
    """The provenance of a chain's output: every item is the model's."""
    return np.ones(len(items), dtype=bool)


def gaussian_reference(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    source = GaussianTruth()
    return RealData(
        train=source.draw(n, rng=rng),
        test=source.draw(n, rng=rng),
        kind=DataKind.CONTINUOUS,
        source=source,
    )


class ArithmeticLike:
    """A task source whose exact check is known: 'a+b=c' is valid when c == a + b."""

    provides = frozenset({"verify"})

    def verify(self, items):
        out = []
        for item in items:
            left, right = item.split("=")
            a, b = left.split("+")
            out.append(int(a) + int(b) == int(right))
        return np.array(out)


def test_likelihood_filter_keeps_the_most_likely():
    ref = gaussian_reference()
    model_0 = Gaussian().fit(np.array([[-1.0], [1.0]]), rng=None)  # N(0, 1)
    x = np.array([[3.0], [0.1], [-2.0], [0.5], [-0.2], [1.5]])
    out = make("curator", "likelihood-filter", keep=0.5)(
        x, provenance=generated(x), reference=ref, rng=None, model_0=model_0
    )
    np.testing.assert_array_equal(
        out.kept, [[0.1], [0.5], [-0.2]]
    )  # the three closest to 0, in order
    assert out.removed == 3
    lo, hi = np.quantile(np.concatenate([ref.train, ref.test]), [0.01, 0.99])
    removed = np.array([3.0, -2.0, 1.5])
    assert out.stats["tail_share_removed"] == pytest.approx(
        np.mean((removed < lo) | (removed > hi))
    )
    by_threshold = make("curator", "likelihood-filter", threshold=-1.0)(
        x, provenance=generated(x), reference=ref, rng=None, model_0=model_0
    )
    expected = x[model_0.log_prob(x) >= -1.0]
    np.testing.assert_array_equal(by_threshold.kept, expected)


def test_perfect_verifier_keeps_only_valid_samples():
    ref = RealData(train=["1+1=2"], test=["2+2=4"], kind=DataKind.TEXT, source=ArithmeticLike())
    items = ["1+2=3", "3+4=8", "10+5=15", "7+7=15", "0+0=0"]
    out = make("curator", "verifier")(
        items, provenance=generated(items), reference=ref, rng=np.random.default_rng(0)
    )
    assert out.kept == ["1+2=3", "10+5=15", "0+0=0"]
    assert out.removed == 2 and out.stats["valid_fraction"] == pytest.approx(0.6)


def test_density_verifier_turns_a_wide_model_into_the_truth():
    """Rejection by p/q: from N(0, 2^2) samples, what is kept is N(0, 1)."""
    ref = gaussian_reference()
    rng = np.random.default_rng(1)
    wide = Gaussian().fit(np.array([[-2.0], [2.0]]), rng=rng)  # N(0, 4)
    x = wide.sample(200_000, rng=rng)
    out = make("curator", "verifier")(
        x, provenance=generated(x), reference=ref, rng=rng, model=wide
    )
    kept = out.kept[:, 0]
    # acceptance p/(M q) with M = sup p/q = 2 gives acceptance rate 1/2
    assert out.stats["acceptance"] == pytest.approx(0.5, abs=4 * np.sqrt(0.25 / len(x)))
    se = np.sqrt(2 / len(kept))  # s.e. of a normal sample variance around 1
    assert abs(kept.var() - 1.0) < 4 * se


@pytest.mark.parametrize(("shift", "low", "high"), [(0.0, 0.45, 0.55), (6.0, 0.99, 1.0)])
def test_detector_auc(shift, low, high):
    ref = gaussian_reference(n=1000)
    rng = np.random.default_rng(2)
    synthetic = rng.normal(shift, 1.0, size=(1000, 1))
    out = make("curator", "detector")(
        synthetic, provenance=generated(synthetic), reference=ref, rng=rng
    )
    assert low <= out.stats["auc"] <= high
    if shift:
        assert out.stats["flagged_fraction"] > 0.99 and out.removed > 990


def test_detector_accuracy_ceiling():
    ref = gaussian_reference(n=1000)
    rng = np.random.default_rng(3)
    synthetic = rng.normal(6.0, 1.0, size=(1000, 1))
    out = make("curator", "detector", max_accuracy=0.7)(
        synthetic, provenance=generated(synthetic), reference=ref, rng=rng
    )
    # 2000 decisions flipped at random: the accuracy lands near the cap
    assert abs(out.stats["accuracy"] - 0.7) < 4 * np.sqrt(0.7 * 0.3 / 2000)
    assert out.stats["auc"] > 0.99  # the scores are still those of a perfect detector


def test_detector_on_text():
    rng = np.random.default_rng(4)
    real = [
        " ".join(rng.choice(["the", "cat", "sat", "on", "mat", "a", "dog"], 12)) for _ in range(300)
    ]
    same = [
        " ".join(rng.choice(["the", "cat", "sat", "on", "mat", "a", "dog"], 12)) for _ in range(300)
    ]
    other = [" ".join(rng.choice(["zq", "xv", "kj"], 12)) for _ in range(300)]
    ref = RealData(train=real, test=real, kind=DataKind.TEXT)
    assert (
        make("curator", "detector")(same, provenance=generated(same), reference=ref, rng=rng).stats[
            "auc"
        ]
        < 0.6
    )
    assert (
        make("curator", "detector")(
            other, provenance=generated(other), reference=ref, rng=rng
        ).stats["auc"]
        > 0.99
    )


def test_human_rater_precision_and_recall():
    ref = gaussian_reference(n=5000)
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1.5, size=(40_000, 1))
    out = make(
        "curator", "human-rater", good_keep=0.9, bad_keep=0.2, judge="density", bad_quantile=0.05
    )(x, provenance=generated(x), reference=ref, rng=rng)
    g = out.stats["good_fraction"]
    assert out.stats["recall"] == pytest.approx(0.9, abs=0.01)
    assert out.stats["precision"] == pytest.approx(0.9 * g / (0.9 * g + 0.2 * (1 - g)), abs=0.01)
    # bad = beyond the real data's 5% density quantile: |x| > 1.96 for N(0, 1)
    from scipy.stats import norm

    assert g == pytest.approx(1 - 2 * norm.sf(1.96, scale=1.5), abs=0.01)


def test_dedup_exact_and_near_duplicates():
    base = " ".join(f"word{i}" for i in range(40))
    near = base.replace("word7", "changed")
    docs = [
        base,
        "Completely different text here about cats and dogs",
        base.upper(),
        near,
        "another unique document",
    ]
    out = make("curator", "dedup")(docs, provenance=generated(docs), reference=None, rng=None)
    assert out.kept == [docs[0], docs[1], docs[4]]
    assert out.stats["exact_duplicates"] == pytest.approx(1 / 5) and out.stats[
        "near_duplicates"
    ] == pytest.approx(1 / 5)
    exact_only = make("curator", "dedup", near=False)(
        docs, provenance=generated(docs), reference=None, rng=None
    )
    assert len(exact_only.kept) == 4
    x = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0]])
    np.testing.assert_array_equal(
        make("curator", "dedup")(x, provenance=generated(x), reference=None, rng=None).kept,
        x[[0, 1, 3]],
    )


def chain_config(**changes):
    from collapselab.experiment import load_config

    config = {
        "name": "curated",
        "data": "gaussian",
        "model": "gaussian",
        "samples_per_generation": 40,
        "generations": 6,
        "seeds": 3,
        "metrics": ["variance"],
    }
    config.update(changes)
    return load_config(config)


def test_curation_in_the_chain_records_stats_and_keeps_the_budget(tmp_path):
    import collapselab as cl

    config = chain_config(
        curators=[{"id": "likelihood-filter", "params": {"keep": 0.5}}], oversample=2
    )
    result = cl.run(config, tmp_path / "run", report=False)
    assert result.arms[0].execution == "per-seed"  # curation filters seeds differently
    frame = result.metrics()
    kept = frame[frame.metric == "curation.kept_fraction"].value
    assert len(kept) == 3 * 6
    np.testing.assert_allclose(kept, 0.5)  # 80 candidates, 40 kept: the budget
    assert set(frame.metric) >= {
        "variance",
        "likelihood-filter.kept_fraction",
        "likelihood-filter.tail_share_removed",
    }


def test_likelihood_filter_speeds_up_collapse(tmp_path):
    import collapselab as cl

    plain = cl.run(chain_config(generations=15, seeds=30), tmp_path / "a", report=False).metrics()
    filtered = cl.run(
        chain_config(
            generations=15,
            seeds=30,
            curators=[{"id": "likelihood-filter", "params": {"keep": 0.8}}],
        ),
        tmp_path / "b",
        report=False,
    ).metrics()

    def last(frame):
        return frame[(frame.metric == "variance") & (frame.generation == 14)].value.median()

    assert last(filtered) < 0.1 * last(plain)


def test_curators_keeping_nothing_halt_the_chain_as_a_result(tmp_path, capsys):
    import collapselab as cl
    from collapselab.cli import main
    from collapselab.experiment.storage import read_json

    # replace: no real data to fall back on, so the chain halts after generation 0
    config = chain_config(curators=[{"id": "likelihood-filter", "params": {"threshold": 1e9}}])
    frame = cl.run(config, tmp_path / "run", report=True).metrics()
    sim = frame[frame.source == "simulation"]
    kept = sim[sim.metric == "curation.kept_fraction"].set_index(["seed", "generation"]).value
    assert (kept.xs(0, level="generation") == 0).all()
    variance = sim[sim.metric == "variance"]
    assert variance[variance.generation == 0].value.notna().all()  # generation 0 was measured
    assert sim[sim.generation > 0].value.isna().all()  # nothing to train on after it
    arm = next(p for p in (tmp_path / "run").iterdir() if (p / "metrics.parquet").exists())
    manifest = read_json(arm / "manifest.json")
    assert manifest["status"] == "complete"
    assert manifest["halted"] == {str(s): 1 for s in range(config.seeds)}
    html = (tmp_path / "run" / "report.html").read_text()
    assert "3 of 3 seeds had nothing left to train on" in html
    # and `collapselab show` says so in one line per arm
    main(["show", str(tmp_path / "run")])
    assert "had nothing left to train on" in capsys.readouterr().out


def test_curators_keeping_nothing_under_accumulate_go_on_with_real_data(tmp_path):
    import collapselab as cl

    config = chain_config(
        regime={"id": "accumulate"},
        curators=[{"id": "likelihood-filter", "params": {"threshold": 1e9}}],
    )
    frame = cl.run(config, tmp_path / "run", report=False).metrics()
    sim = frame[frame.source == "simulation"]
    assert sim[sim.metric == "variance"].value.notna().all()
    assert (sim[sim.metric == "curation.kept_fraction"].value == 0).all()


def test_curator_config_errors():
    from collapselab.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'verifier'"):
        chain_config(curators=["verifer"])
    with pytest.raises(ConfigError, match="cannot run batched"):
        from collapselab.experiment.runner import make_spec, uses_batched_path

        config = chain_config(curators=["verifier"], batched="yes").arm_configs()[0]
        uses_batched_path(config, make_spec(config))


def test_a_curator_after_one_that_kept_nothing_is_skipped(tmp_path, capsys):
    import collapselab as cl
    from collapselab.cli import main

    config = chain_config(
        regime={"id": "accumulate"},
        curators=[{"id": "likelihood-filter", "params": {"threshold": 1e9}}, "dedup"],
        metrics=["variance", "collapsed"],
    )
    frame = cl.run(config, tmp_path / "run", report=True).metrics()
    sim = frame[frame.source == "simulation"]
    # one value per seed and generation for every series, NaN where dedup never ran
    counts = sim.groupby("metric").size()
    assert (counts == config.seeds * config.generations).all(), counts
    assert sim[sim.metric.str.startswith("dedup.")].value.isna().all()
    assert sim[sim.metric == "variance"].value.notna().all()
    # showing one arm's own directory works too
    arm = next(p for p in (tmp_path / "run").iterdir() if p.is_dir() and p.name != "figures")
    assert main(["show", str(arm)]) == 0


def test_halted_seeds_keep_absorbing_metrics_and_no_empty_snapshot(tmp_path):
    import collapselab as cl
    from collapselab.report.snapshots import load_snapshots

    config = chain_config(
        curators=[{"id": "likelihood-filter", "params": {"threshold": 1e9}}],
        metrics=["variance", "collapsed"],
    )
    frame = cl.run(config, tmp_path / "run", report=True).metrics()
    collapsed = frame[frame.metric == "collapsed"].pivot(
        index="seed", columns="generation", values="value"
    )
    assert (collapsed.iloc[:, 1:].to_numpy() == collapsed.iloc[:, [0]].to_numpy()).all()
    arm = next(p for p in (tmp_path / "run").iterdir() if (p / "metrics.parquet").exists())
    snaps = load_snapshots(arm)
    assert snaps is None or all(len(x) > 0 for x in snaps.outputs.values())


def _per_document_dedup(docs, curator):
    """The dedup loop with a MinHash built from its seed for every document (the
    curator before it shared one permutation table): the reference for the fast path."""
    from datasketch import MinHash, MinHashLSH

    from collapselab.curation.dedup import _normalize
    from collapselab.tokenize import whitespace_words

    lsh = MinHashLSH(threshold=curator.threshold, num_perm=curator.num_perm)
    seen, kept, signatures = set(), [], []
    for i, doc in enumerate(docs):
        key = _normalize(doc)
        if key in seen:
            continue
        seen.add(key)
        words = whitespace_words(key)
        grams = {
            " ".join(words[j : j + curator.shingle])
            for j in range(max(len(words) - curator.shingle + 1, 1))
        }
        h = MinHash(num_perm=curator.num_perm, seed=1)
        h.update_batch([g.encode() for g in grams])
        signatures.append(h.hashvalues)
        if lsh.query(h):
            continue
        lsh.insert(str(i), h)
        kept.append(doc)
    return kept, signatures


def test_dedup_shared_permutations_give_the_same_signatures_and_kept_set():
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(30)]
    docs = []
    for _ in range(120):
        doc = list(rng.choice(words, size=20))
        if docs and rng.random() < 0.4:  # a near copy of an earlier document
            doc = docs[int(rng.integers(len(docs)))].split()
            doc[int(rng.integers(len(doc)))] = "edited"
        docs.append(" ".join(doc))
    curator = make("curator", "dedup", threshold=0.7, num_perm=64)
    out = curator(docs, provenance=generated(docs), reference=None, rng=None)
    kept, signatures = _per_document_dedup(docs, curator)
    assert out.kept == kept and 0 < len(kept) < len(docs)
    from datasketch import MinHash

    table = MinHash(num_perm=64, seed=1)
    from collapselab.curation.dedup import _normalize

    for doc, expected in zip(dict.fromkeys(_normalize(d) for d in docs), signatures, strict=True):
        np.testing.assert_array_equal(curator._minhash(doc, table).hashvalues, expected)
