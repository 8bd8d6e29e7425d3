"""Run configuration: YAML plus ``key.sub=value`` overrides, validated into frozen pydantic models.

Everything a run needs is checked here, before any data is read or any MLflow run exists: unknown keys,
wrong types, out-of-range values and hyperparameters the chosen optimizer does not take are all refused
with the dotted name of the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from models.cnn import Init
from models.datasets import dataset_info
from models.optimizers import PRESETS, get_spec

M = TypeVar("M", bound=BaseModel)
Count = Annotated[int, Field(strict=True, gt=0)]
"""A positive integer; strict, so ``true`` is refused instead of meaning 1."""


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``1e-3`` is a string; configs mean a float, as YAML 1.2 says."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


class ConfigError(ValueError):
    """A configuration that cannot be run; the message names each offending field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    name: str = "fashion_mnist"
    dir: Path | None = None
    batch_size: int | Literal["full"] = 64
    train_subset: Count | None = None
    val_split: Literal["test", "holdout"] = "test"
    holdout_size: Count = 10_000
    download: bool = True

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if value == "full" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(
            f"must be 'full' (batch gradient descent) or an integer >= 1 (1 = SGD), got {value!r}"
        )

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        dataset_info(name)
        return name


class OptimizerConfig(BaseModel):
    """``name`` and ``preset`` pick the registry entry and its defaults; every other key overrides one of
    that optimizer's hyperparameters (``lr``, ``momentum``, ``betas``, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = "adam"
    preset: Literal[PRESETS] = "torch"  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _takes_hyperparameters(self) -> OptimizerConfig:
        """Errors start with ``<key>:`` so :func:`describe` can name ``optimizer.<key>``."""
        try:
            spec = get_spec(self.name)
        except ValueError as exc:
            raise ValueError(f"name: {exc}") from None
        for key in self.overrides():
            if key not in spec.hyperparams:
                raise ValueError(
                    f"{key}: {spec.name} takes no {key!r}; it takes: {', '.join(spec.hyperparams)}"
                )
        try:
            self.resolved()
        except ValueError as exc:
            field = next((k for k in spec.hyperparams if str(exc).startswith(f"{k} ")), "preset")
            raise ValueError(f"{field}: {exc}") from None
        return self

    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def resolved(self) -> dict[str, Any]:
        """Preset values updated with the overrides, each checked against the optimizer's valid range."""
        return get_spec(self.name).resolve(self.preset, **self.overrides())


class ModelConfig(_Strict):
    init: Init = "torch"
    fused: bool = True


class TrainerConfig(_Strict):
    max_epochs: Count = 10
    precision: Literal["32", "bf16"] = "32"
    seed: StrictInt = 0
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    threads: Count | None = Field(default=None, description="torch intra-op threads; default: all cores")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class TrainConfig(_Strict):
    experiment: str = "train"
    run_name: str | None = None
    data: DataConfig = DataConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["optimizer.lr=0.1", "data.batch_size=full"]`` → nested dict; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        try:
            value = parse_yaml(text) if text else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from exc
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[leaf] = value
    return tree


def merge(base: Mapping[str, Any], update: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Deep-merge ``update`` into ``base``; a mapping may not replace a scalar or the other way round."""
    merged = dict(base)
    for key, value in update.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            current = merged.get(key, {})
            if not isinstance(current, Mapping):
                raise ConfigError(f"{where}: is a value, not a section; cannot set {where}.<key>")
            merged[key] = merge(current, value, f"{where}.")
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        loaded = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


def describe(error: ValidationError) -> str:
    """One line per problem, each starting with the dotted name of the field."""
    lines = []
    for err in error.errors():
        where = ".".join(str(part) for part in err["loc"]) or "config"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "value_error":
            field, sep, rest = message.partition(": ")
            if sep and field.isidentifier():
                where, message = f"{where}.{field}", rest
        else:
            message = f"{message} (got {err['input']!r})"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def validate(model: type[M], raw: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def load(path: Path, overrides: Iterable[str] = (), model: type[TrainConfig] = TrainConfig) -> TrainConfig:
    """Read, override and validate a config; raises :class:`ConfigError` naming every bad field."""
    return validate(model, merge(read_yaml(path), parse_overrides(overrides)))
