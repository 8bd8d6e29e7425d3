"""The ``search`` block of a sweep spec: each key a range, a list of choices or a fixed value, applied only to
the optimizers that take that hyperparameter, so a sampled configuration is valid by construction.

A key with a dot is a setting of the train config: ``trainer.<key>``, ``scheduler.<key>`` (a schedule's
setting applies only where the sampled schedule takes it), ``model.kwargs.<name>`` or ``data.kwargs.<name>``.
Trainer and scheduler values are checked here by the config's own models; a target's kwargs are checked
against its constructor once it is imported (``sweeps.engine.workload``), before anything runs.
"""

from __future__ import annotations

import math
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial, reduce
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.optimizers import HyperParam
from models.schedules import SCHEDULES
from sweeps.config.files import Strict, describe, merge
from sweeps.config.imports import optimizer_spec
from sweeps.config.train import DataConfig, SchedulerConfig, TrainerConfig

if TYPE_CHECKING:
    import optuna


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
OptimizerName = Annotated[str, AfterValidator(lambda name: optimizer_spec(name).name)]
BatchSize = Annotated[int | Literal["full"], BeforeValidator(DataConfig._batch_size)]
Optimizers = _by_shape(list=list[OptimizerName], value=OptimizerName)
BatchSizes = _by_shape(list=list[BatchSize], value=BatchSize)


Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Searched:
    """One search value with what it is searched as: the one place that checks it, counts its values (for a
    grid) and samples it. ``kind`` is what a value is (``tuple``: a pair, searched one value per element;
    ``object``: not known until its target is imported); ``check(name, value)`` refuses one value (or one
    element of a pair) that the hyperparameter or setting does not take, with a ``ValueError`` naming it."""

    name: str
    kind: type
    value: Any
    check: Check | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, hp: HyperParam, value: Any) -> Searched:
        """A search value of a registry hyperparameter or of a constructor argument read as one."""
        one = float if hp.kind is tuple else hp.kind
        return cls(hp.name, hp.kind, value, lambda name, x: replace(hp, name=name, kind=one).check(x))

    def _elements(self) -> list[Searched]:
        return [Searched(f"{self.name}[{i}]", float, v, self.check) for i, v in enumerate(self.value)]

    def validated(self) -> Searched:
        """Itself, or a ``ValueError`` when it could produce a value that is not taken."""
        check = partial(self.check or (lambda _, x: x), self.name)
        if self.kind is tuple:
            if not (isinstance(self.value, list) and len(self.value) == 2):
                raise ValueError(
                    f"{self.name} takes one search value per element, e.g. [{{low: 0.8, high: 0.95}}, 0.999]"
                )
            for element in self._elements():
                element.validated()
        elif isinstance(range_ := self.value, Range):
            if self.kind not in (int, float, object):
                raise ValueError(f"{self.name} is not numeric; list its values instead of a range")
            check(range_.low)
            check(range_.high)
            if self.kind is int and not isinstance(range_.step, int | None):
                raise ValueError(f"{self.name} is an integer; its step must be one too, got {range_.step!r}")
        elif isinstance(self.value, list):
            distinct_choices(self.value)
            for item in self.value:
                if isinstance(item, Range | list):
                    raise ValueError("a list holds the values to choose from, not ranges or lists")
                check(item)
        else:
            check(self.value)
        return self

    def size(self) -> int | None:
        """How many values it can take; ``None`` when it is or holds a range."""
        if self.kind is tuple:
            sizes = [element.size() for element in self._elements()]
            return None if None in sizes else math.prod(sizes)  # type: ignore[arg-type]
        if isinstance(self.value, Range):
            return None
        return len(self.value) if isinstance(self.value, list) else 1

    def sample(self, trial: optuna.Trial, name: str) -> Any:
        """A value drawn on ``trial`` as parameter ``name`` (a pair's elements as ``<name>.<i>``); a fixed
        value is applied without a suggestion."""
        value = self.value
        if self.kind is tuple:
            return tuple(e.sample(trial, f"{name}.{i}") for i, e in enumerate(self._elements()))
        if isinstance(value, Range):
            if self.kind is int:
                return trial.suggest_int(name, value.low, value.high, step=value.step or 1, log=value.log)
            return trial.suggest_float(name, value.low, value.high, step=value.step, log=value.log)
        if isinstance(value, list):
            return trial.suggest_categorical(name, value)
        return value

    def admits(self, x: Any) -> bool:
        """Whether a searched (not fixed) value can be exactly ``x``: a trial may be queued with it."""
        if isinstance(self.value, Range):
            return self.value.step is None and self.value.low <= x <= self.value.high
        return isinstance(self.value, list) and x in self.value

    def extreme(self, pick: Callable[..., Any]) -> Any:
        """The highest (``max``) or lowest (``min``) value it can take."""
        if isinstance(self.value, Range):
            return pick(self.value.low, self.value.high)
        return pick(self.value) if isinstance(self.value, list) else self.value


def distinct_choices(value: list[Any]) -> None:
    """A list of choices is non-empty and repeats nothing (by ``repr``: ``1`` and ``True`` differ)."""
    if not value or len(set(map(repr, value))) < len(value):
        raise ValueError(f"a list of choices must be non-empty and without repeats, got {value!r}")


SETTING_SECTIONS = {
    "model": "model.kwargs.",
    "data": "data.kwargs.",
    "trainer": "trainer.",
    "scheduler": "scheduler.",
}
"""The sections whose settings a search may hold, and the prefix of their keys."""


def split_setting(key: str) -> tuple[str, str]:
    """A setting's section and its name there (``model.kwargs.width``: ``model``, ``width``): the one
    reading of a setting's dotted key. A key not under its section's prefix keeps its dots in the name."""
    section = key.partition(".")[0]
    return section, key.removeprefix(SETTING_SECTIONS.get(section, f"{section}."))


_SECTION_MODELS: Mapping[str, type[BaseModel]] = {"trainer": TrainerConfig, "scheduler": SchedulerConfig}


def _kind(annotation: Any) -> type:
    """The kind a config field is sampled as: ``float`` or ``int`` (a range may be searched), else ``bool`` or
    ``str`` (a ``Literal`` of names), whose values are listed."""
    leaves = _leaves(annotation)
    return next((kind for kind in (float, int, bool) if kind in leaves), str)


def _leaves(annotation: Any) -> set[Any]:
    """The plain types inside an annotation (``Count | None`` → ``{int, NoneType}``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return {type(arg) for arg in args}
    if typing.get_origin(annotation) is Annotated:
        return _leaves(args[0])
    return set().union(*map(_leaves, args)) if args else {annotation}


def setting(key: str, value: Any) -> Searched:
    """A searched ``trainer.<key>`` or ``scheduler.<key>``: sampled as its field's kind, each value checked by
    the section's own model (a schedule's setting under a schedule that takes it); ``model.kwargs.<name>`` or
    ``data.kwargs.<name>``: of a kind not known until its target is imported. A ``ValueError`` naming the keys
    a section has for a key it does not have."""
    section, name = split_setting(key)
    model = _SECTION_MODELS.get(section)
    if model is None:
        return Searched(key, object, value)
    if name not in model.model_fields:
        raise ValueError(f"{key}: unknown key; {section} has: {', '.join(model.model_fields)}")
    takers = [s for s, takes in SCHEDULES.items() if name in takes]
    base = {"name": takers[0]} if section == "scheduler" and takers else {}

    def check(_: str, one: Any) -> Any:
        try:
            return getattr(model.model_validate({**base, name: one}), name)
        except ValidationError as exc:
            raise ValueError(describe(exc).replace("\n", "; ")) from None

    return Searched(key, _kind(model.model_fields[name].annotation), value, check)


class HyperparamSpace(BaseModel):
    """Hyperparameter name → search value; which names an optimizer takes is checked by the owner."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, SearchValue] = Field(init=False)  # type: ignore[valid-type]

    def hyperparams(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if "." not in k}

    def settings(self) -> dict[str, Any]:
        """The config settings searched: keys with a dot (``trainer.max_epochs``, ``model.kwargs.width``)."""
        return {k: v for k, v in (self.model_extra or {}).items() if "." in k}


class SearchConfig(HyperparamSpace):
    """``optimizer`` and ``batch_size``: a list is searched, a single value fixed; every other key without a
    dot is a hyperparameter, applied to the searched optimizers that take it; ``per_optimizer.<name>``
    overrides them for one optimizer; a key with a dot is a config setting."""

    optimizer: Optimizers  # type: ignore[valid-type]
    batch_size: BatchSizes | None = None  # type: ignore[valid-type]
    per_optimizer: dict[str, HyperparamSpace] = {}

    @model_validator(mode="before")
    @classmethod
    def _dotted_keys(cls, data: Any) -> Any:
        """A section written nested (``trainer: {max_epochs: [2, 4]}``, or an override
        ``search.trainer.max_epochs=[2,4]``) is its dotted keys; ``scheduler: [none, cosine]`` is
        ``scheduler.name``. A dotted key given both ways is merged, the nested (an override's) winning."""
        if not isinstance(data, dict):
            return data
        flat = {k: v for k, v in data.items() if k not in SETTING_SECTIONS}
        for section in SETTING_SECTIONS.keys() & data.keys():
            nested = dict(data[section]) if isinstance(data[section], dict) else {"name": data[section]}
            if isinstance(nested.get("kwargs"), dict):
                nested |= {f"kwargs.{k}": v for k, v in nested.pop("kwargs").items()}
            for key, value in nested.items():
                dotted = f"{section}.{key}"
                both = isinstance(flat.get(dotted), dict) and isinstance(value, dict)
                flat[dotted] = merge(flat[dotted], value) if both else value
        return flat

    @field_validator("optimizer", "batch_size")
    @classmethod
    def _distinct(cls, value: Any) -> Any:
        if isinstance(value, list):
            distinct_choices(value)
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
            if space.settings():
                raise ValueError(f"{name}: {', '.join(space.settings())}: settings are searched for all")
            spec = optimizer_spec(name)
            for key, value in space.hyperparams().items():
                if key not in spec.hyperparams:
                    raise ValueError(
                        f"{name}: {name} takes no {key!r}; it takes: {', '.join(spec.hyperparams)}"
                    )
                try:
                    Searched.of(spec.hyperparams[key], value).validated()
                except ValueError as exc:
                    raise ValueError(f"{name}: {key}: {exc}") from None
        return spaces

    @model_validator(mode="after")
    def _shared_hyperparams(self) -> SearchConfig:
        """Each shared key must be taken by a searched optimizer and valid wherever it applies."""
        for key, value in self.hyperparams().items():
            takers = [name for name in self.optimizers if key in optimizer_spec(name).hyperparams]
            if not takers:
                raise ValueError(f"{key}: none of {', '.join(self.optimizers)} takes {key!r}")
            for name in takers:
                if key not in self.per_optimizer.get(name, HyperparamSpace()).hyperparams():
                    try:
                        Searched.of(optimizer_spec(name).hyperparams[key], value).validated()
                    except ValueError as exc:
                        raise ValueError(f"{key}: {exc} (for optimizer {name!r})") from None
        return self

    @model_validator(mode="after")
    def _settings(self) -> SearchConfig:
        """Each setting is in a section that can be searched, and its values are valid there; errors start
        with the key, so that they name ``search.<section>.<key>``."""
        for key, value in self.settings().items():
            section, name = split_setting(key)
            if section not in SETTING_SECTIONS or "." in name:
                searchable = ", ".join(f"{p}<key>" for p in SETTING_SECTIONS.values())
                raise ValueError(f"{key}: only {searchable} can be searched")
            try:
                setting(key, value).validated()
            except ValueError as exc:
                message = str(exc).removeprefix(f"{key}: ")
                raise ValueError(f"{key}: {message}") from None
        return self

    @property
    def optimizers(self) -> list[str]:
        """The searched optimizers, in the order given."""
        return _listed(self.optimizer)

    def schedules(self, base: str) -> list[str]:
        """The schedules trials may use: those searched, else the config's ``base``."""
        return _listed(self.settings().get("scheduler.name", base))

    def space(self, optimizer: str) -> dict[str, Any]:
        """The search values that apply to ``optimizer``: the shared ones it takes, then its overrides."""
        takes = optimizer_spec(optimizer).hyperparams
        shared = {k: v for k, v in self.hyperparams().items() if k in takes}
        return shared | self.per_optimizer.get(optimizer, HyperparamSpace()).hyperparams()

    def searched(self, optimizer: str) -> dict[str, Searched]:
        """:meth:`space` as search values of ``optimizer``'s hyperparameters."""
        takes = optimizer_spec(optimizer).hyperparams
        return {key: Searched.of(takes[key], value) for key, value in self.space(optimizer).items()}

    def _sizes(self, optimizer: str) -> dict[str, int | None]:
        return {key: value.size() for key, value in self.searched(optimizer).items()}

    def _all_sizes(self) -> dict[str, int | None]:
        """How many values ``batch_size``, each ``<optimizer>.<hp>`` and each setting can take (``None``: a
        range)."""
        sizes = {f"{name}.{key}": n for name in self.optimizers for key, n in self._sizes(name).items()}
        settings = {key: setting(key, value).size() for key, value in self.settings().items()}
        return {"batch_size": len(_listed(self.batch_size or []))} | sizes | settings

    def ranges(self) -> list[str]:
        """What is searched as (or holds) a range: the continuous part."""
        return [key for key, n in self._all_sizes().items() if n is None]

    def tuned(self) -> list[str]:
        """What the search tunes, beyond choosing among the optimizers: what has more than one value."""
        return [key for key, n in self._all_sizes().items() if n is None or n > 1]

    def grid_size(self, schedule: str = "none") -> int:
        """How many distinct configurations a space without ranges holds: per optimizer, the product of
        its choices (conditional hyperparameters do not multiply across optimizers), times the settings'
        choices (a schedule's settings only under the schedules that take them; ``schedule``: the config's,
        when the search does not list schedules)."""
        batch_sizes = len(self.batch_size) if isinstance(self.batch_size, list) else 1
        optimizers = sum(math.prod(n or 0 for n in self._sizes(name).values()) for name in self.optimizers)
        sizes = {key: setting(key, v).size() or 0 for key, v in self.settings().items()}
        knobs = {
            key: n for key, n in sizes.items() if key.startswith("scheduler.") and key != "scheduler.name"
        }
        schedules = sum(
            math.prod(n for key, n in knobs.items() if split_setting(key)[1] in SCHEDULES[name])
            for name in self.schedules(schedule)
        )
        others = math.prod(n for key, n in sizes.items() if key not in knobs and key != "scheduler.name")
        return batch_sizes * optimizers * schedules * others


def _listed(value: str | list[str]) -> list[str]:
    return list(value) if isinstance(value, list) else [value]
