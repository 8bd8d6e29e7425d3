"""The conditional search space of a sweep, sampled on an Optuna trial into a ready-to-train config.

Parameter names: ``optimizer`` and ``batch_size`` when searched, then ``<optimizer>.<hp>`` for each
hyperparameter the chosen optimizer takes and the spec searches (``<optimizer>.<hp>.<i>`` for the elements
of a tuple such as ``betas``). Prefixing the optimizer keeps conditional parameters apart: ``adam.lr`` and
``sgd.lr`` live on different scales, and TPE models each on its own history; a hyperparameter the chosen
optimizer does not take is never suggested. Fixed values are applied without a suggestion.

Settings of the train config keep their dotted key as their name (``scheduler.name``, ``trainer.max_epochs``,
``model.kwargs.dropout``); a schedule's setting is suggested only when the sampled schedule takes it, and a
target's kwarg is sampled as its constructor argument's kind.

A ``grid`` study enumerates this tree with :class:`optuna.samplers.BruteForceSampler`, which visits each
distinct configuration once (``SearchConfig.grid_size`` of them): a ``GridSampler`` takes the product of
every parameter name, so the conditional ones would multiply across optimizers and repeat configurations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import optuna

from models.schedules import SCHEDULES
from sweeps.config.files import validate, walk
from sweeps.config.imports import optimizer_spec
from sweeps.config.search import Range, Searched, setting, split_setting
from sweeps.config.sweep import SweepConfig, start_from
from sweeps.config.train import TrainConfig


def suggest(trial: optuna.Trial, cfg: SweepConfig) -> TrainConfig:
    """Sample one configuration: the sweep's train config with the trial's optimizer, batch size and
    hyperparameters, validated through the train config's models.

    An ``optimizer`` fixed on the trial beforehand (``study.enqueue_trial({"optimizer": name})``) is honoured,
    since ``suggest_categorical`` returns the enqueued value.
    """
    search = cfg.search
    name = Searched("optimizer", str, search.optimizer).sample(trial, "optimizer")
    batch_size = Searched("batch_size", object, search.batch_size).sample(trial, "batch_size")
    settings = _settings(trial, cfg)
    hparams = {key: value.sample(trial, f"{name}.{key}") for key, value in search.searched(name).items()}
    return _configured(cfg, start_from(cfg.optimizer, name, hparams) | hparams, batch_size, settings)


def searched_settings(cfg: SweepConfig) -> dict[str, Searched]:
    """The searched settings as search values: a target's kwarg as its constructor's argument where its
    kind is known (from its default), else of a kind not known (``object``)."""
    # here, not at the top: the workload imports Lightning (2 s), which status and report never need
    from sweeps.engine.workload import kwarg_constructors

    kwargs = {section: c.arguments.hyperparams for section, c in kwarg_constructors(cfg).items()}
    found = {}
    for key, value in cfg.search.settings().items():
        section, name = split_setting(key)
        hp = kwargs.get(section, {}).get(name)
        found[key] = setting(key, value) if hp is None else Searched.of(hp, value)
    return found


def _settings(trial: optuna.Trial, cfg: SweepConfig) -> dict[str, Any]:
    """The searched settings sampled: the schedule first, then the settings that apply under it."""
    searched, schedule, sampled = searched_settings(cfg), cfg.scheduler.name, {}
    if "scheduler.name" in searched:
        schedule = sampled["scheduler.name"] = searched.pop("scheduler.name").sample(trial, "scheduler.name")
    for key, value in searched.items():
        section, name = split_setting(key)
        if section != "scheduler" or name in SCHEDULES[schedule]:
            sampled[key] = value.sample(trial, key)
    return sampled


def preset_config(cfg: SweepConfig, name: str) -> TrainConfig:
    """Optimizer ``name`` untuned: the sweep's starting point (its preset, the spec's fixed values) with
    nothing sampled; what a tuned result is compared with."""
    batch_size = None if isinstance(cfg.search.batch_size, list) else cfg.search.batch_size
    fixed = {k: v for k, v in cfg.search.settings().items() if not isinstance(v, list | Range)}
    return _configured(cfg, start_from(cfg.optimizer, name), batch_size, fixed)


def preset_params(cfg: SweepConfig, name: str) -> dict[str, Any]:
    """Trial params that give optimizer ``name`` its untuned values, where the search space admits them:
    queued as each optimizer's first trial in ``per_optimizer`` mode, so tuning starts from the default and
    the tuned best does no worse than it on the search's data."""
    default = preset_config(cfg, name)
    spec = optimizer_spec(name)
    resolved = spec.resolve(default.optimizer.preset, **default.optimizer.overrides())
    params: dict[str, Any] = {"optimizer": name}
    if isinstance(cfg.search.batch_size, list) and default.data.batch_size in cfg.search.batch_size:
        params["batch_size"] = default.data.batch_size
    for key, value in cfg.search.searched(name).items():
        if value.kind is not tuple and value.admits(resolved[key]):
            params[f"{name}.{key}"] = resolved[key]
    return params


def _configured(
    cfg: SweepConfig, optimizer: dict[str, Any], batch_size: int | str | None, settings: dict[str, Any]
) -> TrainConfig:
    """The sweep's train config with a trial's optimizer section, batch size and settings (dotted keys); a
    schedule keeps the base section's settings it takes."""
    raw = cfg.model_dump(exclude={"study", "search", "launcher"})
    raw["optimizer"] = optimizer
    if batch_size is not None:
        raw["data"]["batch_size"] = batch_size
    for key, value in settings.items():
        node, leaf = walk(raw, key)
        node[leaf] = value
    schedule = raw["scheduler"]
    raw["scheduler"] = {k: v for k, v in schedule.items() if k == "name" or k in SCHEDULES[schedule["name"]]}
    return validate(TrainConfig, raw)


def trial_params(config: TrainConfig, settings: Iterable[str] = ()) -> dict[str, Any]:
    """What sets a trial's config apart from the registry's preset, as a plain dict: optimizer, batch size,
    each hyperparameter given (sampled, fixed by the spec or set in its ``optimizer`` section), and the
    value of each searched setting the trial has (dotted keys; none where its schedule does not take one)."""
    raw = config.model_dump(mode="json")
    values = {}
    for key in settings:
        node, leaf = walk(raw, key)
        if isinstance(node, dict) and node.get(leaf) is not None:
            values[key] = node[leaf]
    return {
        "optimizer": config.optimizer.name,
        "batch_size": config.data.batch_size,
        **config.optimizer.overrides(),
        **values,
    }
