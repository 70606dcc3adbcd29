"""Decoding controls: truncation removes exactly the expected probability mass."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collapselab.decoding import Decoding, decode
from collapselab.errors import ConfigError, InvalidParameterError
from collapselab.experiment.config import load_config
from collapselab.models.categorical import Categorical

P = np.array([0.5, 0.3, 0.15, 0.05])


def test_identity_only_normalizes():
    assert Decoding().is_identity
    np.testing.assert_allclose(Decoding().apply([2.0, 1.0, 1.0]), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(decode([2.0, 2.0], None), [0.5, 0.5])


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (0.99, [0, 1, 2, 3]), (1.0, [0, 1, 2, 3])],
)
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    out = Decoding(top_p=top_p).apply(P)
    mask = np.isin(np.arange(4), kept)
    np.testing.assert_allclose(out[mask], P[mask] / P[mask].sum())
    assert np.all(out[~mask] == 0)
    # The removed mass is exactly the mass outside the nucleus.
    assert P[~mask].sum() == pytest.approx(1 - P[mask].sum())


def test_top_k_keeps_k_largest_with_ties_to_lower_ids():
    out = Decoding(top_k=2).apply(P)
    np.testing.assert_allclose(out, [0.5 / 0.8, 0.3 / 0.8, 0, 0])
    tied = Decoding(top_k=2).apply([0.25, 0.25, 0.25, 0.25])
    np.testing.assert_allclose(tied, [0.5, 0.5, 0, 0])


def test_temperature():
    np.testing.assert_allclose(Decoding(temperature=0.5).apply(P), P**2 / np.sum(P**2))
    np.testing.assert_allclose(Decoding(temperature=2.0).apply(P), P**0.5 / np.sum(P**0.5))
    # Greedy: the limit T -> 0, uniform over tied maxima.
    np.testing.assert_allclose(Decoding(temperature=0).apply([0.4, 0.2, 0.4]), [0.5, 0, 0.5])


def test_order_is_temperature_then_top_k_then_top_p():
    d = Decoding(temperature=0.5, top_k=3, top_p=0.8)
    q = P**2 / np.sum(P**2)  # [0.7246, 0.2609, 0.0652, 0.0072]
    q[3] = 0  # top-k 3
    q /= q.sum()
    keep = np.cumsum(q) - q < 0.8
    expected = np.where(keep, q, 0) / np.where(keep, q, 0).sum()
    np.testing.assert_allclose(d.apply(P), expected)


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=30).filter(lambda w: sum(w) > 0),
    top_p=st.floats(0.01, 1.0),
)
def test_top_p_property(weights, top_p):
    p = np.asarray(weights) / np.sum(weights)
    out = Decoding(top_p=top_p).apply(p)
    kept = out > 0
    order = np.argsort(-p, kind="stable")
    ranked_keep = kept[order]
    # Kept tokens are a prefix of the ranking; their mass reaches top_p, and without
    # the last one it does not: the removed mass is exactly 1 - kept mass.
    k = ranked_keep.sum()
    assert ranked_keep[:k].all() or p[order][k:].max(initial=0) == 0
    mass = p[kept].sum()
    assert mass >= min(top_p, 1.0) - 1e-9
    assert mass - p[order][k - 1] < top_p + 1e-9
    np.testing.assert_allclose(out[kept], p[kept] / mass)


def test_segments_match_dense_rows():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, size=50)
    row_ptr = np.concatenate([[0], np.cumsum(sizes)])
    weights = rng.integers(0, 5, size=row_ptr[-1]).astype(float)
    weights[row_ptr[:-1]] += 1  # every row has some weight
    for d in [
        Decoding(top_p=0.7),
        Decoding(top_k=2),
        Decoding(temperature=0.5, top_p=0.9),
        Decoding(temperature=0),
        Decoding(temperature=3.0, top_k=4, top_p=0.95),
    ]:
        seg = d.apply_segments(weights, row_ptr)
        for r in range(len(sizes)):
            a, b = row_ptr[r], row_ptr[r + 1]
            np.testing.assert_allclose(seg[a:b], d.apply(weights[a:b]), atol=1e-12)


def test_categorical_sampling_follows_decoded_distribution():
    model = Categorical(vocabulary_size=4).fit(
        np.repeat(np.arange(4), [50, 30, 15, 5]), rng=np.random.default_rng(0)
    )
    n = 40000
    draws = model.sample(n, rng=np.random.default_rng(1), decoding={"top_p": 0.75})
    freq = np.bincount(draws, minlength=4) / n
    expected = np.array([0.5, 0.3, 0, 0]) / 0.8
    se = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(freq - expected) <= 4 * se + 1e-12)
    assert set(model.sample(100, rng=np.random.default_rng(2), decoding={"top_k": 1})) == {0}


def test_invalid_decoding_is_a_clear_error():
    with pytest.raises(InvalidParameterError, match="'top_p' parameter of Decoding"):
        Decoding(top_p=0)
    with pytest.raises(InvalidParameterError, match="top_k"):
        Decoding(top_k=0)
    with pytest.raises(InvalidParameterError, match="unexpected parameter 'top'"):
        Decoding.from_config({"top": 3})


def _config(**extra):
    base = {
        "name": "d",
        "data": {"id": "zipf", "params": {"vocabulary": 20}},
        "model": {"id": "categorical"},
        "samples_per_generation": 10,
        "generations": 2,
        "seeds": 1,
        "metrics": ["types"],
    }
    base.update(extra)
    return base


def test_config_decoding_field():
    config = load_config(_config(decoding={"top_p": 0.9, "temperature": 0.7}))
    assert config.decoding.top_p == 0.9
    assert "decoding" not in load_config(_config()).result_fields()
    with pytest.raises(ConfigError, match=r"decoding.top_p"):
        load_config(_config(decoding={"top_p": 1.5}))
    with pytest.raises(ConfigError, match=r"decoding.top_p.*has no 'top_p' control"):
        load_config(
            _config(
                data={"id": "gaussian"},
                model={"id": "gaussian"},
                metrics=["variance"],
                decoding={"top_p": 0.9},
            )
        )
    with pytest.raises(ConfigError, match=r"decoding.bias.*has no 'bias' control"):
        load_config(_config(decoding={"bias": 0.8}))  # a discrete model has no sampling bias
