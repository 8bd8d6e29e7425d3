"""A constructor's keyword arguments read as hyperparameters, so that code outside the registry is checked
like the registry: an optimizer class named by its path (``optimizer.name: "package.module:Class"``)
becomes an :class:`~models.optimizers.OptimizerSpec`, and the ``kwargs`` of a user's network or data module
get the same type checks when they are searched.

An argument's kind comes from its default's type (``0.9`` → float, ``(0.9, 0.999)`` → a pair, ``False`` →
bool, ``"x"`` → any string); an integer default annotated as a float (torch's ``momentum: float = 0``) is a
float. Arguments that default to ``None`` are implementation switches (``foreach``, ``fused``), not
hyperparameters, and arguments of other types are not searchable; both are left out. No bounds are known
beyond finiteness: the class itself refuses what it cannot take.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.optimizer import required as torch_required

from models.optimizers import PRESETS, HyperParam, OptimizerSpec, is_real


@dataclass(frozen=True)
class Arguments:
    """What a constructor takes: its hyperparameters with their defaults, the arguments that have no default,
    the names of its arguments, and whether it also takes ``**kwargs`` (``open``: any name is passed on)."""

    hyperparams: Mapping[str, HyperParam]
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    names: frozenset[str]
    open: bool


def read_arguments(target: Callable[..., Any], skip: int = 0) -> Arguments:
    """The keyword arguments of ``target`` (a class: its constructor), after the first ``skip`` positional
    ones (an optimizer's ``params``)."""
    try:
        signature = inspect.signature(target, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # annotations that do not resolve: read them as text
        signature = inspect.signature(target)
    parameters = list(signature.parameters.values())
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    hyperparams, defaults, without_default, names = {}, {}, [], set()
    for parameter in parameters[skip:]:
        if parameter.kind in kinds:
            continue
        names.add(parameter.name)
        # torch's ``required`` marks an optimizer argument without a default (older optimizers' lr)
        default = inspect.Parameter.empty if parameter.default is torch_required else parameter.default
        if default is inspect.Parameter.empty:
            without_default.append(parameter.name)
        else:
            defaults[parameter.name] = default
        kind = _kind(default, parameter.annotation)
        if kind is not None:
            hyperparams[parameter.name] = HyperParam(parameter.name, kind, doc="constructor argument")
    open_ = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)
    return Arguments(hyperparams, defaults, tuple(without_default), frozenset(names), open_)


def _kind(default: Any, annotation: Any) -> type | None:
    if isinstance(default, bool):
        return bool
    if isinstance(default, numbers.Integral):
        return float if "float" in str(annotation) else int
    if isinstance(default, numbers.Real):
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, tuple | list) and len(default) == 2 and all(map(is_real, default)):
        return tuple
    if default is inspect.Parameter.empty:  # a required argument: its kind from a plain annotation
        return next((k for k in (bool, int, float, str) if annotation is k or annotation == k.__name__), None)
    return None


def class_spec(name: str, cls: type[torch.optim.Optimizer]) -> OptimizerSpec:
    """An optimizer class outside the registry as a registry entry named by its path: its constructor's
    hyperparameters, their defaults as its preset. A class has one set of defaults, so both presets (torch,
    keras) are its constructor's. Every hyperparameter needs a default, as every registry entry has one: a
    trial starts from the preset. A ``ValueError`` says which argument has none."""
    arguments = read_arguments(cls, skip=1)
    if arguments.required:
        raise ValueError(
            f"{name}: constructor argument {arguments.required[0]!r} has no default; give it one (a class's"
            " defaults are its preset) or wrap the class"
        )
    defaults = {key: arguments.defaults[key] for key in arguments.hyperparams}
    summary = (inspect.getdoc(cls) or name).splitlines()[0]
    return OptimizerSpec(
        name, summary, cls, arguments.hyperparams, dict.fromkeys(PRESETS, defaults), fused=False
    )
