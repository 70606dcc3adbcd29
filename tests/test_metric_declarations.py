"""What every metric declares (label, direction, quantity, headline, share, theory) is
true: labels fill with the parameters, shares stay in [0, 1] on healthy and on
collapsed models, variants are parameters that cannot be overridden, and no metric
calls a collapsed chain healthy."""

import numpy as np
import pytest

from collapselab import list_ids, make, registry
from collapselab.core import DataKind, Direction, Metric, Quantity, length
from collapselab.errors import ConfigError, MissingDependencyError
from collapselab.testing import example_data

METRICS = list_ids("metric")

#: A cheap model of each kind that provides every capability the share metrics need.
MODELS = {
    DataKind.CONTINUOUS: ("gaussian", {}),
    DataKind.TOKENS: ("categorical", {}),
    DataKind.TEXT: ("ngram", {"order": 2, "level": "char"}),
    DataKind.SUPERVISED: ("subliminal-mlp", None),
    DataKind.IMAGES: ("vae", None),
}


def _metric(metric_id: str) -> Metric:
    return make("metric", metric_id)


@pytest.mark.parametrize("metric_id", METRICS)
def test_every_metric_declares_what_it_measures(metric_id):
    metric = _metric(metric_id)
    assert isinstance(metric.direction, Direction)
    assert isinstance(metric.quantity, Quantity)
    assert metric.label, f"{metric_id} declares no label"
    # The label fills with the metric's own parameters (a KeyError would mean a wrong field).
    assert "{" not in metric.describe(), metric.describe()
    if metric.per_item:
        assert metric.item_label and "{" not in metric.describe_item()
    assert metric.headline is None or isinstance(metric.headline, int)
    if metric.quantity == Quantity.COLLAPSED:
        # a 0/1 state: 1 is collapse, so lower is healthier, and it is never a headline
        assert metric.direction == Direction.LOWER and metric.share and metric.headline is None


def test_declared_facts_the_report_reads():
    # The order the headline numbers come in (lower first); None: never a headline.
    ranks = {m: _metric(m).headline for m in METRICS}
    assert ranks["tail_mass"] < ranks["rare_survival_k1"] < ranks["variance"] < ranks["types"]
    assert ranks["heldout_accuracy"] < ranks["valid_fraction"]
    for never in ("log_variance", "collapsed", "collapsed_now", "ever_collapsed"):
        assert ranks[never] is None, never
    assert ranks["rare_mass"] is None  # a martingale under replace: see test_rare_mass_...
    assert ranks["perplexity_covered"] is None  # the diagnostic that rewards collapse
    assert _metric("perplexity_real").quantity == Quantity.REAL_LOSS
    assert _metric("perplexity_covered").direction == Direction.NEUTRAL
    assert _metric("perplexity_gen0").quantity == Quantity.GEN0_LIKELIHOOD
    theory = {m: _metric(m).theory_quantity for m in METRICS if _metric(m).theory_quantity}
    assert theory == {
        "variance": "variance",
        "log_variance": "log_variance",
        "mean_shift": "mean_shift",
        "heterozygosity": "heterozygosity",
        "support": "support",
        "test_mse": "test_mse",
        "coef_error": "coef_error",
    }
    assert make("metric", "distinct_3").describe() == "distinct 3-grams ÷ all 3-grams of the output"
    assert "≤ 5 times" in make("metric", "rare_survival_k5").describe()
    assert "0.1" in make("metric", "collapsed", tolerance=0.1).describe()


@pytest.mark.parametrize(
    ("variant", "base", "params"),
    [
        ("distinct_1", "distinct", {"n": 1}),
        ("distinct_2", "distinct", {"n": 2}),
        ("distinct_3", "distinct", {"n": 3}),
        ("distinct_4", "distinct", {"n": 4}),
        ("rare_survival_k1", "rare_survival", {"k": 1}),
        ("rare_survival_k5", "rare_survival", {"k": 5}),
        ("rare_support_k1", "rare_support", {"k": 1}),
        ("rare_support_k5", "rare_support", {"k": 5}),
    ],
)
def test_variants_are_parameters_that_cannot_be_overridden(variant, base, params):
    metric = make("metric", variant)
    assert type(metric) is type(make("metric", base)) and metric.get_params() == params
    name, other = next(iter(params)), 7
    # distinct_2 with n: 3 used to measure distinct-3 under the name distinct_2
    with pytest.raises(ConfigError, match=f"use metric '{base}'"):
        make("metric", variant, **{name: other})
    real = example_data(DataKind.TEXT)
    model = make("model", "ngram").fit(real.train, rng=np.random.default_rng(0))
    output = model.sample(40, rng=np.random.default_rng(1))
    rng = np.random.default_rng(2)
    assert metric(model, output, real, rng=rng) == make("metric", base, **params)(
        model, output, real, rng=rng
    )


def _model(kind: DataKind, metric: Metric):
    model_id, params = MODELS[kind]
    if params is None:
        params = registry.get("model", model_id).conformance_example()
    try:
        model = make("model", model_id, **params)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    assert all(hasattr(model, capability) for capability in metric.requires), (model_id, metric)
    return model


def _collapsed_training(train):
    """The real training data with every item replaced by the first: one type left."""
    if isinstance(train, tuple):
        return tuple(_collapsed_training(part) for part in train)
    if isinstance(train, list):
        return [train[0]] * len(train)
    return np.repeat(np.asarray(train)[:1], len(train), axis=0)


def share_values(metric_id: str) -> list[float]:
    """A share metric's value on its example data, for a model fitted to the real data
    and for one fitted to a single repeated item (a collapsed chain)."""
    metric = make("metric", metric_id)
    values = []
    for kind in sorted(metric.applies_to):
        real = type(metric).example() or example_data(kind)
        for train in (real.train, _collapsed_training(real.train)):
            model = _model(kind, metric).fit(train, rng=np.random.default_rng(0))
            output = model.sample(length(real.train), rng=np.random.default_rng(1))
            extra = {"model_0": model} if metric.uses_model_0 else {}
            values.append(metric(model, output, real, rng=np.random.default_rng(2), **extra))
    return values


@pytest.mark.parametrize("metric_id", [m for m in METRICS if _metric(m).share])
def test_every_share_lies_between_0_and_1(metric_id):
    for value in share_values(metric_id):
        assert np.isnan(value) or 0.0 <= value <= 1.0, (metric_id, value)


def test_rare_operand_coverage_is_a_share_of_the_range():
    # Verified output that is richer in rare statements than the real data: the old
    # definition divided its correct-and-rare share by the real one (2.125 in
    # curation-shootout); coverage of a range cannot exceed it.
    source = make("data", "arithmetic", rare_fraction=0.05)
    real = source.load(n=400, rng=np.random.default_rng(0))
    output = [f"{a}+1={a + 1}" for a in range(100, 1000)]  # every rare operand, all correct
    metric = make("metric", "rare_operand_coverage")
    assert metric(None, output, real, rng=None) == 1.0
    assert metric(None, output[:450], real, rng=None) == pytest.approx(0.5)
    wrong = [f"{a}+1={a}" for a in range(100, 1000)]
    assert metric(None, wrong, real, rng=None) == 0.0


def test_rare_mass_is_flat_under_drift_so_it_is_not_a_headline():
    # Under replace the mass of a fixed set of types is a martingale: its mean over
    # seeds stays at generation 0's while rare types are lost.
    from collapselab.chain import ChainSpec, run_batched

    spec = ChainSpec(
        data=make("data", "zipf", exponent=1.1, vocabulary=500),
        model=make("model", "categorical"),
        regime=make("regime", "replace"),
        metrics={m: make("metric", m) for m in ("rare_mass", "rare_survival_k5")},
        samples_per_generation=500,
        generations=15,
        real_samples=500,
    )
    values = run_batched(spec, 200).values
    mass = np.stack(values["rare_mass"], axis=1)  # (seeds, generations)
    step = mass[:, -1] - mass[:, 0]
    assert abs(step.mean()) < 4 * step.std(ddof=1) / np.sqrt(len(step))
    survival = np.stack(values["rare_survival_k5"], axis=1)
    assert survival[:, -1].mean() < 0.6 * survival[:, 0].mean()
    assert make("metric", "rare_mass").headline is None
    assert make("metric", "rare_survival_k5").headline is not None


def test_no_healthy_end_is_the_collapsed_end():
    # A chain that collapsed onto one item of the real data must read worse than a
    # model of the real data on every metric with a healthy direction.
    worse = {Direction.HIGHER: np.less_equal, Direction.LOWER: np.greater_equal}
    checked = 0
    for kind, metric_ids in {
        DataKind.CONTINUOUS: ["nll_real", "wasserstein", "collapsed_now", "ever_collapsed"],
        DataKind.TOKENS: ["perplexity_real", "coverage_real", "types", "support", "tv_real"],
        DataKind.TEXT: ["perplexity_real", "coverage_real", "types", "rare_survival_k5"],
    }.items():
        real = example_data(kind)
        for metric_id in metric_ids:
            metric = make("metric", metric_id)
            values = []
            for train in (real.train, _collapsed_training(real.train)):
                model = _model(kind, metric).fit(train, rng=np.random.default_rng(0))
                output = model.sample(length(real.train), rng=np.random.default_rng(1))
                values.append(metric(model, output, real, rng=np.random.default_rng(2)))
            healthy, collapsed = values
            assert worse[metric.direction](collapsed, healthy), (metric_id, healthy, collapsed)
            assert collapsed != healthy, (metric_id, healthy)
            checked += 1
    assert checked == 13


def test_valid_fraction_rewards_collapse_so_it_has_no_direction():
    source = make("data", "arithmetic")
    real = source.load(n=100, rng=np.random.default_rng(0))
    one_statement = ["1+1=2"] * 50  # a collapsed model's output: all correct, one type
    assert make("metric", "valid_fraction")(None, one_statement, real, rng=None) == 1.0
    assert make("metric", "valid_fraction").direction == Direction.NEUTRAL
    assert make("metric", "prdc_precision").direction == Direction.NEUTRAL
