"""Subliminal learning: the MLP, its shared initialization, batched path and the gap."""

import numpy as np
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, load_real, run_batched, run_seed
from collapselab.errors import DataError
from collapselab.models.subliminal import (
    SubliminalMLP,
    gradients,
    init_generators,
    init_params,
    seed_generators,
)
from collapselab.rng import BATCH, stream

TINY = {"hidden": [16], "epochs": 2, "distill_epochs": 2}


def chain(student_init, samples=300, seeds_data="digits", **params):
    return ChainSpec(
        data=make("data", seeds_data),
        model=make("model", "subliminal-mlp", student_init=student_init, **params),
        regime=make("regime", "replace"),
        metrics={"accuracy": make("metric", "accuracy")},
        samples_per_generation=samples,
        generations=2,
        real_samples=100,
    )


def loss(params, x, target, n_classes):
    """The training loss, written independently of the backpropagation under test."""
    h = 2 * x - 1  # pixels in [0, 1] enter centred
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    if target.ndim == 2:  # class labels: cross-entropy on the class logits
        log_p = log_softmax(h[..., :n_classes])
        return -np.take_along_axis(log_p, target[..., None], -1).mean()
    p = np.exp(log_softmax(target))  # auxiliary targets: KL on the auxiliary logits
    return (p * (np.log(p) - log_softmax(h[..., n_classes:]))).sum(-1).mean()


@pytest.mark.parametrize("labels", ["classes", "auxiliary"])
def test_backpropagation_matches_finite_differences(labels):
    rng = np.random.default_rng(0)
    params = [
        (w.astype(float), b.astype(float))
        for w, b in init_params([np.random.default_rng(1)], [5, 7, 6, 4 + 2])
    ]
    x = rng.random((1, 9, 5)).astype(np.float32)
    target = rng.integers(0, 4, (1, 9)) if labels == "classes" else rng.normal(size=(1, 9, 2))
    analytic = gradients(params, x, target, n_classes=4)
    flat = [p for layer in params for p in layer]
    for p, g in zip(flat, analytic, strict=True):
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = loss(params, x, target, 4)
            p[i] = old - 1e-6
            down = loss(params, x, target, 4)
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, atol=1e-6)


def test_teacher_trains_only_class_logits_and_student_only_auxiliary_logits():
    real = load_real(chain("same"), 0)
    rng = stream(0, 0, 0, "fit")
    teacher = SubliminalMLP(**TINY).fit(real.train, rng=rng)
    start = init_params(init_generators(stream(0, 0, 0, "fit"), 1), [64, 16, 13])
    (w_start, b_start), (w_end, b_end) = start[-1], teacher.params_[-1]
    np.testing.assert_array_equal(w_end[..., 10:], w_start[..., 10:])  # auxiliary head
    np.testing.assert_array_equal(b_end[..., 10:], b_start[..., 10:])
    assert not np.array_equal(w_end[..., :10], w_start[..., :10])

    images, aux = teacher.sample(200, rng=np.random.default_rng(3))
    assert images.shape == (200, 64) and aux.shape == (200, 3)
    assert images.min() >= 0 and images.max() <= 1
    student = SubliminalMLP(**TINY).fit((images, aux), rng=stream(0, 0, 1, "fit"))
    w_student = student.params_[-1][0]
    np.testing.assert_array_equal(w_student[..., :10], w_start[..., :10])  # class head untouched
    assert not np.array_equal(w_student[..., 10:], w_start[..., 10:])


def test_same_initialization_is_shared_across_generations_of_a_seed_only():
    def start(seed, generation, n_seeds=1):
        rng = stream(7, seed, generation, "fit")
        return init_params(init_generators(rng, n_seeds), [4, 3])[0][0]

    np.testing.assert_array_equal(start(2, 0), start(2, 1))  # teacher and student
    assert not np.array_equal(start(2, 0), start(3, 0))  # another seed, another network
    # The batched stream gives seed s the weights the per-seed path gives it.
    batched = init_params(init_generators(stream(7, BATCH, 1, "fit"), 4), [4, 3])[0][0]
    np.testing.assert_array_equal(batched[2], start(2, 0)[0])
    per_seed = seed_generators(stream(7, BATCH, 1, "fit"), 4)[3].random(3)
    np.testing.assert_array_equal(per_seed, stream(7, 3, 1, "fit").random(3))


@pytest.mark.parametrize("student_init", ["same", "different"])
def test_batched_and_per_seed_paths_agree(student_init):
    spec = chain(student_init, **TINY)
    batched = np.stack(run_batched(spec, 3).values["accuracy"], axis=1)
    per_seed = np.array([run_seed(spec, s).values["accuracy"] for s in range(3)])
    np.testing.assert_allclose(batched, per_seed, atol=1e-12)


def test_user_errors_name_the_fix():
    model = SubliminalMLP(**TINY)
    x = np.random.default_rng(0).random((20, 4))
    with pytest.raises(DataError, match="n_classes"):
        model.fit((x, np.arange(20)), rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="n_aux"):
        model.fit((x, np.zeros((20, 5))), rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="labels"):
        model.fit((x, np.linspace(0, 1, 20)), rng=np.random.default_rng(0))


@pytest.mark.slow
def test_student_from_the_teachers_initialization_learns_digits_the_other_does_not():
    """The subliminal gap on scikit-learn's digits, 6 fixed seeds (about 10 s)."""
    params = {"hidden": [128, 128], "epochs": 5, "distill_epochs": 10}
    accuracy = {}
    for student_init in ("same", "different"):
        state = run_batched(chain(student_init, samples=8000, **params), 6)
        teacher, student = state.values["accuracy"]
        assert teacher.mean() > 0.9  # generation 0: the teacher, trained on real digits
        accuracy[student_init] = student
    same, different = accuracy["same"], accuracy["different"]
    assert same.mean() > 0.3, same  # chance is 0.1
    assert abs(different.mean() - 0.1) < 0.07, different
    gap = same - different  # paired: both students learn from the same teacher
    assert gap.mean() > 4 * gap.std(ddof=1) / np.sqrt(len(gap))


def test_a_subliminal_run_is_a_run_like_any_chain(tmp_path, capsys):
    import collapselab as cl
    from collapselab.cli import main
    from collapselab.experiment.config import load_config

    config = {
        "name": "subliminal-tiny",
        "data": {"id": "digits"},
        "model": {"id": "subliminal-mlp", "params": TINY},
        "regime": {"id": "replace"},
        "samples_per_generation": 200,
        "generations": 2,
        "seeds": 2,
        "metrics": ["accuracy"],
        "arms": [
            {"name": "same-init", "model": {"params": {"student_init": "same"}}},
            {"name": "different-init", "model": {"params": {"student_init": "different"}}},
        ],
    }
    result = cl.run(load_config(config), out=tmp_path / "run")
    frame = result.metrics()
    assert set(frame["run_id"]) == {"same-init", "different-init"}
    assert sorted(frame["generation"].unique()) == [0, 1]
    assert frame["value"].between(0, 1).all()
    sim = frame[frame["source"] == "simulation"]
    assert len(sim) == 2 * 2 * 2
    # the chance line: the test set's most common class, one row per arm and generation
    chance = frame[frame["source"] == "chance"]
    assert len(chance) == 2 * 2 and (chance["seed"] == -1).all()
    assert chance["value"].nunique() == 1 and 0.1 <= chance["value"].iloc[0] < 0.2
    # the confusion matrices' predictions: seed 0's classes on the stored real test
    # pairs, whose accuracy is the recorded one
    from collapselab.report.snapshots import load_snapshots

    for arm in ("same-init", "different-init"):
        snap = load_snapshots(tmp_path / "run" / arm)
        assert sorted(snap.predictions) == [0, 1]
        _, labels = snap.real
        for generation, predicted in snap.predictions.items():
            assert predicted.shape == labels.shape
            recorded = sim[
                (sim["run_id"] == arm) & (sim["seed"] == 0) & (sim["generation"] == generation)
            ]["value"].item()
            assert np.mean(predicted == labels) == pytest.approx(recorded)
    assert {arm.execution for arm in result.arms} == {"batched"}
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert "same-init" in shown and "different-init" in shown and "accuracy" in shown
