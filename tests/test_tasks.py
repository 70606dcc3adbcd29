"""The arithmetic task: exact verification, rare operands, and verification in a chain."""

import numpy as np
import pytest

import collapselab as cl
from collapselab import make
from collapselab.core import DataKind, RealData
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
    source = make("data", "arithmetic", max_operand=99, rare_max=999)
    real = source.load(n=400, rng=np.random.default_rng(1))
    output = ["1+2=3", "150+3=153", "150+3=154", "nonsense", "7+7=14", "200+1=201", "1+150=151"]
    valid = make("metric", "valid_fraction")(None, output, real, rng=None)
    assert valid == pytest.approx(5 / 7)
    coverage = make("metric", "rare_operand_coverage")(None, output, real, rng=None)
    # Correct statements use the rare operands 150 and 200 (150 twice, 154 is wrong):
    # 2 of the 900 values in (99, 999].
    assert coverage == pytest.approx(2 / 900)


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
    # verified training data teaches correct sums (its own output: see heldout_accuracy)
    assert last["verified"] > 1.5 * first["verified"]
    assert last["verified"] > last["plain"] + 0.3
    kept = frame[(frame.metric == "verifier.valid_fraction")].value
    assert (kept <= 1).all() and len(kept) == 3 * 6


class _Calculator:
    """Completes ``a+b=`` correctly, or with a fixed wrong answer."""

    def __init__(self, wrong=False):
        self.wrong = wrong
        self.seen = []

    def complete(self, prompts, *, rng, decoding=None):
        self.seen.extend(prompts)
        out = []
        for prompt in prompts:
            a, _, b = prompt.rstrip("=").partition("+")
            out.append("0" if self.wrong else str(int(a) + int(b)))
        return out


def test_heldout_accuracy_scores_completions_of_unseen_prompts():
    source = make("data", "arithmetic", max_operand=20, rare_max=50, n_test=300)
    real = source.load(n=200, rng=np.random.default_rng(0))
    metric = make("metric", "heldout_accuracy", n_prompts=1000)
    calculator = _Calculator()
    assert metric(calculator, [], real, rng=np.random.default_rng(1)) == 1.0
    # only prompts whose question is not in the real training data are asked
    asked = set(calculator.seen)
    trained = {item.partition("=")[0] + "=" for item in real.train}
    assert asked and not asked & trained
    prompts, answers = source.heldout_prompts(real)
    assert len(set(prompts)) == len(asked) and len(prompts) < len(real.test)
    assert all(source.verify([p + a for p, a in zip(prompts, answers, strict=True)]))
    assert metric(_Calculator(wrong=True), [], real, rng=np.random.default_rng(1)) == 0.0
    assert (
        make("metric", "heldout_accuracy", n_prompts=5)(
            _Calculator(), [], real, rng=np.random.default_rng(1)
        )
        == 1.0
    )


def test_heldout_accuracy_of_an_ngram_that_memorized_the_table():
    from collapselab.models.ngram import NGram

    # Every sum 0..9 + 0..9 in training, and the test asks the same table: nothing is
    # held out. With a wider test range the n-gram (which cannot add) gets some wrong.
    table = [f"{a}+{b}={a + b}" for a in range(10) for b in range(10)]
    model = NGram(order=6, level="char").fit(table * 3, rng=np.random.default_rng(0))
    greedy = make("metric", "heldout_accuracy")
    real = RealData(train=table, test=table, kind=DataKind.TEXT, source=make("data", "arithmetic"))
    assert np.isnan(greedy(model, [], real, rng=np.random.default_rng(0)))
    held = RealData(
        train=table[:50], test=table[50:], kind=DataKind.TEXT, source=make("data", "arithmetic")
    )
    assert greedy(model, [], held, rng=np.random.default_rng(0)) == 1.0  # it saw them all
    unseen = [f"{a}+{b}={a + b}" for a in range(10, 40) for b in range(10, 40)]
    held = RealData(train=table, test=unseen, kind=DataKind.TEXT, source=make("data", "arithmetic"))
    value = greedy(model, [], held, rng=np.random.default_rng(0))
    assert 0.0 <= value < 0.5


def test_arithmetic_presets_measure_heldout_accuracy():
    for name in ("verifier-arith", "curation-shootout"):
        config = load_config(name)
        for arm in config.arm_configs():
            assert "heldout_accuracy" in [m.id for m in arm.metrics], (name, arm.name)
