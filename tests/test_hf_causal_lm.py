"""The Hugging Face adapter (``hf-causal-lm``) on tiny random local models, never the network."""

import pickle
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from collapselab import make  # noqa: E402
from collapselab.core import DataKind  # noqa: E402
from collapselab.decoding import Decoding  # noqa: E402
from collapselab.errors import ConfigError, DataError, InvalidParameterError  # noqa: E402
from collapselab.models.hf import HFCausalLM, load_network, write_tiny_model  # noqa: E402
from collapselab.testing import example_data  # noqa: E402

TINY = {"steps": 8, "batch_size": 4, "block_size": 48, "max_new_tokens": 12, "device": "cpu"}
TINY |= {"learning_rate": 3e-3}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("hf-causal-lm tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["gpt2", "opt"])
def model_dir(request, tmp_path_factory):
    return str(write_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param))


@pytest.fixture(scope="module")
def docs():
    return example_data(DataKind.TEXT).train[:30]


def fitted(path, docs, seed=0, previous=None, first=None, **params):
    model = HFCausalLM(path=path, **{**TINY, **params})
    return model.fit(docs, rng=np.random.default_rng(seed), previous=previous, first=first)


def test_loss_falls(model_dir, docs):
    losses = fitted(model_dir, docs, steps=30).losses_
    assert losses.shape == (30,)
    assert losses[-5:].mean() < losses[:5].mean() - 0.5


def test_same_seed_same_weights_and_samples_and_global_rng_untouched(model_dir, docs):
    state = torch.random.get_rng_state()
    a, b = fitted(model_dir, docs), fitted(model_dir, docs)
    # Dropout is seeded from rng inside a fork: torch's global generator did not move.
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.network_.training is False
    for pa, pb in zip(a.network_.parameters(), b.network_.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert a.sample(8, rng=np.random.default_rng(3)) == b.sample(8, rng=np.random.default_rng(3))
    assert a.sample(8, rng=np.random.default_rng(3)) != a.sample(8, rng=np.random.default_rng(4))
    other = fitted(model_dir, docs, seed=1)
    assert not all(
        torch.equal(pa, pb)
        for pa, pb in zip(a.network_.parameters(), other.network_.parameters(), strict=True)
    )


def test_free_mode_documents_end_at_eos(model_dir, docs):
    model = fitted(model_dir, docs)
    eos = model.special_ids_["eos"]
    ids = model.generate([np.zeros(0, dtype=np.int64)] * 6, 12, rng=np.random.default_rng(0))
    out = model.sample(6, rng=np.random.default_rng(0))
    sampled = np.concatenate(ids)
    # Neither special tokens other than EOS nor embedding rows past the tokenizer (OPT).
    assert sampled.max() < model.tokenizer_.get_vocab_size()
    others = set(model.special_ids_["special"]) - {eos}
    assert not others & set(sampled.tolist())
    for new, text in zip(ids, out, strict=True):
        ends = np.flatnonzero(new == eos)
        kept = new[: ends[0]] if len(ends) else new
        assert text == model.tokenizer_.decode(kept.tolist(), skip_special_tokens=True)


def test_prefix_mode_continues_training_prefixes_by_exact_token_counts(model_dir, docs):
    model = fitted(model_dir, docs, mode="prefix", prefix_length=6, continuation_length=9)
    prefixes = [model.prefixes_[i % len(docs)] for i in range(len(docs) + 2)]
    new = model.generate(prefixes, 9, rng=np.random.default_rng(0))
    assert all(len(n) == 9 for n in new)  # EOS masked: never ends early
    assert not any((n == model.special_ids_["eos"]).any() for n in new)
    out = model.sample(len(docs) + 2, rng=np.random.default_rng(0))
    for i, text in enumerate(out):
        prefix = model.tokenizer_.decode(model.prefixes_[i % len(docs)].tolist())
        assert prefix == docs[i % len(docs)][: len(prefix)]  # the real document's start
        assert text.startswith(prefix) and len(text) > len(prefix)


def test_greedy_decoding_ignores_the_seed(model_dir, docs):
    model = fitted(model_dir, docs, mode="prefix", prefix_length=4, continuation_length=6)
    greedy = Decoding(top_k=1)
    a = model.sample(5, rng=np.random.default_rng(0), decoding=greedy)
    assert a == model.sample(5, rng=np.random.default_rng(1), decoding=greedy)
    assert a == model.sample(5, rng=np.random.default_rng(2), decoding={"temperature": 0.0})


def test_kv_cache_matches_full_forward(model_dir, docs):
    model = fitted(model_dir, docs, steps=0)
    ids = torch.tensor([[model.special_ids_["bos"], 40, 51, 60, 71, 80]])
    with torch.no_grad():
        full = model.network_(input_ids=ids).logits[0]
        first = model.network_(input_ids=ids[:, :3], use_cache=True)
        steps, cache = [first.logits[0]], first.past_key_values
        for i in range(3, 6):
            result = model.network_(input_ids=ids[:, i : i + 1], past_key_values=cache)
            steps.append(result.logits[0])
            cache = result.past_key_values
    torch.testing.assert_close(torch.cat(steps), full, rtol=1e-5, atol=1e-5)


def test_log_probs_per_token_and_document_with_sliding_windows(model_dir, docs):
    model = fitted(model_dir, docs, block_size=16)
    test = [docs[0][:12], docs[1]]  # one window; many windows (longer than the block)
    lengths = [len(ids) + 1 for ids in model._encode(test)]  # each document's EOS too
    assert lengths[1] > 3 * 16
    per_token = model.token_log_probs(test)
    assert per_token.shape == (sum(lengths),)
    assert np.all(np.isfinite(per_token)) and np.all(per_token < 0)
    per_doc = model.log_prob(test)
    parts = model.document_token_log_probs(test)
    assert [len(p) for p in parts] == lengths
    np.testing.assert_allclose(per_doc, [p.sum() for p in parts])
    seq = model._frame(model._encode(test[:1])[0])
    with torch.no_grad():
        inputs = torch.from_numpy(seq[None, :-1])
        logp = torch.log_softmax(model.network_(input_ids=inputs).logits, -1)[0]
    direct = logp[torch.arange(len(seq) - 1), torch.from_numpy(seq[1:])].sum().item()
    assert per_doc[0] == pytest.approx(direct, rel=1e-5)


def test_pickle_round_trip_is_exact_and_self_contained(model_dir, docs, tmp_path):
    model = fitted(model_dir, docs, mode="prefix", prefix_length=5, continuation_length=5)
    state = model.__getstate__()
    assert isinstance(state["network_"]["weights"], bytes)  # tensors only, never torch pickles
    assert isinstance(state["tokenizer_"], str)  # the tokenizer's JSON
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.log_prob(docs[:4]), model.log_prob(docs[:4]))
    rng = np.random.default_rng(2)
    assert copy.sample(6, rng=rng) == model.sample(6, rng=np.random.default_rng(2))
    # Tied output embeddings stay tied after loading.
    head = copy.network_.get_output_embeddings().weight
    assert head is copy.network_.get_input_embeddings().weight


def test_init_modes_choose_the_starting_weights(model_dir, docs):
    pretrained = load_network(model_dir).state_dict()
    first = fitted(model_dir, docs, steps=3)
    second = fitted(model_dir, docs, seed=1, steps=3, init="previous", previous=first, first=first)
    kw = {"previous": second, "first": first}

    def start(init):
        model = HFCausalLM(path=model_dir, **{**TINY, "steps": 0, "init": init})
        return model.fit(docs, rng=np.random.default_rng(5), **kw).network_.state_dict()

    for init, expected in [
        ("pretrained", pretrained),
        ("previous", second.network_.state_dict()),
        ("generation0", first.network_.state_dict()),
    ]:
        got = start(init)
        assert all(torch.equal(got[k], expected[k]) for k in expected), init
    # Fine-tuning moved the weights away from the pretrained ones.
    moved = first.network_.state_dict()
    assert not all(torch.equal(moved[k], pretrained[k]) for k in pretrained)


def test_path_errors_are_one_line_and_name_the_field(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in [None, "", str(tmp_path / "absent"), str(tmp_path / "empty"), "facebook/opt-125m"]:
        with pytest.raises(InvalidParameterError, match="'path' parameter") as info:
            make("model", "hf-causal-lm", path=path)
        assert "\n" not in str(info.value) and "hf download" in str(info.value)
    # A model directory without weights, then without a tokenizer (transformers would
    # silently build an empty one).
    tiny = write_tiny_model(tmp_path / "tiny")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_bytes((tiny / "config.json").read_bytes())
    for missing, then_add in [("cannot load the model", "model.safetensors"), ("no tokenizer", "")]:
        with pytest.raises(DataError, match=f"model field 'path'.*{missing}") as info:
            HFCausalLM(path=str(partial), **TINY).fit(["text"], rng=np.random.default_rng(0))
        assert "\n" not in str(info.value)
        if then_add:
            (tiny / then_add).rename(partial / then_add)
    config = {
        "name": "x",
        "data": "pydoc",
        "model": {"id": "hf-causal-lm", "params": {"path": str(tmp_path / "empty")}},
        "samples_per_generation": 4,
        "generations": 1,
        "seeds": 1,
        "metrics": ["perplexity_real"],
    }
    from collapselab.experiment.config import load_config

    with pytest.raises(ConfigError, match=r"config field 'model'.*config\.json"):
        load_config(config)


def test_loading_is_offline_and_restores_the_environment(model_dir, docs, monkeypatch):
    import huggingface_hub.constants
    import transformers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append((kwargs.get("local_files_only"), huggingface_hub.constants.HF_HUB_OFFLINE))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    flag = huggingface_hub.constants.HF_HUB_OFFLINE
    fitted(model_dir, docs, steps=1)
    assert seen == [(True, True)]
    assert "HF_HUB_OFFLINE" not in __import__("os").environ
    assert __import__("os").environ["TRANSFORMERS_OFFLINE"] == "0"
    assert huggingface_hub.constants.HF_HUB_OFFLINE == flag


def test_missing_transformers_names_the_extra(model_dir, monkeypatch):
    from collapselab.errors import MissingDependencyError

    class NoTransformers:
        def find_spec(self, name, path=None, target=None):
            if name == "transformers" or name.startswith("transformers."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [NoTransformers(), *sys.meta_path])
    # building needs no transformers
    model = make("model", "hf-causal-lm", path=model_dir, max_new_tokens=16)
    with pytest.raises(MissingDependencyError, match=r'pip install "collapselab\[neural\]"'):
        model.fit(["some text"], rng=np.random.default_rng(0))


def test_importing_collapselab_does_not_import_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None  # any import of transformers fails\n"
        "import collapselab\n"
        "assert 'hf-causal-lm' in collapselab.list_ids('model')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_runner_runs_two_generations(tmp_path):
    from collapselab.experiment.config import load_config
    from collapselab.experiment.runner import run

    model_dir = write_tiny_model(tmp_path / "opt", arch="opt")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i}: the fox and the dog, {i * 7 % 13}." for i in range(40)))
    config = {
        "name": "hf-tiny",
        "data": {"id": "text", "params": {"path": str(corpus), "unit": "line"}},
        "model": {
            "id": "hf-causal-lm",
            "params": {
                **TINY,
                "path": str(model_dir),
                "steps": 3,
                "mode": "prefix",
                "prefix_length": 4,
                "continuation_length": 4,
                "init": "previous",
            },
        },
        "samples_per_generation": 8,
        "real_samples": 8,
        "generations": 2,
        "seeds": 1,
        "metrics": ["perplexity_real", "distinct_2"],
    }
    frame = run(load_config(config), tmp_path / "run").metrics()
    assert set(frame["generation"]) == {0, 1}
    perplexity = frame[frame["metric"] == "perplexity_real"]["value"].to_numpy()
    assert len(perplexity) == 2 and np.all(np.isfinite(perplexity)) and np.all(perplexity > 1)


def test_chain_resumes_bit_identical(tmp_path):
    from collapselab.chain import ChainSpec, run_seed

    model_dir = write_tiny_model(tmp_path / "gpt2")
    params = {**TINY, "steps": 3, "mode": "prefix", "prefix_length": 4, "continuation_length": 4}
    spec = ChainSpec(
        data=make("data", "pydoc", unit="paragraph"),
        model=HFCausalLM(path=str(model_dir), init="previous", **params),
        regime=make("regime", "replace"),
        metrics={"perplexity_real": make("metric", "perplexity_real")},
        samples_per_generation=8,
        generations=3,
        real_samples=8,
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


def test_a_float16_checkpoint_trains_in_float32(tmp_path, docs):
    # OPT-125m is stored in float16; transformers 5 would keep that dtype by default.
    model_dir = write_tiny_model(tmp_path / "half", arch="opt")
    load_network(model_dir).half().save_pretrained(model_dir)
    model = fitted(str(model_dir), docs, steps=2)
    assert model.network_.dtype == torch.float32
    assert np.all(np.isfinite(model.losses_))


def test_an_unknown_token_that_is_also_eos_scores_like_eos(model_dir, docs):
    # GPT-2's tokenizer calls <|endoftext|> its unknown token too: every document's end
    # must still be scored, not treated as impossible.
    model = fitted(model_dir, docs)
    ids = model.special_ids_
    assert ids["unk"] not in (ids["bos"], ids["eos"])  # None for GPT-2, <unk> for OPT
    assert np.all(np.isfinite(model.log_prob(docs[:5])))
    assert all(p.grad is None for p in model.network_.parameters())  # no gradients kept


def test_later_generations_prompt_with_generation0s_prefixes(model_dir, docs):
    params = {"mode": "prefix", "prefix_length": 4, "continuation_length": 3, "steps": 1}
    first = fitted(model_dir, docs, **params)
    later = fitted(model_dir, ["other text entirely"] * 3, 1, first, first, **params)
    assert later.prefixes_ is first.prefixes_


def test_sizes_beyond_the_context_fail_before_loading(model_dir):
    from collapselab.errors import InvalidParameterError

    # the tiny models have a context of 128 tokens: known from config.json alone
    with pytest.raises(InvalidParameterError, match="prefix_length' and 'continuation_length"):
        model = HFCausalLM(path=model_dir, mode="prefix", prefix_length=64, continuation_length=64)
        model.validate_params()
    with pytest.raises(InvalidParameterError, match=r"'block_size'.*128"):
        HFCausalLM(path=model_dir, block_size=129).validate_params()


@pytest.mark.parametrize("mode", ["free", "prefix"])
def test_beam_search_uses_the_cache_faithfully(model_dir, docs, mode):
    from collapselab.models.lm import beam_search

    model = fitted(model_dir, docs, mode=mode, prefix_length=4, continuation_length=6)
    prompts = model.prefixes_[:5] if mode == "prefix" else [np.zeros(0, dtype=np.int64)] * 2
    beam = Decoding(beams=3, length_penalty=0.5 if mode == "free" else 1.0)
    got = model.generate(prompts, 6, rng=None, decoding=beam)

    # the same search, recomputing every position instead of reordering the cache
    rows = torch.from_numpy(np.stack([model._frame(p)[:-1] for p in prompts]))

    def recompute(parents, tokens):
        nonlocal rows
        if parents is not None:
            rows = torch.cat(
                [rows[torch.from_numpy(parents)], torch.from_numpy(tokens)[:, None]], 1
            )
        with torch.no_grad():
            logits = model.network_(input_ids=rows, use_cache=False).logits[:, -1]
        return torch.log_softmax(logits.double(), dim=-1).numpy()

    eos = model.special_ids_["eos"]
    want = beam_search(
        recompute, 6, beams=3, length_penalty=beam.length_penalty,
        masked=model._never_sampled(), end=eos if mode == "free" else None, fill=eos,
    )  # fmt: skip
    np.testing.assert_array_equal(np.stack(got), want)
    assert model.generate(prompts, 6, rng=None, decoding=beam)[0].tolist() == want[0].tolist()
