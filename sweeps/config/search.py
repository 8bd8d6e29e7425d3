"""The ``search`` block of a sweep spec: each key a range, a list of choices or a fixed value, applied only to
the optimizers that take that hyperparameter, so a sampled configuration is valid by construction."""

from __future__ import annotations

import math
import operator
from dataclasses import replace
from functools import reduce
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.optimizers import HyperParam, get_spec
from sweeps.config.files import Strict
from sweeps.config.train import DataConfig


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


class Range(Strict):
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

    def tuned(self) -> list[str]:
        """What the search tunes, beyond choosing among the optimizers: ``batch_size`` and every
        ``<optimizer>.<hp>`` with more than one value."""
        batch = ["batch_size"] if isinstance(self.batch_size, list) and len(self.batch_size) > 1 else []
        return batch + [
            f"{name}.{key}"
            for name in self.optimizers
            for key, n in self._sizes(name).items()
            if n is None or n > 1
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
