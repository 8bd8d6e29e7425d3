"""What a run trains, built from a validated config: the data module (a built-in MNIST-family set, or the
user's ``LightningDataModule`` from ``data.target``) and the LightningModule (the seed CNN or a user's network
inside the service's :class:`~models.module.OptimizerModule`, or the user's own LightningModule), training
with the config's optimizer and schedule in place of whatever the module would configure itself.

The user's code is imported here, when it is built, and everything that needs it is checked before any run
exists: a path that does not import, an object of the wrong kind, kwargs the constructor does not take or of
the wrong type, a batch size the data module cannot take. Each is a :class:`ConfigError` naming the field.
A constructor is offered what the service knows when it names the argument and the kwargs do not set it:
``num_classes`` (from the data module) to a network or LightningModule, ``batch_size`` to a data module.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from models.data.files import check_available
from models.data.module import MNISTDataModule
from models.introspect import Arguments, read_arguments
from models.module import OptimizerModule
from models.pack import Member, PackData, PackModule
from models.schedules import OptimizerPlan, Schedule, inject, uninjected
from models.seeding import seeded
from sweeps.config.files import ConfigError
from sweeps.config.imports import import_path, kind_of, optimizer_spec
from sweeps.config.train import DataConfig, TrainConfig

DEFAULT_BATCH_SIZE = DataConfig.model_fields["batch_size"].default


@dataclass(frozen=True)
class Workload:
    """What a fit trains (:func:`sweeps.engine.training.fit`): the service's own module (``own``, a
    :class:`models.module.Classifiers`: one run's, or a pack's, each member's rows and end its records), or
    a user's LightningModule, whose row is whatever it logs; and the optimizer plan injected into a single
    run's module (``None`` for a pack)."""

    module: L.LightningModule
    plan: OptimizerPlan | None
    own: bool

    @property
    def packed(self) -> bool:
        return isinstance(self.module, PackModule)

    def data(self, datamodule: L.LightningDataModule) -> L.LightningDataModule:
        return PackData(datamodule, self.module) if self.packed else datamodule

    @property
    def read(self) -> Callable[[L.Trainer, L.LightningModule], list[dict[str, float] | None]] | None:
        """Each member's row as its epoch ends (``None``: a user's module, whose row is what it logged)."""
        return self._rows if self.own else None

    def _rows(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[dict[str, float] | None]:
        epoch = trainer.current_epoch + 1
        return [
            {k: v for k, v in h[-1].items() if k != "epoch"} if h and h[-1]["epoch"] == epoch else None
            for h in self.module.history
        ]

    def stop(self, member: int, reason: str) -> None:
        if self.own:
            self.module.stop(member, reason)
        else:
            self.module.trainer.should_stop = True

    def ended(self, member: int) -> tuple[str, str] | None:
        """How the module ended a member early (diverged, pruned), with why."""
        record = self.module.records[member] if self.own else None
        return (record.ended, record.reason or "") if record and record.ended else None

    def model(self, member: int = 0) -> nn.Module | None:
        """What a trained run logs as its model: the network inside the service's module (a pack's: none),
        or the user's LightningModule as the user wrote it (its own ``configure_optimizers`` back, no longer
        holding the trainer and with it the data)."""
        if self.own:
            return None if self.packed else self.module.model
        module = uninjected(self.module)
        module.trainer = None
        return module

    def alone(self, checkpoint: dict[str, Any], member: int) -> dict[str, Any] | None:
        """A member's checkpoint as the same run alone saves it (``None``: it trains no more)."""
        if not self.packed:
            return checkpoint
        return self.module.alone(checkpoint, member) if member in self.module.slots else None

    def joined(self, checkpoints: list[dict[str, Any]]) -> dict[str, Any]:
        return self.module.joined(checkpoints) if self.packed else checkpoints[0]

    def generators(self, trainer: L.Trainer) -> list[dict[str, torch.Generator]]:
        """Each member's random generators by name; a pack member's data order is named as a single run's."""
        if self.packed:
            return [{"data.._order": order} for order in trainer.datamodule.orders]
        return [_generators({"module": self.module, "data": trainer.datamodule})]


def _generators(owners: dict[str, Any]) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as an attribute by the module's submodules or the data module."""
    found = {}
    for label, owner in owners.items():
        objects = owner.named_modules() if isinstance(owner, nn.Module) else [("", owner)]
        for name, obj in objects:
            for attribute, value in vars(obj).items():
                if isinstance(value, torch.Generator):
                    found[f"{label}.{name}.{attribute}"] = value
    return found


class Unpackable(ValueError):
    """These trials cannot train as one pack (the message says why); each trains alone."""


def build_pack(cfgs: list[TrainConfig], datamodule: L.LightningDataModule) -> Workload:
    """The pack of ``cfgs`` (one shape: :func:`sweeps.engine.packs.shape_of`); :class:`Unpackable` when its
    network draws dropout masks from torch's global generator, which would tie each member's masks to the
    pack."""
    first = cfgs[0]
    num_classes = getattr(datamodule, "num_classes", None)
    network = user_network(first, num_classes)
    if network is not None and any(isinstance(m, _DropoutNd) and m.p > 0 for m in network().modules()):
        raise Unpackable(
            f"{first.model.target} uses torch's nn.Dropout, which cannot be packed (its masks would depend on"
            " the pack); with models.dropout.Dropout it can"
        )
    members = [
        Member(c.optimizer.name, c.optimizer.preset, c.optimizer.overrides(), c.trainer.seed, c.model.init)
        for c in cfgs
    ]
    pack = PackModule(members, network=network, num_classes=num_classes or 10, fused=first.model.fused)
    return Workload(pack, None, own=True)


def optimizer_plan(cfg: TrainConfig) -> OptimizerPlan:
    return OptimizerPlan(
        optimizer_spec(cfg.optimizer.name), cfg.optimizer.resolved(), Schedule(**cfg.scheduler.model_dump())
    )


@dataclass(frozen=True)
class Constructor:
    """A target imported from its path, with the arguments its constructor (or factory) takes."""

    path: str
    section: str
    found: Any
    arguments: Arguments

    def takes(self, name: str) -> bool:
        return name in self.arguments.names

    def refuse_unknown(self, name: str, where: str) -> None:
        """A :class:`ConfigError` at ``where`` for an argument the constructor does not take."""
        if not (self.arguments.open or self.takes(name)):
            takes = ", ".join(sorted(self.arguments.names)) or "nothing"
            raise ConfigError(f"{where}: {self.path} takes no {name!r}; it takes: {takes}")

    def checked(self, kwargs: Mapping[str, Any]) -> None:
        """``<section>.kwargs`` against the constructor: names it takes, values of its arguments' kinds."""
        for key, value in kwargs.items():
            self.refuse_unknown(key, f"{self.section}.kwargs.{key}")
            if key in self.arguments.hyperparams:
                try:
                    self.arguments.hyperparams[key].check(value)
                except ValueError as exc:
                    raise ConfigError(f"{self.section}.kwargs.{key}: {exc}") from None

    def build(self, kwargs: Mapping[str, Any], offered: Mapping[str, Any]) -> Any:
        """The target called with ``kwargs``, plus each offered value its constructor names and the kwargs
        leave unset; what it raises is a :class:`ConfigError` about the kwargs."""
        self.checked(kwargs)
        given = {k: v for k, v in offered.items() if self.takes(k) and k not in kwargs} | dict(kwargs)
        missing = [name for name in self.arguments.required if name not in given]
        if missing:
            raise ConfigError(f"{self.section}.kwargs: {self.path} needs {missing[0]!r} (it has no default)")
        try:
            return self.found(**given)
        except Exception as exc:  # the user's constructor may raise anything
            raise ConfigError(
                f"{self.section}.kwargs: {self.path} raised {type(exc).__name__}: {exc}"
            ) from None


def constructor(path: str, section: str, base: type, factory: bool = False) -> Constructor:
    """The class (a subclass of ``base``) at ``path``, or with ``factory`` the Python function there, with its
    arguments; a :class:`ConfigError` naming ``<section>.target`` when it does not import or is of another
    kind. Nothing else is ever called: the path may come from a study's database that others can write, and
    ``os:system`` is as callable as a class."""
    try:
        found = import_path(path)
    except ValueError as exc:
        raise ConfigError(f"{section}.target: {exc}") from None
    if factory and not inspect.isfunction(found):
        raise ConfigError(
            f"{section}.target: {path} is declared a factory ({section}.factory: true) but is not a Python"
            f" function: it is {kind_of(found)}"
        )
    if not factory and not (isinstance(found, type) and issubclass(found, base)):
        function = inspect.isfunction(found)
        hint = f"; a function returning one needs {section}.factory: true" if function else ""
        kinds = "an nn.Module or a LightningModule" if base is nn.Module else f"a {base.__name__}"
        raise ConfigError(f"{section}.target: {path} is not {kinds} class: it is {kind_of(found)}{hint}")
    return Constructor(path, section, found, read_arguments(found))


def data_constructor(cfg: TrainConfig) -> Constructor | None:
    """The data module's constructor when ``data.target`` is set, its batch-size knob checked: a batch size
    reaches a constructor that takes ``batch_size``, and is refused (naming why) by one that does not."""
    if cfg.data.target is None:
        return None
    data = constructor(cfg.data.target, "data", L.LightningDataModule, cfg.data.factory)
    if not data.takes("batch_size") and cfg.data.batch_size != DEFAULT_BATCH_SIZE:
        raise ConfigError(
            f"data.batch_size: {data.path} takes no batch_size argument, so the batch size cannot be set;"
            " leave data.batch_size out"
        )
    return data


def build_datamodule(cfg: TrainConfig) -> L.LightningDataModule:
    data = data_constructor(cfg)
    if data is not None:
        built = data.build(cfg.data.kwargs, {"batch_size": cfg.data.batch_size})
        if not isinstance(built, L.LightningDataModule):
            raise ConfigError(
                f"data.target: {data.path} returned {kind_of(built)}, not a LightningDataModule"
            )
        return built
    d = cfg.data
    return MNISTDataModule(
        name=d.name,
        data_dir=d.dir,
        batch_size=d.batch_size,
        train_subset=d.train_subset,
        val_split=d.val_split,
        holdout_size=d.holdout_size,
        seed=cfg.trainer.seed,
        split_seed=d.split_seed,
        scaling=d.scaling,
        download=d.download,
    )


def checked_datamodule(cfg: TrainConfig) -> L.LightningDataModule:
    """The data module, once every check that can be made before training has passed: a built-in data set's
    files found (downloading if allowed, reading headers only), a target imported and constructed, so that
    an impossible data setup never leaves a half-made run behind."""
    if cfg.data.target is not None:
        return build_datamodule(cfg)
    check_available(cfg.data.name, cfg.data.dir, cfg.data.download)
    try:
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        datamodule.check_files()
    except ValueError as exc:
        field = re.match(r"(\w+)=", str(exc))
        raise ConfigError(f"data.{field.group(1) if field else 'dir'}: {exc}") from None
    return datamodule


def build_module(cfg: TrainConfig, datamodule: L.LightningDataModule) -> Workload:
    """The LightningModule the config names, training with its optimizer plan."""
    plan = optimizer_plan(cfg)
    num_classes = getattr(datamodule, "num_classes", None)
    built, user = None, user_network(cfg, num_classes)
    if user is not None:
        with seeded(cfg.trainer.seed):  # the trial's own initialisation, whatever else drew before
            built = user()
        if isinstance(built, L.LightningModule):
            return Workload(inject(built, plan), plan, own=False)
        if not isinstance(built, nn.Module):
            raise ConfigError(
                f"model.target: {cfg.model.target} returned {kind_of(built)}, not an nn.Module or a"
                " LightningModule"
            )
    module = OptimizerModule(
        optimizer=cfg.optimizer.name,
        preset=cfg.optimizer.preset,
        hparams=cfg.optimizer.overrides(),
        init=cfg.model.init,
        num_classes=num_classes or 10,
        fused=cfg.model.fused,
        seed=cfg.trainer.seed,
        network=built,
        spec=plan.spec,
    )
    return Workload(inject(module, plan), plan, own=True)


def user_network(cfg: TrainConfig, num_classes: int | None) -> Callable[..., Any] | None:
    """What builds ``model.target`` (offered the data's number of classes), or ``None`` for the seed CNN."""
    if cfg.model.target is None:
        return None
    model = constructor(cfg.model.target, "model", nn.Module, cfg.model.factory)
    offered = {"num_classes": num_classes} if num_classes else {}
    return lambda *init: model.build(cfg.model.kwargs, offered)


def kwarg_constructors(cfg: TrainConfig) -> dict[str, Constructor]:
    """The targets whose kwargs a search may hold, by section (``model``, ``data``)."""
    found = {}
    if cfg.model.target is not None:
        found["model"] = constructor(cfg.model.target, "model", nn.Module, cfg.model.factory)
    data = data_constructor(cfg)
    if data is not None:
        found["data"] = data
    return found
