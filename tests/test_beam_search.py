"""Beam search (``decoding.beams``): the most likely continuation, found where it is known."""

import itertools

import numpy as np
import pytest

from collapselab.decoding import Decoding
from collapselab.errors import InvalidParameterError
from collapselab.models.lm import beam_search, masked_log_probs

END = 0


def log(probs):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(probs, dtype=float))


def markov_advance(start: np.ndarray, table: np.ndarray):
    """``advance`` of a hand-built Markov model: ``start`` (prompts x V) log-probs of
    the first token, ``table[prev]`` of each next one."""

    def advance(parents, tokens):
        # the next token depends on the last one only: the parents are not needed
        return start if parents is None else table[tokens]

    return advance


def exhaustive_best(start, table, steps, masked, end, length_penalty):
    """Every continuation scored as beam_search scores them; the best per prompt."""
    start, table = masked_log_probs(start, masked), masked_log_probs(table, masked)
    allowed = np.flatnonzero(~masked)
    best = []
    for row in start:
        candidates = []
        for m in range(1, steps + 1):
            for seq in itertools.product(allowed, repeat=m):
                if end is not None and end in seq[:-1]:
                    continue
                if m < steps and (end is None or seq[-1] != end):
                    continue  # unfinished before the last step
                logp = row[seq[0]] + sum(table[a, b] for a, b in itertools.pairwise(seq))
                candidates.append((logp / m**length_penalty, seq))
        best.append(max(candidates)[1])
    return best


def test_beam_finds_the_sequence_greedy_misses():
    # first token: a (0.5) beats b (0.4), but after a every token is a third and b
    # repeats itself with 0.9: b b b (0.324) is the most likely, a x x at most 0.056
    start = log([[0.0, 0.5, 0.4, 0.1]])
    table = log([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0.05, 0.9, 0.05], [0, 1, 1, 1]])
    masked = np.array([True, False, False, False])  # fixed length: no end
    run = lambda beams: beam_search(  # noqa: E731
        markov_advance(start, table), 3, beams=beams, length_penalty=1.0, masked=masked,
        end=None, fill=END,
    )  # fmt: skip
    assert run(1).tolist() == [[1, 1, 1]]  # greedy: a, then the lowest id of a tie
    assert run(2).tolist() == [[2, 2, 2]]
    assert exhaustive_best(start, table, 3, masked, None, 1.0) == [(2, 2, 2)]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.5, -1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_equals_exhaustive_search_with_ends(seed, length_penalty):
    rng = np.random.default_rng(seed)
    v, steps = 4, 4
    start = np.log(rng.dirichlet(np.ones(v) * 0.5, size=3))
    table = np.log(rng.dirichlet(np.ones(v) * 0.5, size=v))
    masked = np.zeros(v, dtype=bool)
    masked[3] = rng.random() < 0.5  # sometimes one token is never text
    got = beam_search(
        markov_advance(start, table), steps, beams=v**steps, length_penalty=length_penalty,
        masked=masked, end=END, fill=END,
    )  # fmt: skip
    want = exhaustive_best(start, table, steps, masked, END, length_penalty)
    for row, seq in zip(got, want, strict=True):
        assert row[: len(seq)].tolist() == list(seq)
        assert np.all(row[len(seq) :] == END)


def test_length_penalty_chooses_between_short_and_long():
    # end at once (0.4) against a long confident run (0.6 then 0.8 a step)
    start = log([[0.4, 0.6, 0.0]])
    table = log([[1.0, 1e-9, 1e-9], [0.2, 0.8, 1e-9], [1, 1, 1]])
    masked = np.array([False, False, True])
    run = lambda lp: beam_search(  # noqa: E731
        markov_advance(start, table), 5, beams=4, length_penalty=lp, masked=masked,
        end=END, fill=END,
    )[0].tolist()  # fmt: skip
    assert run(0.0) == [0, 0, 0, 0, 0]  # log 0.4 beats log(0.6 * 0.8^k * ...)
    assert run(3.0) == [1, 1, 1, 1, 1]  # long text, no end within the steps


def test_beams_exclude_sampling_controls():
    with pytest.raises(InvalidParameterError, match="temperature"):
        Decoding(beams=5, temperature=0.7)
    with pytest.raises(InvalidParameterError, match="beams > 1"):
        Decoding(length_penalty=2.0)
    assert Decoding(beams=5).changed() == {"beams"} and not Decoding(beams=5).is_identity


# -- the models ------------------------------------------------------------------

AB_DOCS = ["ab ba abba", "baab ab", "a b ab ba", "bba aab b"] * 3
TINY_GPT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 4}


@pytest.fixture
def gpt_ab():
    pytest.importorskip("torch")
    from collapselab.models.gpt import GPT

    def make(**params):
        params = {**TINY_GPT, "steps": 30, "learning_rate": 1e-2, **params}
        return GPT(**params).fit(AB_DOCS, rng=np.random.default_rng(0))

    return make


@pytest.mark.usefixtures("one_torch_thread")
def test_gpt_wide_beam_is_the_most_likely_continuation(gpt_ab):
    import torch

    from collapselab.models.gpt import SEP

    model = gpt_ab(mode="prefix", prefix_length=2, continuation_length=3)
    masked = model._never_sampled()  # UNK and (fixed length) SEP
    allowed = np.flatnonzero(~masked)  # "a", "b", " "
    prompts = model.prefixes_[:3]
    got = model.generate(prompts, 3, rng=None, decoding=Decoding(beams=len(allowed) ** 3))
    for prompt, best in zip(prompts, got, strict=True):
        continuations = np.array(list(itertools.product(allowed, repeat=3)))
        rows = np.concatenate([np.tile([SEP, *prompt], (len(continuations), 1)), continuations], 1)
        with torch.no_grad():
            logits = model.network_(torch.from_numpy(rows[:, :-1]))
        logp = torch.log_softmax(logits.double(), dim=-1).numpy()
        scores = np.zeros(len(continuations))
        for k in range(3):
            position = len(prompt) + k  # the logits that predict continuation token k
            step = masked_log_probs(logp[:, position], masked)
            scores += step[np.arange(len(continuations)), continuations[:, k]]
        assert best.tolist() == continuations[scores.argmax()].tolist()


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("mode", ["free", "prefix"])
def test_gpt_beam_search_same_with_and_without_kv_cache(gpt_ab, mode):
    params = {"mode": mode, "prefix_length": 3, "continuation_length": 6}
    beam = Decoding(beams=3, length_penalty=0.5 if mode == "free" else 1.0)
    cached = gpt_ab(**params).sample(8, rng=np.random.default_rng(0), decoding=beam)
    plain = gpt_ab(kv_cache=False, **params).sample(8, rng=np.random.default_rng(1), decoding=beam)
    assert cached == plain  # deterministic: no randomness used
    assert all(isinstance(d, str) for d in cached)
    if mode == "prefix":
        assert all(len(d) == 9 for d in cached)


def test_a_model_without_beam_search_refuses_beams():
    from collapselab.errors import ConfigError
    from collapselab.experiment.config import load_config

    config = {
        "name": "x", "data": {"id": "pydoc"}, "model": {"id": "ngram"},
        "samples_per_generation": 10, "generations": 2, "seeds": 1, "metrics": ["types"],
        "decoding": {"beams": 3},
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"decoding\.beams.*'ngram' has no 'beams' control"):
        load_config(config)
