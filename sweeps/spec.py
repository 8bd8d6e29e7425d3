"""The sweep spec: a train config (where every trial starts) plus a ``study`` and a ``search`` block.

It is validated like the train config, before any study or run exists: unknown keys, values outside what
the optimizer registry allows, hyperparameters no searched optimizer takes and study settings Optuna
cannot honour are all refused with the dotted name of the field. The search space is declarative: each
key of ``search`` is a range, a list of choices or a fixed value, applied only to the optimizers that take
that hyperparameter, so a sampled configuration is valid by construction.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.optimizers import HyperParam, get_spec
from sweeps.config import (
    Count,
    DataConfig,
    OptimizerConfig,
    TrainConfig,
    _Strict,
    merge,
    parse_overrides,
    read_yaml,
    validate,
)

Direction = Literal["maximize", "minimize"]
# What a trial can report, with the direction that improves it. The names are those
# models/module.py (OptimizerModule) logs each epoch and sweeps/train.py keeps as the run's result
# (best_val_acc: max of val_acc over epochs; the others: the last epoch's value).
METRIC_DIRECTIONS: Mapping[str, Direction] = {
    "best_val_acc": "maximize",
    "val_acc": "maximize",
    "val_loss": "minimize",
    "train_loss": "minimize",
}


def _number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    raise ValueError(f"must be a finite number, got {value!r}")


def _choice(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"must be a number, true/false or a name, got {value!r}")


Number = Annotated[int | float, PlainValidator(_number)]
Choice = Annotated[bool | int | float | str, PlainValidator(_choice)]


class Range(_Strict):
    """``{low, high}``: sampled uniformly (``log: true``: log-uniformly), in steps of ``step`` if given."""

    low: Number
    high: Number
    log: StrictBool = False
    step: Number | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        """Errors start with ``<key>:`` so that they name ``<...>.range.<key>``."""
        if not self.low < self.high:
            raise ValueError(f"high: must be > low ({self.low}), got {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"low: a log range needs low > 0, got {self.low}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step: must be > 0, got {self.step}")
        if self.step is not None and self.log:
            raise ValueError("step: cannot be combined with log: true (Optuna samples one or the other)")
        return self


def _shape(value: Any) -> str:
    if isinstance(value, dict | Range):
        return "range"
    return "list" if isinstance(value, list | tuple) else "value"


def _by_shape(**forms: Any) -> Any:
    """A union picked by the input's shape (``range``: a mapping, ``list``, ``value``: anything else),
    so that a mistake is reported once, under the form it was read as (``search.lr.range.hgh``)."""
    union = reduce(operator.or_, (Annotated[form, Tag(tag)] for tag, form in forms.items()))
    return Annotated[union, Discriminator(_shape)]


Component = _by_shape(range=Range, list=list[Choice], value=Choice)
"""A range, a list of choices (categorical) or a fixed value."""
SearchValue = _by_shape(range=Range, list=list[Component], value=Choice)
"""A :data:`Component`, or for a tuple hyperparameter (``betas``) a list of one Component per element."""
OptimizerName = Annotated[str, BeforeValidator(lambda name: get_spec(name).name)]
BatchSize = Annotated[int | Literal["full"], BeforeValidator(DataConfig._batch_size)]
Optimizers = _by_shape(list=list[OptimizerName], value=OptimizerName)
BatchSizes = _by_shape(list=list[BatchSize], value=BatchSize)


def _check(hp: HyperParam, value: Any) -> None:
    """Refuse a search value that could produce a value ``hp`` does not accept (a ``ValueError``)."""
    if hp.kind is tuple:
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError(
                f"{hp.name} takes one search value per element, e.g. [{{low: 0.8, high: 0.95}}, 0.999]"
            )
        for i, component in enumerate(value):
            _check(replace(hp, kind=float, name=f"{hp.name}[{i}]"), component)
    elif isinstance(value, Range):
        if hp.kind not in (int, float):
            raise ValueError(f"{hp.name} is not numeric; list its values instead of a range")
        hp.check(value.low)
        hp.check(value.high)
        if hp.kind is int and not isinstance(value.step, int | None):
            raise ValueError(f"{hp.name} is an integer; its step must be one too, got {value.step!r}")
    elif isinstance(value, list):
        _distinct_choices(value)
        for item in value:
            if isinstance(item, Range | list):
                raise ValueError("a list holds the values to choose from, not ranges or lists")
            hp.check(item)
    else:
        hp.check(value)


def _distinct_choices(value: list[Any]) -> None:
    """A list of choices is non-empty and repeats nothing (by ``repr``: ``1`` and ``True`` differ)."""
    if not value or len(set(map(repr, value))) < len(value):
        raise ValueError(f"a list of choices must be non-empty and without repeats, got {value!r}")


def _choices(hp: HyperParam, value: Any) -> int | None:
    """How many values a (checked) search value can take; ``None`` when it is or holds a range."""
    if hp.kind is tuple:
        sizes = [_choices(replace(hp, kind=float), component) for component in value]
        return None if None in sizes else math.prod(sizes)  # type: ignore[arg-type]
    if isinstance(value, Range):
        return None
    return len(value) if isinstance(value, list) else 1


class HyperparamSpace(BaseModel):
    """Hyperparameter name → search value; which names an optimizer takes is checked by the owner."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, SearchValue] = Field(init=False)  # type: ignore[valid-type]

    def hyperparams(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SearchConfig(HyperparamSpace):
    """``optimizer`` and ``batch_size``: a list is searched, a single value fixed; every other key is a
    hyperparameter, applied to the searched optimizers that take it; ``per_optimizer.<name>`` overrides
    them for one optimizer."""

    optimizer: Optimizers  # type: ignore[valid-type]
    batch_size: BatchSizes | None = None  # type: ignore[valid-type]
    per_optimizer: dict[str, HyperparamSpace] = {}

    @field_validator("optimizer", "batch_size")
    @classmethod
    def _distinct(cls, value: Any) -> Any:
        if isinstance(value, list):
            _distinct_choices(value)
        return value

    @field_validator("per_optimizer")
    @classmethod
    def _per_optimizer(cls, spaces: dict[str, HyperparamSpace], info: ValidationInfo) -> Any:
        """Errors start with ``<optimizer>:`` so that they name ``search.per_optimizer.<optimizer>``."""
        if "optimizer" not in info.data:
            return spaces  # the optimizer field is wrong, and reported
        searched = _listed(info.data["optimizer"])
        for name, space in spaces.items():
            if name not in searched:
                raise ValueError(f"{name}: not searched; search.optimizer is {', '.join(searched)}")
            spec = get_spec(name)
            for key, value in space.hyperparams().items():
                if key not in spec.hyperparams:
                    raise ValueError(
                        f"{name}: {name} takes no {key!r}; it takes: {', '.join(spec.hyperparams)}"
                    )
                try:
                    _check(spec.hyperparams[key], value)
                except ValueError as exc:
                    raise ValueError(f"{name}: {key}: {exc}") from None
        return spaces

    @model_validator(mode="after")
    def _shared_hyperparams(self) -> SearchConfig:
        """Each shared key must be taken by a searched optimizer and valid wherever it applies."""
        for key, value in self.hyperparams().items():
            takers = [name for name in self.optimizers if key in get_spec(name).hyperparams]
            if not takers:
                raise ValueError(f"{key}: none of {', '.join(self.optimizers)} takes {key!r}")
            for name in takers:
                if key not in self.per_optimizer.get(name, HyperparamSpace()).hyperparams():
                    try:
                        _check(get_spec(name).hyperparams[key], value)
                    except ValueError as exc:
                        raise ValueError(f"{key}: {exc} (for optimizer {name!r})") from None
        return self

    @property
    def optimizers(self) -> list[str]:
        """The searched optimizers, in the order given."""
        return _listed(self.optimizer)

    def space(self, optimizer: str) -> dict[str, Any]:
        """The search values that apply to ``optimizer``: the shared ones it takes, then its overrides."""
        takes = get_spec(optimizer).hyperparams
        shared = {k: v for k, v in self.hyperparams().items() if k in takes}
        return shared | self.per_optimizer.get(optimizer, HyperparamSpace()).hyperparams()

    def _sizes(self, optimizer: str) -> dict[str, int | None]:
        takes = get_spec(optimizer).hyperparams
        return {key: _choices(takes[key], value) for key, value in self.space(optimizer).items()}

    def ranges(self) -> list[str]:
        """``<optimizer>.<hp>`` of every search value that is (or holds) a range: the continuous part."""
        return [
            f"{name}.{key}" for name in self.optimizers for key, n in self._sizes(name).items() if n is None
        ]

    def grid_size(self) -> int:
        """How many distinct configurations a space without ranges holds: per optimizer, the product of
        its choices (conditional hyperparameters do not multiply across optimizers)."""
        batch_sizes = len(self.batch_size) if isinstance(self.batch_size, list) else 1
        return batch_sizes * sum(
            math.prod(n or 0 for n in self._sizes(name).values()) for name in self.optimizers
        )


def _listed(value: str | list[str]) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


class StudyConfig(_Strict):
    """How Optuna searches: objective, sampler, pruner and budget."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    direction: Direction = "maximize"
    metric: Literal[tuple(METRIC_DIRECTIONS)] = "best_val_acc"  # type: ignore[valid-type]
    sampler: Literal["tpe", "random", "grid", "cmaes", "qmc"] = "tpe"  # grid: every configuration once
    seed: StrictInt = 0  # worker i seeds its sampler with seed + i
    pruner: Literal["none", "median", "successive_halving", "hyperband"] = "median"
    n_trials: Count | None = None  # per optimizer when per_optimizer; grid: defaults to the grid's size
    timeout: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] | None = None  # seconds
    per_optimizer: bool = False  # an equal budget: n_trials for each searched optimizer
    repeats: Count = 1  # seeds per configuration; the trial's value is their mean
    time_objective: bool = False  # a second objective, total training seconds (minimised): a Pareto front
    retrain_seeds: Annotated[int, Field(strict=True, ge=0)] = 0  # after the search: best and default × seeds

    @model_validator(mode="before")
    @classmethod
    def _direction_follows_metric(cls, data: Any) -> Any:
        """Without an explicit direction, the metric's own (``val_loss`` alone means minimize)."""
        if isinstance(data, dict) and "direction" not in data and data.get("metric") in METRIC_DIRECTIONS:
            return {**data, "direction": METRIC_DIRECTIONS[data["metric"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        """Errors start with ``<key>:`` so that they name ``study.<key>``."""
        wanted = METRIC_DIRECTIONS[self.metric]
        if self.direction != wanted:
            better = "higher" if wanted == "maximize" else "lower"
            raise ValueError(f"direction: {better} {self.metric} is better; use direction: {wanted}")
        if self.n_trials is None and self.timeout is None and self.sampler != "grid":
            raise ValueError("n_trials: give study.n_trials, study.timeout or both")
        if self.per_optimizer and self.sampler == "grid":
            raise ValueError(
                "per_optimizer: the grid sampler already runs every configuration of every optimizer"
            )
        if self.per_optimizer and self.pruner == "hyperband":
            raise ValueError(
                "pruner: hyperband reads its brackets from the whole study, so with per_optimizer it would"
                " prune one optimizer against another; use median or successive_halving"
            )
        if self.per_optimizer and self.n_trials is None:
            raise ValueError("per_optimizer: needs study.n_trials, the trials each optimizer gets")
        if self.time_objective and self.pruner != "none":
            raise ValueError(
                "pruner: Optuna cannot prune a multi-objective study (time_objective: true); use none"
            )
        if self.retrain_seeds and self.time_objective:
            raise ValueError(
                "retrain_seeds: picking each optimizer's best config needs one objective;"
                " set time_objective: false"
            )
        if self.time_objective and self.sampler == "cmaes":
            raise ValueError(
                "sampler: cmaes optimizes a single objective; with time_objective use tpe or random"
            )
        return self


class SweepConfig(TrainConfig):
    """The train config's keys are the defaults every trial starts from; ``experiment`` defaults to the
    study's name and ``search.optimizer`` to ``optimizer.name``."""

    search: SearchConfig
    study: StudyConfig  # after search: its checks need the space

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_other_blocks(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        study, search, optimizer = (data.get(k) for k in ("study", "search", "optimizer"))
        if "experiment" not in data and isinstance(study, dict) and isinstance(study.get("name"), str):
            data["experiment"] = study["name"]
        if isinstance(search, dict) and "optimizer" not in search:
            base = optimizer.get("name") if isinstance(optimizer, dict) else None
            data["search"] = {**search, "optimizer": base or OptimizerConfig().name}
        return data

    @field_validator("search")
    @classmethod
    def _base_hyperparams_fit(cls, search: SearchConfig, info: ValidationInfo) -> SearchConfig:
        """The ``optimizer`` section's preset and hyperparameters are where every trial starts from, for
        each searched optimizer that takes them and does not search them."""
        base: OptimizerConfig | None = info.data.get("optimizer")
        if base is None:
            return search  # the optimizer section is wrong, and reported
        for name in search.optimizers:
            try:
                start_from(base, name, search.space(name))
            except ValueError as exc:
                raise ValueError(
                    f"optimizer: {name} cannot start from the optimizer section: {exc}"
                ) from None
        return search

    @field_validator("study")
    @classmethod
    def _sampler_fits_space(cls, study: StudyConfig, info: ValidationInfo) -> StudyConfig:
        """Errors start with ``<key>:`` so that they name ``study.<key>``."""
        search: SearchConfig | None = info.data.get("search")
        if search is None:
            return study  # the search block is wrong, and reported
        ranges = search.ranges()
        if study.sampler == "grid":
            if ranges:
                raise ValueError(
                    f"sampler: grid needs a finite space; list the values of {', '.join(ranges)}"
                )
            size = search.grid_size()
            if study.n_trials is None:
                return study.model_copy(update={"n_trials": size})
            if study.n_trials > size:
                raise ValueError(f"n_trials: {study.n_trials} exceeds the grid's {size} configurations")
        if study.sampler == "cmaes" and not ranges:
            raise ValueError("sampler: cmaes has nothing to do: the search space holds no range")
        if study.sampler in ("cmaes", "qmc") and len(search.optimizers) > 1:
            raise ValueError(
                f"sampler: {study.sampler} needs a space without conditions, but each of "
                f"{len(search.optimizers)} optimizers has its own; use tpe or random, or fix search.optimizer"
            )
        return study


def start_from(base: OptimizerConfig, name: str, searched: Iterable[str] = ()) -> dict[str, Any]:
    """The ``optimizer`` section for a trial of ``name``: the base preset and the base hyperparameters
    ``name`` takes, except those in ``searched``; checked by the registry (a ``ValueError``)."""
    spec = get_spec(name)
    kept = {k: v for k, v in base.overrides().items() if k in spec.hyperparams and k not in searched}
    spec.resolve(base.preset, **kept)
    return {"name": name, "preset": base.preset, **kept}


def load_sweep(path: Path, overrides: Iterable[str] = ()) -> SweepConfig:
    """Read, override (``study.n_trials=20``, ``search.lr.high=0.1``) and validate a sweep spec;
    raises :class:`~sweeps.config.ConfigError` naming every bad field."""
    return validate(SweepConfig, merge(read_yaml(path), parse_overrides(overrides)))
