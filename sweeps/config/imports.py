"""User code named in a config by a ``package.module:name`` path: a network, a LightningModule, a data module
or an optimizer class.

The config checks a path's form when it is validated; the object is imported afterwards (a network or data
module when it is built, an optimizer class when its hyperparameters are checked), each failure a
``ValueError`` saying what did not import and why. The current directory is importable, as with
``python -m``, so a ``mynet.py`` beside the config works without installing anything.

A worker rebuilds the spec from the study's database, which others may write: whoever starts a process can
restrict the packages it imports from (``$SWEEPS_ALLOW_IMPORTS``, comma-separated top-level names), checked
before anything is imported.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from functools import cache
from typing import Annotated, Any

import torch
from pydantic import AfterValidator

from models.introspect import class_spec
from models.optimizers import OptimizerSpec, get_spec

ALLOW_ENV = "SWEEPS_ALLOW_IMPORTS"
"""Comma-separated top-level packages user code may be imported from; unset: any."""
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_path(name: str) -> bool:
    """Whether ``name`` names user code (``package.module:name``) rather than a built-in."""
    return ":" in name


def _checked_path(path: str) -> str:
    if not _PATH.match(path):
        raise ValueError(f"must be a 'package.module:name' path, e.g. 'mynet:Net', got {path!r}")
    return path


TargetPath = Annotated[str, AfterValidator(_checked_path)]
"""A ``package.module:name`` path, checked for its form only."""


def import_path(path: str) -> Any:
    """The object ``path`` names: its module imported (the current directory first, as ``python -m`` does),
    then the attributes after the colon followed."""
    module_name, _, attributes = _checked_path(path).partition(":")
    _check_allowed(path, module_name.split(".")[0])
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current directory, wherever the process is when it imports
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as exc:  # the module's own code may raise anything while it is imported
        raise ValueError(
            f"{path!r} does not import: {type(exc).__name__}: {exc} (searched the current directory and the"
            " installed packages)"
        ) from None
    for attribute in attributes.split("."):
        try:
            found = getattr(found, attribute)
        except AttributeError:
            raise ValueError(f"{path!r} does not import: {module_name} has no {attributes!r}") from None
    return found


def _check_allowed(path: str, package: str) -> None:
    """Before the import: importing a module runs its code."""
    allowed = [name.strip() for name in os.environ.get(ALLOW_ENV, "").split(",") if name.strip()]
    if allowed and package not in allowed:
        raise ValueError(
            f"{path!r} is from package {package!r}, which this process may not import from (allowed:"
            f" {', '.join(allowed)}; --allow-imports / ${ALLOW_ENV})"
        )


def kind_of(found: Any) -> str:
    """What an imported object is, for an error that says it is the wrong kind."""
    if isinstance(found, type):
        bases = ", ".join(base.__name__ for base in found.__mro__[1:-1]) or "object"
        return f"a class deriving from {bases}"
    return f"a {type(found).__name__}"


@cache
def optimizer_spec(name: str) -> OptimizerSpec:
    """The registry entry ``name``, or for a ``package.module:Class`` path the class read as one (its
    constructor's hyperparameters and defaults); a ``ValueError`` naming what is wrong otherwise."""
    if not is_path(name):
        return get_spec(name)
    found = import_path(name)
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise ValueError(f"{name!r} is not a torch.optim.Optimizer subclass: it is {kind_of(found)}")
    return class_spec(name, found)
