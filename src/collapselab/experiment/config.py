"""The config schema. A config is data: components appear only as ids and parameters.

Loading goes from the config's fields (:func:`config_data`: a :class:`Config`, a
mapping, or YAML from a file or preset through the one bounded YAML reader of
:mod:`collapselab.io`) -> ``--set`` overrides and the ``--seeds``/``--generations``
shortcuts (refused where one would make an arm's
name false, see :func:`check_arm_names`) -> every number finite -> pydantic
validation (counts are integers, never booleans or strings, within
:data:`MAX_COUNT`; arm names are not the run folder's own file names) -> semantic
checks (every id exists, every parameter satisfies its constraint, every metric fits
the model's data kind and finds the capabilities it requires, the model can fit the
sample sizes). Any failure raises :class:`~collapselab.errors.ConfigError` with one
line naming the field. Each arm is validated and its components built once; the
runner uses those.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .. import registry
from ..errors import CollapseLabError, ConfigError
from .storage import NAME_PATTERN, RESERVED_NAMES, load_yaml

#: Largest seeds, generations and sample sizes a config may ask for (a run that large
#: could not be held anyway; the memory estimate refuses smaller ones that do not fit).
MAX_COUNT = {"seeds": 10**7, "generations": 10**7, "samples": 10**10}
#: Largest config file read (a config is data about a run, not the data itself).
MAX_CONFIG_BYTES = 4 << 20


def _whole_number(value: Any) -> Any:
    """A count as YAML gives it: an int, or a float with no fractional part (``1e3``);
    never a boolean (``true`` is not 1) or a string (``"3"``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not a boolean ({str(value).lower()})")
    if isinstance(value, str):
        raise ValueError("must be a whole number, not a string; write it unquoted")
    return value


Count = Annotated[int, BeforeValidator(_whole_number)]


def _check_name(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in RESERVED_NAMES:
        raise ValueError(
            f"{value!r} is a name the run folder uses for its own files "
            f"({', '.join(sorted(RESERVED_NAMES))}); choose another name"
        )
    return value


class ComponentSpec(BaseModel):
    """A component by registry id and parameters."""

    model_config = ConfigDict(extra="forbid")
    id: str
    params: dict[str, Any] = Field(default_factory=dict)


class DecodingSpec(BaseModel):
    """How a discrete model samples (see :mod:`collapselab.decoding`)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(default=1.0, ge=0)
    top_k: Count | None = Field(default=None, gt=0)
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

    name: Annotated[str, BeforeValidator(_check_name)] = Field(pattern=NAME_PATTERN)
    description: str = ""
    data: ComponentSpec
    model: ComponentSpec
    regime: ComponentSpec = ComponentSpec(id="replace")
    samples_per_generation: Count = Field(gt=0, le=MAX_COUNT["samples"])
    #: Size of generation 0's real training set for sources that generate data;
    #: by default ``samples_per_generation``. Finite tables use all their rows.
    real_samples: Count | None = Field(default=None, gt=0, le=MAX_COUNT["samples"])
    generations: Count = Field(gt=0, le=MAX_COUNT["generations"])
    seeds: Count = Field(gt=0, le=MAX_COUNT["seeds"])
    root_seed: Count = Field(default=0, ge=0)
    metrics: list[ComponentSpec] = Field(min_length=1)
    #: ``auto`` takes the vectorized all-seeds path where the model offers one;
    #: ``sufficient``, the exact sufficient-statistic chain (``replace``, no samples drawn).
    batched: Literal["auto", "yes", "no", "sufficient"] = "auto"
    #: Checkpoint every k generations (default: every 10 s of work).
    checkpoint_every: Count | None = Field(default=None, gt=0)
    #: Curators applied in order to each generation's output before it is trained on.
    curators: list[ComponentSpec] = Field(default_factory=list)
    #: With curators: draw ``oversample x samples_per_generation`` candidates and keep
    #: at most ``samples_per_generation`` of those accepted.
    oversample: float = Field(default=1.0, ge=1.0, le=1000.0)
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
    #: What the cited paper found, as data (see :mod:`collapselab.report.claims`); they
    #: describe the whole run, never an arm's numbers, so no arm config (or hash) has them.
    claims: list[dict[str, Any]] = Field(default_factory=list)
    # Computed once (a loaded config is not changed afterwards: build a new one).
    _arm_configs: list[RunConfig] | None = PrivateAttr(default=None)
    _components: list[dict[str, Any]] | None = PrivateAttr(default=None)

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
        if self._arm_configs is None:
            base = self.model_dump(mode="json", exclude={"arms", "claims"})
            if not self.arms:
                self._arm_configs = [RunConfig.model_validate(base)]
            else:
                self._arm_configs = [
                    _validate(RunConfig, merge(base, arm), prefix=f"arms.{i}.")
                    for i, arm in enumerate(self.arms)
                ]
        return list(self._arm_configs)

    def components(self) -> list[dict[str, Any]]:
        """Each arm's components (see :func:`build_components`), built and checked once."""
        if self._components is None:
            self._components = [
                # a field the arm sets is named arms.<i>.<field>; one it inherits, as in the base
                check_components(
                    arm, prefix=f"arms.{i}.", overridden=set(self.arms[i]) if self.arms else set()
                )
                for i, arm in enumerate(self.arm_configs())
            ]
        return self._components


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
        msg = msg.removeprefix("Value error, ")
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
    # A preset's name stays the preset where a folder of that name is in the way (the
    # folder a run of it wrote with --out NAME, say); a YAML file of that name wins.
    shadowed = path.is_dir() and str(source) in preset_names()
    if (path.suffix in (".yaml", ".yml") or path.exists()) and not shadowed:
        text, origin = _config_text(path), str(path)
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


def _config_text(path: Path) -> str:
    """The text of a config file: a regular file (never a FIFO or a device), at most
    :data:`MAX_CONFIG_BYTES`, UTF-8."""
    import stat

    try:
        mode = path.stat()
    except OSError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    if not stat.S_ISREG(mode.st_mode):
        what = "a folder" if stat.S_ISDIR(mode.st_mode) else "not a regular file"
        raise ConfigError(f"config file {str(path)!r} is {what}; give a YAML file")
    if mode.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {str(path)!r} is {mode.st_size:,} bytes, more than a config may be "
            f"({MAX_CONFIG_BYTES:,}); put data in files that a data source reads"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 (byte {exc.start}); save it as UTF-8"
        ) from None


def check_finite(data: Any, path: str = "") -> None:
    """Refuse a NaN or infinite number anywhere in a config, naming its field: no
    parameter means "not a number", and "no limit" is written ``null``."""
    if isinstance(data, dict):
        for key, value in data.items():
            check_finite(value, f"{path}{key}.")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_finite(value, f"{path}{i}.")
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(
            f"config field {path[:-1]!r} is {data}; a config holds finite numbers "
            "(write null where a parameter means none)"
        )


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


#: What a config can be given as: a loaded :class:`Config`, a mapping of fields, a preset
#: name or the path of a YAML file (see :func:`config_data`).
ConfigSource: TypeAlias = Config | Mapping[str, Any] | str | Path


def config_data(source: ConfigSource) -> dict[str, Any]:
    """The raw fields of a config, however it is given: a fresh copy, safe to change.

    The one resolver behind :func:`load_config`, :func:`collapselab.run` and
    :func:`collapselab.sweep`. A :class:`Config` gives its fields (as YAML would hold
    them), a mapping a deep copy, a string or path a preset of that name or a YAML file
    (read by :func:`read_yaml`).

    Raises
    ------
    ConfigError
        If ``source`` is none of these, or the file or preset cannot be read.
    """
    if isinstance(source, Config):
        return source.model_dump(mode="json")
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    if isinstance(source, str | Path):
        return read_yaml(source)[0]
    raise ConfigError(
        "a config is a Config, a mapping of fields, a preset name or the path of a YAML "
        f"file; got {type(source).__name__}"
    )


def override_assignments(overrides: Iterable[str] | Mapping[str, Any] | None) -> list[str]:
    """``--set`` assignments from a list of ``KEY=VALUE`` strings or a mapping of dotted keys
    to values (each value written as JSON, which the YAML reader parses back unchanged)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            try:
                out.append(f"{key}={json.dumps(value, allow_nan=False, default=str)}")
            except ValueError:
                raise ConfigError(
                    f"override {key!r} is {value}; a config holds finite numbers "
                    "(write None where a parameter means none)"
                ) from None
        return out
    if isinstance(overrides, str):
        raise ConfigError(
            f"overrides must be a list of KEY=VALUE strings or a mapping; got the string "
            f"{overrides!r} (write [{overrides!r}])"
        )
    return [str(item) for item in overrides]


def apply_shortcuts(data: dict[str, Any], **values: Any) -> list[str]:
    """``--seeds`` and ``--generations``: each given value set on the base and on every arm
    (also arms that set their own), as ``--set`` assignments of the base and in ``data``'s
    arms. Returns the base's assignments."""
    assignments = []
    for key, value in values.items():
        if value is None:
            continue
        assignments.append(f"{key}={json.dumps(value, default=str)}")
        for arm in data.get("arms") or []:
            if isinstance(arm, dict):
                arm[key] = value
    return assignments


def load_config(
    source: ConfigSource,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    seeds: int | None = None,
    generations: int | None = None,
) -> Config:
    """Read, override, validate and check a config.

    Parameters
    ----------
    source : Config, mapping, str or Path
        A loaded config, a mapping of fields, a preset name or a YAML file (see
        :func:`config_data`). A :class:`Config` without overrides is returned as it is.
    overrides : list of str or mapping, optional
        ``--set`` overrides: ``["regime.id=accumulate"]`` or ``{"regime.id": "accumulate"}``.
    seeds, generations : int, optional
        ``--seeds`` and ``--generations``: for the base and every arm.

    Raises
    ------
    ConfigError
        One line naming the field at fault.
    """
    assignments = override_assignments(overrides)
    if isinstance(source, Config) and not assignments and seeds is None and generations is None:
        return source
    data = config_data(source)
    # as on the command line: the shortcuts win over a --set of the same field
    assignments += apply_shortcuts(data, seeds=seeds, generations=generations)
    for assignment in assignments:
        before = copy.deepcopy(data)
        apply_set(data, assignment)
        check_arm_names(before, data, assignment)
    check_finite(data)
    config = _validate(Config, data)
    config.components()
    return config


#: Fields whose values an arm's name may state (its components and its decoding).
NAMED_FIELDS = ("data", "model", "regime", "curators", "decoding")


def check_arm_names(before: dict[str, Any], after: dict[str, Any], assignment: str) -> None:
    """Refuse an override of a base field that falsifies an arm's name.

    An arm that inherits a component or decoding field from the base runs with
    whatever the base says. If ``assignment`` (a ``--set`` on the base) changes a
    value of such a field that the arm's name mentions (``--set regime.id=accumulate``
    with an arm ``replace`` that inherits ``regime: replace``), the arm would run
    under a name that is no longer true: refused, in one line that suggests setting
    the field per arm. A name mentions a value when the value appears in it between
    separators (``-``, ``_``, ``.``) or at its ends.
    """
    arms = after.get("arms")
    if assignment.strip().startswith("arms") or not isinstance(arms, list):
        return
    key = assignment.partition("=")[0].strip()
    base_before = {k: v for k, v in before.items() if k != "arms"}
    base_after = {k: v for k, v in after.items() if k != "arms"}
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict) or not isinstance(arm.get("name"), str):
            continue  # the schema check names what is wrong with this arm
        old_arm, new_arm = merge(base_before, arm), merge(base_after, arm)
        for field in NAMED_FIELDS:
            for path, old in _changed(_normal(old_arm.get(field)), _normal(new_arm.get(field))):
                if _mentions(arm["name"], old):
                    where = ".".join([field, *path])
                    raise ConfigError(
                        f"--set {assignment!r} would run arm {arm['name']!r} with {where} "
                        f"changed from {old!r}, which its name states; set it for that arm "
                        f"(--set arms.{i}.{key}=...) or rename the arm"
                    )


def _normal(value: Any) -> Any:
    """A component given as its id is ``{id: ...}``, so the base and arms compare alike."""
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _changed(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, old value)`` of every scalar of ``old`` that ``new`` changes or drops."""
    if isinstance(old, dict):
        new = new if isinstance(new, dict) else {}
        return [c for k, v in old.items() for c in _changed(v, new.get(k), (*path, str(k)))]
    if isinstance(old, list):
        new = new if isinstance(new, list) else []
        return [
            c
            for j, v in enumerate(old)
            for c in _changed(v, new[j] if j < len(new) else None, (*path, str(j)))
        ]
    return [] if old == new and type(old) is type(new) else [(path, old)]


def _mentions(name: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    forms = {str(value)}
    if isinstance(value, float) and value.is_integer():
        forms.add(str(int(value)))
    return any(re.search(rf"(?:^|[-_.]){re.escape(f)}(?:$|[-_.])", name) for f in forms)


def _field(prefix: str, overridden: set[str] | None, field: str, arm: str = "") -> str:
    """A config field, quoted: under ``prefix`` when the arm sets its top key, else as
    the user wrote it, with the arm it fails in."""
    inherited = overridden is not None and field.split(".")[0] not in overridden
    if not inherited:
        return repr(prefix + field)
    return f"{field!r} (in arm {arm!r})" if arm and prefix else repr(field)


def check_components(
    config: RunConfig, prefix: str = "", overridden: set[str] | None = None
) -> dict[str, Any]:
    """Build every component once so unknown ids and bad parameters fail before running;
    the built components (see :func:`build_components`).

    Messages name fields under ``prefix`` (an arm's ``arms.<i>.``), or, with
    ``overridden`` (the keys the arm sets), only the fields the arm sets.
    """

    def where(field: str) -> str:
        return _field(prefix, overridden, field, config.name)

    built = build_components(config, prefix, overridden)
    kind = built["model"].kind
    fewest = built["model"].min_samples()
    sizes = {"samples_per_generation": config.samples_per_generation}
    if config.real_samples is not None:
        sizes["real_samples"] = config.real_samples
    for size_field, size in sizes.items():
        if size < fewest:
            raise ConfigError(
                f"config field {where(size_field)}: model {config.model.id!r} needs at least "
                f"{fewest} training samples with its parameters; got {size} (raise it, or "
                "change the model's parameters)"
            )
    if config.decoding is not None:
        from ..decoding import Decoding

        allowed = type(built["model"]).decoding_controls
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
        lacking = type(built["model"]).lacks(metric.requires)
        if lacking:
            raise ConfigError(
                f"config field {where(f'metrics.{i}')}: metric {name!r} needs a model that "
                f"provides {lacking[0]!r}, which model {config.model.id!r} does not (choose "
                "another metric or model)"
            )
        if config.samples_per_generation < metric.min_samples():
            raise ConfigError(
                f"config field {where('samples_per_generation')}: metric {name!r} needs at least "
                f"{metric.min_samples()} samples per generation with its parameters; got "
                f"{config.samples_per_generation} (raise it, or change the metric's parameters)"
            )
    return built


def build_components(
    config: RunConfig, prefix: str = "", overridden: set[str] | None = None
) -> dict[str, Any]:
    """The components of ``config`` by kind: ``data``, ``model``, ``regime``, and
    ``metrics`` and ``curators`` (dicts by name, in the config's order)."""

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
