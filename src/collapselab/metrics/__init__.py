"""Metrics: fidelity, tails and diversity, rewards and topics; importing registers them."""

from . import continuous, images, reward, subliminal, supervised, tasks, text, topic

__all__ = [
    "continuous",
    "images",
    "reward",
    "subliminal",
    "supervised",
    "tasks",
    "text",
    "topic",
]
