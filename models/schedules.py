"""Learning-rate schedules and the optimizer a run trains with, handed to any LightningModule.

A schedule is stepped as it is defined: ``step`` decays the rate by ``gamma`` every ``step_size`` epochs, so
it steps per epoch (its warm-up too, one epoch at a time); ``cosine`` anneals the rate along every optimizer
step down to ``min_lr_factor`` × lr; ``onecycle`` (torch's ``OneCycleLR``: up to lr and down far below it,
only the rate cycling) steps per optimizer step. A warm-up rises linearly to lr over ``warmup_epochs`` before
the schedule starts (for ``onecycle`` it is the rising part of the cycle; 0 or none: torch's 30 % of the
run).

:class:`OptimizerPlan` stands in for a module's ``configure_optimizers``: the service builds the optimizer and
the schedule from the config for its own module and a user's LightningModule alike, so a comparison of
optimizers never depends on what a module would have chosen itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

from models.optimizers import OptimizerSpec

if TYPE_CHECKING:  # annotations only: validating a spec (config, status, report) need not import Lightning
    import lightning as L

SCHEDULES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "none": (),
        "step": ("warmup_epochs", "step_size", "gamma"),
        "cosine": ("warmup_epochs", "min_lr_factor"),
        "onecycle": ("warmup_epochs",),
    }
)
"""Each schedule and the settings it takes; a setting is used only by the schedules that take it."""


@dataclass(frozen=True)
class Schedule:
    """A schedule and its settings; ``None`` is the schedule's default (no warm-up, step_size 1, gamma 0.1,
    min_lr_factor 0)."""

    name: str = "none"
    warmup_epochs: int | None = None
    step_size: int | None = None
    gamma: float | None = None
    min_lr_factor: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.name!r}; choose one of: {', '.join(SCHEDULES)}")

    def scheduler(self, optimizer: Optimizer, epochs: int, total_steps: int) -> dict[str, Any] | None:
        """Lightning's ``lr_scheduler`` entry for ``optimizer`` over a run of ``epochs`` epochs and
        ``total_steps`` optimizer steps; ``None`` for ``none``."""
        warmup = self.warmup_epochs or 0
        if self.name == "step":
            decay = StepLR(optimizer, step_size=self.step_size or 1, gamma=self.gamma or 0.1)
            return {"scheduler": _warmed_up(optimizer, decay, warmup), "interval": "epoch"}
        if self.name == "cosine":
            steps = round(total_steps * warmup / epochs)
            lr_min = [group["lr"] * (self.min_lr_factor or 0.0) for group in optimizer.param_groups]
            cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - steps), eta_min=min(lr_min))
            return {"scheduler": _warmed_up(optimizer, cosine, steps), "interval": "step"}
        if self.name == "onecycle":
            lrs = [group["lr"] for group in optimizer.param_groups]
            share = warmup / epochs if warmup else 0.3
            cycle = OneCycleLR(
                optimizer, max_lr=lrs, total_steps=total_steps, pct_start=share, cycle_momentum=False
            )
            return {"scheduler": cycle, "interval": "step"}
        return None


def _warmed_up(optimizer: Optimizer, schedule: LRScheduler, steps: int) -> LRScheduler:
    """``schedule`` after ``steps`` (epochs or optimizer steps, as ``schedule`` steps) of linear warm-up
    from lr / (steps + 1)."""
    if not steps:
        return schedule
    rise = LinearLR(optimizer, start_factor=1 / (steps + 1), total_iters=steps)
    return SequentialLR(optimizer, [rise, schedule], milestones=[steps])


@dataclass(frozen=True)
class OptimizerPlan:
    """The optimizer (a registry entry or a class read as one, with its resolved hyperparameters) and the
    schedule a run trains with."""

    spec: OptimizerSpec
    hparams: Mapping[str, Any]
    schedule: Schedule = Schedule()

    def configure(self, module: L.LightningModule) -> Optimizer | dict[str, Any]:
        """What ``configure_optimizers`` returns: the optimizer over all of ``module``'s parameters, and its
        schedule over the trainer's run."""
        optimizer = self.spec.build(module.parameters(), self.hparams)
        if self.schedule.name == "none":  # no need to count the run's steps (it loads the training data)
            return optimizer
        steps = int(module.trainer.estimated_stepping_batches)
        schedule = self.schedule.scheduler(optimizer, module.trainer.max_epochs, steps)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def inject(module: L.LightningModule, plan: OptimizerPlan) -> L.LightningModule:
    """``module`` training with ``plan`` in place of its own ``configure_optimizers``: an attribute of this
    instance, which Lightning calls like the method, so the class stays the user's own."""
    module.configure_optimizers = partial(plan.configure, module)  # type: ignore[method-assign]
    return module


def uninjected(module: L.LightningModule) -> L.LightningModule:
    """``module`` with its own ``configure_optimizers`` again, as it is saved for others to load."""
    vars(module).pop("configure_optimizers", None)
    return module
