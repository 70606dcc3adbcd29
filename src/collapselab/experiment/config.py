"""The config schema. A config is data: components appear only as ids and parameters.

Loading goes YAML (file or preset) -> ``--set`` overrides -> pydantic validation ->
semantic checks (every id exists, every parameter satisfies its constraint, every
metric fits the model's data kind). Any failure raises
:class:`~collapselab.errors.ConfigError` with one line naming the field.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import registry
from ..errors import CollapseLabError, ConfigError
from .storage import load_yaml

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class ComponentSpec(BaseModel):
    """A component by registry id and parameters."""

    model_config = ConfigDict(extra="forbid")
    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class DecodingSpec(BaseModel):
    """How a discrete model samples (see :mod:`collapselab.decoding`)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(default=1.0, ge=0)
    top_k: int | None = Field(default=None, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    bias: float = Field(default=1.0, gt=0)
    #: Beam search (beams > 1) instead of sampling, and its length penalty.
    beams: int = Field(default=1, ge=1)
    length_penalty: float = Field(default=1.0, allow_inf_nan=False)


def _component(value: Any) -> Any:
    return {"id": value} if isinstance(value, str) else value


class RunConfig(BaseModel):
    """One run (one arm): a data source, a model, a regime, metrics, S seeds x G generations."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    data: ComponentSpec
    model: ComponentSpec
    regime: ComponentSpec = ComponentSpec(id="replace")
    samples_per_generation: int = Field(gt=0)
    #: Size of generation 0's real training set for sources that generate data;
    #: by default ``samples_per_generation``. Finite tables use all their rows.
    real_samples: int | None = Field(default=None, gt=0)
    generations: int = Field(gt=0)
    seeds: int = Field(gt=0)
    root_seed: int = Field(default=0, ge=0)
    metrics: list[ComponentSpec] = Field(min_length=1)
    #: ``auto`` takes the vectorized all-seeds path where the model offers one.
    batched: Literal["auto", "yes", "no"] = "auto"
    #: Checkpoint every k generations (default: every 10 s of work).
    checkpoint_every: int | None = Field(default=None, gt=0)
    #: Curators applied in order to each generation's output before it is trained on.
    curators: list[ComponentSpec] = Field(default_factory=list)
    #: With curators: draw ``oversample x samples_per_generation`` candidates and keep
    #: at most ``samples_per_generation`` of those accepted.
    oversample: float = Field(default=1.0, ge=1.0)
    #: Temperature, top-k and top-p of discrete models' sampling (default: none).
    decoding: DecodingSpec | None = None

    _normalize = field_validator("data", "model", "regime", mode="before")(_component)

    @field_validator("metrics", "curators", mode="before")
    @classmethod
    def _metrics(cls, value: Any) -> Any:
        return [_component(v) for v in value] if isinstance(value, list) else value

    @field_validator("batched", mode="before")
    @classmethod
    def _batched(cls, value: Any) -> Any:
        return {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value

    def resolved_real_samples(self) -> int:
        return self.real_samples or self.samples_per_generation

    def result_fields(self) -> dict[str, Any]:
        """What determines the numbers (not the name or how often we checkpoint)."""
        data = self.model_dump(mode="json")
        for key in ("name", "description", "checkpoint_every"):
            data.pop(key)
        if data.get("decoding") is None:  # keeps hashes of configs from before the field
            data.pop("decoding", None)
        else:  # likewise for the beam-search fields, at their defaults
            for name, default in (("beams", 1), ("length_penalty", 1.0)):
                if data["decoding"].get(name) == default:
                    data["decoding"].pop(name)
        if not data.get("curators"):
            data.pop("curators", None)
            data.pop("oversample", None)
        return data

    def config_hash(self) -> str:
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Config(RunConfig):
    """A run config, optionally with ``arms``: named overrides of the base, each a run."""

    arms: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_arms(self) -> Config:
        names = []
        for i, arm in enumerate(self.arms):
            if not isinstance(arm, dict) or "name" not in arm:
                raise ValueError(f"arms.{i} needs a 'name'")
            if "arms" in arm:
                raise ValueError(f"arms.{i} cannot itself have arms")
            names.append(arm["name"])
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        return self

    def arm_configs(self) -> list[RunConfig]:
        """One validated :class:`RunConfig` per arm (the base itself when there are none)."""
        base = self.model_dump(mode="json", exclude={"arms"})
        if not self.arms:
            return [RunConfig.model_validate(base)]
        out = []
        for i, arm in enumerate(self.arms):
            merged = merge(base, arm)
            out.append(_validate(RunConfig, merged, prefix=f"arms.{i}."))
        return out


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base``. A component whose id changes is replaced
    whole, so one regime's parameters never leak into another's."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        value = _component(value) if key in ("data", "model", "regime") else value
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            if "id" in value and value.get("id") != current.get("id"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = merge(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _validate(cls: type[BaseModel], data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of fields; got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = prefix + _field_path(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(cls.model_fields)
            raise ConfigError(
                f"config field {field!r} is not allowed. Allowed fields: {allowed}."
            ) from None
        if err["type"] == "missing":
            raise ConfigError(f"config field {field!r} is required.") from None
        shown = err.get("input")
        got = "" if isinstance(shown, dict) else f" (got {shown!r})"
        where = f"config field {field!r}" if field else "config"
        raise ConfigError(f"{where}: {msg}{got}.") from None


def preset_names() -> list[str]:
    folder = resources.files("collapselab") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml(source: str | Path) -> tuple[dict[str, Any], str]:
    """The raw mapping of a config file or preset, and where it came from."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        names = preset_names()
        if str(source) not in names:
            raise ConfigError(
                registry.unknown_message("preset", str(source), names).replace("ids", "names")
            )
        text = (resources.files("collapselab") / "presets" / f"{source}.yaml").read_text(
            encoding="utf-8"
        )
        origin = f"preset {source}"
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{origin}: invalid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a config must be a mapping of fields")
    return data, origin


def apply_set(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set dotted.key=value`` override (value parsed as YAML)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {assignment!r}: expected KEY=VALUE, e.g. --set model.params.unbiased=true"
        )
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    target: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise ConfigError(
                    f"--set {assignment!r}: {'.'.join(parts[: i + 1])!r} is not a list index"
                )
            target = target[int(part)]
            continue
        if not isinstance(target, dict):
            raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:i])!r} is not a mapping")
        if isinstance(target.get(part), str) and part in ("data", "model", "regime"):
            target[part] = {"id": target[part]}
        target = target.setdefault(part, {})
    if isinstance(target, list):
        last = parts[-1]
        if not last.isdigit() or int(last) >= len(target):
            raise ConfigError(f"--set {assignment!r}: {key!r} is not a list index")
        target[int(last)] = value
    elif isinstance(target, dict):
        if parts[-1] == "id" and "id" in target and target["id"] != value:
            # A component whose id changes starts from its own defaults (as in merge):
            # set the new id first, then its parameters.
            target.pop("params", None)
        target[parts[-1]] = value
    else:
        raise ConfigError(f"--set {assignment!r}: {'.'.join(parts[:-1])!r} is not a mapping")


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Config:
    """Read, override, validate and check a config (file path, preset name or mapping)."""
    if isinstance(source, dict):
        data = copy.deepcopy(source)
    else:
        data, _ = read_yaml(source)
    for assignment in overrides or []:
        apply_set(data, assignment)
    config = _validate(Config, data)
    for i, arm in enumerate(config.arm_configs()):
        # a field the arm sets is named arms.<i>.<field>; one it inherits, as in the base
        overridden = set(config.arms[i]) if config.arms else set()
        check_components(arm, prefix=f"arms.{i}.", overridden=overridden)
    return config


def _field(prefix: str, overridden: set[str] | None, field: str, arm: str = "") -> str:
    """A config field, quoted: under ``prefix`` when the arm sets its top key, else as
    the user wrote it, with the arm it fails in."""
    inherited = overridden is not None and field.split(".")[0] not in overridden
    if not inherited:
        return repr(prefix + field)
    return f"{field!r} (in arm {arm!r})" if arm and prefix else repr(field)


def check_components(
    config: RunConfig, prefix: str = "", overridden: set[str] | None = None
) -> None:
    """Build every component once so unknown ids and bad parameters fail before running.

    Messages name fields under ``prefix`` (an arm's ``arms.<i>.``), or, with
    ``overridden`` (the keys the arm sets), only the fields the arm sets.
    """

    def where(field: str) -> str:
        return _field(prefix, overridden, field, config.name)

    built = build_components(config, prefix, overridden)
    kind = built["model"].kind
    if config.decoding is not None:
        from ..decoding import Decoding

        allowed = getattr(built["model"], "decoding_controls", frozenset())
        unsupported = sorted(Decoding(**config.decoding.model_dump()).changed() - allowed)
        if unsupported:
            what = ", ".join(sorted(allowed)) if allowed else "none"
            raise ConfigError(
                f"config field {where('decoding.' + unsupported[0])}: model {config.model.id!r} "
                f"has no {unsupported[0]!r} control (its decoding controls: {what})"
            )
    if built["data"].kind != kind:
        raise ConfigError(
            f"config field {where('data.id')}: data {config.data.id!r} is {built['data'].kind} "
            f"but model {config.model.id!r} consumes {kind}"
        )
    for i, curator in enumerate(built["curators"].values()):
        if kind not in curator.applies_to:
            kinds = ", ".join(sorted(str(k) for k in curator.applies_to))
            raise ConfigError(
                f"config field {where(f'curators.{i}')}: curator {config.curators[i].id!r} applies to "
                f"{kinds} data, not to {kind}"
            )
    for i, (name, metric) in enumerate(built["metrics"].items()):
        if kind not in metric.applies_to:
            kinds = ", ".join(sorted(str(k) for k in metric.applies_to))
            raise ConfigError(
                f"config field {where(f'metrics.{i}')}: metric {name!r} applies to {kinds} data, "
                f"not to {kind} (model {config.model.id!r})"
            )
        if config.samples_per_generation < metric.min_samples():
            raise ConfigError(
                f"config field {where('samples_per_generation')}: metric {name!r} needs at least "
                f"{metric.min_samples()} samples per generation with its parameters; got "
                f"{config.samples_per_generation} (raise it, or change the metric's parameters)"
            )


def build_components(
    config: RunConfig, prefix: str = "", overridden: set[str] | None = None
) -> dict[str, Any]:
    def where(field: str) -> str:
        return _field(prefix, overridden, field, config.name)

    def make(kind: str, spec: ComponentSpec, field: str) -> Any:
        try:
            return registry.make(kind, spec.id, **spec.params)
        except CollapseLabError as exc:
            raise ConfigError(f"config field {where(field)}: {exc}") from None

    metrics = {}
    for i, spec in enumerate(config.metrics):
        if spec.id in metrics:
            raise ConfigError(
                f"config field {where(f'metrics.{i}')}: metric {spec.id!r} is listed twice"
            )
        metrics[spec.id] = make("metric", spec, f"metrics.{i}")
    curators = {}
    for i, spec in enumerate(config.curators):
        # the same curator twice (with other parameters) gets its position as a suffix
        name = spec.id if spec.id not in curators else f"{spec.id}#{i}"
        curators[name] = make("curator", spec, f"curators.{i}")
    return {
        "curators": curators,
        "data": make("data", config.data, "data"),
        "model": make("model", config.model, "model"),
        "regime": make("regime", config.regime, "regime"),
        "metrics": metrics,
    }
