"""A small decoder-only transformer language model of characters or BPE tokens (GPT).

Read top to bottom: the tokenizers, the network (pre-LayerNorm blocks, tied
input/output embeddings, a key/value cache for sampling), then the
:class:`GPT` model that the chain fits, samples and scores.

Tokens are characters by default (``tokenizer="char"``). The vocabulary is fitted
on generation 0's training text and then frozen for the whole chain: later
generations receive generation 0's model through the chain's ancestor hook (see
:attr:`GPT.takes_ancestors`), so a character that synthetic text lost is
still in the vocabulary and the real test text stays scorable. Id 0 is the
document separator (it starts and ends every document, like GPT-2's
``<|endoftext|>``) and id 1 stands for characters outside the vocabulary: the
model never emits it and scores it ``-inf``.

With ``tokenizer="bpe"`` tokens are byte-level BPE tokens, as GPT-2's: a Hugging
Face ``tokenizers`` BPE of ``vocab_size`` tokens is trained offline on generation
0's real training text (deterministically) and frozen for the whole chain the same
way, so every later generation and every score uses generation 0's merges. Id 0
is the separator, the special token ``<|endoftext|>`` (the literal string in a
document is ordinary text, never the separator); the next 256 ids are the bytes,
so every text is encodable and nothing is unknown. ``block_size``,
``prefix_length``, ``continuation_length``, the training loss and the per-token
log-probabilities (so ``perplexity_real``) then count BPE tokens, not characters.

Documents are generated in one of two modes, as :mod:`collapselab.models.ngram`:
``free`` runs from the separator until the model emits the separator again (or its
context is full); ``prefix`` continues the first ``prefix_length`` tokens of
each of generation 0's (real) training documents by exactly
``continuation_length`` tokens (the separator is masked out), as Shumailov et al.
(2024) prompted every generation with the real training blocks. Every generation
keeps generation 0's prompts (through ``first``), whatever the regime mixed into
its training data, so the prompts never lose variety and only the continuations
can collapse.

Decoding: sampling (temperature, top-k, top-p) or beam search (``beams``,
``length_penalty``: each prompt's most likely continuation, as Shumailov et al.
decoded with 5-way beam search), both with the key/value cache and both in
float32 (see ``precision``).

Initialization across generations (``init``): ``scratch`` trains each generation
from fresh random weights; ``generation0`` starts each generation from generation
0's trained weights; ``previous`` continues from the last generation's weights
(fine-tuning on the new data, as Shumailov et al. did).

Generation 0 is pretraining (``generation0_steps`` may make it much longer than
the rest), and it is paid once: its tokenizer, weights and losses are stored in
:mod:`collapselab.cache` under a key that holds everything they depend on (the
parameters generation 0 reads, a digest of its documents, the state of its random
stream, the precision, torch's thread count, the CPU kind and the versions of this
code and its libraries). Every run and arm with the same key reuses them, and the
random stream is left where training leaves it, so a run is bit-identical with or
without the cache (``collapselab run --no-cache`` turns it off).

Randomness: initial weights come from a :class:`torch.Generator` derived from the
``rng`` given to ``fit``, training batches and sampled tokens from ``rng`` itself;
the network has no dropout. So the same seed and the same number of torch threads
give identical weights and samples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from .. import cache as cache_store
from .. import neural as neural_module
from ..core import BOOLEAN, NONE, DataKind, GenerativeModel, Interval, Options
from ..decoding import BEAM_CONTROLS, DISCRETE_CONTROLS, Decoding
from ..errors import InvalidParameterError, parameter_message, require
from ..neural import (
    PRECISIONS,
    autocast,
    import_torch,
    matching_threads,
    torch_generator,
    use_bf16,
    weights_from_bytes,
    weights_to_bytes,
)
from ..registry import register
from . import lm as lm_module
from .lm import (
    DocumentScores,
    active_decoding,
    beam_search,
    documents,
    draw_tokens,
    prompts,
    scatter_scores,
    scoring_windows,
    train_next_token,
    window_batch,
)

SEP, UNK = 0, 1
_SPECIAL = ("\x00", "\ufffd")  # placeholders: never emitted as text
#: The BPE tokenizer's special tokens: only the document separator, id ``SEP``.
BPE_SPECIAL = ("<|endoftext|>",)
#: Smallest BPE vocabulary: the special tokens and the 256 bytes (no merges).
MIN_BPE_VOCAB = len(BPE_SPECIAL) + 256
#: Rows scored at once by ``log_prob`` (bounds memory: rows x block_size x vocabulary).
_EVAL_ROWS = 64
#: The kind of generation 0's entries in :mod:`collapselab.cache`.
_CACHE_KIND = "gpt-generation0"
#: Hypotheses (prompts x beams) searched at once by beam search (bounds the KV cache).
_BEAM_ROWS = 1024


# ---------------------------------------------------------------------------
# Tokenizers: characters or byte-level BPE, fitted once
# ---------------------------------------------------------------------------


def fit_vocabulary(docs: list[str]) -> tuple[str, ...]:
    """The sorted characters of ``docs`` after the two special tokens (deterministic)."""
    chars = sorted(set().union(*map(set, docs)) - set(_SPECIAL))
    return (*_SPECIAL, *chars)


def encode(doc: str, lookup: dict[str, int]) -> np.ndarray:
    """Token ids of one document (characters outside the vocabulary become UNK)."""
    return np.fromiter((lookup.get(c, UNK) for c in doc), dtype=np.int64, count=len(doc))


def _tokenizers() -> Any:
    return require("tokenizers", "neural", "the 'gpt' model's BPE tokenizer")


def fit_bpe(docs: list[str], vocab_size: int) -> Any:
    """A byte-level BPE :class:`tokenizers.Tokenizer` of at most ``vocab_size`` tokens.

    Id 0 is ``<|endoftext|>``, then the 256 byte symbols, then the merges learnt
    from ``docs`` (fewer when the text has no more pairs to merge). No text
    normalisation and no prefix space, so decoding an encoding gives the text back
    exactly. Training is deterministic: the same documents give the same merges
    whatever the number of threads (the trainer breaks count ties by the pair).
    """
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(BPE_SPECIAL),
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(docs, trainer)
    return _ready(tokenizer)


def load_bpe(text: str) -> Any:
    """The tokenizer saved as ``text`` (``Tokenizer.to_str()``), ready to encode."""
    return _ready(_tokenizers().Tokenizer.from_str(text))


def _ready(tokenizer: Any) -> Any:
    # "<|endoftext|>" written in a document is text, not the separator (this setting
    # is not part of the saved JSON, so it is set on every load).
    tokenizer.encode_special_tokens = True
    if tokenizer.token_to_id(BPE_SPECIAL[0]) != SEP:
        raise ValueError(f"the BPE tokenizer must give {BPE_SPECIAL[0]!r} id {SEP}")
    return tokenizer


def bpe_vocabulary(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's tokens in id order (byte-level strings, e.g. ``"Ġthe"``)."""
    return tuple(tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size()))


# ---------------------------------------------------------------------------
# The network (built on first use, so importing this module needs no torch)
# ---------------------------------------------------------------------------


@functools.cache
def _network_class() -> type:
    torch = import_torch("the 'gpt' model")
    nn, F = torch.nn, torch.nn.functional

    class KVCache:
        """Keys and values of the positions seen so far, one pair per layer."""

        def __init__(self, n_layer: int) -> None:
            self.keys: list[Any] = [None] * n_layer
            self.values: list[Any] = [None] * n_layer

        @property
        def length(self) -> int:
            return 0 if self.keys[0] is None else self.keys[0].shape[2]

        def select(self, rows: Any) -> None:
            """Keep the cached rows ``rows`` (a beam search's surviving hypotheses)."""
            self.keys = [k[rows] for k in self.keys]
            self.values = [v[rows] for v in self.values]

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd: int, n_head: int) -> None:
            super().__init__()
            self.n_head = n_head
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)

        def forward(self, x: Any, cache: KVCache | None, layer: int) -> Any:
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            # Attention in float32 whatever the autocast: torch's CPU flash-attention
            # backward in bfloat16 is about 6x slower than in float32 (torch 2.13,
            # measured), which made bf16 training slower than fp32. A no-op in fp32.
            q, k, v = (
                z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2).float()
                for z in (q, k, v)
            )
            past = 0
            if cache is not None:
                past = 0 if cache.keys[layer] is None else cache.keys[layer].shape[2]
                if past:
                    k = torch.cat([cache.keys[layer], k], dim=2)
                    v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            # With a cache, new positions follow every cached one: a single new query
            # may attend to all keys. (The cache is fed one prompt, then one token a step.)
            if past and t > 1:
                raise ValueError("the KV cache takes one prompt, then one token at a time")
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0)
            return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))

    class Block(nn.Module):
        """Pre-LayerNorm: normalise the input of each sublayer, keep the residual stream raw
        (trains stably without warm-up tricks, unlike post-LN)."""

        def __init__(self, n_embd: int, n_head: int) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention(n_embd, n_head)
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = nn.Sequential(
                nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd)
            )

        def forward(self, x: Any, cache: KVCache | None, layer: int) -> Any:
            x = x + self.attn(self.ln_1(x), cache, layer)
            return x + self.mlp(self.ln_2(x))

    class Transformer(nn.Module):
        #: Parameters that share a tensor with another and are not stored separately.
        tied_parameters = ("lm_head.weight",)

        def __init__(
            self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int
        ) -> None:
            super().__init__()
            self.block_size = block_size
            self.n_layer = n_layer
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(block_size, n_embd)
            self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            # Tied embeddings: the output layer reuses the input embedding (fewer
            # parameters, and rare characters get gradient from both ends).
            self.lm_head.weight = self.wte.weight

        def init_weights(self, generator: Any) -> None:
            """GPT-2's initialization, drawn from ``generator``."""
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif ".ln_" in name or name.startswith("ln_"):
                    nn.init.ones_(p)
                else:
                    # Residual projections scaled by depth keep the stream's variance flat.
                    std = (
                        0.02 / math.sqrt(2 * self.n_layer) if name.endswith("proj.weight") else 0.02
                    )
                    nn.init.normal_(p, 0.0, std, generator=generator)

        def new_cache(self) -> KVCache:
            return KVCache(self.n_layer)

        def forward(self, idx: Any, cache: KVCache | None = None) -> Any:
            """Logits (b, t, vocabulary) of the next token after each position of ``idx``."""
            start = 0 if cache is None else cache.length
            pos = torch.arange(start, start + idx.shape[1])
            x = self.wte(idx) + self.wpe(pos)
            for layer, block in enumerate(self.blocks):
                x = block(x, cache, layer)
            return self.lm_head(self.ln_f(x))

    return Transformer


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@register("model", "gpt")
class GPT(DocumentScores, GenerativeModel):
    """Decoder-only transformer over characters or byte-level BPE tokens, trained with AdamW.

    Parameters
    ----------
    n_layer, n_head, n_embd : int, default 2, 4, 64
        Depth, attention heads and width (``n_embd`` divisible by ``n_head``).
    block_size : int, default 128
        Context length in tokens (characters, or BPE tokens with ``tokenizer="bpe"``;
        so are ``prefix_length``, ``continuation_length`` and ``batch_size``'s windows).
    steps : int, default 200
        Optimizer steps per generation.
    generation0_steps : int or None, default None
        Optimizer steps of generation 0 (on the real data), if not ``steps``: a
        longer first training stands for pretraining, so that later generations
        fine-tune a model that has learnt the real text rather than one still
        improving with any text (as Shumailov et al. fine-tuned a trained OPT-125m).
    batch_size : int, default 32
        Windows of ``block_size + 1`` tokens per step.
    learning_rate : float, default 3e-3
        Peak AdamW learning rate (linear warm-up, then cosine decay to a tenth).
    weight_decay : float, default 0.01
    mode : {"free", "prefix"}, default "free"
    prefix_length : int, default 32
        Tokens of each of generation 0's training documents given as the prompt in
        ``prefix`` mode (later generations keep generation 0's prompts).
    continuation_length : int, default 32
        Tokens generated after each prefix in ``prefix`` mode;
        ``prefix_length + continuation_length`` must be below ``block_size``.
    init : {"scratch", "generation0", "previous"}, default "scratch"
        Weights each generation starts from (see the module docstring).
    kv_cache : bool, default True
        Sample with a key/value cache (same samples, fewer operations).
    precision : {"auto", "bf16", "fp32"}, default "auto"
        bfloat16 autocast for training (attention stays float32; sampling and
        scoring are always float32, so the KV cache changes no sample); ``auto``
        uses it on CPUs with native bf16 for ``n_embd`` of at least
        :data:`~collapselab.neural.AUTO_BF16_MIN_WIDTH`, where it is faster.
    tokenizer : {"char", "bpe"}, default "char"
        Characters, or a byte-level BPE trained on generation 0's text (needs the
        ``tokenizers`` package, in the ``neural`` extra).
    vocab_size : int, default 512
        Tokens of the BPE vocabulary, at least 257 (the separator and the 256
        bytes); read at generation 0 only (later ones keep its tokenizer), and
        unused with ``tokenizer="char"``.

    Attributes
    ----------
    vocab_ : tuple of str
        The tokens by id: the characters after the separator and unknown
        placeholders, or the BPE tokens (``<|endoftext|>``, then byte-level strings).
    tokenizer_ : tokenizers.Tokenizer or None
        The frozen BPE tokenizer (pickled as its JSON); ``None`` for characters.
    network_ : torch.nn.Module
        The trained transformer (its vocabulary is ``len(vocab_)``).
    losses_ : numpy.ndarray
        Training loss (nats per token) at each step.
    """

    kind = DataKind.TEXT
    decoding_controls: ClassVar[frozenset[str]] = DISCRETE_CONTROLS | BEAM_CONTROLS
    #: The chain passes ``previous=`` (model t-1) and ``first=`` (model 0) to ``fit``.
    takes_ancestors: ClassVar[bool] = True
    provides: ClassVar[frozenset[str]] = frozenset({"token_log_probs", "document_token_log_probs"})
    extra: ClassVar[str | None] = "neural"
    #: Small enough for the conformance checks to run in about a second.
    conformance_params: ClassVar[dict[str, Any]] = {
        "n_layer": 1,
        "n_head": 2,
        "n_embd": 16,
        "block_size": 32,
        "steps": 5,
        "batch_size": 4,
    }
    parameter_constraints: ClassVar = {
        "n_layer": [Interval(1, None, integer=True)],
        "n_head": [Interval(1, None, integer=True)],
        "n_embd": [Interval(1, None, integer=True)],
        "block_size": [Interval(2, None, integer=True)],
        "steps": [Interval(0, None, integer=True)],
        "generation0_steps": [NONE, Interval(0, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "weight_decay": [Interval(0, None)],
        "mode": [Options(("free", "prefix"))],
        "prefix_length": [Interval(1, None, integer=True)],
        "continuation_length": [Interval(1, None, integer=True)],
        "init": [Options(("scratch", "generation0", "previous"))],
        "kv_cache": [BOOLEAN],
        "precision": [Options(PRECISIONS)],
        "tokenizer": [Options(("char", "bpe"))],
        "vocab_size": [Interval(MIN_BPE_VOCAB, None, integer=True)],
    }

    def __init__(
        self,
        *,
        n_layer: int = 2,
        n_head: int = 4,
        n_embd: int = 64,
        block_size: int = 128,
        steps: int = 200,
        generation0_steps: int | None = None,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        mode: str = "free",
        prefix_length: int = 32,
        continuation_length: int = 32,
        init: str = "scratch",
        kv_cache: bool = True,
        precision: str = "auto",
        tokenizer: str = "char",
        vocab_size: int = 512,
    ) -> None:
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_embd = n_embd
        self.block_size = block_size
        self.steps = steps
        self.generation0_steps = generation0_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.mode = mode
        self.prefix_length = prefix_length
        self.continuation_length = continuation_length
        self.init = init
        self.kv_cache = kv_cache
        self.precision = precision
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    def validate_params(self) -> None:
        super().validate_params()
        if self.n_embd % self.n_head:
            raise InvalidParameterError(
                parameter_message(
                    "GPT", "n_embd", f"divisible by n_head={self.n_head}", self.n_embd
                )
            )
        if (
            self.mode == "prefix"
            and self.prefix_length + self.continuation_length >= self.block_size
        ):
            raise InvalidParameterError(
                parameter_message(
                    "GPT",
                    "block_size",
                    "> prefix_length + continuation_length in prefix mode",
                    self.block_size,
                )
            )

    # -- fitting -----------------------------------------------------------------

    def fit(
        self,
        data: Any,
        *,
        rng: np.random.Generator,
        previous: GPT | None = None,
        first: GPT | None = None,
    ) -> Self:
        """Train on ``data`` (documents).

        ``first`` (generation 0's model, given by the chain from generation 1 on)
        supplies the frozen vocabulary (or BPE tokenizer) and, with
        ``init="generation0"``, the initial weights; ``previous`` (the last
        generation's model) supplies them with ``init="previous"``. Without them this
        is generation 0 (which trains the BPE tokenizer with ``tokenizer="bpe"``).
        """
        self.validate_params()
        import_torch("the 'gpt' model")  # fail early, before any work
        docs = documents(data)
        if first is None:
            self._fit_generation0(docs, rng)
        else:
            fitted_with = "char" if getattr(first, "tokenizer_", None) is None else "bpe"
            if fitted_with != self.tokenizer:
                raise ValueError(
                    f"generation 0's gpt used tokenizer={fitted_with!r}; this one has "
                    f"tokenizer={self.tokenizer!r}"
                )
            self.tokenizer_ = getattr(first, "tokenizer_", None)
            self.vocab_ = first.vocab_
            start = {"generation0": first, "previous": previous}.get(self.init)
            self._fit_network(self._encode(docs), rng, start, self.steps)
        if self.mode == "prefix":
            # generation 0's (real) prompts, for every generation
            self.prefixes_ = (
                first.prefixes_
                if first is not None and getattr(first, "prefixes_", None) is not None
                else [e[: self.prefix_length] for e in self._encode(docs)]
            )
        return self

    def _new_network(self) -> Any:
        return _network_class()(
            len(self.vocab_), self.block_size, self.n_layer, self.n_head, self.n_embd
        )

    def _fit_network(
        self, encoded: list[np.ndarray], rng: np.random.Generator, start: GPT | None, steps: int
    ) -> None:
        """Train the network ``steps`` steps on ``encoded``, from ``start``'s weights or
        fresh ones (drawn from ``rng`` either way, so the stream advances alike)."""
        # One stream: SEP doc SEP doc ... SEP, so the model learns where documents start and end.
        stream = np.concatenate([np.array([SEP]), *[np.append(e, SEP) for e in encoded]])
        network = self._new_network()
        generator = torch_generator(rng)
        if start is not None:
            network.load_state_dict(start.network_.state_dict())
        else:
            network.init_weights(generator)
        self.network_ = network
        with matching_threads():
            self.losses_ = self._train(stream, rng, steps)

    # -- generation 0: pretraining, paid once (collapselab.cache) -------------------

    def _generation0_steps(self) -> int:
        return self.steps if self.generation0_steps is None else self.generation0_steps

    def _fit_generation0(self, docs: list[str], rng: np.random.Generator) -> None:
        """Fit the tokenizer and train generation 0, or take both from the cache.

        The cached result is exactly what training gives (same tokenizer, weights and
        losses, and ``rng`` left in the state training leaves it in), so a run that
        reuses it is bit-identical to one that trains.
        """

        def train() -> None:
            if self.tokenizer == "bpe":
                self.tokenizer_ = fit_bpe(docs, self.vocab_size)
                self.vocab_ = bpe_vocabulary(self.tokenizer_)
            else:
                self.tokenizer_ = None
                self.vocab_ = fit_vocabulary(docs)
            self._fit_network(self._encode(docs), rng, None, self._generation0_steps())

        if not cache_store.enabled():
            train()
            return
        key = self._generation0_key(docs, rng)

        def compute() -> dict[str, bytes]:
            started = time.perf_counter()
            train()
            state = {
                "vocab": list(self.vocab_),
                "tokenizer": None if self.tokenizer_ is None else self.tokenizer_.to_str(),
                "losses": self.losses_.tolist(),
                "rng_after": rng.bit_generator.state,
                "seconds": time.perf_counter() - started,
            }
            return {
                "weights.safetensors": weights_to_bytes(self.network_),
                "state.json": json.dumps(state).encode(),
            }

        info = {
            "model": "gpt",
            "documents": len(docs),
            "steps": self._generation0_steps(),
            **{name: key["params"][name] for name in ("n_layer", "n_embd", "tokenizer")},
        }
        files, hit = cache_store.compute_once(_CACHE_KIND, key, compute, info)
        if hit:
            state = json.loads(files["state.json"])
            self.tokenizer_ = None if state["tokenizer"] is None else load_bpe(state["tokenizer"])
            self.vocab_ = tuple(state["vocab"])
            network = self._new_network()
            weights_from_bytes(network, files["weights.safetensors"])
            self.network_ = network.eval()
            self.losses_ = np.array(state["losses"], dtype=float)
            rng.bit_generator.state = state["rng_after"]

    def _generation0_key(self, docs: list[str], rng: np.random.Generator) -> dict[str, Any]:
        """Everything generation 0's training depends on: the parameters it reads, the
        documents, the random stream, the precision and threads it runs with, and the
        versions of the code and libraries that compute it."""
        torch = import_torch("the 'gpt' model")
        data = hashlib.sha256()
        for doc in docs:
            encoded = doc.encode("utf-8", "surrogatepass")
            data.update(len(encoded).to_bytes(8, "little") + encoded)
        params = {
            name: getattr(self, name)
            for name in (
                "n_layer", "n_head", "n_embd", "block_size", "batch_size",
                "learning_rate", "weight_decay", "tokenizer",
            )
        }  # fmt: skip
        params["steps"] = self._generation0_steps()
        if self.tokenizer == "bpe":
            params["vocab_size"] = self.vocab_size
        with matching_threads():
            threads = torch.get_num_threads()
        code = hashlib.sha256()
        for module in (__file__, lm_module.__file__, neural_module.__file__):
            code.update(Path(module).read_bytes())
        return {
            "params": params,
            "bf16": use_bf16(self.precision, self.n_embd),
            "data": data.hexdigest(),
            "rng": rng.bit_generator.state,
            "threads": threads,
            "cpu": torch.backends.cpu.get_cpu_capability(),
            "versions": {
                "collapselab": cache_store.library_version(),
                "code": code.hexdigest(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "tokenizers": _tokenizers().__version__ if self.tokenizer == "bpe" else None,
            },
        }

    def _train(self, stream: np.ndarray, rng: np.random.Generator, steps: int) -> np.ndarray:
        bf16 = use_bf16(self.precision, self.n_embd)
        return train_next_token(
            self.network_,
            self.network_,
            stream,
            rng,
            steps=steps,
            batch_size=self.batch_size,
            block_size=self.block_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            autocast=lambda: autocast(bf16),
        )

    def _lookup(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.vocab_) if i >= len(_SPECIAL)}

    def _encode(self, docs: list[str]) -> list[np.ndarray]:
        """Token ids of each document (without separators)."""
        if self.tokenizer_ is None:
            lookup = self._lookup()
            return [encode(d, lookup) for d in docs]
        return [np.array(e.ids, dtype=np.int64) for e in self.tokenizer_.encode_batch_fast(docs)]

    def _decode(self, ids: list[np.ndarray]) -> list[str]:
        """The text of each sequence of token ids."""
        if self.tokenizer_ is None:
            chars = np.array(self.vocab_, dtype=object)
            return ["".join(chars[i].tolist()) for i in ids]
        return self.tokenizer_.decode_batch([i.tolist() for i in ids])

    # -- scoring -----------------------------------------------------------------

    def _target_log_probs(self, docs: list[str]) -> list[np.ndarray]:
        """Per document, the log-probability of each of its tokens and its final
        separator, each scored with up to ``block_size`` tokens of context."""
        torch = import_torch("the 'gpt' model")
        framed = [np.concatenate([[SEP], ids, [SEP]]) for ids in self._encode(docs)]
        rows, out = scoring_windows(framed, self.block_size)
        # Scores are measurements: always float32, whatever the training precision.
        with torch.no_grad(), matching_threads():
            for i in range(0, len(rows), _EVAL_ROWS):
                chunk = rows[i : i + _EVAL_ROWS]
                idx = window_batch(chunk, pad=SEP)
                x, y = torch.from_numpy(idx[:, :-1]), idx[:, 1:]
                logits = self.network_(x)
                logp = torch.log_softmax(logits.float(), dim=-1).numpy()
                picked = np.take_along_axis(logp, y[:, :, None], axis=-1)[..., 0]
                if self.tokenizer_ is None:  # BPE has no unknown token: id 1 is a byte
                    picked = np.where(y == UNK, -np.inf, picked)  # never emitted: off the support
                scatter_scores(out, chunk, picked)
        return out

    # -- sampling ----------------------------------------------------------------

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> list[str]:
        prompted, steps = prompts(
            self.mode,
            getattr(self, "prefixes_", None),
            n,
            self.continuation_length,
            self.block_size - 1,
        )
        tokens = self.generate(prompted, steps, rng=rng, decoding=active_decoding(decoding))
        if self.mode == "free":
            ends = [np.flatnonzero(new == SEP) for new in tokens]
            tokens = [new[: e[0]] if len(e) else new for new, e in zip(tokens, ends, strict=True)]
        # Decoded together: a BPE prefix may end inside a character's bytes, which the
        # continuation completes.
        return self._decode([np.concatenate(pair) for pair in zip(prompted, tokens, strict=True)])

    def generate(
        self,
        prompts: list[np.ndarray],
        steps: int,
        *,
        rng: np.random.Generator,
        decoding: Decoding | None = None,
    ) -> list[np.ndarray]:
        """``steps`` new token ids after each prompt (token ids, without the leading separator).

        Prompts of equal length are generated together; each row draws one uniform per
        step from ``rng`` in a fixed order, so the result is the same with or without
        the KV cache. In ``free`` mode a row is done at its first separator (the
        returned ids run on past it, padded with separators once every row is done;
        :meth:`sample` cuts there). With ``decoding.beams > 1``, each prompt's
        continuation is found by :func:`~collapselab.models.lm.beam_search` instead
        (``rng`` is not used).
        """
        if decoding is not None and decoding.is_beam_search:
            return self._beam_search(prompts, steps, decoding)
        torch = import_torch("the 'gpt' model")
        lengths = np.array([len(p) for p in prompts])
        uniforms = rng.random((len(prompts), steps))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(prompts)
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            idx = torch.from_numpy(
                np.stack([np.concatenate([[SEP], prompts[r]]) for r in rows]).astype(np.int64)
            )
            cache = self.network_.new_cache() if self.kv_cache else None
            step_input = idx
            new = np.full((len(rows), steps), SEP, dtype=np.int64)
            ended = np.zeros(len(rows), dtype=bool)
            with torch.no_grad(), matching_threads():
                for step in range(steps):
                    # float32, as scoring: in bf16 the cached one-token steps round
                    # differently from recomputing every position, and samples differ.
                    logits = self.network_(step_input if self.kv_cache else idx, cache)
                    probs = torch.softmax(logits[:, -1].double(), dim=-1).numpy()
                    token = self._draw(probs, uniforms[rows, step], decoding)
                    new[:, step] = token
                    if self.mode == "free":
                        # Every document has ended: the rest is unused (the uniforms were
                        # drawn up front, so stopping changes nothing).
                        ended |= token == SEP
                        if ended.all():
                            break
                    step_input = torch.from_numpy(token[:, None])
                    idx = torch.cat([idx, step_input], dim=1)
            for j, r in enumerate(rows):
                out[r] = new[j]
        return out

    def _draw(
        self, probs: np.ndarray, uniforms: np.ndarray, decoding: Decoding | None
    ) -> np.ndarray:
        return draw_tokens(probs, uniforms, decoding, self._never_sampled())

    def _never_sampled(self) -> np.ndarray:
        """Token ids never generated: the unknown-character placeholder (never text)
        and, in prefix mode, the separator (fixed length: the document does not end)."""
        masked = np.zeros(len(self.vocab_), dtype=bool)
        if self.tokenizer_ is None:
            masked[UNK] = True
        if self.mode == "prefix":
            masked[SEP] = True
        return masked

    def _beam_search(
        self, prompts: list[np.ndarray], steps: int, decoding: Decoding
    ) -> list[np.ndarray]:
        """Each prompt's best continuation by beam search, prompts of equal length
        together (at most ``_BEAM_ROWS`` hypotheses at a time), float32 as sampling."""
        torch = import_torch("the 'gpt' model")
        lengths = np.array([len(p) for p in prompts])
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(prompts)
        masked = self._never_sampled()
        end = SEP if self.mode == "free" else None
        per_chunk = max(1, _BEAM_ROWS // decoding.beams)
        for length in np.unique(lengths):
            same = np.flatnonzero(lengths == length)
            for rows in np.array_split(same, -(-len(same) // per_chunk)):
                start = np.stack([np.concatenate([[SEP], prompts[r]]) for r in rows])
                advance = self._advance(torch.from_numpy(start.astype(np.int64)))
                with torch.no_grad(), matching_threads():
                    best = beam_search(
                        advance,
                        steps,
                        beams=decoding.beams,
                        length_penalty=decoding.length_penalty,
                        masked=masked,
                        end=end,
                        fill=SEP,
                    )
                for j, r in enumerate(rows):
                    out[r] = best[j]
        return out

    def _advance(self, idx: Any) -> Any:
        """The ``advance`` function of :func:`~collapselab.models.lm.beam_search` from
        prompts ``idx`` (rows x tokens), with the KV cache when ``kv_cache``."""
        torch = import_torch("the 'gpt' model")
        cache = self.network_.new_cache() if self.kv_cache else None
        rows = idx

        def advance(parents: np.ndarray | None, tokens: np.ndarray | None) -> np.ndarray:
            nonlocal rows
            step_input = rows
            if parents is not None:
                keep = torch.from_numpy(parents)
                new = torch.from_numpy(tokens)[:, None]
                rows = torch.cat([rows[keep], new], dim=1)
                step_input = rows
                if cache is not None:
                    cache.select(keep)
                    step_input = new
            logits = self.network_(step_input, cache)[:, -1]
            return torch.log_softmax(logits.double(), dim=-1).numpy()

        return advance

    # -- pickling: weights as safetensors, the tokenizer as JSON, never torch objects ---

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if "network_" in state:
            state["network_"] = weights_to_bytes(state["network_"])
        if state.get("tokenizer_") is not None:
            state["tokenizer_"] = state["tokenizer_"].to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models pickled before the BPE option: characters.
        state = {"tokenizer": "char", "vocab_size": 512, **state}
        if "vocab_" in state:
            state.setdefault("tokenizer_", None)
        if isinstance(state.get("tokenizer_"), str):
            state["tokenizer_"] = load_bpe(state["tokenizer_"])
        blob = state.get("network_")
        vars(self).update(state)
        if isinstance(blob, bytes):
            network = _network_class()(
                len(self.vocab_), self.block_size, self.n_layer, self.n_head, self.n_embd
            )
            weights_from_bytes(network, blob)
            network.eval()
            self.network_ = network
