"""Pieces shared by the language models (``gpt``, ``hf-causal-lm``; ``ngram`` for
:func:`documents`).

* :class:`DocumentScores` turns a model's per-document target scores into the three
  scoring methods the text metrics read.

* :func:`documents` checks text data (a non-empty list of strings);
  :func:`lr_schedule` is the learning-rate factor (warm-up, cosine decay).
* :func:`scoring_windows` cuts framed documents into windows of at most ``block``
  inputs, overlapping by half, so that every target token is scored once with as
  much context as the window allows; :func:`window_batch` pads a chunk of them into
  one array and :func:`scatter_scores` writes the scored targets back per document.
* :func:`train_next_token` trains a network on next-token prediction over one token
  stream: AdamW (weight decay on matrices only), warm-up then cosine decay,
  gradient clipping, windows drawn from ``rng``.
* :func:`prompts` gives the prompts and the number of new tokens of a ``sample``
  call, and :func:`active_decoding` the decoding controls that change anything.
* :func:`draw_tokens` draws one token per row from next-token probabilities with
  pre-drawn uniforms, after masking tokens that are never text and applying the
  decoding controls (the same draw with or without a key/value cache).
* :func:`beam_search` finds each prompt's most likely continuation with a beam of
  ``beams`` hypotheses (Hugging Face's rules: length penalty, early stop), driven by
  a model's ``advance`` function, so both models share it with their own KV cache.

Nothing here imports torch at import time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..decoding import Decoding
from ..errors import DataError

#: (window of token ids, first counted target in it, document, offset of that target)
Window = tuple[np.ndarray, int, int, int]


def documents(data: Any) -> list[str]:
    """``data`` as a list of documents, or a one-line :class:`DataError`."""
    if isinstance(data, str) or not hasattr(data, "__len__"):
        raise DataError("text data must be a list of documents (strings)")
    docs = list(data)
    if not docs:
        raise DataError("text data is empty: no documents")
    bad = next((d for d in docs if not isinstance(d, str)), None)
    if bad is not None:
        raise DataError(f"text documents must be strings; got {type(bad).__name__}")
    return docs


def lr_schedule(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 0.1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))


class DocumentScores:
    """``document_token_log_probs``, ``token_log_probs`` and ``log_prob`` from a
    model's ``_target_log_probs(docs)``: per document, the log-probability of each of
    its tokens and of its end."""

    def _target_log_probs(self, docs: list[str]) -> list[np.ndarray]:
        raise NotImplementedError

    def document_token_log_probs(self, data: Any) -> list[np.ndarray]:
        """Per document, the log-probability of each of its tokens and its end."""
        return self._target_log_probs(documents(data))

    def token_log_probs(self, data: Any) -> np.ndarray:
        """Log-probability of every token of every document (its end included), in order."""
        return np.concatenate(self._target_log_probs(documents(data)))

    def log_prob(self, data: Any) -> np.ndarray:
        """Log-probability of each whole document, its end included."""
        return np.array([lp.sum() for lp in self._target_log_probs(documents(data))])


def scoring_windows(framed: list[np.ndarray], block: int) -> tuple[list[Window], list[np.ndarray]]:
    """Windows over each framed document (start token, ids, end token) and, per
    document, an empty array for its target scores (every token after the first).

    A document longer than ``block`` is scored in windows overlapping by half; each
    target is counted in the first window that reaches it.
    """
    stride = max(1, block // 2)
    rows: list[Window] = []
    out = []
    for d, seq in enumerate(framed):
        out.append(np.empty(len(seq) - 1))
        done, a = 0, 0  # targets seq[1..done] counted; window inputs start at a
        while done < len(seq) - 1:
            stop = min(a + block, len(seq) - 1)
            rows.append((seq[a : stop + 1], done - a, d, done))
            done, a = stop, a + stride
    return rows, out


def window_batch(chunk: list[Window], pad: int) -> np.ndarray:
    """The windows of ``chunk`` as one (rows, width + 1) array, padded after the real
    tokens with ``pad`` (causal attention never lets a real token see the padding)."""
    width = max(len(r[0]) - 1 for r in chunk)
    idx = np.full((len(chunk), width + 1), pad, dtype=np.int64)
    for j, (seq, *_) in enumerate(chunk):
        idx[j, : len(seq)] = seq
    return idx


def scatter_scores(out: list[np.ndarray], chunk: list[Window], picked: np.ndarray) -> None:
    """Write each window's counted target scores (``picked``: rows x width) into ``out``."""
    for j, (seq, first, d, offset) in enumerate(chunk):
        values = picked[j, first : len(seq) - 1]
        out[d][offset : offset + len(values)] = values


def active_decoding(decoding: Any) -> Decoding | None:
    """The decoding controls of a config, or ``None`` where they change nothing."""
    resolved = Decoding.from_config(decoding)
    return None if resolved is None or resolved.is_identity else resolved


def prompts(
    mode: str, prefixes: list[np.ndarray] | None, n: int, prefix_steps: int, free_steps: int
) -> tuple[list[np.ndarray], int]:
    """Prompts of ``n`` samples and how many tokens to generate after each: in
    ``prefix`` mode the prefixes in turn and ``prefix_steps``; in ``free`` mode empty
    prompts and ``free_steps``."""
    if mode == "prefix":
        assert prefixes is not None
        return [prefixes[i % len(prefixes)] for i in range(n)], prefix_steps
    return [np.zeros(0, dtype=np.int64)] * n, free_steps


def draw_tokens(
    probs: np.ndarray,
    uniforms: np.ndarray,
    decoding: Decoding | None,
    masked: np.ndarray,
) -> np.ndarray:
    """One token id per row of ``probs`` (rows x at least ``len(masked)``).

    Tokens where ``masked`` is true get probability 0 (never text, or the end token
    when lengths are fixed); the rest are renormalized or passed through ``decoding``
    (temperature, top-k, top-p), then inverted at ``uniforms`` (one per row).
    """
    p = probs[:, : len(masked)].copy()
    p[:, masked] = 0.0
    p = decoding.apply(p) if decoding is not None else p / p.sum(axis=1, keepdims=True)
    cdf = np.cumsum(p, axis=1)
    token = (cdf < uniforms[:, None] * cdf[:, -1:]).sum(axis=1)
    return np.minimum(token, p.shape[1] - 1)


def masked_log_probs(log_probs: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Next-token log-probabilities with the ``masked`` tokens removed and the rest
    renormalized (what :func:`draw_tokens` samples from, in logs)."""
    logp = np.array(log_probs[:, : len(masked)], dtype=float)
    logp[:, masked] = -np.inf
    top = logp.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return logp - top - np.log(np.exp(logp - top).sum(axis=1, keepdims=True))


def beam_search(
    advance: Callable[[np.ndarray | None, np.ndarray | None], np.ndarray],
    steps: int,
    *,
    beams: int,
    length_penalty: float,
    masked: np.ndarray,
    end: int | None,
    fill: int,
) -> np.ndarray:
    """The best continuation of at most ``steps`` tokens after each prompt, by beam search.

    ``advance(None, None)`` returns the next-token log-probabilities (prompts x
    vocabulary) after each prompt; ``advance(parents, tokens)`` keeps the rows
    ``parents`` of the last call (in that order, repeats allowed), appends
    ``tokens`` (one per kept row) and returns the next-token log-probabilities of
    each new row. ``masked`` tokens are removed (the rest renormalized, as in
    sampling). ``end`` (``None`` when the end token is masked: fixed lengths) ends
    a hypothesis. A continuation of ``m`` tokens (its end included) with
    log-probability ``L`` scores ``L / m ** length_penalty``.

    Each step extends every running hypothesis by every token and keeps the
    ``2 * beams`` best candidates per prompt (by log-probability, ties by lower
    candidate index): those ending with ``end`` among the first ``beams`` are
    finished, and the first ``beams`` others run on. A prompt is done when it has
    ``beams`` finished hypotheses and its best running one, scored at its current
    length, cannot beat the worst of them; hypotheses still running after ``steps``
    count as finished (Hugging Face ``generate``'s rules with ``early_stopping=False``).

    Returns
    -------
    numpy.ndarray
        (prompts, steps) token ids of the best hypothesis of each prompt, padded
        after its end with ``fill``.
    """
    logp = masked_log_probs(advance(None, None), masked)
    n, vocabulary = logp.shape
    prompt = np.arange(n)[:, None]
    scores = np.zeros((n, 1))  # log-probabilities of the running hypotheses
    history = np.zeros((n, 1, 0), dtype=np.int64)  # their tokens
    finished = np.full((n, beams), -np.inf)  # the best finished scores, descending
    best = np.full((n, steps), fill, dtype=np.int64)
    best_score = np.full(n, -np.inf)
    done = np.zeros(n, dtype=bool)
    for step in range(steps):
        length = step + 1
        flat = (scores[:, :, None] + logp.reshape(n, -1, vocabulary)).reshape(n, -1)
        width = min(2 * beams, flat.shape[1])
        top = np.argpartition(-flat, width - 1, axis=1)[:, :width]
        top_scores = np.take_along_axis(flat, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        parent, token = np.divmod(top, vocabulary)
        keep = np.isfinite(top_scores)
        if end is not None:
            ends = keep & (token == end)
            finishing = ends & (np.arange(width) < beams) & ~done[:, None]
            final = np.where(finishing, top_scores / length**length_penalty, -np.inf)
            sequences = np.concatenate([history[prompt, parent], token[:, :, None]], axis=2)
            _keep_best(best, best_score, final, sequences, fill)
            finished = -np.sort(-np.concatenate([finished, final], axis=1), axis=1)[:, :beams]
            keep &= ~ends
        chosen = np.argsort(~keep, axis=1, kind="stable")[:, : min(beams, width)]
        scores = np.where(
            np.take_along_axis(keep, chosen, axis=1),
            np.take_along_axis(top_scores, chosen, axis=1),
            -np.inf,
        )
        parent = np.take_along_axis(parent, chosen, axis=1)
        token = np.take_along_axis(token, chosen, axis=1)
        rows = prompt * history.shape[1] + parent  # rows of the last advance call
        history = np.concatenate([history[prompt, parent], token[:, :, None]], axis=2)
        if end is not None:
            running = scores.max(axis=1) / length**length_penalty
            done |= np.isfinite(finished[:, -1]) & (running <= finished[:, -1])
            if done.all():
                break
        if step < steps - 1:
            logp = masked_log_probs(advance(rows.ravel(), token.ravel()), masked)
    else:  # hypotheses still running after ``steps`` count as finished
        final = np.where(done[:, None], -np.inf, scores / steps**length_penalty)
        _keep_best(best, best_score, final, history, fill)
    return best


def _keep_best(
    best: np.ndarray, best_score: np.ndarray, scores: np.ndarray, sequences: np.ndarray, fill: int
) -> None:
    """Where a prompt's best candidate (``scores``: prompts x candidates) beats its best
    so far, make it the best: ``sequences[prompt, candidate]``, padded with ``fill``."""
    j = scores.argmax(axis=1)
    value = scores[np.arange(len(j)), j]
    better = np.flatnonzero(value > best_score)
    best_score[better] = value[better]
    best[better] = fill
    best[better, : sequences.shape[2]] = sequences[better, j[better]]


def train_next_token(
    network: Any,
    forward: Callable[[Any], Any],
    stream: np.ndarray,
    rng: np.random.Generator,
    *,
    steps: int,
    batch_size: int,
    block_size: int,
    learning_rate: float,
    weight_decay: float,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    device: Any = None,
) -> np.ndarray:
    """Train ``network`` to predict each next token of ``stream``; the loss (nats per
    token) at each step.

    ``forward(x)`` returns the logits (batch, time, vocabulary) of token ids ``x``;
    each step takes ``batch_size`` windows of ``block_size + 1`` tokens at offsets
    drawn from ``rng`` (all up front). The optimizer is AdamW with weight decay on
    matrices only (decaying gains, biases or norms hurts small models), the learning
    rate follows :func:`lr_schedule` (a tenth of the steps to warm up) and gradients
    are clipped to norm 1. No gradient is left on the network afterwards.
    """
    from ..neural import import_torch

    torch = import_torch("training a language model")
    network.train()
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=learning_rate,
        betas=(0.9, 0.99),
    )
    t = min(block_size, len(stream) - 1)
    data = torch.from_numpy(stream).to(device)
    offsets = torch.arange(t + 1, device=device)
    starts = rng.integers(0, len(stream) - t, size=(steps, batch_size))
    warmup = max(1, steps // 10)
    losses = np.empty(steps)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * lr_schedule(step, warmup, steps)
        window = data[torch.from_numpy(starts[step]).to(device)[:, None] + offsets]
        x, y = window[:, :-1], window[:, 1:]
        with autocast():
            logits = forward(x)
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        losses[step] = loss.item()
    optimizer.zero_grad(set_to_none=True)  # no gradients kept with the model
    network.eval()
    return losses
