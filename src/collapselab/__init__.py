"""collapselab: simulate, measure and mitigate model collapse.

>>> import collapselab as cl
>>> result = cl.run("quickstart", out="runs/quickstart")   # doctest: +SKIP
"""

from __future__ import annotations

from ._version import __version__
from .registry import list_ids, make, register


def run(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Run a config, preset or :class:`~collapselab.experiment.Config`; see
    :func:`collapselab.experiment.runner.run`."""
    from .experiment.runner import run as _run

    return _run(*args, **kwargs)


def verdict(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Which definitions of collapse each arm of a run (or sweep) meets; see
    :func:`collapselab.report.verdict.verdict`."""
    from .report.verdict import verdict as _verdict

    return _verdict(*args, **kwargs)


__all__ = ["__version__", "list_ids", "make", "register", "run", "verdict"]
