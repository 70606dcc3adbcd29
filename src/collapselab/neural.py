"""Shared helpers of the neural (PyTorch) models: import, randomness, precision, weights.

Nothing here imports torch at module import time: the core package works without
it, and a neural model used without it raises
:class:`~collapselab.errors.MissingDependencyError` naming
``pip install "collapselab[neural]"``.

* :func:`import_torch` is the one place that imports torch.
* :func:`torch_generator` derives a :class:`torch.Generator` from the numpy ``rng``
  passed to ``fit`` (no global seeding anywhere).
* :func:`use_bf16` decides whether a network of a given width trains in bfloat16
  (``precision="auto"``: only on CPUs with native bf16 instructions, AVX512-BF16 or
  AMX, and only from :data:`AUTO_BF16_MIN_WIDTH` up, where it was measured faster;
  elsewhere bf16 is emulated or its casts cost more than they save);
  :func:`autocast` runs a block in bfloat16 when asked.
* :func:`weights_to_bytes` / :func:`weights_from_bytes` (and the file versions) store
  a module's ``state_dict`` as safetensors: tensors only, never pickled code. Models
  pickle their weights this way, so the runner's checksummed checkpoints hold them.
  :func:`save_weights` / :func:`load_weights` also write and read a torch
  ``state_dict`` file (``.pt``), loaded with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import require
from .rng import child_seed

#: Values of the ``precision`` parameter of neural models.
PRECISIONS = ("auto", "bf16", "fp32")


def import_torch(feature: str) -> Any:
    """``torch``, or one line naming ``pip install "collapselab[neural]"``."""
    return require("torch", "neural", feature)


def torch_generator(rng: np.random.Generator) -> Any:
    """A CPU :class:`torch.Generator` seeded from ``rng`` (advances ``rng`` by one draw)."""
    torch = import_torch("a neural model")
    return torch.Generator().manual_seed(child_seed(rng))


def bf16_supported() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    torch = import_torch("a neural model")
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


#: Narrowest network (``n_embd``) that ``precision="auto"`` trains in bfloat16 on a CPU
#: with native bf16. Measured on an AVX512-BF16 CPU (torch 2.13, one thread, attention
#: kept in float32): bf16 training took 0.55-0.7x the time of fp32 at widths 64-256,
#: and about the same (0.9-1.2x, noisy) at widths 16-32, where fp32 is the exact choice.
AUTO_BF16_MIN_WIDTH = 64


def use_bf16(precision: str, width: int | None = None) -> bool:
    """Whether ``precision`` (one of :data:`PRECISIONS`) means bfloat16 autocast here
    for a network ``width`` wide: ``"bf16"`` always; ``"auto"`` on CPUs with native
    bf16, for widths of at least :data:`AUTO_BF16_MIN_WIDTH` where ``width`` is given."""
    if precision == "auto":
        wide = width is None or width >= AUTO_BF16_MIN_WIDTH
        return wide and bf16_supported()
    return precision == "bf16"


def autocast(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CPU when ``enabled``; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    torch = import_torch("a neural model")
    return torch.autocast("cpu", dtype=torch.bfloat16)


@contextlib.contextmanager
def matching_threads() -> Iterator[None]:
    """Run torch with no more threads than the thread-pool cap in force.

    The runner caps the BLAS and OpenMP pools with ``threadpoolctl`` (one thread per
    worker process, several processes side by side). torch keeps its own count, fixed
    when it is first imported, so torch imported under the cap still starts one thread
    per core and oversubscribes the machine. The cap is read as the smallest thread
    count among the loaded pools (numpy's BLAS is always loaded).
    """
    torch = import_torch("a neural model")
    from threadpoolctl import threadpool_info

    limits = [i["num_threads"] for i in threadpool_info()]
    before = torch.get_num_threads()
    target = min([before, *limits])
    if target != before:
        torch.set_num_threads(target)
    try:
        yield
    finally:
        if target != before:
            torch.set_num_threads(before)


def _safetensors() -> Any:
    return require("safetensors.torch", "neural", "saving neural model weights")


def _unique_state(module: Any) -> dict[str, Any]:
    """The module's tensors by name, each shared tensor (tied embeddings) once."""
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    seen: set[int] = set()
    unique = {}
    for name, tensor in state.items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            unique[name] = tensor
    return unique


def weights_to_bytes(module: Any) -> bytes:
    """The module's ``state_dict`` as safetensors bytes (tied tensors stored once)."""
    # safetensors refuses tensors that share memory (tied embeddings): keep the first name.
    return _safetensors().save(_unique_state(module))


def weights_from_bytes(module: Any, blob: bytes) -> None:
    """Load safetensors bytes into ``module`` (missing names must be tied to loaded ones)."""
    _load_state(module, _safetensors().load(blob))


def _load_state(module: Any, state: dict[str, Any]) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"unexpected tensors in the saved weights: {unexpected}")
    expected_tied = set(getattr(module, "tied_parameters", ()))
    if set(missing) - expected_tied:
        raise ValueError(f"tensors missing from the saved weights: {sorted(missing)}")


__all__ = [
    "AUTO_BF16_MIN_WIDTH",
    "PRECISIONS",
    "autocast",
    "bf16_supported",
    "import_torch",
    "matching_threads",
    "torch_generator",
    "use_bf16",
    "weights_from_bytes",
    "weights_to_bytes",
]
