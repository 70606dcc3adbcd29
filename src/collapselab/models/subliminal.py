"""Subliminal learning (Cloud et al. 2025, the MNIST experiment) as a chain of students.

A multilayer perceptron with ``n_classes`` class logits and ``n_aux`` auxiliary
logits. What it learns depends on the labels it is given:

* class labels (y of shape (n,), integers): a *teacher*, trained by cross-entropy
  on the class logits only; the auxiliary logits are never trained;
* auxiliary targets (y of shape (n, n_aux), floats): a *student*, distilled on the
  auxiliary logits only (the KL divergence from the target's softmax).

``sample(n)`` returns ``(uniform-noise images, the model's auxiliary logits on
them)``. So in a chain under ``replace``, generation 0 is the teacher fitted on
real digits and generation 1 a student that never sees a digit or a class logit;
the ``accuracy`` metric scores each on the real test digits through the class
logits. A student that starts from the teacher's initial weights
(``student_init: same``) learns to classify digits well above chance; one from a
different initialization stays near chance.

Across families and generations (Cloud et al.: traits pass within a model family and
fail across families): a student can be of another architecture than its teacher
(``student_hidden``: wider or deeper; ``student_activation``: tanh in place of ReLU),
the teacher can carry a second trait beside its class readout (``trait``: after
learning the digits it is fine-tuned to prefer one class on noise images, which the
``preference`` metric measures), and a longer chain distils the student's student:
generation t >= 2 is distilled on generation t-1's auxiliary logits, from the same
initialization as the teacher under ``student_init: same``.

Randomness: the initial weights come from a stream keyed by the run's root seed
and the chain's seed only (the fit stream's :class:`~numpy.random.SeedSequence`
with its generation coordinate dropped), so the generation-1 student with
``student_init: same`` starts exactly where the generation-0 teacher started.

Every array carries a leading seed axis: the per-seed model is the batched model
with one seed, and the batched model derives each seed's streams exactly as the
per-seed path gets them, so both paths compute the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar, Self

import numpy as np
from threadpoolctl import threadpool_limits

from ..core import (
    NONE,
    BatchedModel,
    Constraint,
    DataKind,
    GenerativeModel,
    InstanceOf,
    Interval,
    Options,
    SeedBatch,
)
from ..errors import DataError, InvalidParameterError, parameter_message
from ..registry import register
from ..rng import BATCH

#: Spawn-key word of the initial-weights stream, beside the seed coordinate.
INIT_KEY = 0x1A17

Params = list[tuple[np.ndarray, np.ndarray]]  # per layer: W (S, in, out), b (S, 1, out)


# ---------------------------------------------------------------------------
# Seed streams
# ---------------------------------------------------------------------------


def seed_generators(rng: np.random.Generator, n_seeds: int) -> list[np.random.Generator]:
    """One generator per seed.

    On the batched path the runner passes the stream of seed coordinate ``BATCH``;
    seed ``s`` then gets the stream that the per-seed path passes to seed ``s``
    (the same spawn key with ``s`` in place of ``BATCH``). Otherwise the seeds' streams
    are spawned from ``rng``.
    """
    sequence = getattr(rng.bit_generator, "seed_seq", None)
    if isinstance(sequence, np.random.SeedSequence) and sequence.spawn_key[:1] == (BATCH,):
        rest = sequence.spawn_key[1:]
        return [
            np.random.default_rng(np.random.SeedSequence(sequence.entropy, spawn_key=(s, *rest)))
            for s in range(n_seeds)
        ]
    if n_seeds == 1:
        return [rng]
    return [np.random.default_rng(child) for child in rng.bit_generator.seed_seq.spawn(n_seeds)]


def init_generators(rng: np.random.Generator, n_seeds: int) -> list[np.random.Generator]:
    """Generators of the initial weights: keyed by (root seed, seed), not by generation."""
    out = []
    for generator in seed_generators(rng, n_seeds):
        sequence = generator.bit_generator.seed_seq
        key = (*sequence.spawn_key[:1], INIT_KEY)
        out.append(np.random.default_rng(np.random.SeedSequence(sequence.entropy, spawn_key=key)))
    return out


# ---------------------------------------------------------------------------
# The network: batched layers, hand-written backpropagation, Adam
# ---------------------------------------------------------------------------


def init_params(generators: list[np.random.Generator], sizes: list[int]) -> Params:
    """PyTorch's default ``nn.Linear`` initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    params = []
    for fan_in, fan_out in pairwise(sizes):
        bound = 1.0 / np.sqrt(fan_in)
        w = np.stack([g.uniform(-bound, bound, (fan_in, fan_out)) for g in generators])
        b = np.stack([g.uniform(-bound, bound, (1, fan_out)) for g in generators])
        params.append((w.astype(np.float32), b.astype(np.float32)))
    return params


#: The hidden layers' activations.
ACTIVATIONS = ("relu", "tanh")


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    """The activation of pre-activations ``z``, in place."""
    if activation == "relu":
        return np.maximum(z, 0, out=z)
    return np.tanh(z, out=z)


def forward(params: Params, x: np.ndarray, activation: str = "relu") -> list[np.ndarray]:
    """Inputs of every layer and the logits: ``[x, h_1, ..., h_L, logits]`` (S, n, .).

    Pixels in [0, 1] enter as 2 x - 1, centred on zero (torchvision's
    ``Normalize(0.5, 0.5)``): uniform noise then has no common offset that would
    swamp the first layer, and the subliminal signal is much stronger.
    """
    activations = [np.asarray(x, dtype=np.float32) * 2 - 1]
    for i, (w, b) in enumerate(params):
        z = np.matmul(activations[-1], w) + b
        activations.append(_activate(z, activation) if i < len(params) - 1 else z)
    return activations


def logits(
    params: Params, x: np.ndarray, batch: int = 4096, activation: str = "relu"
) -> np.ndarray:
    """Output logits (S, n, outputs), computed in slices to bound memory."""
    parts = [
        forward(params, x[:, i : i + batch], activation)[-1] for i in range(0, x.shape[1], batch)
    ]
    return np.concatenate(parts, axis=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def output_gradient(out: np.ndarray, target: np.ndarray, n_classes: int) -> np.ndarray:
    """d loss / d logits for a minibatch (S, B, outputs), the loss a mean over the batch.

    Integer targets (S, B): cross-entropy on the class logits only. Float targets
    (S, B, n_aux): KL(softmax(target) || softmax(aux logits)) on the auxiliary
    logits only. The other logits get no gradient, as in Cloud et al.
    """
    grad = np.zeros_like(out)
    batch = out.shape[1]
    if target.ndim == 2:
        p = _softmax(out[..., :n_classes])
        np.put_along_axis(
            p, target[..., None], np.take_along_axis(p, target[..., None], -1) - 1, -1
        )
        grad[..., :n_classes] = p / batch
    else:
        grad[..., n_classes:] = (_softmax(out[..., n_classes:]) - _softmax(target)) / batch
    return grad


def gradients(
    params: Params, x: np.ndarray, target: np.ndarray, n_classes: int, activation: str = "relu"
) -> list[np.ndarray]:
    """Backpropagation: the loss's gradients ``[dW_1, db_1, ..., dW_L, db_L]`` on a minibatch."""
    activations = forward(params, x, activation)
    grad = output_gradient(activations[-1], target, n_classes)
    grads = []
    for i in range(len(params) - 1, -1, -1):
        grads.append(np.sum(grad, axis=1, keepdims=True))  # bias
        grads.append(np.matmul(activations[i].transpose(0, 2, 1), grad))  # weights
        if i > 0:
            grad = np.matmul(grad, params[i][0].transpose(0, 2, 1))
            if activation == "relu":
                grad *= activations[i] > 0
            else:  # tanh' = 1 - tanh^2
                grad *= 1 - activations[i] * activations[i]
    return grads[::-1]


def train(
    params: Params,
    x: np.ndarray,
    target: np.ndarray,
    generators: list[np.random.Generator],
    *,
    n_classes: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    activation: str = "relu",
) -> Params:
    """Adam on shuffled minibatches, every seed in lockstep (each with its own order)."""
    # Products this small gain nothing from BLAS threads, and threads that spin while
    # other processes hold the cores slow training down many times over.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(
            params, x, target, generators, n_classes, epochs, batch_size, learning_rate, activation
        )


def _train(
    params: Params,
    x: np.ndarray,
    target: np.ndarray,
    generators: list[np.random.Generator],
    n_classes: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    activation: str,
) -> Params:
    n_seeds, n = x.shape[:2]
    rows = np.arange(n_seeds)[:, None]
    flat = [p for layer in params for p in layer]
    first = [np.zeros_like(p) for p in flat]
    second = [np.zeros_like(p) for p in flat]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    for _ in range(epochs):
        order = np.stack([g.permutation(n) for g in generators])
        for start in range(0, n, batch_size):
            index = order[:, start : start + batch_size]
            grads = gradients(params, x[rows, index], target[rows, index], n_classes, activation)
            step += 1
            correction1, correction2 = 1 - beta1**step, 1 - beta2**step
            for p, g, m, v in zip(flat, grads, first, second, strict=True):
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                p -= (learning_rate / correction1) * m / (np.sqrt(v / correction2) + eps)
    return params


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


def _hidden_ok(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in value
    )


class _Network:
    """What the per-seed and batched models share: parameters, fit and sample."""

    parameter_constraints: ClassVar[dict[str, list[Constraint]]] = {
        "hidden": [InstanceOf((list, tuple), "a list of positive ints")],
        "n_aux": [Interval(1, None, integer=True)],
        "n_classes": [Interval(2, None, integer=True)],
        "epochs": [Interval(1, None, integer=True)],
        "distill_epochs": [Interval(1, None, integer=True)],
        "batch_size": [Interval(1, None, integer=True)],
        "learning_rate": [Interval(0, None, closed="neither")],
        "student_init": [Options(("same", "different"))],
        "activation": [Options(ACTIVATIONS)],
        "student_hidden": [NONE, InstanceOf((list, tuple), "a list of positive ints")],
        "student_activation": [NONE, Options(ACTIVATIONS)],
        "trait": [NONE, Interval(0, None, integer=True)],
        "trait_epochs": [Interval(1, None, integer=True)],
    }

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (256, 256),
        n_aux: int = 3,
        n_classes: int = 10,
        epochs: int = 5,
        distill_epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        student_init: str = "same",
        activation: str = "relu",
        student_hidden: Sequence[int] | None = None,
        student_activation: str | None = None,
        trait: int | None = None,
        trait_epochs: int = 1,
    ) -> None:
        self.hidden = hidden
        self.n_aux = n_aux
        self.n_classes = n_classes
        self.epochs = epochs
        self.distill_epochs = distill_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.student_init = student_init
        self.activation = activation
        self.student_hidden = student_hidden
        self.student_activation = student_activation
        self.trait = trait
        self.trait_epochs = trait_epochs

    def _architecture(self, distill: bool) -> tuple[list[int], str]:
        """Hidden widths and activation of a teacher (``distill`` false) or a student."""
        hidden = self.hidden if not distill or self.student_hidden is None else self.student_hidden
        activation = (
            self.activation
            if not distill or self.student_activation is None
            else self.student_activation
        )
        return list(hidden), activation

    def _sizes(self, n_features: int, hidden: Sequence[int]) -> list[int]:
        return [n_features, *hidden, self.n_classes + self.n_aux]

    def _fit_arrays(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
        """Fit on (S, n, D) inputs and (S, n) labels or (S, n, n_aux) targets."""
        if x.ndim != 3 or x.shape[1] == 0:
            raise DataError(
                f"subliminal-mlp needs non-empty images as rows (n, D); got {x.shape[1:]}"
            )
        n_seeds, n = x.shape[:2]
        distill = y.ndim == 3
        if distill and y.shape[2] != self.n_aux:
            raise DataError(
                f"distillation targets must have n_aux = {self.n_aux} columns; got {y.shape[2]}"
            )
        if not distill:
            if y.shape != (n_seeds, n) or not np.issubdtype(y.dtype, np.integer):
                raise DataError(
                    "subliminal-mlp trains on class labels (integers, one per image) or on "
                    f"auxiliary targets (n, {self.n_aux}); got labels of shape {y.shape[1:]} "
                    f"and type {y.dtype}"
                )
            if y.min() < 0 or y.max() >= self.n_classes:
                raise DataError(
                    f"class labels must lie in 0..{self.n_classes - 1}; got {y.min()}..{y.max()}"
                    " (set the model parameter 'n_classes')"
                )
        fit_streams = seed_generators(rng, n_seeds)
        if distill and self.student_init == "different":
            start = fit_streams  # this generation's own stream, not the teacher's weights
        else:
            start = init_generators(rng, n_seeds)
        hidden, activation = self._architecture(distill)
        params = init_params(start, self._sizes(x.shape[2], hidden))
        common = {
            "n_classes": self.n_classes,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "activation": activation,
        }
        self.params_ = train(
            params,
            x,
            np.asarray(y, dtype=np.float32) if distill else np.asarray(y, dtype=np.intp),
            fit_streams,
            epochs=self.distill_epochs if distill else self.epochs,
            **common,
        )
        if not distill and self.trait is not None:
            # The second trait: fine-tune toward class `trait` on as many noise images as
            # there are digits, the digits kept in the mix so the readout stays.
            noise = np.stack([g.random(x.shape[1:], dtype=np.float32) for g in fit_streams])
            preferred = np.full((n_seeds, n), self.trait, dtype=np.intp)
            self.params_ = train(
                self.params_,
                np.concatenate([np.asarray(x, dtype=np.float32), noise], axis=1),
                np.concatenate([np.asarray(y, dtype=np.intp), preferred], axis=1),
                fit_streams,
                epochs=self.trait_epochs,
                **common,
            )
        self.activation_ = activation
        self.n_features_in_ = x.shape[2]

    def _sample_arrays(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform-noise images (S, n, D) and the auxiliary logits on them (S, n, n_aux).

        The images are stored in float16: they are the bulk of a generation's output
        (MNIST: 784 values per image), and half precision resolves U(0, 1) to 1/2048.
        """
        generators = seed_generators(rng, self.params_[0][0].shape[0])
        images = np.stack(
            [g.random((n, self.n_features_in_), dtype=np.float32) for g in generators]
        ).astype(np.float16)
        aux = logits(self.params_, images, activation=self.activation_)[..., self.n_classes :]
        return images, aux

    def validate_params(self) -> None:
        super().validate_params()  # type: ignore[misc]
        for name in ("hidden", "student_hidden"):
            value = getattr(self, name)
            if (value is not None or name == "hidden") and not _hidden_ok(value):
                raise InvalidParameterError(
                    parameter_message(type(self).__name__, name, "a list of positive ints", value)
                )
        if self.trait is not None and self.trait >= self.n_classes:
            raise InvalidParameterError(
                parameter_message(
                    type(self).__name__, "trait", f"a class in 0..{self.n_classes - 1}", self.trait
                )
            )
        reshaped = self.student_hidden is not None and list(self.student_hidden) != list(
            self.hidden
        )
        if reshaped and self.student_init == "same":
            raise InvalidParameterError(
                parameter_message(
                    type(self).__name__,
                    "student_init",
                    "'different' for a student of another shape than its teacher (it "
                    "cannot start from the teacher's initial weights)",
                    self.student_init,
                )
            )


@register("model", "subliminal-mlp")
class SubliminalMLP(_Network, GenerativeModel):
    """An MLP with class and auxiliary logits: teacher on labels, student on auxiliary logits.

    Parameters
    ----------
    hidden : list of int, default (256, 256)
        Hidden layer widths (ReLU); the input width is the images' pixel count.
    n_aux : int, default 3
        m, the number of auxiliary logits (never trained by the teacher).
    n_classes : int, default 10
    epochs : int, default 5
        Passes over the real training data when fitted on class labels (the teacher).
    distill_epochs : int, default 20
        Passes over the noise images when fitted on auxiliary targets (the student).
        The student learns more the more noise images and passes it gets.
    batch_size : int, default 64
    learning_rate : float, default 1e-3
        Adam's step size.
    student_init : {"same", "different"}, default "same"
        Where a student starts: the initial weights of the teacher of the same seed,
        or weights drawn from its own generation's stream.
    activation : {"relu", "tanh"}, default "relu"
        The teacher's hidden activation.
    student_hidden : list of int, optional
        A student's hidden widths (another family: wider or deeper); by default the
        teacher's. A student of another shape needs ``student_init: different``.
    student_activation : {"relu", "tanh"}, optional
        A student's activation; by default the teacher's.
    trait : int, optional
        A second trait: after the digits, the teacher is fine-tuned for
        ``trait_epochs`` passes on the digits mixed with as many uniform-noise images
        labelled ``trait``, so that it prefers that class on noise.
    trait_epochs : int, default 1
    """

    kind = DataKind.SUPERVISED
    provides: ClassVar[frozenset[str]] = frozenset({"class_logits"})

    def fit(self, data: Any, *, rng: np.random.Generator) -> Self:
        x, y = _pair(data)
        self._fit_arrays(x[None], y[None], rng)
        return self

    def sample(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        images, aux = self._sample_arrays(n, rng)
        return images[0], aux[0]

    def log_prob(self, data: Any) -> np.ndarray:
        """log p(label | image) for class labels; for auxiliary targets, the negative
        cross-entropy of the model's auxiliary softmax against the target's."""
        x, y = _pair(data)
        out = logits(self.params_, x[None], activation=self.activation_)[0]
        if y.ndim == 2:
            return np.sum(_softmax(y) * _log_softmax(out[:, self.n_classes :]), axis=-1)
        log_p = _log_softmax(out[:, : self.n_classes])
        return np.take_along_axis(log_p, np.asarray(y, dtype=np.intp)[:, None], -1)[:, 0]

    def class_logits(self, x: np.ndarray) -> np.ndarray:
        """The class logits (n, n_classes) of images (n, D)."""
        return logits(self.params_, np.asarray(x)[None], activation=self.activation_)[
            0, :, : self.n_classes
        ]


class BatchedSubliminalMLP(_Network, BatchedModel):
    """All seeds' networks at once: each weight matrix carries a leading seed axis."""

    def fit(self, data: tuple[SeedBatch, SeedBatch], *, rng: np.random.Generator) -> Self:
        self._fit_arrays(np.asarray(data[0].array), np.asarray(data[1].array), rng)
        return self

    def sample(
        self, n: int, *, rng: np.random.Generator, decoding: Any = None
    ) -> tuple[SeedBatch, SeedBatch]:
        images, aux = self._sample_arrays(n, rng)
        return SeedBatch(images), SeedBatch(aux)

    def class_logits(self, x: np.ndarray) -> np.ndarray:
        """Class logits (S, n, n_classes) of each seed's images (S, n, D)."""
        return logits(self.params_, np.asarray(x), activation=self.activation_)[
            ..., : self.n_classes
        ]

    def unbatch(self, seed: int) -> SubliminalMLP:
        """Seed ``seed``'s network as a plain :class:`SubliminalMLP`."""
        model = SubliminalMLP(**self.get_params())
        model.params_ = [(w[seed : seed + 1], b[seed : seed + 1]) for w, b in self.params_]
        model.activation_ = self.activation_
        model.n_features_in_ = self.n_features_in_
        return model


def _pair(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple) or len(data) != 2:
        raise DataError(
            "subliminal-mlp trains on supervised pairs (images, labels); got " + type(data).__name__
        )
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim != 2 or len(y) != len(x):
        raise DataError(
            f"images must be rows (n, D) with one label each; got {x.shape} and {y.shape}"
        )
    return x, y


SubliminalMLP.batched_class = BatchedSubliminalMLP
