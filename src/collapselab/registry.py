"""String-id registries: ``register``, ``make``, ``list_ids``.

One registry per component kind (``model``, ``data``, ``regime``, ``metric`` and, as
they land, ``curator``...). Configs name components only by id and parameters. An
unknown id raises :class:`~collapselab.errors.UnknownIdError` suggesting the nearest
id. Third-party packages register components through the ``collapselab.plugins``
entry-point group: each entry point names a module (or a callable) that registers on
import.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, TypeVar

from .errors import ConfigError, UnknownIdError

KINDS: tuple[str, ...] = ("data", "model", "regime", "metric", "curator")

# Modules whose import registers the built-in components of each kind.
_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "data": ("collapselab.data",),
    "model": ("collapselab.models",),
    "regime": ("collapselab.regimes",),
    "metric": ("collapselab.metrics",),
    "curator": ("collapselab.curation",),
}

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_loaded: set[str] = set()
_plugins_loaded = False

T = TypeVar("T")


def register(kind: str, id: str) -> Callable[[T], T]:
    """Class (or factory) decorator registering a component under ``kind``/``id``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown component kind {kind!r}; one of {KINDS}")

    def decorator(factory: T) -> T:
        existing = _REGISTRY[kind].get(id)
        if existing is not None and existing is not factory:
            raise ValueError(f"{kind} id {id!r} is already registered to {existing!r}")
        _REGISTRY[kind][id] = factory  # type: ignore[assignment]
        factory.registry_id = id  # type: ignore[attr-defined]
        return factory

    return decorator


def _ensure_loaded(kind: str) -> None:
    global _plugins_loaded
    if kind not in _loaded:
        for module in _BUILTIN_MODULES[kind]:
            import_module(module)
        _loaded.add(kind)
    if not _plugins_loaded:
        _plugins_loaded = True
        for entry in entry_points(group="collapselab.plugins"):
            loaded = entry.load()
            if callable(loaded):
                loaded()


def list_ids(kind: str) -> list[str]:
    """Sorted ids registered for ``kind``."""
    _check_kind(kind)
    _ensure_loaded(kind)
    return sorted(_REGISTRY[kind])


def get(kind: str, id: str) -> Callable[..., Any]:
    """The class or factory registered as ``kind``/``id``."""
    _check_kind(kind)
    _ensure_loaded(kind)
    try:
        return _REGISTRY[kind][id]
    except KeyError:
        raise UnknownIdError(unknown_message(kind, id, list(_REGISTRY[kind]))) from None


def make(kind: str, id: str, /, **params: Any) -> Any:
    """Build component ``id`` of ``kind`` with ``params``, validating them."""
    factory = get(kind, id)
    try:
        obj = factory(**params)
    except TypeError:
        allowed = _parameter_names(factory)
        bad = [p for p in params if p not in allowed]
        if not bad:
            raise
        hint = difflib.get_close_matches(bad[0], allowed, n=1)
        suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"{kind} {id!r} got an unexpected parameter {bad[0]!r}.{suggestion} "
            f"Allowed: {', '.join(allowed) or '(none)'}."
        ) from None
    validate = getattr(obj, "validate_params", None)
    if callable(validate):
        validate()
    return obj


def unknown_message(kind: str, id: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(id), known, n=1, cutoff=0.5)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {kind} id {id!r}.{suggestion} Known {kind} ids: {', '.join(sorted(known))}."


def _parameter_names(factory: Callable[..., Any]) -> list[str]:
    import inspect

    # A class's signature is its constructor's (``self`` excluded).
    sig = inspect.signature(factory)
    return [
        name
        for name, p in sig.parameters.items()
        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise ValueError(f"unknown component kind {kind!r}; one of {KINDS}")
