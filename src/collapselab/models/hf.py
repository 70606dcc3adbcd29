"""Any Hugging Face ``transformers`` causal language model in a local directory, fine-tuned
each generation (``hf-causal-lm``).

This is the model of Shumailov et al. (Nature 2024): they fine-tuned OPT-125m on
wikitext-2, generation after generation, each time from the pretrained weights. Point
``path`` at a local copy of any causal LM (``config.json``, the weights and the
tokenizer files, as ``save_pretrained`` or ``hf download --local-dir`` write them)
and the chain fits, samples and scores it like the in-house :mod:`~collapselab.models.gpt`
(same parameters where they mean the same thing, same two generation modes).

The model **never downloads**: it loads with ``local_files_only=True`` under the hub's
offline mode, and a ``path`` that is not a local model directory is a one-line error
naming the field. :func:`write_tiny_model` writes a tiny randomly initialized model
(GPT-2 or OPT architecture, a small byte-level BPE tokenizer) for tests and docs.

Tokens are the tokenizer's. Each document is framed as ``BOS tokens EOS`` (for OPT
and GPT-2 the two are the same token, so training sees one stream ``EOS doc EOS doc
EOS ...``); scoring counts each token of a document and its final EOS, so
``perplexity_real`` is per tokenizer token. The tokenizer is stored in the model as
its JSON (a checkpoint is self-contained) and frozen for the whole chain: later
generations take generation 0's.

Generation modes, as in ``gpt``: ``free`` runs from BOS until the model emits EOS or
``max_new_tokens`` tokens; ``prefix`` continues the first ``prefix_length`` tokens of
each of generation 0's (real) training documents by exactly ``continuation_length``
tokens (EOS masked out), as Shumailov et al. prompted every generation with the real
blocks. Special tokens other than EOS (padding,
unknown) and embedding rows past the tokenizer's vocabulary are never sampled.

Initialization across generations (``init``): ``pretrained`` starts every generation
from the weights in ``path`` (the paper's protocol); ``previous`` continues from the
last generation's weights; ``generation0`` from generation 0's fine-tuned weights.

Randomness: training windows and sampled tokens come from the ``rng`` given to
``fit`` and ``sample`` (one uniform per row per step). Dropout uses torch's global
generator, so training runs inside :func:`torch.random.fork_rng` seeded from ``rng``:
the same seed gives identical weights and samples on CPU (with the same number of
torch threads; GPU kernels need not be bit-reproducible), and torch's global random
state is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
import os
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from ..core import DataKind, GenerativeModel, InstanceOf, Interval, Options
from ..decoding import BEAM_CONTROLS, DISCRETE_CONTROLS, Decoding
from ..errors import DataError, InvalidParameterError, parameter_message, require
from ..neural import (
    PRECISIONS,
    import_torch,
    matching_threads,
    weights_to_bytes,
)
from ..registry import register
from ..rng import child_seed
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

_FEATURE = "the 'hf-causal-lm' model"
_OWNER = "HFCausalLM"
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
#: What ``path`` must be, with the fix, for every path error.
_PATH_REQUIREMENT = (
    "a local directory holding a Hugging Face causal LM (config.json, weights and "
    "tokenizer files); this model never downloads: fetch one first, e.g. "
    "`hf download facebook/opt-125m --local-dir /models/opt-125m`"
)
#: Sampled and scored elements per forward chunk: rows x tokens x vocabulary (bounds memory).
_CHUNK_ELEMENTS = 2**26


def import_transformers() -> Any:
    """``transformers``, or one line naming ``pip install "collapselab[neural]"``."""
    import_torch(_FEATURE)
    return require("transformers", "neural", _FEATURE)


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Hugging Face's offline mode for the block, restored after (environment and hub).

    The hub reads ``HF_HUB_OFFLINE`` once, at import, into
    ``huggingface_hub.constants``: setting the variable alone would not reach it.
    """
    constants = require("huggingface_hub.constants", "neural", _FEATURE)
    saved_env = {k: os.environ.get(k) for k in _OFFLINE_ENV}
    saved_flag = constants.HF_HUB_OFFLINE
    os.environ.update(_OFFLINE_ENV)
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _float32(transformers: Any) -> dict[str, Any]:
    """Load in float32 (a checkpoint saved in float16 would otherwise stay float16)."""
    torch = import_torch(_FEATURE)
    version = tuple(int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype" if version >= (4, 56) else "torch_dtype": torch.float32}


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """No progress bars or info logs while loading (the chain loads every generation)."""
    logging = transformers.utils.logging
    bars, level = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def check_model_directory(path: Any) -> Path:
    """``path`` as a :class:`~pathlib.Path` to a local model directory, or one line naming it."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise InvalidParameterError(parameter_message(_OWNER, "path", _PATH_REQUIREMENT, path))
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise InvalidParameterError(
            parameter_message(
                _OWNER, "path", "an existing directory: " + _PATH_REQUIREMENT, str(path)
            )
        )
    if not (directory / "config.json").is_file():
        raise InvalidParameterError(
            parameter_message(
                _OWNER, "path", "a directory with a config.json: " + _PATH_REQUIREMENT, str(path)
            )
        )
    return directory


def _load_failure(path: Path, what: str, exc: Exception) -> DataError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(
        f"model field 'path': cannot load the {what} in {str(path)!r} ({reason}); "
        "it must hold what save_pretrained writes"
    )


def load_network(path: str | os.PathLike[str]) -> Any:
    """The causal LM in ``path`` in float32 on CPU, in eval mode, from local files only."""
    transformers = import_transformers()
    directory = check_model_directory(path)
    with offline(), _quiet(transformers):
        try:
            network = transformers.AutoModelForCausalLM.from_pretrained(
                directory, local_files_only=True, **_float32(transformers)
            )
        except (OSError, ValueError, KeyError) as exc:
            raise _load_failure(directory, "model", exc) from None
    return network.eval()


@functools.cache
def _tokenizers() -> Any:
    return require("tokenizers", "neural", _FEATURE)


def _backend(json: str) -> Any:
    """A ``tokenizers.Tokenizer`` from its JSON, configured for raw documents."""
    tokenizer = _tokenizers().Tokenizer.from_str(json)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    # Text that spells a special token ("</s>") is text, not the special token.
    if hasattr(tokenizer, "encode_special_tokens"):  # tokenizers >= 0.15
        tokenizer.encode_special_tokens = True
    return tokenizer


def load_tokenizer(path: str | os.PathLike[str], config: Any) -> dict[str, Any]:
    """The tokenizer in ``path`` as plain data: its JSON and the special token ids.

    ``config`` (the model's) supplies BOS/EOS where the tokenizer names none.
    """
    transformers = import_transformers()
    directory = check_model_directory(path)
    with offline(), _quiet(transformers):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _load_failure(directory, "tokenizer", exc) from None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise DataError(
            f"model field 'path': the tokenizer in {str(directory)!r} has no fast "
            "(tokenizers) version; save one with tokenizer.json"
        )
    # Without tokenizer files transformers builds an empty tokenizer instead of failing.
    if not backend.encode("text", add_special_tokens=False).ids:
        raise DataError(
            f"model field 'path': {str(directory)!r} holds no tokenizer (tokenizer.json, or "
            "vocab.json and merges.txt, ...); save it there with tokenizer.save_pretrained"
        )
    eos = tokenizer.eos_token_id
    eos = getattr(config, "eos_token_id", None) if eos is None else eos
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        raise DataError(
            f"model field 'path': neither the tokenizer nor the config in {str(directory)!r} "
            "names an EOS token (set eos_token in tokenizer_config.json)"
        )
    bos = tokenizer.bos_token_id
    bos = getattr(config, "bos_token_id", None) if bos is None else bos
    bos = eos if bos is None or isinstance(bos, list) else bos
    unk = tokenizer.unk_token_id
    if unk is not None and int(unk) in (int(bos), int(eos)):
        # GPT-2 and OPT name their end-of-text token "unknown" too: it is a real token
        # (every document ends with it), not a placeholder to score as impossible.
        unk = None
    return {
        "json": backend.to_str(),
        "bos": int(bos),
        "eos": int(eos),
        "unk": None if unk is None else int(unk),
        "special": sorted({int(i) for i in tokenizer.all_special_ids}),
    }


def _context_length(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _shared_names(network: Any) -> set[str]:
    """State-dict names whose tensor is an earlier name's (tied embeddings): stored once."""
    seen: set[int] = set()
    shared = set()
    for name, tensor in network.state_dict().items():
        if tensor.data_ptr() in seen:
            shared.add(name)
        seen.add(tensor.data_ptr())
    return shared


def _load_weights(network: Any, blob: bytes) -> None:
    state = require("safetensors.torch", "neural", _FEATURE).load(blob)
    missing, unexpected = network.load_state_dict(state, strict=False)
    if unexpected or set(missing) - _shared_names(network):
        raise ValueError(f"saved weights do not fit the network: {unexpected or missing}")


def _build_network(config: dict[str, Any]) -> Any:
    """An untrained network of the architecture ``config`` describes (float32, CPU)."""
    transformers = import_transformers()
    torch = import_torch(_FEATURE)
    config = dict(config)
    network_config = transformers.AutoConfig.for_model(config.pop("model_type"), **config)
    # Random initial weights (overwritten at once) must not move torch's global state.
    with torch.random.fork_rng(devices=[]), _quiet(transformers):
        return transformers.AutoModelForCausalLM.from_config(
            network_config, **_float32(transformers)
        )


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@register("model", "hf-causal-lm")
class HFCausalLM(DocumentScores, GenerativeModel):
    """A local Hugging Face causal LM, fine-tuned with AdamW each generation.

    Parameters
    ----------
    path : str
        Local directory of the pretrained model (``config.json``, weights, tokenizer).
    steps : int, default 200
        Optimizer steps per generation.
    batch_size : int, default 8
        Windows of ``block_size + 1`` tokens per step.
    learning_rate : float, default 5e-5
        Peak AdamW learning rate (linear warm-up, then cosine decay to a tenth).
    weight_decay : float, default 0.01
    block_size : int, default 128
        Training and scoring window in tokens (at most the model's context).
    mode : {"free", "prefix"}, default "free"
    prefix_length : int, default 64
        Tokens of each of generation 0's training documents given as the prompt in
        ``prefix`` mode (later generations keep generation 0's prompts).
    continuation_length : int, default 64
        Tokens generated after each prefix in ``prefix`` mode.
    max_new_tokens : int, default 128
        Longest document generated in ``free`` mode, in tokens.
    init : {"pretrained", "previous", "generation0"}, default "pretrained"
        Weights each generation starts from (see the module docstring).
    precision : {"auto", "bf16", "fp32"}, default "auto"
        bfloat16 autocast for training and sampling (scoring is always float32); ``auto``
        uses it on GPUs with bf16 only: on CPUs, transformers' attention runs torch's
        bfloat16 flash-attention backward, several times slower than float32's.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``auto`` is ``cuda`` where a GPU is available.
    inference_batch_size : int, default 64
        Most documents sampled or scored in one forward pass (bounds memory).

    Attributes
    ----------
    network_ : transformers.PreTrainedModel
        The fine-tuned network (eval mode).
    tokenizer_ : tokenizers.Tokenizer
        The tokenizer, generation 0's for the whole chain.
    special_ids_ : dict
        ``bos``, ``eos``, ``unk`` and all ``special`` token ids.
    losses_ : numpy.ndarray
        Training loss (nats per token) at each step.
    """

    kind = DataKind.TEXT
    decoding_controls: ClassVar[frozenset[str]] = DISCRETE_CONTROLS | BEAM_CONTROLS
    #: The chain passes ``previous=`` (model t-1) and ``first=`` (model 0) to ``fit``.
    takes_ancestors: ClassVar[bool] = True
    provides: ClassVar[frozenset[str]] = frozenset({"token_log_probs", "document_token_log_probs"})
    extra: ClassVar[str | None] = "neural"
    parameter_constraints: ClassVar = {
        "path": [InstanceOf((str, os.PathLike), _PATH_REQUIREMENT)],
        "steps": [Interval(0, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "weight_decay": [Interval(0, None)],
        "block_size": [Interval(2, None, integer=True)],
        "mode": [Options(("free", "prefix"))],
        "prefix_length": [Interval(1, None, integer=True)],
        "continuation_length": [Interval(1, None, integer=True)],
        "max_new_tokens": [Interval(1, None, integer=True)],
        "init": [Options(("pretrained", "previous", "generation0"))],
        "precision": [Options(PRECISIONS)],
        "device": [Options(("auto", "cpu", "cuda"))],
        "inference_batch_size": [Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        path: str | None = None,
        steps: int = 200,
        batch_size: int = 8,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        block_size: int = 128,
        mode: str = "free",
        prefix_length: int = 64,
        continuation_length: int = 64,
        max_new_tokens: int = 128,
        init: str = "pretrained",
        precision: str = "auto",
        device: str = "auto",
        inference_batch_size: int = 64,
    ) -> None:
        self.path = path
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.block_size = block_size
        self.mode = mode
        self.prefix_length = prefix_length
        self.continuation_length = continuation_length
        self.max_new_tokens = max_new_tokens
        self.init = init
        self.precision = precision
        self.device = device
        self.inference_batch_size = inference_batch_size

    @classmethod
    def conformance_example(cls) -> dict[str, Any]:
        """Small parameters for :mod:`collapselab.testing`, with a tiny random model on disk."""
        return {
            "path": str(_conformance_directory()),
            "steps": 3,
            "batch_size": 4,
            "block_size": 32,
            "max_new_tokens": 16,
            "learning_rate": 1e-3,
            "device": "cpu",
        }

    def validate_params(self) -> None:
        super().validate_params()
        directory = check_model_directory(self.path)
        # The context is known before any loading: sizes that cannot fit fail with the
        # config, before a run starts (or --overwrite removes anything).
        try:
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # unreadable: loading reports it, naming the file
        if isinstance(config, dict):
            self._check_context(types.SimpleNamespace(**config))

    # -- fitting -----------------------------------------------------------------

    def fit(
        self,
        data: Any,
        *,
        rng: np.random.Generator,
        previous: HFCausalLM | None = None,
        first: HFCausalLM | None = None,
    ) -> Self:
        """Fine-tune on ``data`` (documents).

        ``first`` (generation 0's model, given by the chain from generation 1 on)
        supplies the tokenizer and, with ``init="generation0"``, the initial weights;
        ``previous`` (the last generation's model) supplies them with
        ``init="previous"``. Otherwise (and at generation 0) training starts from the
        weights in ``path``.
        """
        self.validate_params()
        torch = import_torch(_FEATURE)
        import_transformers()  # fail early, before any work
        docs = documents(data)
        device = self._resolve_device()
        start = {"previous": previous, "generation0": first}.get(self.init)
        network = copy.deepcopy(start.network_) if start is not None else load_network(self.path)
        self._check_context(network.config)
        ancestor = first if first is not None else previous
        if ancestor is not None:
            self.tokenizer_, self.special_ids_ = ancestor.tokenizer_, ancestor.special_ids_
        else:
            tokenizer = load_tokenizer(self.path, network.config)
            self.tokenizer_ = _backend(tokenizer.pop("json"))
            self.special_ids_ = tokenizer
        encoded = self._encode(docs)
        if self.mode == "prefix":
            # generation 0's (real) prompts, for every generation
            self.prefixes_ = (
                first.prefixes_
                if first is not None and getattr(first, "prefixes_", None) is not None
                else [e[: self.prefix_length] for e in encoded]
            )
        self.network_ = network.to(device)
        stream = self._stream(encoded)
        # Dropout draws from torch's global generators: seed them from rng, in a fork.
        seed = child_seed(rng)
        gpus = []
        if device.type == "cuda":
            gpus = [torch.cuda.current_device() if device.index is None else device.index]
        with torch.random.fork_rng(devices=gpus), matching_threads():
            torch.random.default_generator.manual_seed(seed)
            for gpu in gpus:
                with torch.cuda.device(gpu):
                    torch.cuda.manual_seed(seed)
            self.losses_ = self._train(stream, rng)
        return self

    def _resolve_device(self, fallback: bool = False) -> Any:
        torch = import_torch(_FEATURE)
        available = torch.cuda.is_available()
        if self.device == "cuda" and not available and not fallback:
            raise InvalidParameterError(
                parameter_message(_OWNER, "device", "'cpu' or 'auto' here (no CUDA GPU)", "cuda")
            )
        use_cuda = available and self.device in ("cuda", "auto")
        return torch.device("cuda" if use_cuda else "cpu")

    def _check_context(self, config: Any) -> None:
        context = _context_length(config)
        if context is None:
            return
        fits = f"the model's context of {context} tokens"
        if self.block_size > context:
            raise InvalidParameterError(
                parameter_message(_OWNER, "block_size", f"at most {fits}", self.block_size)
            )
        if self.mode == "prefix":
            tokens = self.prefix_length + self.continuation_length + 1
            if tokens > context:
                raise InvalidParameterError(
                    f"The 'prefix_length' and 'continuation_length' parameters of {_OWNER} "
                    f"must fit {fits} with its start token (prefix_length + "
                    f"continuation_length + 1 <= {context}). Got {self.prefix_length} + "
                    f"{self.continuation_length} + 1 = {tokens} instead."
                )
        elif self.max_new_tokens + 1 > context:
            raise InvalidParameterError(
                parameter_message(
                    _OWNER, "max_new_tokens", f"below {fits} (free mode)", self.max_new_tokens
                )
            )

    def _encode(self, docs: list[str]) -> list[np.ndarray]:
        encodings = self.tokenizer_.encode_batch(docs, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def _frame(self, ids: np.ndarray) -> np.ndarray:
        """``BOS ids EOS``: one document as the model reads it."""
        return np.concatenate([[self.special_ids_["bos"]], ids, [self.special_ids_["eos"]]])

    def _stream(self, encoded: list[np.ndarray]) -> np.ndarray:
        """The training documents, framed and joined (BOS = EOS is written once between)."""
        bos, eos = self.special_ids_["bos"], self.special_ids_["eos"]
        framed = [self._frame(e) for e in encoded]
        if bos == eos:
            framed = [framed[0], *(f[1:] for f in framed[1:])]
        return np.concatenate(framed).astype(np.int64)

    def _autocast(self, device: Any) -> contextlib.AbstractContextManager[Any]:
        torch = import_torch(_FEATURE)
        if device.type == "cuda":
            enabled = self.precision == "bf16" or (
                self.precision == "auto" and torch.cuda.is_bf16_supported()
            )
        else:
            enabled = self.precision == "bf16"
        if not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def _train(self, stream: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        network = self.network_
        device = next(network.parameters()).device
        return train_next_token(
            network,
            lambda x: network(input_ids=x, use_cache=False).logits,
            stream,
            rng,
            steps=self.steps,
            batch_size=self.batch_size,
            block_size=self.block_size,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            autocast=lambda: self._autocast(device),
            device=device,
        )

    # -- scoring -----------------------------------------------------------------

    def _rows_per_chunk(self, tokens: int) -> int:
        vocabulary = self.network_.config.vocab_size
        return max(1, min(self.inference_batch_size, _CHUNK_ELEMENTS // (tokens * vocabulary)))

    def _target_log_probs(self, docs: list[str]) -> list[np.ndarray]:
        """Per document, the log-probability of each of its tokens and its final EOS, each
        scored with up to ``block_size`` tokens of context."""
        torch = import_torch(_FEATURE)
        block = self.block_size
        rows, out = scoring_windows([self._frame(ids) for ids in self._encode(docs)], block)
        network = self.network_
        device = next(network.parameters()).device
        unk = self.special_ids_["unk"]
        chunk_rows = self._rows_per_chunk(block)
        with torch.no_grad(), matching_threads():
            for i in range(0, len(rows), chunk_rows):
                chunk = rows[i : i + chunk_rows]
                idx = window_batch(chunk, pad=self.special_ids_["eos"])
                x = torch.from_numpy(idx[:, :-1]).to(device)
                y = torch.from_numpy(idx[:, 1:]).to(device)
                # Scores are measurements: float32 on every device and precision.
                logits = network(input_ids=x, use_cache=False).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                picked = logp.gather(-1, y[:, :, None])[..., 0].double().cpu().numpy()
                if unk is not None:  # never emitted: off the support
                    picked = np.where(idx[:, 1:] == unk, -np.inf, picked)
                scatter_scores(out, chunk, picked)
        return out

    # -- sampling ----------------------------------------------------------------

    def sample(self, n: int, *, rng: np.random.Generator, decoding: Any = None) -> list[str]:
        """``n`` documents (``free``) or continuations of training prefixes (``prefix``)."""
        prompted, steps = prompts(
            self.mode,
            getattr(self, "prefixes_", None),
            n,
            self.continuation_length,
            self.max_new_tokens,
        )
        tokens = self.generate(prompted, steps, rng=rng, decoding=active_decoding(decoding))
        out = []
        for prompt, new in zip(prompted, tokens, strict=True):
            if self.mode == "free":
                ends = np.flatnonzero(new == self.special_ids_["eos"])
                new = new[: ends[0]] if len(ends) else new
            ids = np.concatenate([prompt, new]).tolist()
            out.append(self.tokenizer_.decode(ids, skip_special_tokens=True))
        return out

    def generate(
        self,
        prompts: list[np.ndarray],
        steps: int,
        *,
        rng: np.random.Generator,
        decoding: Decoding | None = None,
    ) -> list[np.ndarray]:
        """``steps`` new token ids after each prompt (token ids, without the leading BOS).

        Prompts of equal length are generated together (at most
        ``inference_batch_size`` at a time), with the network's key/value cache. Each
        row draws one uniform per step from ``rng``, all up front, so stopping early
        changes nothing. In ``free`` mode a row is done at its first EOS (the returned
        ids run on past it; :meth:`sample` cuts there). With ``decoding.beams > 1``,
        each prompt's continuation is found by
        :func:`~collapselab.models.lm.beam_search` instead (``rng`` is not used).
        """
        if decoding is not None and decoding.is_beam_search:
            return self._beam_search(prompts, steps, decoding)
        torch = import_torch(_FEATURE)
        network = self.network_
        device = next(network.parameters()).device
        lengths = np.array([len(p) for p in prompts])
        uniforms = rng.random((len(prompts), steps))
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(prompts)
        eos = self.special_ids_["eos"]
        masked = self._never_sampled()
        keep = self._last_only()
        last_only = bool(keep)
        with torch.no_grad(), matching_threads():
            for length in np.unique(lengths):
                same = np.flatnonzero(lengths == length)
                chunk_rows = self._rows_per_chunk(1 if last_only else int(length) + 1)
                for rows in np.array_split(same, -(-len(same) // chunk_rows)):
                    idx = np.stack([self._frame(prompts[r])[:-1] for r in rows])
                    step_input = torch.from_numpy(idx).to(device)
                    new = np.full((len(rows), steps), eos, dtype=np.int64)
                    ended = np.zeros(len(rows), dtype=bool)
                    cache = None
                    for step in range(steps):
                        with self._autocast(device):
                            result = network(
                                input_ids=step_input, past_key_values=cache, use_cache=True, **keep
                            )
                        cache = result.past_key_values
                        logits = result.logits[:, -1].double()
                        probs = torch.softmax(logits, dim=-1).cpu().numpy()
                        token = draw_tokens(probs, uniforms[rows, step], decoding, masked)
                        new[:, step] = token
                        if self.mode == "free":
                            # Every document has ended: the rest is unused (the uniforms
                            # were drawn up front, so stopping changes nothing).
                            ended |= token == eos
                            if ended.all():
                                break
                        step_input = torch.from_numpy(token[:, None]).to(device)
                    for j, r in enumerate(rows):
                        out[r] = new[j]
        return out

    def _last_only(self) -> dict[str, int]:
        """Ask for the last position's logits only, where the network can (the prompt's
        would be rows x length x vocabulary)."""
        parameters = inspect.signature(self.network_.forward).parameters
        return {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def _beam_search(
        self, prompts: list[np.ndarray], steps: int, decoding: Decoding
    ) -> list[np.ndarray]:
        """Each prompt's best continuation by beam search, prompts of equal length together
        (at most ``inference_batch_size`` hypotheses at a time), with the network's cache."""
        torch = import_torch(_FEATURE)
        lengths = np.array([len(p) for p in prompts])
        out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(prompts)
        eos = self.special_ids_["eos"]
        masked = self._never_sampled()
        keep = self._last_only()
        with torch.no_grad(), matching_threads():
            for length in np.unique(lengths):
                same = np.flatnonzero(lengths == length)
                hypotheses = self._rows_per_chunk(1 if keep else int(length) + 1)
                per_chunk = max(1, hypotheses // decoding.beams)
                for rows in np.array_split(same, -(-len(same) // per_chunk)):
                    idx = np.stack([self._frame(prompts[r])[:-1] for r in rows])
                    best = beam_search(
                        self._advance(idx, keep),
                        steps,
                        beams=decoding.beams,
                        length_penalty=decoding.length_penalty,
                        masked=masked,
                        end=eos if self.mode == "free" else None,
                        fill=eos,
                    )
                    for j, r in enumerate(rows):
                        out[r] = best[j]
        return out

    def _advance(self, idx: np.ndarray, keep: dict[str, int]) -> Any:
        """The ``advance`` function of :func:`~collapselab.models.lm.beam_search` from
        prompts ``idx`` (rows x tokens), with the network's key/value cache."""
        torch = import_torch(_FEATURE)
        network = self.network_
        device = next(network.parameters()).device
        cache = None

        def advance(parents: np.ndarray | None, tokens: np.ndarray | None) -> np.ndarray:
            nonlocal cache
            step_input = torch.from_numpy(idx).to(device)
            if parents is not None:
                rows = torch.from_numpy(parents).to(device)
                if hasattr(cache, "reorder_cache"):  # a transformers Cache
                    cache.reorder_cache(rows)
                else:  # the legacy tuple of (key, value) per layer
                    cache = tuple(tuple(t.index_select(0, rows) for t in kv) for kv in cache)
                step_input = torch.from_numpy(tokens[:, None]).to(device)
            with self._autocast(device):
                result = network(
                    input_ids=step_input, past_key_values=cache, use_cache=True, **keep
                )
            cache = result.past_key_values
            return torch.log_softmax(result.logits[:, -1].double(), dim=-1).cpu().numpy()

        return advance

    def _never_sampled(self) -> np.ndarray:
        """Token ids masked out of sampling: special tokens other than EOS (EOS too in
        prefix mode) and embedding rows past the tokenizer's vocabulary."""
        vocabulary = self.network_.config.vocab_size
        masked = np.zeros(vocabulary, dtype=bool)
        masked[self.tokenizer_.get_vocab_size(with_added_tokens=True) :] = True
        special = [i for i in self.special_ids_["special"] if i < vocabulary]
        masked[special] = True
        masked[self.special_ids_["eos"]] = self.mode == "prefix"
        return masked

    # -- pickling: weights as safetensors and the tokenizer as JSON ----------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        if "network_" in state:
            network = state["network_"]
            state["network_"] = {
                "config": network.config.to_dict(),
                "weights": weights_to_bytes(network),
            }
        if "tokenizer_" in state:
            state["tokenizer_"] = state["tokenizer_"].to_str()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        if isinstance(state.get("tokenizer_"), str):
            self.tokenizer_ = _backend(state["tokenizer_"])
        saved = state.get("network_")
        if isinstance(saved, dict):
            network = _build_network(saved["config"])
            _load_weights(network, saved["weights"])
            # A checkpoint written on a GPU machine also loads where there is none.
            self.network_ = network.eval().to(self._resolve_device(fallback=True))


# ---------------------------------------------------------------------------
# A tiny random local model, for tests, docs and the conformance checks
# ---------------------------------------------------------------------------

_TINY_TEXT = (
    "The quick brown fox jumps over the lazy dog. A model trained on its own output "
    "forgets the tails of the distribution. Generation after generation, rare words "
    "vanish and common ones take their place. def fit(data): return model\n"
)


def write_tiny_model(
    directory: str | os.PathLike[str],
    *,
    arch: str = "gpt2",
    vocab_text: str | None = None,
    vocab_size: int = 320,
    n_layer: int = 2,
    n_embd: int = 32,
    context: int = 128,
    seed: int = 0,
) -> Path:
    """Write a tiny randomly initialized causal LM and its tokenizer to ``directory``.

    The tokenizer is a byte-level BPE (any text encodes) trained on ``vocab_text``;
    the network follows ``arch`` (``"gpt2"`` or ``"opt"``, with that family's special
    tokens: ``<|endoftext|>`` for GPT-2; ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` for OPT,
    whose BOS and EOS are both ``</s>``). Weights are drawn from ``seed``.

    Returns
    -------
    pathlib.Path
        ``directory``, ready to be the ``path`` of ``hf-causal-lm``.
    """
    transformers = import_transformers()
    torch = import_torch(_FEATURE)
    tk = _tokenizers()
    if arch not in ("gpt2", "opt"):
        raise InvalidParameterError(
            parameter_message("write_tiny_model", "arch", "gpt2 or opt", arch)
        )
    special = ["<|endoftext|>"] if arch == "gpt2" else ["<s>", "<pad>", "</s>", "<unk>"]
    backend = tk.Tokenizer(tk.models.BPE())
    backend.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator((vocab_text or _TINY_TEXT).splitlines() or [""], trainer)
    ids = {token: backend.token_to_id(token) for token in special}
    if arch == "gpt2":
        # as GPT-2's own tokenizer: <|endoftext|> is BOS, EOS and UNK at once
        names = {"bos_token": special[0], "eos_token": special[0], "unk_token": special[0]}
        config = transformers.GPT2Config(
            vocab_size=backend.get_vocab_size(),
            n_positions=context,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=2,
            bos_token_id=ids[special[0]],
            eos_token_id=ids[special[0]],
        )
    else:
        # OPT's tokenizer prepends </s> (its BOS) to every input, as the real one does.
        backend.post_processor = tk.processors.TemplateProcessing(
            single="</s> $A", pair="</s> $A </s> $B", special_tokens=[("</s>", ids["</s>"])]
        )
        names = {
            "bos_token": "</s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
        }
        config = transformers.OPTConfig(
            vocab_size=backend.get_vocab_size() + 8,  # embedding rows past the vocabulary, too
            hidden_size=n_embd,
            num_hidden_layers=n_layer,
            ffn_dim=4 * n_embd,
            num_attention_heads=2,
            max_position_embeddings=context,
            word_embed_proj_dim=n_embd,
            pad_token_id=ids["<pad>"],
            bos_token_id=ids["</s>"],
            eos_token_id=ids["</s>"],
        )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]), _quiet(transformers):
        torch.manual_seed(seed)
        network = transformers.AutoModelForCausalLM.from_config(config, **_float32(transformers))
        network.save_pretrained(out)
        tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **names)
        tokenizer.save_pretrained(out)
    return out


@functools.cache
def _conformance_directory() -> Path:
    """One tiny model per process for the conformance checks (removed at exit)."""
    import atexit
    import shutil

    directory = Path(tempfile.mkdtemp(prefix="collapselab-hf-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return write_tiny_model(directory)


__all__ = [
    "HFCausalLM",
    "check_model_directory",
    "import_transformers",
    "load_network",
    "load_tokenizer",
    "offline",
    "write_tiny_model",
]
