import numpy as np
import pytest

from collapselab.rng import COMPONENTS, metric_stream, seed_sequence, stream


def test_stream_equals_nested_spawn():
    """stream(root, s, g, c) is SeedSequence(root).spawn(...)[s].spawn(...)[g].spawn(...)[c]."""
    root = 1234
    for seed, generation, component in [(0, 0, "data"), (3, 7, "sample"), (11, 2, "metrics")]:
        k = COMPONENTS.index(component)
        nested = (
            np.random.SeedSequence(root).spawn(seed + 1)[seed].spawn(generation + 1)[generation]
        )
        expected = np.random.default_rng(nested.spawn(k + 1)[k]).random(5)
        np.testing.assert_array_equal(stream(root, seed, generation, component).random(5), expected)


def test_streams_are_distinct_and_reproducible():
    a = stream(0, 1, 2, "fit").random(4)
    np.testing.assert_array_equal(a, stream(0, 1, 2, "fit").random(4))
    others = [
        stream(0, 2, 2, "fit"),
        stream(0, 1, 3, "fit"),
        stream(0, 1, 2, "sample"),
        stream(1, 1, 2, "fit"),
    ]
    for other in others:
        assert not np.array_equal(a, other.random(4))


def test_metric_streams_keyed_by_id_not_position():
    a = metric_stream(0, 1, 2, "tail_mass").random(3)
    b = metric_stream(0, 1, 2, "tail_mass").random(3)
    c = metric_stream(0, 1, 2, "wasserstein").random(3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_component_rejected():
    with pytest.raises(ValueError, match="unknown random component"):
        seed_sequence(0, 0, 0, "nope")
