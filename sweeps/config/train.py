"""Run configuration: YAML plus ``key.sub=value`` overrides, validated into frozen pydantic models.

Everything a run needs is checked here, before any data is read or any MLflow run exists: unknown keys,
wrong types, out-of-range values and hyperparameters the chosen optimizer does not take are all refused
with the dotted name of the offending field. A ``model.target`` or ``data.target`` path is checked for its
form here and imported when it is built (``sweeps.engine.workload``), before any run exists too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from models.cnn import Init
from models.data.catalogue import Scaling, dataset_info
from models.optimizers import PRESETS
from models.schedules import SCHEDULES
from sweeps.config.files import Strict, overridden, read_yaml, validate
from sweeps.config.imports import TargetPath, is_path, optimizer_spec

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
    target: TargetPath | None = None  # a LightningDataModule of the user's instead of a built-in data set
    factory: bool = False  # target is a function returning the data module, not the class
    kwargs: dict[str, Any] = {}  # the target's constructor arguments

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

    @model_validator(mode="after")
    def _target_or_built_in(self) -> DataConfig:
        """A target's module takes its own settings (``kwargs``) and the batch size, nothing of the built-in
        data sets'; errors start with ``<key>:`` so that they name ``data.<key>``."""
        if self.target is None:
            if self.kwargs:
                raise ValueError("kwargs: only for a data.target; the built-in data sets take data.<key>")
            if self.factory:
                raise ValueError("factory: only for a data.target, which it declares a function")
            return self
        for key in ("dir", "train_subset"):
            if getattr(self, key) is not None:
                raise ValueError(f"{key}: is for the built-in data sets; data.target takes data.kwargs")
        if "batch_size" in self.kwargs:
            raise ValueError("kwargs: the batch size is data.batch_size (or search.batch_size), not a kwarg")
        if self.batch_size == "full":
            raise ValueError("batch_size: 'full' is for the built-in data sets; give data.target an integer")
        return self

    @property
    def label(self) -> str:
        """The data set as tables and params name it: the built-in's name or the target's path."""
        return self.target or self.name


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
            spec = optimizer_spec(self.name)
        except ValueError as exc:
            hint = "" if is_path(self.name) else " (or a 'package.module:Class' torch.optim.Optimizer)"
            raise ValueError(f"name: {exc}{hint}") from None
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
        return optimizer_spec(self.name).resolve(self.preset, **self.overrides())


class ModelConfig(Strict):
    """The seed CNN (``init``, ``fused``), or ``target``: a network (an ``nn.Module`` class, or with
    ``factory`` a function returning one) or a LightningModule of the user's, built with ``kwargs``."""

    init: Init = "torch"
    fused: bool = True
    target: TargetPath | None = None
    factory: bool = False  # target is a function returning the network, not a class
    kwargs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _target_or_seed_cnn(self) -> ModelConfig:
        """Errors start with ``<key>:`` so that they name ``model.<key>``."""
        if self.target is None and self.kwargs:
            raise ValueError("kwargs: only for a model.target; the seed CNN takes model.init and model.fused")
        if self.target is None and self.factory:
            raise ValueError("factory: only for a model.target, which it declares a function")
        if self.target is not None and self.init != "torch":
            raise ValueError("init: is the seed CNN's; a model.target initialises its own weights")
        return self


class SchedulerConfig(Strict):
    """The learning-rate schedule (``models.schedules``); each setting is refused by the schedules that do not
    take it, and ``None`` means the schedule's default. ``scheduler: cosine`` is short for
    ``scheduler: {name: cosine}``."""

    name: Literal[tuple(SCHEDULES)] = "none"  # type: ignore[valid-type]
    warmup_epochs: Annotated[int, Field(strict=True, ge=0)] | None = None
    step_size: Count | None = None
    gamma: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    min_lr_factor: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _settings_taken(self) -> SchedulerConfig:
        """Errors start with ``<key>:`` so that they name ``scheduler.<key>``."""
        takes = SCHEDULES[self.name]
        for key in self.settings():
            if key not in takes:
                taken = f"it takes: {', '.join(takes)}" if takes else "it takes no setting"
                raise ValueError(f"{key}: the {self.name} schedule takes no {key!r}; {taken}")
        return self

    def settings(self) -> dict[str, Any]:
        """The settings given (not ``None``)."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}


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
    scheduler: SchedulerConfig = SchedulerConfig()

    @model_validator(mode="after")
    def _warmup_within_the_run(self) -> TrainConfig:
        """A warm-up leaves some of the run to the schedule itself."""
        warmup = self.scheduler.warmup_epochs or 0
        if warmup >= self.trainer.max_epochs:
            raise ValueError(
                f"scheduler.warmup_epochs: {warmup} must be fewer than trainer.max_epochs"
                f" ({self.trainer.max_epochs})"
            )
        return self


def load(path: Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read, override and validate a config; raises :class:`ConfigError` naming every bad field."""
    return validate(TrainConfig, overridden(read_yaml(path), overrides))
