"""Run configuration: YAML plus ``key.sub=value`` overrides, validated into frozen pydantic models.

Everything a run needs is checked here, before any data is read or any MLflow run exists: unknown keys,
wrong types, out-of-range values and hyperparameters the chosen optimizer does not take are all refused
with the dotted name of the offending field.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from models.cnn import Init
from models.data.catalogue import Scaling, dataset_info
from models.optimizers import PRESETS, get_spec
from sweeps.config.files import Strict, merge, parse_overrides, read_yaml, validate

Count = Annotated[int, Field(strict=True, gt=0)]
"""A positive integer; strict, so ``true`` is refused instead of meaning 1."""


class DataConfig(Strict):
    """Which data, how it is split and batched. Validation runs on a seeded hold-out of the train split by
    default, so that whatever is selected on it is scored elsewhere; ``val_split: test`` validates on the
    test split, as the classic comparison did."""

    name: str = "fashion_mnist"
    dir: Path | None = None
    batch_size: int | Literal["full"] = 64
    train_subset: Count | None = None
    val_split: Literal["test", "holdout"] = "holdout"
    holdout_size: Count | None = None  # default: a sixth of the train split (MNIST: 10,000 of 60,000)
    split_seed: StrictInt = 0  # draws the hold-out and the subset; the same for every trial of a sweep
    scaling: Scaling = "standard"  # unit: pixels / 255 (the classic comparison); standard: then mean/std
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


class ModelConfig(Strict):
    init: Init = "torch"
    fused: bool = True


class TrainerConfig(Strict):
    max_epochs: Count = 10
    precision: Literal["32", "bf16"] = "32"
    seed: StrictInt = 0
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    threads: Count | None = Field(default=None, description="torch intra-op threads; default: all cores")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class TrainConfig(Strict):
    experiment: str = "train"
    run_name: str | None = None
    data: DataConfig = DataConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    model: ModelConfig = ModelConfig()
    trainer: TrainerConfig = TrainerConfig()


def load(path: Path, overrides: Iterable[str] = (), model: type[TrainConfig] = TrainConfig) -> TrainConfig:
    """Read, override and validate a config; raises :class:`ConfigError` naming every bad field."""
    return validate(model, merge(read_yaml(path), parse_overrides(overrides)))
