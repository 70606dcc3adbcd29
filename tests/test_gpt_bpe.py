"""The ``gpt`` model with its byte-level BPE tokenizer (``tokenizer="bpe"``)."""

import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from collapselab import make  # noqa: E402
from collapselab.core import DataKind  # noqa: E402
from collapselab.errors import InvalidParameterError  # noqa: E402
from collapselab.models.gpt import GPT, MIN_BPE_VOCAB, SEP, fit_bpe  # noqa: E402
from collapselab.testing import example_data  # noqa: E402

TINY = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 16,
    "block_size": 32,
    "batch_size": 8,
    "tokenizer": "bpe",
    "vocab_size": 300,
}
AWKWARD = ["café — ½", "naïve 東京 🙂", "<|endoftext|> is text here", "  two\n\ttabs  ", ""]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def docs():
    return example_data(DataKind.TEXT).train


def fitted(docs, seed=0, **params):
    return GPT(**{**TINY, "steps": 20, **params}).fit(docs, rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def model(docs):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fitted(docs)
    finally:
        torch.set_num_threads(before)


def test_tokenizer_round_trips_text_exactly(docs, model):
    texts = [*docs[:20], *AWKWARD]
    assert model._decode(model._encode(texts)) == texts
    assert model.vocab_[SEP] == "<|endoftext|>"
    assert len(model.vocab_) == 300 == model.network_.wte.weight.shape[0]
    # Merges shorten the text: fewer tokens than bytes.
    n_tokens = sum(map(len, model._encode(docs)))
    assert n_tokens < 0.75 * sum(len(d.encode()) for d in docs)
    # The separator's string inside a document is ordinary text, never id 0.
    assert SEP not in model._encode(["a <|endoftext|> b"])[0]


def test_tokenizer_training_is_deterministic(docs):
    text = fit_bpe(docs, 400).to_str()
    assert fit_bpe(docs, 400).to_str() == text
    assert fit_bpe(docs, 401).to_str() != text
    # Whatever the number of threads of the tokenizers library.
    code = (
        "import sys, hashlib, collapselab.data.text; "
        "from collapselab.testing import example_data; from collapselab.core import DataKind; "
        "from collapselab.models.gpt import fit_bpe; "
        "t = fit_bpe(example_data(DataKind.TEXT).train, 400).to_str(); "
        "print(hashlib.sha256(t.encode()).hexdigest())"
    )
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == hashlib.sha256(text.encode()).hexdigest(), out.stderr


def test_same_seed_same_fit_and_samples(docs, model):
    again = fitted(docs)
    assert again.tokenizer_.to_str() == model.tokenizer_.to_str()
    np.testing.assert_array_equal(again.losses_, model.losses_)
    for pa, pb in zip(again.network_.parameters(), model.network_.parameters(), strict=True):
        assert torch.equal(pa, pb)
    samples = model.sample(12, rng=np.random.default_rng(3))
    assert again.sample(12, rng=np.random.default_rng(3)) == samples
    assert model.sample(12, rng=np.random.default_rng(4)) != samples


def test_loss_falls(docs):
    losses = fitted(docs, steps=60, learning_rate=1e-2).losses_
    assert losses.shape == (60,)
    assert losses[:5].mean() > 5.0  # uniform over 300 tokens is 5.7 nats
    assert losses[-10:].mean() < losses[:5].mean() - 1.0


def test_later_generations_keep_generation0s_tokenizer(docs, model):
    later = [d.upper() + " ßøñ☃ — new words: zyzzyva" for d in docs[:20]]
    kw = {"previous": model, "first": model}
    # A different vocab_size is ignored: the tokenizer is frozen at generation 0.
    gen1 = GPT(**{**TINY, "vocab_size": 600}, steps=2).fit(
        later, rng=np.random.default_rng(5), **kw
    )
    assert gen1.tokenizer_.to_str() == model.tokenizer_.to_str()
    assert gen1.vocab_ == model.vocab_
    assert gen1.network_.wte.weight.shape == model.network_.wte.weight.shape
    # Characters generation 0 never saw are bytes: still encoded exactly and scored.
    assert gen1._decode(gen1._encode(later)) == later
    assert np.isfinite(gen1.token_log_probs(later[:3])).all()
    # Generation 0 must have used the same kind of tokenizer.
    with pytest.raises(ValueError, match="tokenizer"):
        GPT(**{**TINY, "tokenizer": "char"}, steps=0).fit(later, rng=np.random.default_rng(5), **kw)


def test_prefix_mode_keeps_the_token_prefix(docs):
    model = fitted(docs, mode="prefix", prefix_length=6, continuation_length=10)
    out = model.sample(len(docs) + 3, rng=np.random.default_rng(0))
    for i, text in enumerate(out):
        ids = model._encode([docs[i % len(docs)]])[0][:6]
        np.testing.assert_array_equal(model.prefixes_[i % len(docs)], ids)
        prefix = model._decode([ids])[0]
        assert docs[i % len(docs)].startswith(prefix)
        assert text.startswith(prefix) and len(text) > len(prefix)
    # Continuations are exactly continuation_length tokens.
    new = model.generate(model.prefixes_[:4], 10, rng=np.random.default_rng(0))
    assert [len(n) for n in new] == [10] * 4 and all(SEP not in n for n in new)


def test_log_probs_are_per_token(docs, model):
    test = [docs[0][:20], "x" * 150, *AWKWARD[:2]]
    lengths = [len(ids) + 1 for ids in model._encode(test)]  # each document's end too
    per_token = model.token_log_probs(test)
    assert per_token.shape == (sum(lengths),)
    assert np.all(np.isfinite(per_token)) and np.all(per_token < 0)
    per_doc = model.document_token_log_probs(test)
    assert [len(p) for p in per_doc] == lengths
    np.testing.assert_allclose(model.log_prob(test), [p.sum() for p in per_doc])
    # A short document is one forward pass: check against the network directly.
    ids = [SEP, *model._encode(test[:1])[0].tolist(), SEP]
    with torch.no_grad():
        logp = torch.log_softmax(model.network_(torch.tensor([ids[:-1]])), dim=-1)[0]
    direct = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
    assert model.log_prob(test[:1])[0] == pytest.approx(direct, rel=1e-5)


def test_pickle_round_trip_is_exact(docs):
    model = fitted(docs, mode="prefix", prefix_length=6, continuation_length=6)
    state = model.__getstate__()
    assert isinstance(state["network_"], bytes)
    assert isinstance(state["tokenizer_"], str)  # the tokenizer's JSON: self-contained
    copy = pickle.loads(pickle.dumps(model))
    assert copy.tokenizer_.to_str() == model.tokenizer_.to_str()
    assert (
        copy._encode(["a <|endoftext|> b"])[0].tolist()
        == model._encode(["a <|endoftext|> b"])[0].tolist()
    )
    rng = np.random.default_rng
    assert copy.sample(10, rng=rng(2)) == model.sample(10, rng=rng(2))
    np.testing.assert_array_equal(copy.token_log_probs(docs[:5]), model.token_log_probs(docs[:5]))


@pytest.mark.parametrize("value", [256, 10, 300.5, "big"])
def test_bad_vocab_size_is_one_line(value):
    with pytest.raises(InvalidParameterError, match="'vocab_size' parameter of GPT") as err:
        make("model", "gpt", tokenizer="bpe", vocab_size=value)
    assert "\n" not in str(err.value)
    assert str(MIN_BPE_VOCAB) in str(err.value)
    with pytest.raises(InvalidParameterError, match="'tokenizer' parameter"):
        make("model", "gpt", tokenizer="wordpiece")


def test_runner_two_generations_with_bpe(tmp_path):
    from collapselab.experiment.config import load_config
    from collapselab.experiment.runner import run

    data = load_config("nature-lm").model_dump(mode="json")
    data.update(seeds=1, generations=2, samples_per_generation=24, real_samples=24, arms=[])
    data["model"]["params"].update(
        n_layer=1, n_embd=16, n_head=2, block_size=24, steps=4, generation0_steps=4,
        batch_size=4, prefix_length=8, continuation_length=8, tokenizer="bpe", vocab_size=320,
    )  # fmt: skip
    data["metrics"] = ["perplexity_real", "coverage_real", "types"]
    result = run(load_config(data), tmp_path / "bpe")
    frame = result.metrics()
    assert set(frame["generation"]) == {0, 1}
    perplexity = frame[frame["metric"] == "perplexity_real"]["value"].to_numpy()
    assert len(perplexity) == 2
    # Per BPE token, below uniform over the vocabulary; every byte is covered.
    assert np.all(np.isfinite(perplexity)) and np.all((perplexity > 1) & (perplexity < 400))
    assert (frame[frame["metric"] == "coverage_real"]["value"] == 1.0).all()


def test_a_prefix_cut_inside_a_character_decodes_whole(monkeypatch):
    # vocab 257: bytes only, so "é" is two tokens and a 2-token prefix ends inside it
    docs = ["hé! 日本 and more text", "plain ascii words here"]
    params = {"steps": 2, "vocab_size": 257, "mode": "prefix", "prefix_length": 2}
    model = GPT(**{**TINY, **params, "continuation_length": 6})
    model.fit(docs, rng=np.random.default_rng(0))
    true_ids = model._encode(docs[:1])[0]
    # a continuation that completes the character, as a model that learnt the text would
    monkeypatch.setattr(
        model, "generate", lambda prompts, steps, **kw: [true_ids[2 : 2 + steps]] * len(prompts)
    )
    assert model.sample(1, rng=np.random.default_rng(1)) == ["hé! 日"]


def test_no_gradients_are_kept_after_fit(model):
    assert all(p.grad is None for p in model.network_.parameters())
