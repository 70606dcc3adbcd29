"""Image metrics read through a frozen digit classifier: each equals its hand computation."""

import numpy as np
import pytest

from collapselab import make
from collapselab.errors import DataError
from collapselab.metrics.classifier import (
    classifier,
    frechet_distance,
    read_output,
    real_test_features,
)


@pytest.fixture(scope="module")
def real():
    return make("data", "digits-images").load(n=600, rng=np.random.default_rng(0))


@pytest.fixture(scope="module")
def labelled(real):
    """The real test images grouped by the class the frozen classifier gives them."""
    predicted = classifier(real).predict(real.test)
    return {c: real.test[predicted == c] for c in range(10)}


def value(metric_id, images, real, **params):
    return make("metric", metric_id, **params)(None, images, real, rng=np.random.default_rng(0))


def test_classifier_reads_held_out_real_digits(real):
    accuracy = np.mean(classifier(real).predict(real.test) == real.truth["test_labels"])
    assert accuracy > 0.9
    assert classifier(real) is classifier(real)  # trained once per seed, then frozen


def test_one_class_covers_a_tenth_with_zero_entropy(real, labelled):
    images = labelled[3]
    assert value("class_coverage", images, real) == 0.1
    assert value("class_entropy", images, real) == 0.0


def test_two_balanced_classes_give_one_bit(real, labelled):
    k = min(len(labelled[1]), len(labelled[7]))
    images = np.concatenate([labelled[1][:k], labelled[7][:k]])
    assert value("class_coverage", images, real) == 0.2
    assert value("class_entropy", images, real) == pytest.approx(1.0)


def test_a_class_counts_only_above_its_minimum_share(real, labelled):
    images = np.concatenate([labelled[2][:40], labelled[5][:1]])  # 1 of 41 is a 5: 2.4%
    assert value("class_coverage", images, real, min_share=0.02) == 0.2
    assert value("class_coverage", images, real, min_share=0.03) == 0.1


def test_all_real_digits_cover_every_class(real):
    assert value("class_coverage", real.test, real) == 1.0
    # the held-out digits are nearly balanced: entropy within 0.05 bits of log2 10
    assert value("class_entropy", real.test, real) == pytest.approx(np.log2(10), abs=0.05)


def test_frechet_distance_matches_the_closed_form():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2. x = [-1, 1]: mean 0, variance 2 (ddof 1);
    # y = [2, 6]: mean 4, variance 8. 16 + (sqrt 2 - sqrt 8)^2 = 16 + 2 = 18.
    assert frechet_distance(np.array([[-1.0], [1.0]]), np.array([[2.0], [6.0]])) == pytest.approx(
        18.0
    )
    # Diagonal covariances: the per-axis sums.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * [1.0, 2.0]
    y = rng.normal(size=(4000, 2)) * [3.0, 0.5] + [1.0, 0.0]
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.sqrt(np.diag(np.cov(x.T))), np.sqrt(np.diag(np.cov(y.T)))
    # the sample covariances are nearly diagonal: the closed form holds to about 1%
    expected = np.sum((mx - my) ** 2) + np.sum((sx - sy) ** 2)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=0.01)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


def test_classifier_fd_is_the_frechet_distance_of_the_features(real, labelled):
    images = labelled[4]
    features, labels = read_output(real, images)
    np.testing.assert_array_equal(features, classifier(real).features(images))
    assert np.all(labels == 4)
    expected = frechet_distance(features, real_test_features(real))
    assert value("classifier_fd", images, real) == pytest.approx(expected)
    # Real digits (another seed's split) are close; one class, or noise, far.
    noise = np.random.default_rng(1).random((300, 8, 8))
    other_seed = make("data", "digits-images").load(n=600, rng=np.random.default_rng(1)).train
    close = value("classifier_fd", other_seed, real)
    assert 10 * close < value("classifier_fd", images, real)
    assert 10 * close < value("classifier_fd", noise, real)
    # A classifier labels noise too; precision sees that it is not digits.
    assert (
        value("classifier_precision", noise, real)
        < 0.5
        < value("classifier_precision", other_seed, real)
    )


def test_prdc_metrics_are_prdc_in_the_classifier_features(real, labelled):
    images = np.concatenate([labelled[0], labelled[6]])
    features = classifier(real).features(images)
    from prdc import compute_prdc

    expected = compute_prdc(
        real_features=real_test_features(real), fake_features=features, nearest_k=5
    )
    for key in ("precision", "recall", "density", "coverage"):
        assert value(f"classifier_{key}", images, real) == pytest.approx(expected[key])
    # two digits of ten: the real digits' neighbourhoods are mostly unreached
    assert value("classifier_recall", images, real) < 0.5
    assert value("classifier_precision", images, real) > 0.9


def test_images_without_labels_are_one_clear_error():
    from collapselab.core import DataKind, RealData

    unlabelled = RealData(
        train=np.zeros((20, 8, 8)), test=np.zeros((10, 8, 8)), kind=DataKind.IMAGES
    )
    with pytest.raises(DataError, match="labels"):
        value("class_coverage", np.zeros((5, 8, 8)), unlabelled)


def test_directions_never_call_a_collapse_healthy():
    from collapselab.core import Direction

    directions = {
        m: type(make("metric", m)).direction
        for m in (
            "class_coverage",
            "class_entropy",
            "classifier_fd",
            "classifier_precision",
            "classifier_recall",
            "classifier_density",
            "classifier_coverage",
        )
    }
    # one class left: coverage and entropy fall, the distance rises; precision alone
    # does not see a collapse onto typical digits, so it declares no healthy end
    assert directions["class_coverage"] == directions["class_entropy"] == Direction.HIGHER
    assert directions["classifier_fd"] == Direction.LOWER
    assert directions["classifier_precision"] == Direction.NEUTRAL
    assert directions["classifier_recall"] == directions["classifier_coverage"] == Direction.HIGHER
