"""The core works without torch; neural models then name the pip command."""

import subprocess
import sys

import numpy as np
import pytest

from collapselab import make
from collapselab.errors import MissingDependencyError


class _NoTorch:
    """A meta-path finder that makes ``import torch`` fail as if it were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.mark.parametrize("model_id", ["gpt", "vae"])
def test_missing_torch_names_the_extra(monkeypatch, model_id):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoTorch(), *sys.meta_path])
    model = make("model", model_id)  # building and validating needs no torch
    data = ["some text"] if model_id == "gpt" else np.zeros((4, 8, 8))
    with pytest.raises(MissingDependencyError, match=r'pip install "collapselab\[neural\]"'):
        model.fit(data, rng=np.random.default_rng(0))


def test_registering_models_does_not_import_torch():
    code = (
        "import sys; sys.modules['torch'] = None  # any import of torch fails\n"
        "import collapselab\n"
        "assert 'gpt' in collapselab.list_ids('model')\n"
        "collapselab.make('model', 'gpt', mode='prefix')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_safetensors_weights_round_trip():
    torch = pytest.importorskip("torch")
    from collapselab.neural import torch_generator, weights_from_bytes, weights_to_bytes

    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    weights_from_bytes(b, weights_to_bytes(a))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    g1, g2 = torch_generator(np.random.default_rng(4)), torch_generator(np.random.default_rng(4))
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_truncated_weights_are_rejected():
    torch = pytest.importorskip("torch")
    from collapselab.neural import weights_from_bytes, weights_to_bytes

    blob = weights_to_bytes(torch.nn.Linear(3, 2))
    with pytest.raises(Exception):  # noqa: B017 - safetensors raises its own error type
        weights_from_bytes(torch.nn.Linear(3, 2), blob[:-5])


def test_tied_weights_are_stored_once_and_tied_again():
    torch = pytest.importorskip("torch")
    from collapselab.models.gpt import _network_class
    from collapselab.neural import weights_from_bytes, weights_to_bytes

    net = _network_class()(10, 8, 1, 2, 8)
    other = _network_class()(10, 8, 1, 2, 8)
    weights_from_bytes(other, weights_to_bytes(net))
    for (name, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert other.lm_head.weight is other.wte.weight
