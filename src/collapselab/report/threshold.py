"""How much real data is enough: bisect a config field for where a definition of collapse stops firing.

``collapselab verdict RUN --threshold-of regime.params.real_fraction`` takes one arm
of a finished run, reruns it with the field set to values chosen by bisection over
``[low, high]`` (each one a run folder of its own under ``--out``), judges each with
one definition of collapse (:mod:`collapselab.report.verdict`, default 4: diversity
to zero) and reports the bracket ``(largest value that collapsed, smallest that did
not]``: the threshold lies inside it, at the resolution of ``steps`` halvings and at
the verdicts' confidence level. The field must make collapse less likely as it grows
(a real share, a sample size); a value whose verdict is inconclusive ends the search
with the bracket found so far, and says so (more seeds decide it).

Where a closed form exists the answer is printed beside it: for a Gaussian refit by
maximum likelihood (or unbiased) under ``fresh`` with a fixed real part and the
``collapsed_now`` state, the smallest real share whose *expected* variance stays
above the state's tolerance (:func:`collapselab.theory.gaussian_fresh_threshold`) and
the share at which at least ``collapsed_share`` of the seeds are provably protected
(:func:`collapselab.theory.gaussian_fresh_protected_threshold`). In a long chain the
bisection must land between the two.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..experiment.storage import read_stored_config
from .verdict import Outcome, Row, run_verdicts, thresholds_of

#: Fields that ``--threshold-of`` may bisect: those where more means less collapse.
INCREASING = (
    "regime.params.real_fraction",
    "samples_per_generation",
    "real_samples",
)


@dataclass
class Point:
    """One value of the field: its run folder and the definition's verdict there."""

    value: float
    directory: Path
    row: Row

    @property
    def fires(self) -> bool | None:
        """True if collapsed, False if not, None if inconclusive or not measured."""
        if self.row.outcome is Outcome.COLLAPSED:
            return True
        if self.row.outcome is Outcome.NOT_COLLAPSED:
            return False
        return None


@dataclass
class Threshold:
    """The bisection's result (see the module docstring)."""

    field: str
    definition: int
    arm: str
    points: list[Point]
    low: float | None  #: largest value tested that collapsed (None: none did)
    high: float | None  #: smallest value tested that did not (None: none)
    note: str = ""
    theory: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "definition": self.definition,
            "arm": self.arm,
            "bracket": [self.low, self.high],
            "note": self.note,
            "theory": self.theory,
            "points": [
                {
                    "value": p.value,
                    "run_dir": str(p.directory),
                    "outcome": p.row.outcome.value,
                    "statistic": p.row.statistic,
                    "value_estimate": None if p.row.estimate is None else p.row.estimate.value,
                }
                for p in self.points
            ],
        }


def _arm_config(run_dir: Path, arm: str | None) -> tuple[str, dict[str, Any]]:
    config = read_stored_config(run_dir / "config.yaml")
    if not config:
        raise ConfigError(f"{str(run_dir)!r} holds no config.yaml; give a finished run")
    names = [a.get("name") for a in config.get("arms") or [] if isinstance(a, dict)]
    if not names:
        names = [config.get("name")]
    if arm is None:
        arm = str(names[0])
    if arm not in names:
        raise ConfigError(
            f"--arm {arm!r} is not an arm of the run; arms: {', '.join(map(str, names))}"
        )
    arm_dir = run_dir / arm if (run_dir / arm / "config.yaml").is_file() else run_dir
    resolved = read_stored_config(arm_dir / "config.yaml")
    if not resolved:
        raise ConfigError(f"arm {arm!r} has no resolved config.yaml; rerun the run to finish it")
    resolved = copy.deepcopy(resolved)
    resolved.pop("arms", None)
    resolved.pop("claims", None)
    return arm, resolved


def _state_row(run: Any, t: Any) -> Row:
    """Definition 4 of a loaded run's arm decided by the collapsed state alone
    (``state_only``)."""
    from .verdict import _Recorded, _state, state_outcome

    state = _state(_Recorded(run.arms[0]), t)
    if state is None:
        return Row(4, Outcome.NOT_MEASURED, need="a collapsed state (e.g. collapsed_now)")
    name, _, shares = state
    statistic = f"share of seeds in the state {name} at the last generation"
    return Row(4, state_outcome(shares[-1], t), name, statistic, shares[-1])


def _slug(value: float) -> str:
    return f"{value:.6g}".replace("-", "m")


def _gaussian_theory(
    config: dict[str, Any], field_name: str, definition: int, share: float
) -> dict[str, float]:
    """The closed-form bracket, where its assumptions hold (module docstring)."""
    from .. import theory

    regime = config.get("regime") or {}
    params = regime.get("params") or {}
    data = config.get("data") or {}
    model = config.get("model") or {}
    metrics = config.get("metrics") or []
    if not (
        definition == 4
        and field_name == "regime.params.real_fraction"
        and data.get("id") == "gaussian"
        and model.get("id") == "gaussian"
        and regime.get("id") == "fresh"
        and params.get("source", "fixed") == "fixed"
        and not (model.get("params") or {}).get("bias")
    ):
        return {}
    states = [m for m in metrics if isinstance(m, dict) and m.get("id") == "collapsed_now"]
    if "collapsed_now" in metrics:
        states.append({"id": "collapsed_now", "params": {}})
    if not states:
        return {}
    tolerance = float((states[0].get("params") or {}).get("tolerance", 1e-3))
    n = int(config["samples_per_generation"])
    unbiased = bool((model.get("params") or {}).get("unbiased", False))
    dim = int((data.get("params") or {}).get("dim", 1))
    return {
        "expected variance stays above the tolerance": theory.gaussian_fresh_threshold(
            n=n, tolerance=tolerance, source="fixed", unbiased=unbiased
        ),
        f"at least {share:g} of seeds provably protected": theory.gaussian_fresh_protected_threshold(
            n=n, tolerance=tolerance, share=share, dim=dim, unbiased=unbiased
        ),
    }


def threshold_of(
    run_dir: str | Path,
    field_name: str,
    *,
    arm: str | None = None,
    definition: int = 4,
    low: float = 0.0,
    high: float = 1.0,
    steps: int = 6,
    out: str | Path | None = None,
    workers: int = 1,
    state_only: bool = False,
    **thresholds: float,
) -> Threshold:
    """Bisect ``field_name`` of one arm of ``run_dir`` for where ``definition`` stops firing.

    Parameters
    ----------
    run_dir : path
        A finished run: the arm's resolved config is the starting point.
    field_name : str
        A dotted config field, one of :data:`INCREASING`.
    arm : str, optional
        The arm to rerun (default: the run's first arm).
    definition : int, default 4
        The definition of collapse (1-7; 8 needs a sweep over sizes).
    low, high : float
        The range searched; both ends are run first.
    steps : int, default 6
        Halvings of the bracket after the two ends.
    out : path, optional
        Where the points' run folders go (default ``RUN_DIR-threshold``); a point
        already run there is reused (a rerun resumes).
    workers : int, default 1
        Worker processes of each point's run.
    state_only : bool, default False
        Judge definition 4 by the recorded collapsed state alone (the share of seeds
        in it against ``collapsed_share``), without the diversity trend: the quantity
        the closed forms bound.
    **thresholds : float
        Fields of :class:`~collapselab.report.verdict.Thresholds`.
    """
    from ..experiment.config import apply_set, load_config
    from ..experiment.runner import run
    from .runs import load

    run_dir = Path(run_dir)
    if field_name not in INCREASING:
        raise ConfigError(
            f"--threshold-of {field_name!r}: give a field where more means less collapse: "
            f"{', '.join(INCREASING)}"
        )
    if not 1 <= definition <= 7:
        raise ConfigError(
            f"--definition must be 1-7 (8 needs a sweep over sizes); got {definition}"
        )
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"--range: need finite LOW < HIGH; got {low:g} {high:g}")
    if state_only and definition != 4:
        raise ConfigError("--state-only judges definition 4 (diversity to zero); drop --definition")
    if not 0 <= steps <= 20:
        raise ConfigError(f"--steps must be 0-20; got {steps}")
    t = thresholds_of(**thresholds)  # refused before any run is written
    arm, base = _arm_config(run_dir, arm)
    # The search runs on whole numbers: a size, or for a real share the real samples
    # per training set that fresh keeps (round(share x n)), so each step is a new run.
    if field_name == "regime.params.real_fraction":
        if not 0 <= low < high <= 1:
            raise ConfigError(
                f"--range: a real share needs 0 <= LOW < HIGH <= 1; got {low:g} {high:g}"
            )
        scale = float(base["samples_per_generation"])
    else:
        scale = 1.0
    folder = Path(out) if out is not None else run_dir.with_name(run_dir.name + "-threshold")
    points: dict[int, Point] = {}

    def judge(k: int) -> Point:
        if k in points:
            return points[k]
        value = k / scale if scale != 1.0 else float(k)
        data = copy.deepcopy(base)
        apply_set(data, f"{field_name}={value!r}" if scale != 1.0 else f"{field_name}={k}")
        data["name"] = f"{arm}-{field_name.split('.')[-1]}-{_slug(value)}"
        target = folder / data["name"]
        run(load_config(data), target, workers=workers)
        loaded = load(target)
        if state_only:
            row = _state_row(loaded, t)
        else:
            row = run_verdicts(loaded, t)[0][0].row(definition)
        points[k] = Point(value, target, row)
        return points[k]

    k_low, k_high = round(low * scale), round(high * scale)
    if k_low >= k_high:
        raise ConfigError(f"--range {low:g} {high:g} holds one value only; widen it")
    first, last = judge(k_low), judge(k_high)
    note = ""
    lo: float | None
    hi: float | None
    if first.fires is False:
        lo, hi, note = (
            None,
            first.value,
            f"not collapsed already at {first.value:g}: the threshold is at most that",
        )
    elif last.fires is True:
        lo, hi, note = (
            last.value,
            None,
            f"collapsed even at {last.value:g}: the threshold is above the range",
        )
    elif first.fires is None or last.fires is None:
        lo = hi = None
        point = first if first.fires is None else last
        note = f"the verdict at {point.value:g} is {point.row.outcome.value}: more seeds or generations decide it"
    else:
        for _ in range(steps):
            if k_high - k_low <= 1:
                break
            point = judge((k_low + k_high) // 2)
            if point.fires is True:
                k_low = (k_low + k_high) // 2
            elif point.fires is False:
                k_high = (k_low + k_high) // 2
            else:
                note = (
                    f"the verdict at {point.value:g} is {point.row.outcome.value}: the bracket "
                    "stops there (more seeds decide it)"
                )
                break
        lo, hi = points[k_low].value, points[k_high].value
        if k_high - k_low == 1 and not note:
            unit = f" (real samples {k_low} and {k_high} of {int(scale)})" if scale != 1.0 else ""
            note = f"exact on the grid of whole values{unit}"
    share = t.collapsed_share
    return Threshold(
        field_name,
        definition,
        arm,
        sorted(points.values(), key=lambda p: p.value),
        lo,
        hi,
        note,
        _gaussian_theory(base, field_name, definition, share),
    )


def print_threshold(result: Threshold, console: Any = None) -> None:
    """The points tried and the bracket, as a rich table."""
    from rich.table import Table

    from .summary import stdout_console
    from .verdict import DEFINITIONS

    console = console or stdout_console()
    name = next((d.name for d in DEFINITIONS if d.number == result.definition), "")
    table = Table(
        title=f"{result.arm}: definition {result.definition} ({name}) against {result.field}",
        title_justify="left",
    )
    for column in ("value", "verdict", "statistic", "run"):
        table.add_column(column)
    for p in result.points:
        table.add_row(f"{p.value:g}", p.row.outcome.value, p.row.statistic, str(p.directory))
    console.print(table)
    low = "-" if result.low is None else f"{result.low:g}"
    high = "-" if result.high is None else f"{result.high:g}"
    console.print(f"threshold in ({low}, {high}]: collapsed at {low}, not collapsed at {high}")
    if result.note:
        console.print(result.note)
    for what, value in result.theory.items():
        console.print(f"theory: {value:.4g} ({what})")
