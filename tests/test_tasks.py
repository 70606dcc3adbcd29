"""The arithmetic task: exact verification, rare operands, and verification in a chain."""

import numpy as np
import pytest

import collapselab as cl
from collapselab import make
from collapselab.experiment import load_config


def test_statements_are_correct_and_rare_share_matches():
    source = make("data", "arithmetic", rare_fraction=0.2, operations="+-")
    items = source.draw(20_000, rng=np.random.default_rng(0))
    assert source.verify(items).all()
    rare = source.is_rare(items).mean()
    assert abs(rare - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 20_000)
    assert {"+", "-"} <= {c for item in items[:200] for c in item if c in "+-"}


@pytest.mark.parametrize(
    ("item", "valid"),
    [
        ("37+48=85", True),
        ("37+48=86", False),
        ("5-9=-4", True),
        ("12+=12", False),
        ("a+b=c", False),
        ("1+1=2=2", False),
        (" 3+4=7 ", True),
        ("", False),
    ],
)
def test_verify_is_exact(item, valid):
    assert make("data", "arithmetic").verify([item])[0] == valid


def test_task_metrics_on_known_outputs():
    source = make("data", "arithmetic", max_operand=99)
    real = source.load(n=400, rng=np.random.default_rng(1))
    real_rare = source.is_rare(real.train).mean()
    output = ["1+2=3", "150+3=153", "150+3=154", "nonsense", "7+7=14", "200+1=201"]
    valid = make("metric", "valid_fraction")(None, output, real, rng=None)
    assert valid == pytest.approx(4 / 6)
    coverage = make("metric", "rare_operand_coverage")(None, output, real, rng=None)
    assert coverage == pytest.approx((2 / 6) / real_rare)  # two correct rare statements


def test_task_metrics_need_a_task_source():
    from collapselab.core import DataKind, RealData
    from collapselab.errors import ConfigError

    real = RealData(train=["a b"], test=["c"], kind=DataKind.TEXT)
    with pytest.raises(ConfigError, match="task data source"):
        make("metric", "valid_fraction")(None, ["x"], real, rng=None)


@pytest.mark.slow
def test_verification_raises_accuracy_over_generations(tmp_path):
    config = load_config(
        {
            "name": "arith",
            "data": {"id": "arithmetic", "params": {"rare_fraction": 0.1}},
            "model": {"id": "ngram", "params": {"order": 5, "level": "char"}},
            "samples_per_generation": 500,
            "generations": 6,
            "seeds": 3,
            "oversample": 3,
            "metrics": ["valid_fraction"],
            "arms": [{"name": "plain"}, {"name": "verified", "curators": ["verifier"]}],
        }
    )
    frame = cl.run(config, tmp_path / "arith", report=False).metrics()
    last = (
        frame[(frame.metric == "valid_fraction") & (frame.generation == 5)]
        .groupby("run_id")
        .value.mean()
    )
    first = (
        frame[(frame.metric == "valid_fraction") & (frame.generation == 0)]
        .groupby("run_id")
        .value.mean()
    )
    assert last["verified"] > 2 * first["verified"]  # verified training data teaches correct sums
    assert last["verified"] > 3 * last["plain"]
    kept = frame[(frame.metric == "verifier.valid_fraction")].value
    assert (kept <= 1).all() and len(kept) == 3 * 6
