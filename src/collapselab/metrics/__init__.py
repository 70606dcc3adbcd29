"""Metrics: fidelity, tails and diversity, rewards and topics; importing registers them."""

from . import (
    classifier,
    continuous,
    diffusion,
    fluency,
    images,
    reward,
    subliminal,
    supervised,
    tasks,
    text,
    topic,
)

__all__ = [
    "classifier",
    "continuous",
    "diffusion",
    "fluency",
    "images",
    "reward",
    "subliminal",
    "supervised",
    "tasks",
    "text",
    "topic",
]
