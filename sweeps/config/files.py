"""Reading configs: YAML files (the YAML 1.2 floats people mean), ``key.sub=value`` overrides merged in, and
pydantic validation whose errors name each bad field by its dotted path."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


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


class Strict(BaseModel):
    """Unknown keys are refused (naming them) and a validated config cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
        node, leaf = walk(tree, key, make=True)
        if not isinstance(node, dict):
            raise ConfigError(
                f"override {item!r} conflicts with another override of {key.rpartition('.')[0]!r}"
            )
        node[leaf] = value
    return tree


def walk(tree: dict[str, Any], key: str, make: bool = False) -> tuple[Any, str]:
    """The node that holds a dotted key's last part, and that part: the one walk of ``a.b.c`` keys. A part
    missing on the way gives ``None`` (``make``: an empty mapping put in its place); a value on the way is
    returned as the node, for the caller to refuse."""
    *parents, leaf = key.split(".")
    node: Any = tree
    for part in parents:
        if not isinstance(node, dict):
            break
        node = node.setdefault(part, {}) if make else node.get(part)
    return node, leaf


def overridden(base: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: ``key.sub=value`` sets, ``~key.sub`` removes a key the file set
    (Hydra's notation), so a setting inherited from a spec can be dropped on the command line."""
    overrides = list(overrides)
    removed = [o[1:] for o in overrides if o.startswith("~")]
    tree = merge(base, parse_overrides(o for o in overrides if not o.startswith("~")))
    for key in removed:
        node, leaf = walk(tree, key)
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"~{key}: the spec sets no such key to remove")
        del node[leaf]
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
    """The mapping a YAML file holds; every way a file can be unreadable is a ``ConfigError`` naming it."""
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r});"
            " is it the right file?"
        ) from None
    if "\0" in text:
        raise ConfigError(f"{path}: holds NUL bytes, so it is not a YAML text file; is it the right file?")
    try:
        loaded = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}{_where(exc)}: not valid YAML: {_problem(exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _where(error: yaml.YAMLError) -> str:
    """``:line:column`` (1-based) of a YAML error, where PyYAML knows it."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _problem(error: yaml.YAMLError) -> str:
    """What PyYAML found wrong, without its quote of the whole line (the file and line are named already)."""
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    return "; ".join(p for p in parts if p) or str(error).splitlines()[0]


def describe(error: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem, each starting with the dotted name of the field; a validator's message that
    starts with ``<key>:`` (or ``<key.sub>:``) names that field under the one it validated. An unknown key
    of ``model`` is answered with the closest valid one and the list of them: most are typos."""
    lines = []
    for err in error.errors():
        where = ".".join(str(part) for part in err["loc"]) or "config"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key" + (_suggest(model, err["loc"]) if model else "")
        elif err["type"] == "value_error":
            field, sep, rest = message.partition(": ")
            if sep and all(part.isidentifier() for part in field.split(".")):
                where, message = (f"{where}.{field}" if err["loc"] else field), rest
        else:
            message = f"{message} (got {err['input']!r})"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def validate(model: type[M], raw: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe(exc, model)) from None


def _suggest(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """``; did you mean study.n_trials? valid: ...`` for the unknown key at ``loc``, where each part before
    it names a section of ``model`` (nothing where the path passes through a dict key or a union's tag)."""
    models: list[type[BaseModel]] = [model]
    for part in loc[:-1]:
        models = [m for found in models if part in found.model_fields for m in _models_in(found, str(part))]
    keys = sorted({key for found in models for key in found.model_fields})
    if not keys:
        return ""
    parent = "".join(f"{part}." for part in loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    hint = f"; did you mean {parent}{close[0]}?" if close else ""
    return f"{hint} (valid: {', '.join(keys)})"


def _models_in(model: type[BaseModel], field: str) -> list[type[BaseModel]]:
    """The pydantic models a field of ``model`` may hold, through unions, ``Annotated``, lists and dicts."""
    found, todo = [], [model.model_fields[field].annotation]
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.append(kind)
        todo += get_args(kind)
    return found
