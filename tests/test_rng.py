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


@pytest.mark.parametrize("root", [0, 7, 2**40 + 3, 2**130 + 9])
def test_streams_in_bulk_are_the_streams_one_by_one(root):
    import pickle

    from collapselab.rng import BATCH, streams

    for seeds, generations, component in [
        (range(40), 0, "data"),
        (BATCH, range(30), "sample"),
        ([3, 2**32 + 1], [5, 6], "fit"),  # a coordinate of two words: seeded one by one
    ]:
        bulk = streams(root, seeds, generations, component)
        pairs = np.broadcast_arrays(np.asarray(seeds, dtype=object), np.asarray(generations))
        for rng, s, g in zip(bulk, *pairs, strict=True):
            one = stream(root, int(s), int(g), component)
            assert rng.bit_generator.state == one.bit_generator.state
            np.testing.assert_array_equal(rng.standard_normal(5), one.standard_normal(5))
    # the stand-in seed sequence answers as the real one for anything else
    rng = streams(root, 4, 9, "regime")[0]
    real = seed_sequence(root, 4, 9, "regime")
    np.testing.assert_array_equal(
        rng.bit_generator.seed_seq.generate_state(8), real.generate_state(8)
    )
    children = rng.bit_generator.seed_seq.spawn(2)
    assert [c.spawn_key for c in children] == [c.spawn_key for c in real.spawn(2)]
    copy = pickle.loads(pickle.dumps(rng))
    np.testing.assert_array_equal(copy.random(3), rng.random(3))
