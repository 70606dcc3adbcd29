"""Declared scores of items, shared by curators and metrics: rewards and topics.

A reward or a topic is data in a config, never code, and one function here evaluates
it, so a curator that chooses by a reward and the metric that measures the same
reward cannot disagree.

Rewards (a mapping with a ``kind``):

* ``{kind: distance, target: [x, y, ...]}``: minus the Euclidean distance to a target
  point (a number is every coordinate), for continuous data;
* ``{kind: task}``: 1 for an item that passes the data source's exact check (a
  verifiable task such as ``arithmetic``), else 0;
* ``{kind: density}``: the log-density of the item under the true distribution, for
  a ground truth that states it (data id ``gaussian``).

A topic is a set of keywords: a document is on topic when at least ``min_count`` of
its words (the one tokenizer's, case-folded) are keywords.

A leaf module: it imports only the contracts and the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .core import InstanceOf, RealData, as_2d
from .errors import ConfigError
from .tokenize import tokenize_words

#: What each reward kind needs besides ``kind``: its required keys.
REWARD_KINDS: dict[str, tuple[str, ...]] = {"distance": ("target",), "task": (), "density": ()}
#: The reward of a component that declares none: closeness to the origin.
DEFAULT_REWARD: dict[str, Any] = {"kind": "distance", "target": 0.0}
#: The constraint of a ``reward`` parameter (checked further by :func:`reward_problem`).
REWARD = InstanceOf((dict,), "a mapping such as {kind: distance, target: [0, 0]}")
#: The constraint of a ``keywords`` parameter (checked further by :func:`keywords_problem`).
KEYWORDS = InstanceOf((list, tuple), "a non-empty list of words")
#: The topic of a component that declares none: love, in Shakespeare's speeches (7.8%
#: of them hold one of these words).
DEFAULT_TOPIC: tuple[str, ...] = (
    "love",
    "loves",
    "loved",
    "lover",
    "lovers",
    "loving",
    "lovely",
    "heart",
    "hearts",
    "kiss",
    "kisses",
    "beauty",
)


def reward_problem(spec: Any) -> str | None:
    """What is wrong with a declared reward, in the words of a requirement, or ``None``."""
    kinds = ", ".join(REWARD_KINDS)
    if not isinstance(spec, Mapping) or spec.get("kind") not in REWARD_KINDS:
        return f"a mapping with 'kind' one of {{{kinds}}}"
    required = REWARD_KINDS[spec["kind"]]
    allowed = {"kind", *required}
    extra = sorted(set(spec) - allowed)
    missing = [key for key in required if key not in spec]
    if extra or missing:
        return f"a {spec['kind']} reward with exactly the keys {sorted(allowed)}"
    if spec["kind"] == "distance":
        target = np.asarray(spec["target"], dtype=object)
        if target.ndim > 1 or not all(_is_number(v) for v in np.ravel(target)):
            return "a distance reward whose target is a number or a list of numbers"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def reward(spec: Mapping[str, Any], items: Any, reference: RealData) -> np.ndarray:
    """The declared reward of every item (see the module docstring); one float each.

    Raises :class:`~collapselab.errors.ConfigError` where the items or the data source
    cannot give the reward (a distance of text, a task score without a task).
    """
    kind = spec["kind"]
    if kind == "distance":
        if not isinstance(items, np.ndarray):
            raise ConfigError("a distance reward needs continuous data (points, not text)")
        x = as_2d(items, "items")
        target = np.broadcast_to(np.asarray(spec["target"], dtype=float), (x.shape[1],))
        return -np.sqrt(np.sum((x - target) ** 2, axis=1))
    source = reference.source
    if kind == "task":
        if source is None or not hasattr(source, "verify"):
            raise ConfigError(
                "a task reward needs a data source with an exact check (data id 'arithmetic')"
            )
        return np.asarray(source.verify(items), dtype=float)
    if source is None or not hasattr(source, "log_prob"):
        raise ConfigError(
            "a density reward needs a ground truth that states its density (data id 'gaussian')"
        )
    return np.asarray(source.log_prob(items), dtype=float)


def keywords_problem(keywords: Any) -> str | None:
    """What is wrong with a declared topic, in the words of a requirement, or ``None``."""
    if (
        not isinstance(keywords, list | tuple)
        or not keywords
        or not all(isinstance(word, str) and len(tokenize_words(word)) == 1 for word in keywords)
    ):
        return "a non-empty list of single words"
    return None


def on_topic(documents: Sequence[str], keywords: Iterable[str], min_count: int = 1) -> np.ndarray:
    """True for each document with at least ``min_count`` words among ``keywords``
    (case-folded, split by :func:`~collapselab.tokenize.tokenize_words`)."""
    topic = {word.lower() for word in keywords}
    return np.array(
        [sum(word in topic for word in tokenize_words(doc)) >= min_count for doc in documents],
        dtype=bool,
    )
