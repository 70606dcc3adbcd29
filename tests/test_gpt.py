"""The character-level transformer (``gpt``): training, sampling, scoring, generations."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collapselab import make  # noqa: E402
from collapselab.chain import ChainSpec, run_seed  # noqa: E402
from collapselab.core import DataKind  # noqa: E402
from collapselab.decoding import Decoding  # noqa: E402
from collapselab.models.gpt import GPT, SEP  # noqa: E402
from collapselab.testing import example_data  # noqa: E402

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32, "batch_size": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def docs():
    return example_data(DataKind.TEXT).train


def fitted(docs, seed=0, **params):
    return GPT(**{**TINY, "steps": 20, **params}).fit(docs, rng=np.random.default_rng(seed))


def test_loss_falls(docs):
    model = fitted(docs, steps=80, learning_rate=1e-2)
    losses = model.losses_
    assert losses.shape == (80,)
    # Uniform over ~80 characters is ~4.4 nats; the character unigram is ~3.3.
    assert losses[:5].mean() > 4.0
    assert losses[-10:].mean() < 3.0


def test_same_seed_same_weights_and_samples(docs):
    a, b = fitted(docs), fitted(docs)
    for pa, pb in zip(a.network_.parameters(), b.network_.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.sample(20, rng=np.random.default_rng(3)) == b.sample(20, rng=np.random.default_rng(3))
    assert a.sample(20, rng=np.random.default_rng(3)) != a.sample(20, rng=np.random.default_rng(4))
    assert not torch.equal(a.network_.wte.weight, fitted(docs, seed=1).network_.wte.weight)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("mode", ["free", "prefix"])
@pytest.mark.parametrize("decoding", [None, Decoding(temperature=0.8, top_k=20, top_p=0.9)])
def test_kv_cache_samples_equal_full_recompute(docs, mode, decoding, precision):
    # bf16 trains in bfloat16 but samples in float32: the cache changes nothing either way
    params = {"mode": mode, "prefix_length": 8, "continuation_length": 12, "precision": precision}
    cached = fitted(docs, **params)
    plain = fitted(docs, kv_cache=False, **params)
    rng_seed = 11
    assert cached.sample(
        16, rng=np.random.default_rng(rng_seed), decoding=decoding
    ) == plain.sample(16, rng=np.random.default_rng(rng_seed), decoding=decoding)


def test_kv_cache_logits_match(docs):
    model = fitted(docs)
    idx = torch.tensor([[SEP, 5, 9, 12, 7, 3]])
    with torch.no_grad():
        full = model.network_(idx)[0]
        cache = model.network_.new_cache()
        steps = [model.network_(idx[:, :3], cache)[0]]
        steps += [model.network_(idx[:, i : i + 1], cache)[0] for i in range(3, 6)]
    torch.testing.assert_close(torch.cat(steps), full, rtol=1e-5, atol=1e-5)


def test_prefix_mode_continues_training_prefixes(docs):
    model = fitted(docs, mode="prefix", prefix_length=10, continuation_length=7)
    out = model.sample(len(docs) + 3, rng=np.random.default_rng(0))
    for i, text in enumerate(out):
        prefix = docs[i % len(docs)][:10]
        assert text.startswith(prefix)
        assert len(text) == len(prefix) + 7  # the end of the document is never drawn


def test_free_mode_documents_fit_the_context(docs):
    out = fitted(docs).sample(30, rng=np.random.default_rng(0))
    assert all(len(t) <= TINY["block_size"] - 1 for t in out)
    assert all("\x00" not in t and "\ufffd" not in t for t in out)


def test_log_prob_per_document_and_per_token(docs):
    model = fitted(docs)
    test = [docs[0][:20], "x" * 100, docs[1]]  # short, longer than the context, anything
    per_token = model.token_log_probs(test)
    assert per_token.shape == (sum(len(d) + 1 for d in test),)  # each document's end too
    assert np.all(np.isfinite(per_token)) and np.all(per_token < 0)
    per_doc = model.log_prob(test)
    splits = np.cumsum([len(d) + 1 for d in test])[:-1]
    np.testing.assert_allclose(per_doc, [s.sum() for s in np.split(per_token, splits)])
    # A short document is one forward pass: check against the network directly.
    ids = [SEP, *(model._lookup()[c] for c in test[0]), SEP]
    with torch.no_grad():
        logp = torch.log_softmax(model.network_(torch.tensor([ids[:-1]])), dim=-1)[0]
    direct = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum().item()
    assert per_doc[0] == pytest.approx(direct, rel=1e-5)


def test_characters_outside_the_vocabulary_score_minus_inf(docs):
    model = fitted(docs)
    logp = model.token_log_probs(["ab\u2603c"])
    assert np.isneginf(logp[2]) and np.isfinite(np.delete(logp, 2)).all()


def test_ancestors_freeze_vocabulary_and_choose_initial_weights(docs):
    first = fitted(docs)
    later = [d.upper() for d in docs[:20]]  # characters generation 0 never saw, and lost ones
    kw = {"previous": first, "first": first}
    scratch = GPT(**TINY, steps=0).fit(later, rng=np.random.default_rng(5), **kw)
    assert scratch.vocab_ == first.vocab_
    assert not torch.equal(scratch.network_.wte.weight, first.network_.wte.weight)
    start0 = GPT(**TINY, steps=0, init="generation0").fit(later, rng=np.random.default_rng(5), **kw)
    assert torch.equal(start0.network_.wte.weight, first.network_.wte.weight)
    second = GPT(**TINY, steps=3, init="previous").fit(later, rng=np.random.default_rng(6), **kw)
    kw = {"previous": second, "first": first}
    cont = GPT(**TINY, steps=0, init="previous").fit(docs, rng=np.random.default_rng(7), **kw)
    back = GPT(**TINY, steps=0, init="generation0").fit(docs, rng=np.random.default_rng(7), **kw)
    assert torch.equal(cont.network_.wte.weight, second.network_.wte.weight)
    assert torch.equal(back.network_.wte.weight, first.network_.wte.weight)
    # Training moved generation 1 away from generation 0's weights.
    assert not torch.equal(second.network_.wte.weight, first.network_.wte.weight)


def test_pickle_stores_weights_as_safetensors(docs):
    model = fitted(docs, mode="prefix", prefix_length=8, continuation_length=8)
    state = model.__getstate__()
    assert isinstance(state["network_"], bytes)  # tensors only: no pickled torch objects
    copy = pickle.loads(pickle.dumps(model))
    assert copy.sample(10, rng=np.random.default_rng(2)) == model.sample(
        10, rng=np.random.default_rng(2)
    )
    np.testing.assert_array_equal(copy.log_prob(docs[:5]), model.log_prob(docs[:5]))


@pytest.mark.parametrize("init", ["scratch", "generation0", "previous"])
def test_chain_resumes_bit_identical(init):
    spec = ChainSpec(
        data=make("data", "pydoc", unit="paragraph"),
        model=GPT(
            **TINY, steps=6, init=init, mode="prefix", prefix_length=8, continuation_length=8
        ),
        regime=make("regime", "replace"),
        metrics={"perplexity_real": make("metric", "perplexity_real")},
        samples_per_generation=20,
        generations=3,
        real_samples=20,
    )
    whole = run_seed(spec, 0)
    saved = []
    run_seed(
        ChainSpec(**{**vars(spec), "generations": 2}),
        0,
        on_generation=lambda s: saved.append(pickle.dumps(s)),
    )
    resumed = run_seed(spec, 0, pickle.loads(saved[-1]))
    assert resumed.values == whole.values
    assert np.all(np.isfinite(whole.values["perplexity_real"]))


def test_invalid_sizes_are_reported():
    from collapselab.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="n_embd"):
        make("model", "gpt", n_embd=10, n_head=4)
    with pytest.raises(InvalidParameterError, match="block_size"):
        make("model", "gpt", mode="prefix", prefix_length=64, continuation_length=64)


def test_runner_checkpoint_holds_the_model_and_rejects_corruption(docs, tmp_path):
    from collapselab.chain import ChainState
    from collapselab.experiment.storage import load_checkpoint, save_checkpoint

    model = fitted(docs)
    path = tmp_path / "seed.ckpt"
    save_checkpoint(path, {"state": ChainState(generation=0, model=model, model_0=model)})
    loaded = load_checkpoint(path)["state"]
    assert loaded.model.sample(5, rng=np.random.default_rng(0)) == model.sample(
        5, rng=np.random.default_rng(0)
    )
    path.write_bytes(path.read_bytes()[:-100])  # truncated: ignored, so recomputed
    assert load_checkpoint(path) is None


def test_auto_precision_is_bf16_only_where_native_and_wide_enough():
    from collapselab.neural import AUTO_BF16_MIN_WIDTH, bf16_supported, use_bf16

    assert use_bf16("bf16", 8) and not use_bf16("fp32", 4096)
    assert not use_bf16("auto", AUTO_BF16_MIN_WIDTH - 1)
    assert use_bf16("auto", AUTO_BF16_MIN_WIDTH) == bf16_supported()


def test_bf16_autocast_trains_and_samples(docs):
    # Emulated where the CPU lacks bf16 (slower, same code path as on bf16 hardware).
    model = fitted(docs, steps=10, precision="bf16")
    assert np.all(np.isfinite(model.losses_))
    assert len(model.sample(4, rng=np.random.default_rng(0))) == 4
    assert np.all(np.isfinite(model.log_prob(docs[:3])))
    # scoring is float32 whatever the training precision: the same weights score alike
    as_fp32 = pickle.loads(pickle.dumps(model))
    as_fp32.precision = "fp32"
    np.testing.assert_array_equal(model.log_prob(docs[:3]), as_fp32.log_prob(docs[:3]))


def test_generation0_steps_apply_to_generation0_only(docs):
    first = fitted(docs, steps=3, generation0_steps=7)
    assert len(first.losses_) == 7
    later = GPT(**{**TINY, "steps": 3, "generation0_steps": 7, "init": "generation0"})
    later.fit(docs, rng=np.random.default_rng(1), previous=first, first=first)
    assert len(later.losses_) == 3


def test_prefix_mode_keeps_generation0s_real_prompts(docs):
    params = {"mode": "prefix", "prefix_length": 6, "continuation_length": 4, "steps": 2}
    first = fitted(docs, **params)
    # a later generation trained on other text still prompts with the real prefixes
    other = ["zzzzzzzzzzzz " * 2] * 5
    later = GPT(**{**TINY, **params}).fit(
        other, rng=np.random.default_rng(1), previous=first, first=first
    )
    assert later.prefixes_ is first.prefixes_
    texts = later.sample(len(docs), rng=np.random.default_rng(2))
    assert [t[:6] for t in texts] == [d[:6] for d in docs]
