"""Speed of the ``flow``, ``ddpm`` and ``ddpm-images`` models: training and sampling
throughput, and where a diffusion training step spends its time.

For each model at its preset's default size (``bertrand-stability`` for ``flow`` and
``ddpm`` on a 2-D mixture, ``mad-ddpm`` for ``ddpm-images`` with the MLP denoiser on
8 x 8 digits, and the same with ``denoiser: unet``):

* training samples/s: items through ``fit`` per second (steps x batch), the set-up
  (a fit of 0 steps: network construction, data scaling) subtracted;
* sampling samples/s: items drawn per second by ``sample`` (for ``ddpm``, each item
  takes ``sampling_steps`` denoiser passes);
* denoiser share (diffusion models): the time of the denoiser's forward and backward
  passes alone, on batches of the same shape, over the time of the same number of
  training steps: the rest is the scheduler's noising, the optimizer and Python. The
  aim is at least 80%. Scheduler share: ``add_noise`` and the noise draws alone,
  over the same.

Every quantity is measured ``--repeats`` times (at least 5), the models interleaved
round-robin so that a change of machine load touches all alike; min / median / max
are printed. Timings on a shared machine are noisy: compare ratios within one run.

    python benchmarks/bench_diffusion.py [--quick] [--repeats 5] [--threads 1] [--json-out F]

Needs ``pip install "collapselab[neural]"`` (torch, zuko, diffusers).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness import Ratio, finish, parser, repeats


def _configs(quick: bool) -> dict[str, dict[str, Any]]:
    from collapselab.experiment.config import load_config

    bertrand = {a.name: a for a in load_config("bertrand-stability").arm_configs()}
    mad = load_config("mad-ddpm").arm_configs()[0]
    steps = 5 if quick else 100
    flow_params = dict(bertrand["flow-real-0"].model.params)
    ddpm_params = dict(bertrand["ddpm-real-0"].model.params)
    mlp_params = dict(mad.model.params)
    return {
        "flow": {"id": "flow", "params": flow_params, "data": "mixture", "steps": steps},
        "ddpm": {"id": "ddpm", "params": ddpm_params, "data": "mixture", "steps": steps},
        "ddpm-images-mlp": {
            "id": "ddpm-images",
            "params": mlp_params,
            "data": "digits",
            "steps": steps,
        },
        "ddpm-images-unet": {
            "id": "ddpm-images",
            "params": {**mlp_params, "denoiser": "unet", "batch_size": 64},
            "data": "digits",
            "steps": max(steps // 5, 4),
        },
    }


def _data(kind: str) -> np.ndarray:
    from collapselab import make

    if kind == "mixture":
        source = make("data", "blobs", centers=4, noise=1.0, dim=2)
        return source.draw(500, rng=np.random.default_rng(0))
    return make("data", "digits-images").load(n=1000, rng=np.random.default_rng(0)).train


def _timed(function: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


def _step_shares(torch: Any, model: Any, data: np.ndarray, steps: int, train_s: float) -> dict:
    """Time the denoiser's forward + backward and the scheduler's noising alone."""
    network = model.network_
    network.train()
    scheduler = model._training_scheduler()
    batch = min(model.batch_size, len(data))
    x0 = torch.from_numpy(model._forward(data[:batch]))
    generator = torch.Generator().manual_seed(0)
    times = torch.randint(0, model.train_timesteps, (batch,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    noisy = scheduler.add_noise(x0, noise, times)
    start = time.perf_counter()
    for _ in range(steps):
        network.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(network(noisy, times), noise)
        loss.backward()
    denoiser_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        drawn = torch.randn(x0.shape, generator=generator)
        scheduler.add_noise(x0, drawn, times)
    scheduler_s = time.perf_counter() - start
    network.zero_grad(set_to_none=True)
    network.eval()
    return {"denoiser_share": denoiser_s / train_s, "scheduler_share": scheduler_s / train_s}


def measure(torch: Any, spec: dict[str, Any], data: np.ndarray, n_sample: int) -> dict:
    from collapselab import make

    steps = spec["steps"]
    setup_s, _ = _timed(
        lambda: make("model", spec["id"], **{**spec["params"], "steps": 0}).fit(
            data, rng=np.random.default_rng(0)
        )
    )
    fit_s, model = _timed(
        lambda: make("model", spec["id"], **{**spec["params"], "steps": steps}).fit(
            data, rng=np.random.default_rng(0)
        )
    )
    train_s = max(fit_s - setup_s, 1e-9)
    batch = min(model.batch_size, len(data))
    sample_s, _ = _timed(lambda: model.sample(n_sample, rng=np.random.default_rng(1)))
    out = {
        "train_samples_per_s": steps * batch / train_s,
        "sample_samples_per_s": n_sample / sample_s,
    }
    if spec["id"] != "flow":
        out |= _step_shares(torch, model, data, steps, train_s)
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    configs = _configs(args.quick)
    data = {kind: _data(kind) for kind in ("mixture", "digits")}
    n_sample = {"mixture": 50 if args.quick else 1000, "digits": 10 if args.quick else 200}
    for spec in configs.values():  # warm-up: imports, first allocations
        measure(torch, {**spec, "steps": 2}, data[spec["data"]], 10)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    names = list(configs)
    for r in range(repeats(args)):  # interleaved, the order rotated each round
        for name in names[r % len(names) :] + names[: r % len(names)]:
            spec = configs[name]
            runs[name].append(measure(torch, spec, data[spec["data"]], n_sample[spec["data"]]))
    throughput = {
        name: {key: [row[key] for row in rows] for key in rows[0]} for name, rows in runs.items()
    }
    for name, values in throughput.items():
        cells = ", ".join(f"{key} median {np.median(v):.3g}" for key, v in values.items())
        print(f"{name}: {cells}")
    finish(
        "diffusion",
        args,
        [
            Ratio(f"{name}: denoiser forward+backward / training time", values, ">=", 0.8)
            for name in throughput
            if (values := throughput[name].get("denoiser_share")) is not None
        ],
        settings={"threads": args.threads, "steps": {n: c["steps"] for n, c in configs.items()}},
        extra={"throughput": throughput},
    )


if __name__ == "__main__":
    main()
