"""Presets that check themselves: a paper's claims as data, and how close a run came.

A config (a preset) that cites a paper lists the paper's claims under ``claims:``.
Each claim is a mapping: what the paper claims (``claim``), its published value or
shape (``paper``), the ``citation``, and a check of one of six ``kind``\\ s, read by
one evaluator (:func:`evaluate`); a claim is data and never code.

==========  ==========================================================================
kind        fields (besides ``claim``, ``paper``, ``citation``)
==========  ==========================================================================
value       ``arm``, ``metric``, ``generation`` (default ``last``), and a target
ratio       ``arm``, ``metric``, ``generations: [numerator, denominator]``, a target
compare     ``arms: [a, b]``, ``metric``, ``generation``, ``relation: greater | less``
trend       ``arm``, ``metric``, ``from`` (default 0), ``to`` (default ``last``),
            ``direction: falling | rising``
theory      ``arm``, ``metric``, ``generations`` (default ``[last]``), ``within_se``
            (default 4): the simulation mean against the closed form written beside it
verdict     ``arm``, ``definition`` (1-8), ``expect: collapsed | not collapsed``
            (:mod:`collapselab.report.verdict`)
==========  ==========================================================================

A target is ``expect`` with ``tolerance`` (absolute) or ``rel_tolerance`` (a share of
``expect``): the band the paper's value allows, or a bound, ``at_least`` or
``at_most``. A generation is a number or ``last``.

Ours is the mean over seeds with its 95% t interval (a ratio: of paired means, by the
delta method; a comparison of two arms: paired by seed where they share their real
data, else Welch). A claim ``holds``:

* ``yes`` when our whole interval lies inside the paper's band (above the bound,
  on the claimed side of 0); for ``theory``, when the mean is within ``within_se``
  standard errors of the closed form at every generation named;
* ``no`` when our interval lies wholly outside it;
* ``undecided`` when it straddles an edge: more seeds decide it;
* ``not run`` when the run lacks the arm, the metric, the generation or the theory.

``reproduced: false`` records that collapselab, at the preset's size, finds the claim
does *not* hold (the preset's description says so and why); the tests check each
claim's outcome against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..experiment.storage import read_json
from . import verdict as verdicts
from .runs import Arm, Run, load
from .verdict import Estimate, difference_estimate, estimate, interval_text, ratio_estimate

KINDS = ("value", "ratio", "compare", "trend", "theory", "verdict")
HOLDS = ("yes", "no", "undecided", "not run")

#: Fields every claim has, and those each kind requires or allows.
COMMON = ("claim", "paper", "citation", "kind", "reproduced")
TARGETS = ("expect", "tolerance", "rel_tolerance", "at_least", "at_most")
REQUIRED = {
    "value": ("arm", "metric"),
    "ratio": ("arm", "metric", "generations"),
    "compare": ("arms", "metric", "relation"),
    "trend": ("arm", "metric", "direction"),
    "theory": ("arm", "metric"),
    "verdict": ("arm", "definition", "expect"),
}
ALLOWED = {
    "value": ("arm", "metric", "generation", *TARGETS),
    "ratio": ("arm", "metric", "generations", *TARGETS),
    "compare": ("arms", "metric", "generation", "relation"),
    "trend": ("arm", "metric", "from", "to", "direction"),
    "theory": ("arm", "metric", "generations", "within_se"),
    "verdict": ("arm", "definition", "expect"),
}


@dataclass(frozen=True)
class Claim:
    """One claim of a paper and how to check it (see the module docstring)."""

    kind: str
    claim: str
    paper: str
    citation: str
    reproduced: bool = True
    spec: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.spec.get(key, default)


@dataclass
class ClaimResult:
    """A claim, what we measured (with its interval) and whether the claim holds."""

    claim: Claim
    holds: str
    ours: str = ""
    estimate: Estimate | None = None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "claim": self.claim.claim,
            "paper": self.claim.paper,
            "citation": self.claim.citation,
            "kind": self.claim.kind,
            "reproduced": self.claim.reproduced,
            "holds": self.holds,
            "ours": self.ours,
            "value": None if e is None else e.value,
            "low": None if e is None else e.low,
            "high": None if e is None else e.high,
            "why": self.why,
        }


def _generation(value: Any, where: str) -> Any:
    if value == "last" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ConfigError(f"{where}: a generation is an integer >= 0 or 'last'; got {value!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number; got {value!r}")
    return float(value)


def parse(items: Any) -> list[Claim]:
    """Claims from a config's ``claims:`` list, checked; one line per error naming the field.

    Raises
    ------
    ConfigError
        If a claim is not a mapping, has an unknown kind or field, or lacks a field.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError("config field 'claims' must be a list of claim mappings")
    out = []
    for i, item in enumerate(items):
        where = f"config field 'claims.{i}"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}' must be a mapping (claim, paper, citation, kind, ...)")
        kind = item.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{where}.kind' must be one of {', '.join(KINDS)}; got {kind!r}")
        for key in ("claim", "paper", "citation"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(f"{where}.{key}' is required: a non-empty string")
        unknown = sorted(set(item) - set(COMMON) - set(ALLOWED[kind]))
        if unknown:
            allowed = ", ".join((*COMMON, *ALLOWED[kind]))
            raise ConfigError(
                f"{where}.{unknown[0]}' is not a field of a {kind} claim. Allowed: {allowed}."
            )
        for key in REQUIRED[kind]:
            if key not in item:
                raise ConfigError(f"{where}.{key}' is required for a {kind} claim")
        spec = {k: v for k, v in item.items() if k not in COMMON}
        _check(kind, spec, where)
        reproduced = item.get("reproduced", True)
        if not isinstance(reproduced, bool):
            raise ConfigError(f"{where}.reproduced' must be true or false; got {reproduced!r}")
        out.append(
            Claim(
                kind,
                item["claim"].strip(),
                item["paper"].strip(),
                item["citation"].strip(),
                reproduced,
                spec,
            )
        )
    return out


def _check(kind: str, spec: dict[str, Any], where: str) -> None:
    """The kind's own fields: names, generations, targets, choices."""
    for key in ("arm", "metric"):
        if key in spec and not isinstance(spec[key], str):
            raise ConfigError(f"{where}.{key}' must be a string; got {spec[key]!r}")
    if "generation" in spec:
        _generation(spec["generation"], f"{where}.generation'")
    for key in ("from", "to"):
        if key in spec:
            _generation(spec[key], f"{where}.{key}'")
    if kind in ("value", "ratio"):
        targets = [k for k in TARGETS if k in spec]
        for key in targets:
            _number(spec[key], f"{where}.{key}'")
        has_band = "expect" in spec and ("tolerance" in spec or "rel_tolerance" in spec)
        if not (has_band or "at_least" in spec or "at_most" in spec):
            raise ConfigError(
                f"{where}' needs a target: expect with tolerance or rel_tolerance, or "
                "at_least / at_most"
            )
    if kind == "ratio":
        pair = spec["generations"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}.generations' must be [numerator, denominator]")
        for g in pair:
            _generation(g, f"{where}.generations'")
    if kind == "theory":
        gens = spec.get("generations", ["last"])
        if not isinstance(gens, list) or not gens:
            raise ConfigError(f"{where}.generations' must be a non-empty list")
        for g in gens:
            _generation(g, f"{where}.generations'")
        if "within_se" in spec and _number(spec["within_se"], f"{where}.within_se'") <= 0:
            raise ConfigError(f"{where}.within_se' must be > 0")
    if kind == "compare":
        arms = spec["arms"]
        if not (
            isinstance(arms, list) and len(arms) == 2 and all(isinstance(a, str) for a in arms)
        ):
            raise ConfigError(f"{where}.arms' must be two arm names")
    choices = {
        "compare": ("relation", ("greater", "less")),
        "trend": ("direction", ("falling", "rising")),
        "verdict": ("expect", ("collapsed", "not collapsed")),
    }
    if kind in choices:
        key, options = choices[kind]
        if spec[key] not in options:
            raise ConfigError(
                f"{where}.{key}' must be one of {', '.join(options)}; got {spec[key]!r}"
            )
    definition = spec.get("definition")
    if kind == "verdict" and (isinstance(definition, bool) or definition not in range(1, 9)):
        raise ConfigError(f"{where}.definition' must be a definition number 1-8")


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


class _NotRun(Exception):
    """The run lacks what a claim reads (an arm, a metric, a generation, theory rows)."""


def _arm(run: Run, name: str) -> Arm:
    for arm in run.arms:
        if arm.name == name:
            return arm
    raise _NotRun(f"no arm {name!r} in this run")


def _values(
    arm: Arm, metric: str, generation: Any, source: str = "simulation"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Seeds and values of ``metric`` at ``generation`` (``last`` resolved), and the generation."""
    frame = arm.frame
    rows = frame[(frame["metric"] == metric) & (frame["source"] == source)]
    if rows.empty:
        what = "theory rows for" if source == "theory" else "a recorded"
        raise _NotRun(f"arm {arm.name!r} has no {what} {metric!r}")
    last = int(rows["generation"].max())
    g = last if generation == "last" else int(generation)
    if g > last:
        raise _NotRun(f"needs generation {g}; arm {arm.name!r} has {last + 1} generations")
    at = rows[rows["generation"] == g].sort_values("seed")
    return at["seed"].to_numpy(), at["value"].to_numpy(dtype=float), g


def _band(claim: Claim) -> tuple[float, float, str]:
    """The paper's band [low, high] (infinite ends for a bound) and how it reads."""
    if "expect" in claim.spec and ("tolerance" in claim.spec or "rel_tolerance" in claim.spec):
        expect = float(claim.spec["expect"])
        tol = float(claim.spec.get("tolerance", abs(expect) * claim.spec.get("rel_tolerance", 0)))
        return expect - tol, expect + tol, f"{expect:g} ± {tol:g}"
    low = float(claim.spec.get("at_least", -math.inf))
    high = float(claim.spec.get("at_most", math.inf))
    text = " and ".join(
        t
        for t in (
            f">= {low:g}" if low > -math.inf else "",
            f"<= {high:g}" if high < math.inf else "",
        )
        if t
    )
    return low, high, text


def _within(e: Estimate, low: float, high: float) -> str:
    if e.low != e.low or e.high != e.high:
        return "undecided"
    if low <= e.low and e.high <= high:
        return "yes"
    if e.high < low or e.low > high:
        return "no"
    return "undecided"


def _sign(e: Estimate, positive: bool) -> str:
    """``yes`` when the interval is wholly on the claimed side of 0, ``no`` when wholly on
    the other, else ``undecided``."""
    if e.low != e.low:
        return "undecided"
    if (e.low > 0) if positive else (e.high < 0):
        return "yes"
    if (e.high < 0) if positive else (e.low > 0):
        return "no"
    return "undecided"


def _paired(a: Arm, b: Arm) -> bool:
    return all(a.config.get(k) == b.config.get(k) for k in ("data", "real_samples", "root_seed"))


def _evaluate(run: Run, claim: Claim, cache: dict[str, Any]) -> ClaimResult:
    spec = claim.spec
    kind = claim.kind
    if kind in ("value", "ratio"):
        arm = _arm(run, spec["arm"])
        if kind == "value":
            _, values, g = _values(arm, spec["metric"], spec.get("generation", "last"))
            e = estimate(values)
            where = f"generation {g}"
        else:
            top, bottom = spec["generations"]
            seeds_a, a, ga = _values(arm, spec["metric"], top)
            seeds_b, b, gb = _values(arm, spec["metric"], bottom)
            _, ia, ib = np.intersect1d(seeds_a, seeds_b, return_indices=True)
            e = ratio_estimate(a[ia], b[ib])
            where = f"generation {ga} ÷ generation {gb}"
        low, high, band = _band(claim)
        holds = _within(e, low, high)
        return ClaimResult(claim, holds, f"{interval_text(e)} ({where})", e, f"paper band {band}")
    if kind == "compare":
        first, second = (_arm(run, name) for name in spec["arms"])
        generation = spec.get("generation", "last")
        seeds_a, a, ga = _values(first, spec["metric"], generation)
        seeds_b, b, gb = _values(second, spec["metric"], generation)
        if _paired(first, second):
            _, ia, ib = np.intersect1d(seeds_a, seeds_b, return_indices=True)
            e = estimate(a[ia] - b[ib])
            how = "paired by seed"
        else:
            e = difference_estimate(a, b)
            how = "independent arms"
        holds = _sign(e, positive=spec["relation"] == "greater")
        names = f"{spec['arms'][0]} − {spec['arms'][1]}"
        return ClaimResult(claim, holds, f"{names}: {interval_text(e)} (generation {ga}, {how})", e)
    if kind == "trend":
        arm = _arm(run, spec["arm"])
        seeds_a, a, ga = _values(arm, spec["metric"], spec.get("from", 0))
        seeds_b, b, gb = _values(arm, spec["metric"], spec.get("to", "last"))
        _, ia, ib = np.intersect1d(seeds_a, seeds_b, return_indices=True)
        with np.errstate(invalid="ignore"):
            e = estimate(b[ib] - a[ia])
        holds = _sign(e, positive=spec["direction"] == "rising")
        return ClaimResult(claim, holds, f"change {interval_text(e)} (generation {ga} → {gb})", e)
    if kind == "theory":
        arm = _arm(run, spec["arm"])
        k = float(spec.get("within_se", 4))
        worst: tuple[float, str] | None = None
        for generation in spec.get("generations", ["last"]):
            _, sim, g = _values(arm, spec["metric"], generation)
            try:
                _, theory, _ = _values(arm, spec["metric"], g, source="theory")
            except _NotRun:
                notes = read_json(arm.directory / "theory_notes.json") or {}
                reason = (notes.get("none") or {}).get(spec["metric"], "")
                raise _NotRun(
                    f"no theory rows for {spec['metric']!r} in arm {arm.name!r}"
                    + (f": {reason}" if reason else "")
                ) from None
            sim = sim[np.isfinite(sim)]
            if len(sim) < 2:
                raise _NotRun("needs at least 2 seeds for a standard error")
            mean, se = float(sim.mean()), float(sim.std(ddof=1) / math.sqrt(len(sim)))
            z = (
                abs(mean - float(theory[0])) / se
                if se > 0
                else (0.0 if mean == theory[0] else math.inf)
            )
            text = (
                f"{mean:.4g} ± {se:.2g} vs theory {float(theory[0]):.4g} at generation {g} "
                f"({z:.1f} s.e.)"
            )
            if worst is None or z > worst[0]:
                worst = (z, text)
        assert worst is not None
        holds = "yes" if worst[0] <= k else "no"
        return ClaimResult(
            claim, holds, worst[1], why=f"within {k:g} s.e. at every generation named"
        )
    # verdict
    if "verdicts" not in cache:
        cache["verdicts"] = {a.arm: a for a in verdicts.run_verdicts(run)[0]}
    found = cache["verdicts"].get(spec["arm"])
    if found is None:
        raise _NotRun(f"no arm {spec['arm']!r} in this run")
    row = found.row(int(spec["definition"]))
    name = verdicts.DEFINITIONS[row.definition - 1].name
    if row.outcome is verdicts.Outcome.NOT_MEASURED:
        raise _NotRun(f"definition {row.definition} ({name}) not measured: {row.need}")
    ours = f"definition {row.definition} ({name}): {row.outcome}" + (
        f" from generation {row.onset}" if row.onset is not None else ""
    )
    if row.estimate is not None:
        # what the number is, not only the metric it reads: definition 4's is a slope
        # of ln variance, which read as "variance 6e-06" said the opposite of its verdict
        ours += f"; {row.statistic} ({row.metric}): {interval_text(row.estimate)}"
    if row.outcome is verdicts.Outcome.INCONCLUSIVE:
        holds = "undecided"
    else:
        holds = "yes" if str(row.outcome) == spec["expect"] else "no"
    return ClaimResult(claim, holds, ours, row.estimate)


def run_claims(run: Run) -> list[Claim]:
    """The claims of a run: its config's ``claims:``; for a run of a preset made before its
    preset had claims, the preset's."""
    items = run.config.get("claims")
    if not items:
        from ..experiment.config import preset_names, read_yaml

        if run.name in preset_names():
            items = read_yaml(run.name)[0].get("claims")
    return parse(items)


def evaluate(run: Run | str | Path, claims: list[Claim] | None = None) -> list[ClaimResult]:
    """Evaluate ``claims`` (default: the run's own, :func:`run_claims`) on a run.

    Parameters
    ----------
    run : Run or path
        A loaded run, or a run directory.
    claims : list of Claim, optional

    Returns
    -------
    list of ClaimResult
        One per claim, in order.
    """
    if not isinstance(run, Run):
        run = load(run)
    claims = run_claims(run) if claims is None else claims
    cache: dict[str, Any] = {}
    out = []
    for claim in claims:
        try:
            out.append(_evaluate(run, claim, cache))
        except _NotRun as exc:
            out.append(ClaimResult(claim, "not run", why=str(exc)))
    return out


def summary(results: list[ClaimResult]) -> str:
    """``3 of 4 hold, 1 does not`` and the like, for one line."""
    if not results:
        return "no claims"
    counts = {h: sum(r.holds == h for r in results) for h in HOLDS}
    parts = [f"{counts['yes']} of {len(results)} hold"]
    if counts["no"]:
        parts.append(f"{counts['no']} not")
    if counts["undecided"]:
        parts.append(f"{counts['undecided']} undecided")
    if counts["not run"]:
        parts.append(f"{counts['not run']} not run")
    return ", ".join(parts)


#: The colour of each outcome in the terminal and in the report.
COLOURS = {"yes": "green", "no": "red", "undecided": "yellow", "not run": "dim"}


def print_claims(results: list[ClaimResult], *, console: Any = None, title: str = "") -> None:
    """The table claim | paper | ours (with interval) | holds?, with rich."""
    from rich.table import Table
    from rich.text import Text

    from .summary import stdout_console

    console = console or stdout_console()
    if not results:
        return
    table = Table(
        title=title or "claims of the papers this run reproduces",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("claim", ratio=3)
    table.add_column("paper", ratio=2)
    table.add_column("ours (95% interval)", ratio=3)
    table.add_column("holds?")
    for r in results:
        expected = "" if r.claim.reproduced else " (known: does not reproduce)"
        table.add_row(
            Text.assemble(r.claim.claim, ("\n" + r.claim.citation, "dim")),
            r.claim.paper,
            Text.assemble(r.ours, ("\n" + r.why if r.why else "", "dim")),
            Text(r.holds + expected, COLOURS[r.holds]),
        )
    console.print(table)
