"""Errors raised by collapselab.

Every error a user can cause derives from :class:`CollapseLabError`. Its message is
one line that names the field at fault and how to fix it; the CLI prints that line
and exits with code 2, without a traceback.
"""

from __future__ import annotations

from typing import Any


class CollapseLabError(Exception):
    """Base class of every error a user can cause (bad config, unknown id, bad data)."""


class ConfigError(CollapseLabError, ValueError):
    """A config, a ``--set`` override or a preset name is invalid."""


class InvalidParameterError(ConfigError):
    """A component parameter violates its declared constraint."""


class UnknownIdError(ConfigError, KeyError):
    """A registry id does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(CollapseLabError, ValueError):
    """Input data is empty, unreadable or of the wrong kind."""


class MissingDependencyError(CollapseLabError, ImportError):
    """An optional dependency is not installed."""


class ResultsError(CollapseLabError):
    """A run directory cannot be written, read or resumed."""


def parameter_message(owner: str, name: str, requirement: str, value: Any) -> str:
    """The one template for parameter errors, as in scikit-learn.

    >>> parameter_message("KDE", "bandwidth", "> 0", 0)
    "The 'bandwidth' parameter of KDE must be > 0. Got 0 instead."
    """
    return f"The {name!r} parameter of {owner} must be {requirement}. Got {value!r} instead."


def require(module: str, extra: str, feature: str, *, package: str | None = None) -> Any:
    """Import an optional dependency or raise one line naming the pip command.

    Parameters
    ----------
    module : str
        The module to import (``"ot"``).
    extra : str
        The collapselab extra that installs it (``"exact"``).
    feature : str
        What needs it, as the error's subject (``"wasserstein with method: exact"``).
    package : str, optional
        The distribution's name where it differs from the module's (``"POT"``).

    Raises
    ------
    MissingDependencyError
        ``module`` cannot be imported.

    >>> require("json", "none", "this example").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the optional package {package or module!r}: "
            f'pip install "collapselab[{extra}]"'
        ) from exc
