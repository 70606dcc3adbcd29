"""A small decoder-only transformer language model of characters (GPT), on CPU.

Read top to bottom: the tokenizer, the network (pre-LayerNorm blocks, tied
input/output embeddings, a key/value cache for sampling), then the
:class:`GPT` model that the chain fits, samples and scores.

Tokens are characters. The vocabulary is fitted on generation 0's training text
and then frozen for the whole chain: later generations receive generation 0's
model through the chain's ancestor hook (see :attr:`GPT.fit_accepts_ancestors`), so
a character that synthetic text lost is still in the vocabulary and the real test
text stays scorable. Id 0 is the document separator (it starts and ends every
document, like GPT-2's ``<|endoftext|>``) and id 1 stands for characters outside
the vocabulary: the model never emits it and scores it ``-inf``.

Documents are generated in one of two modes, as :mod:`collapselab.models.ngram`:
``free`` runs from the separator until the model emits the separator again (or its
context is full); ``prefix`` continues the first ``prefix_length`` characters of
each training document by exactly ``continuation_length`` characters (the
separator is masked out), as Shumailov et al. (2024) prompted with real blocks. A
generated document keeps its prefix, so under ``replace`` every generation
continues the same real prefixes.

Initialization across generations (``init``): ``scratch`` trains each generation
from fresh random weights; ``generation0`` starts each generation from generation
0's trained weights; ``previous`` continues from the last generation's weights
(fine-tuning on the new data, as Shumailov et al. did).

Randomness: initial weights come from a :class:`torch.Generator` derived from the
``rng`` given to ``fit``, training batches and sampled tokens from ``rng`` itself;
the network has no dropout. So the same seed and the same number of torch threads
give identical weights and samples.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Self

import numpy as np

from ..core import BOOLEAN, DataKind, GenerativeModel, Interval, Options
from ..decoding import DISCRETE_CONTROLS, Decoding
from ..errors import DataError, InvalidParameterError, parameter_message
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

SEP, UNK = 0, 1
_SPECIAL = ("\x00", "\ufffd")  # placeholders: never emitted as text
#: Rows scored at once by ``log_prob`` (bounds memory: rows x block_size x vocabulary).
_EVAL_ROWS = 64


# ---------------------------------------------------------------------------
# Tokenizer: characters, fitted once
# ---------------------------------------------------------------------------


def _documents(data: Any) -> list[str]:
    if isinstance(data, str) or not hasattr(data, "__len__"):
        raise DataError("text data must be a list of documents (strings)")
    docs = list(data)
    if not docs:
        raise DataError("text data is empty: no documents")
    bad = next((d for d in docs if not isinstance(d, str)), None)
    if bad is not None:
        raise DataError(f"text documents must be strings; got {type(bad).__name__}")
    return docs


def fit_vocabulary(docs: list[str]) -> tuple[str, ...]:
    """The sorted characters of ``docs`` after the two special tokens (deterministic)."""
    chars = sorted(set().union(*map(set, docs)) - set(_SPECIAL))
    return (*_SPECIAL, *chars)


def encode(doc: str, lookup: dict[str, int]) -> np.ndarray:
    """Token ids of one document (characters outside the vocabulary become UNK)."""
    return np.fromiter((lookup.get(c, UNK) for c in doc), dtype=np.int64, count=len(doc))


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

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd: int, n_head: int) -> None:
            super().__init__()
            self.n_head = n_head
            self.qkv = nn.Linear(n_embd, 3 * n_embd)
            self.proj = nn.Linear(n_embd, n_embd)

        def forward(self, x: Any, cache: KVCache | None, layer: int) -> Any:
            b, t, c = x.shape
            q, k, v = self.qkv(x).split(c, dim=2)
            q, k, v = (
                z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v)
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
class GPT(GenerativeModel):
    """Decoder-only transformer over characters, trained with AdamW on CPU.

    Parameters
    ----------
    n_layer, n_head, n_embd : int, default 2, 4, 64
        Depth, attention heads and width (``n_embd`` divisible by ``n_head``).
    block_size : int, default 128
        Context length in characters.
    steps : int, default 200
        Optimizer steps per generation.
    batch_size : int, default 32
        Windows of ``block_size + 1`` characters per step.
    learning_rate : float, default 3e-3
        Peak AdamW learning rate (linear warm-up, then cosine decay to a tenth).
    weight_decay : float, default 0.01
    mode : {"free", "prefix"}, default "free"
    prefix_length : int, default 32
        Characters of each training document given as the prompt in ``prefix`` mode.
    continuation_length : int, default 32
        Characters generated after each prefix in ``prefix`` mode;
        ``prefix_length + continuation_length`` must be below ``block_size``.
    init : {"scratch", "generation0", "previous"}, default "scratch"
        Weights each generation starts from (see the module docstring).
    kv_cache : bool, default True
        Sample with a key/value cache (same samples, fewer operations).
    precision : {"auto", "bf16", "fp32"}, default "auto"
        bfloat16 autocast; ``auto`` uses it only on CPUs with native bf16.

    Attributes
    ----------
    vocab_ : tuple of str
        The characters (after the separator and unknown placeholders).
    network_ : torch.nn.Module
        The trained transformer.
    losses_ : numpy.ndarray
        Training loss (nats per character) at each step.
    """

    kind = DataKind.TEXT
    decoding_controls: ClassVar[frozenset[str]] = DISCRETE_CONTROLS
    #: The chain passes ``previous=`` (model t-1) and ``first=`` (model 0) to ``fit``.
    fit_accepts_ancestors: ClassVar[bool] = True
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
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "weight_decay": [Interval(0, None)],
        "mode": [Options(("free", "prefix"))],
        "prefix_length": [Interval(1, None, integer=True)],
        "continuation_length": [Interval(1, None, integer=True)],
        "init": [Options(("scratch", "generation0", "previous"))],
        "kv_cache": [BOOLEAN],
        "precision": [Options(PRECISIONS)],
    }

    def __init__(
        self,
        *,
        n_layer: int = 2,
        n_head: int = 4,
        n_embd: int = 64,
        block_size: int = 128,
        steps: int = 200,
        batch_size: int = 32,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.01,
        mode: str = "free",
        prefix_length: int = 32,
        continuation_length: int = 32,
        init: str = "scratch",
        kv_cache: bool = True,
        precision: str = "auto",
    ) -> None:
        self.n_layer = n_layer
        self.n_head = n_head
        self.n_embd = n_embd
        self.block_size = block_size
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.mode = mode
        self.prefix_length = prefix_length
        self.continuation_length = continuation_length
        self.init = init
        self.kv_cache = kv_cache
        self.precision = precision

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
        supplies the frozen vocabulary and, with ``init="generation0"``, the initial
        weights; ``previous`` (the last generation's model) supplies them with
        ``init="previous"``. Without them this is generation 0.
        """
        self.validate_params()
        import_torch("the 'gpt' model")  # fail early, before any work
        docs = _documents(data)
        self.vocab_ = first.vocab_ if first is not None else fit_vocabulary(docs)
        lookup = self._lookup()
        encoded = [encode(d, lookup) for d in docs]
        if self.mode == "prefix":
            self.prefixes_ = [e[: self.prefix_length] for e in encoded]
        # One stream: SEP doc SEP doc ... SEP, so the model learns where documents start and end.
        stream = np.concatenate([np.array([SEP]), *[np.append(e, SEP) for e in encoded]])

        network = _network_class()(
            len(self.vocab_), self.block_size, self.n_layer, self.n_head, self.n_embd
        )
        generator = torch_generator(rng)
        start = {"generation0": first, "previous": previous}.get(self.init)
        if start is not None:
            network.load_state_dict(start.network_.state_dict())
        else:
            network.init_weights(generator)
        self.network_ = network
        with matching_threads():
            self.losses_ = self._train(stream, rng)
        return self

    def _train(self, stream: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        torch = import_torch("the 'gpt' model")
        network = self.network_
        network.train()
        # Decay matrices only: decaying gains, biases or embeddings' norms hurts small models.
        decay = [p for n, p in network.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in network.named_parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.learning_rate,
            betas=(0.9, 0.99),
        )
        t = min(self.block_size, len(stream) - 1)
        data = torch.from_numpy(stream)
        offsets = torch.arange(t + 1)
        starts = rng.integers(0, len(stream) - t, size=(self.steps, self.batch_size))
        warmup = max(1, self.steps // 10)
        losses = np.empty(self.steps)
        bf16 = use_bf16(self.precision)
        for step in range(self.steps):
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate * _schedule(step, warmup, self.steps)
            window = data[torch.from_numpy(starts[step])[:, None] + offsets]
            x, y = window[:, :-1], window[:, 1:]
            with autocast(bf16):
                logits = network(x)
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            losses[step] = loss.item()
        network.eval()
        return losses

    def _lookup(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.vocab_) if i >= len(_SPECIAL)}

    # -- scoring -----------------------------------------------------------------

    def _target_log_probs(self, docs: list[str]) -> list[np.ndarray]:
        """Per document, the log-probability of each of its characters and its final
        separator, each scored with up to ``block_size`` characters of context."""
        torch = import_torch("the 'gpt' model")
        lookup = self._lookup()
        block = self.block_size
        stride = max(1, block // 2)
        # Sliding windows (input, first counted target, document, target offset): a long
        # document is scored in windows overlapping by half, each target counted once.
        rows: list[tuple[np.ndarray, int, int, int]] = []
        out = []
        for d, doc in enumerate(docs):
            seq = np.concatenate([[SEP], encode(doc, lookup), [SEP]])
            out.append(np.empty(len(seq) - 1))
            done, a = 0, 0  # targets seq[1..done] counted; window inputs start at a
            while done < len(seq) - 1:
                stop = min(a + block, len(seq) - 1)
                rows.append((seq[a : stop + 1], done - a, d, done))
                done, a = stop, a + stride
        bf16 = use_bf16(self.precision)
        with torch.no_grad(), matching_threads():
            for i in range(0, len(rows), _EVAL_ROWS):
                chunk = rows[i : i + _EVAL_ROWS]
                width = max(len(r[0]) - 1 for r in chunk)
                idx = np.zeros((len(chunk), width + 1), dtype=np.int64)
                for j, (seq, *_) in enumerate(chunk):
                    idx[j, : len(seq)] = seq
                x, y = torch.from_numpy(idx[:, :-1]), idx[:, 1:]
                with autocast(bf16):
                    logits = self.network_(x)
                logp = torch.log_softmax(logits.float(), dim=-1).numpy()
                picked = np.take_along_axis(logp, y[:, :, None], axis=-1)[..., 0]
                picked = np.where(y == UNK, -np.inf, picked)  # never emitted: off the support
                for j, (seq, first, d, offset) in enumerate(chunk):
                    values = picked[j, first : len(seq) - 1]
                    out[d][offset : offset + len(values)] = values
        return out

    def token_log_probs(self, data: Any) -> np.ndarray:
        """Log-probability of every character of every document (its end included), in order."""
        return np.concatenate(self._target_log_probs(_documents(data)))

    def log_prob(self, data: Any) -> np.ndarray:
        """Log-probability of each whole document, its end included."""
        return np.array([lp.sum() for lp in self._target_log_probs(_documents(data))])

    # -- sampling ----------------------------------------------------------------

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> list[str]:
        resolved = Decoding.from_config(decoding)
        if resolved is not None and resolved.is_identity:
            resolved = None
        if self.mode == "prefix":
            prompts = [self.prefixes_[i % len(self.prefixes_)] for i in range(n)]
            steps = self.continuation_length
        else:
            prompts = [np.zeros(0, dtype=np.int64)] * n
            steps = self.block_size - 1
        tokens = self.generate(prompts, steps, rng=rng, decoding=resolved)
        chars = np.array(self.vocab_, dtype=object)
        out = []
        for prompt, new in zip(prompts, tokens, strict=True):
            if self.mode == "free":
                ends = np.flatnonzero(new == SEP)
                new = new[: ends[0]] if len(ends) else new
            out.append("".join(chars[np.concatenate([prompt, new])].tolist()))
        return out

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
        :meth:`sample` cuts there).
        """
        torch = import_torch("the 'gpt' model")
        lengths = np.array([len(p) for p in prompts])
        uniforms = rng.random((len(prompts), steps))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(prompts)
        bf16 = use_bf16(self.precision)
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
                    with autocast(bf16):
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
        p = probs.copy()
        p[:, UNK] = 0.0  # the unknown-character placeholder is never text
        if self.mode == "prefix":
            p[:, SEP] = 0.0  # fixed length: condition on the document not ending
        p = decoding.apply(p) if decoding is not None else p / p.sum(axis=1, keepdims=True)
        cdf = np.cumsum(p, axis=1)
        token = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(axis=1)
        return np.minimum(token, p.shape[1] - 1)

    # -- pickling: weights as safetensors, never pickled torch objects ----------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if "network_" in state:
            state["network_"] = weights_to_bytes(state["network_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("network_")
        vars(self).update(state)
        if isinstance(blob, bytes):
            network = _network_class()(
                len(self.vocab_), self.block_size, self.n_layer, self.n_head, self.n_embd
            )
            weights_from_bytes(network, blob)
            network.eval()
            self.network_ = network


def _schedule(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 0.1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))
