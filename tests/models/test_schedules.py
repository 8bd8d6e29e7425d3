"""Learning-rate schedules, stepped as each is defined, and the plan that replaces a module's optimizer."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models.optimizers import get_spec
from models.schedules import SCHEDULES, OptimizerPlan, Schedule, inject, uninjected


def rates(schedule: Schedule, epochs: int = 4, steps_per_epoch: int = 2) -> list[float]:
    """The lr of each optimizer step, stepping the scheduler as Lightning does for its interval."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    config = schedule.scheduler(optimizer, epochs, epochs * steps_per_epoch)
    seen = []
    for step in range(epochs * steps_per_epoch):
        seen.append(round(optimizer.param_groups[0]["lr"], 4))
        optimizer.step()
        if config["interval"] == "step" or (step + 1) % steps_per_epoch == 0:
            config["scheduler"].step()
    return seen


def test_step_decays_per_epoch_after_its_warm_up():
    assert rates(Schedule("step", step_size=2, gamma=0.5)) == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]
    assert rates(Schedule("step", warmup_epochs=1, step_size=1, gamma=0.5)) == [
        0.5,
        0.5,
        1,
        1,
        0.5,
        0.5,
        0.25,
        0.25,
    ]


def test_cosine_anneals_every_step_to_its_floor_after_a_linear_warm_up():
    seen = rates(Schedule("cosine", warmup_epochs=1, min_lr_factor=0.1))

    assert seen[:3] == [pytest.approx(1 / 3, abs=1e-4), pytest.approx(2 / 3, abs=1e-4), 1.0]
    assert all(a > b for a, b in zip(seen[2:], seen[3:], strict=False)) and 0.1 < seen[-1] < 0.2


def test_onecycle_rises_over_its_warm_up_then_falls_far_below_lr():
    seen = rates(Schedule("onecycle", warmup_epochs=2), epochs=4, steps_per_epoch=4)

    peak = seen.index(max(seen))
    assert max(seen) == pytest.approx(1.0, abs=0.02) and 3 <= peak <= 8
    assert seen[0] < 0.1 and seen[-1] < 0.01


def test_none_has_no_scheduler_and_an_unknown_name_is_refused():
    assert Schedule().scheduler(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), 2, 4) is None
    assert set(SCHEDULES) == {"none", "step", "cosine", "onecycle"}
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        Schedule("linear")


class Own(L.LightningModule):
    """A user's module with an optimizer of its own that would blow up."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.mse_loss(self.layer(batch[0]), batch[1])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=100.0)


def test_a_plan_replaces_the_modules_optimizer_and_leaves_the_class_alone(tmp_path):
    spec = get_spec("adam")
    module = inject(Own(), OptimizerPlan(spec, spec.resolve(lr=0.01), Schedule("cosine")))
    data = TensorDataset(torch.randn(20, 2), torch.randn(20, 1))
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )

    trainer.fit(module, DataLoader(data, batch_size=4))

    assert (
        isinstance(trainer.optimizers[0], torch.optim.Adam) and trainer.optimizers[0].defaults["lr"] == 0.01
    )
    (schedule,) = trainer.lr_scheduler_configs
    assert schedule.interval == "step" and schedule.scheduler.T_max == 15
    assert isinstance(uninjected(module).configure_optimizers(), torch.optim.SGD)
