"""Subliminal learning across families and generations: students of another shape or
activation, a second trait (a preference on noise), and chains of students."""

import numpy as np
import pytest

from collapselab import make
from collapselab.chain import ChainSpec, load_real, run_batched, run_seed
from collapselab.errors import InvalidParameterError
from collapselab.models.subliminal import SubliminalMLP, forward, gradients, init_params
from collapselab.rng import stream

TINY = {"hidden": [16], "epochs": 2, "distill_epochs": 2}


def _chain(generations=3, samples=300, metrics=("accuracy",), **params):
    return ChainSpec(
        data=make("data", "digits"),
        model=make("model", "subliminal-mlp", **{**TINY, **params}),
        regime=make("regime", "replace"),
        metrics={
            m: make("metric", m, **({"preferred": 3} if m == "preference" else {})) for m in metrics
        },
        samples_per_generation=samples,
        generations=generations,
        real_samples=100,
    )


def _tanh_loss(params, x, target, n_classes):
    h = 2 * x - 1
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.tanh(h)
    z = h[..., :n_classes] - h[..., :n_classes].max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(log_p, target[..., None], -1).mean()


def test_tanh_backpropagation_matches_finite_differences():
    rng = np.random.default_rng(0)
    params = [
        (w.astype(float), b.astype(float))
        for w, b in init_params([np.random.default_rng(1)], [5, 7, 6, 4 + 2])
    ]
    x = rng.random((1, 9, 5)).astype(np.float32)
    target = rng.integers(0, 4, (1, 9))
    analytic = gradients(params, x, target, n_classes=4, activation="tanh")
    for p, g in zip([p for layer in params for p in layer], analytic, strict=True):
        numeric = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = _tanh_loss(params, x, target, 4)
            p[i] = old - 1e-6
            down = _tanh_loss(params, x, target, 4)
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, atol=1e-6)
    hidden = forward(params, x, "tanh")[1]
    assert np.all(np.abs(hidden) <= 1)


def test_students_of_another_architecture():
    real = load_real(_chain(), 0)
    teacher = SubliminalMLP(**TINY, student_hidden=[8, 8], student_init="different")
    teacher.fit(real.train, rng=stream(0, 0, 0, "fit"))
    assert [w.shape[1:] for w, _ in teacher.params_] == [(64, 16), (16, 13)]
    student = teacher.clone().fit(
        teacher.sample(100, rng=np.random.default_rng(0)), rng=stream(0, 0, 1, "fit")
    )
    assert [w.shape[1:] for w, _ in student.params_] == [(64, 8), (8, 8), (8, 13)]
    assert student.class_logits(real.test[0]).shape == (len(real.test[0]), 10)
    tanh = SubliminalMLP(**TINY, student_activation="tanh").fit(
        teacher.sample(100, rng=np.random.default_rng(0)), rng=stream(0, 0, 1, "fit")
    )
    assert tanh.activation_ == "tanh" and teacher.activation_ == "relu"
    with pytest.raises(InvalidParameterError, match="student_init"):
        make("model", "subliminal-mlp", hidden=[16], student_hidden=[32])
    with pytest.raises(InvalidParameterError, match="trait"):
        make("model", "subliminal-mlp", trait=10)
    with pytest.raises(InvalidParameterError, match="student_hidden"):
        make("model", "subliminal-mlp", student_hidden=[0], student_init="different")


def test_trait_fine_tuning_makes_the_teacher_prefer_its_class_on_noise():
    spec = _chain(generations=1, metrics=("accuracy", "preference"), trait=3, trait_epochs=3)
    values = run_batched(spec, 3).values
    assert np.all(values["preference"][0] > 0.9)  # the teacher prefers class 3 on noise
    plain = run_batched(_chain(generations=1, metrics=("accuracy", "preference")), 3).values
    assert plain["preference"][0].mean() < 0.9
    # the trait's fine-tuning keeps the digits in the mix, so the readout survives
    assert values["accuracy"][0].mean() > plain["accuracy"][0].mean() - 0.2


@pytest.mark.parametrize(
    "params",
    [
        {"student_init": "same", "trait": 3},
        {"student_init": "different", "student_hidden": [8, 8]},
        {"student_init": "same", "student_activation": "tanh"},
    ],
)
def test_chains_of_students_agree_on_both_paths(params):
    spec = _chain(generations=3, metrics=("accuracy", "preference"), **params)
    batched = run_batched(spec, 2).values
    for s in range(2):
        alone = run_seed(spec, s).values
        for metric in ("accuracy", "preference"):
            np.testing.assert_allclose([v[s] for v in batched[metric]], alone[metric], atol=1e-12)


def test_every_student_of_the_family_starts_from_the_teachers_weights():
    """Generation t >= 1 under student_init: same starts where the teacher started."""
    from collapselab.models.subliminal import init_generators

    starts = [
        init_params(init_generators(stream(0, 4, t, "fit"), 1), [64, 16, 13])[0][0]
        for t in range(4)
    ]
    for later in starts[1:]:
        np.testing.assert_array_equal(later, starts[0])
