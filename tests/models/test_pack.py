"""Trial packs: K trials as one stacked model, each equal to the same trial trained alone."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn

from models.cnn import Init
from models.data.module import MNISTDataModule
from models.dropout import Dropout
from models.module import OptimizerModule
from models.optimizers import REGISTRY, get_spec
from models.pack import Member, PackData, PackedOptimizer, PackModule, Stack
from models.pack.optim import alone_state, joined_state
from models.seeding import order_generator, seeded

EPOCHS = 2
N_TRAIN, N_VAL, BATCH = 96, 40, 32
MEMBERS = [
    Member("momentum", hparams={"lr": 0.01, "momentum": 0.9}, seed=0),
    Member("momentum", hparams={"lr": 0.05, "momentum": 0.5, "form": "ema"}, seed=1),
    Member("momentum", hparams={"lr": 0.02, "momentum": 0.8}, seed=2, init="keras"),
    Member("momentum", hparams={"lr": 1e4, "momentum": 0.9}, seed=3),  # diverges in epoch 2
]


def trainer(
    epochs: int = EPOCHS, callbacks: list[Callback] | None = None, accelerator: str = "cpu", **kw: Any
) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        logger=False,
        callbacks=callbacks or [],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator=accelerator,
        devices=1,
        **kw,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, write_idx_dataset: Any) -> Path:
    directory = tmp_path_factory.mktemp("mnist")
    write_idx_dataset(directory, "mnist", n_train=N_TRAIN, n_test=N_VAL)
    return directory


def data(directory: Path, seed: int = 0) -> MNISTDataModule:
    return MNISTDataModule(
        "mnist", directory, batch_size=BATCH, seed=seed, eval_batch_size=16, download=False
    )


class EpochRows(Callback):
    """What a single run logs at each epoch's end (a diverged epoch logs nothing)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: OptimizerModule) -> None:
        if pl_module.records[0].ended != "diverged":
            metrics = trainer.callback_metrics
            self.rows.append({k: float(metrics[k]) for k in ("train_loss", "val_loss", "val_acc")})


def fit_pack(directory: Path, members: list[Member], callbacks: list[Callback] | None = None) -> PackModule:
    pack = PackModule(members)
    trainer(callbacks=callbacks).fit(pack, datamodule=PackData(data(directory), pack))
    return pack


@pytest.fixture(scope="module")
def singles(data_dir: Path, slow_setup: None) -> list[tuple[OptimizerModule, list[dict[str, float]]]]:
    """Each member of MEMBERS trained alone through Lightning, with its seed."""
    runs = []
    for member in MEMBERS:
        module = OptimizerModule(
            member.optimizer, member.preset, member.hparams, init=member.init, seed=member.seed
        )
        rows = EpochRows()
        trainer(callbacks=[rows]).fit(module, datamodule=data(data_dir, member.seed))
        runs.append((module, rows.rows))
    return runs


@pytest.fixture(scope="module")
def pack(data_dir: Path) -> PackModule:
    return fit_pack(data_dir, MEMBERS)


def assert_same_curve(packed: list[dict[str, float]], alone: list[dict[str, float]]) -> None:
    assert len(packed) == len(alone)
    for got, want in zip(packed, alone, strict=True):
        for key in ("train_loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, nan_ok=True), key
        assert abs(got["val_acc"] - want["val_acc"]) <= 1 / N_VAL


def test_a_pack_equals_its_members_trained_alone(pack: PackModule, singles: list[Any]) -> None:
    for k, (_, rows) in enumerate(singles[:3]):
        assert len(pack.history[k]) == EPOCHS and pack.records[k].ended is None
        assert_same_curve(pack.history[k], rows)
    first_epochs = {round(pack.history[k][0]["train_loss"], 6) for k in range(3)}
    assert len(first_epochs) == 3  # the members differ: each has its own weights, order and masks
    assert {"epoch", "train_loss", "val_loss", "val_acc", "epoch_seconds"} == set(pack.history[0][0])
    assert all(row["epoch_seconds"] > 0 for row in pack.history[0])


def test_a_diverging_member_stops_alone_and_frees_its_slot(pack: PackModule, singles: list[Any]) -> None:
    module, rows = singles[3]
    record = pack.records[3]
    assert module.records[0].ended == record.ended == "diverged" and record.reason == module.records[0].reason
    assert "non-finite training loss at epoch 2" in record.reason
    assert_same_curve(pack.history[3], rows)
    assert pack.slots == [0, 1, 2]
    assert all(p.shape[0] == 3 for p in pack.stack.parameters())
    optimizer = pack.optimizers().optimizer
    assert all(state["momentum_buffer"].shape[0] == 3 for state in optimizer.state.values())


class StopAtEpochEnd(Callback):
    """Prunes one member at the end of epoch 1 and records the stacked sizes at each epoch's start."""

    def __init__(self, member: int) -> None:
        self.member = member
        self.sizes: list[tuple[int, int]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: PackModule) -> None:
        buffers = [s["momentum_buffer"] for s in pl_module.optimizers().optimizer.state.values()]
        self.sizes.append((pl_module.stack.size, min((b.shape[0] for b in buffers), default=0)))

    def on_validation_end(self, trainer: L.Trainer, pl_module: PackModule) -> None:
        if trainer.current_epoch == 0:
            pl_module.stop(self.member, "pruned at epoch 1")


def test_a_member_stopped_by_a_callback_frees_its_slot_and_the_others_go_on(
    data_dir: Path, pack: PackModule
) -> None:
    stopper = StopAtEpochEnd(member=1)
    pruned = fit_pack(data_dir, MEMBERS[:3], [stopper])
    assert stopper.sizes == [(3, 0), (2, 2)]
    assert pruned.records[1].ended == "pruned" and pruned.records[1].reason == "pruned at epoch 1"
    assert len(pruned.history[1]) == 1
    for k in (0, 2):
        assert_same_curve(pruned.history[k], pack.history[k])
    assert pruned.slots == [0, 2] and all(p.shape[0] == 2 for p in pruned.stack.parameters())


def test_the_pack_ends_when_no_member_is_left(data_dir: Path) -> None:
    class StopAll(Callback):
        def on_validation_end(self, trainer: L.Trainer, pl_module: PackModule) -> None:
            for member in list(pl_module.slots):
                pl_module.stop(member, "enough")

    stopped = fit_pack(data_dir, MEMBERS[:2], [StopAll()])
    assert stopped.trainer.current_epoch == 1 and stopped.slots == []
    assert [len(h) for h in stopped.history] == [1, 1]


ON = [pytest.param("cpu"), pytest.param("gpu", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("accelerator", ON)
def test_bf16_autocast_trains_a_pack(data_dir: Path, accelerator: str) -> None:
    members = [Member("adam", hparams={"lr": lr}, seed=s) for lr, s in ((1e-3, 0), (3e-3, 1))]
    pack = PackModule(members)
    before = [p.detach().clone() for p in pack.stack.parameters()]
    fit = trainer(epochs=1, precision="bf16-mixed", accelerator=accelerator)
    fit.fit(pack, datamodule=PackData(data(data_dir), pack))
    pack.cpu()
    for history in pack.history:
        assert len(history) == 1 and all(math.isfinite(v) for v in history[0].values())
    for p, old in zip(pack.stack.parameters(), before, strict=True):
        assert p.dtype == torch.float32 and (p - old).flatten(1).abs().sum(1).min() > 0


class MLP(nn.Module):
    def __init__(self, init: Init = "torch") -> None:
        super().__init__()
        self.hidden = nn.Linear(28 * 28, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x.flatten(1))))


def test_a_pack_of_user_networks_equals_plain_loops(data_dir: Path) -> None:
    members = [
        Member("adam", hparams={"lr": 1e-2, "betas": (0.8, 0.99)}, seed=5),
        Member("adam", hparams={"lr": 3e-3, "amsgrad": True}, seed=6),
    ]
    pack = PackModule(members, network=MLP)
    trainer(epochs=1).fit(pack, datamodule=PackData(data(data_dir), pack))
    loaded = data(data_dir)
    loaded.setup()
    x, y = loaded.train_dataloader().x, loaded.train_dataloader().y
    spec = get_spec("adam")
    for k, member in enumerate(members):
        with seeded(member.seed):
            alone = MLP()
        optimizer = spec.build(alone.parameters(), spec.resolve(**member.hparams))
        order = torch.randperm(N_TRAIN, generator=order_generator(member.seed))
        for index in order.split(BATCH):
            optimizer.zero_grad()
            F.cross_entropy(alone(x[index]), y[index]).backward()
            optimizer.step()
        # Adam moves each weight by about lr a step whatever the gradient's size: 1e-5 is a thousandth of it
        torch.testing.assert_close(pack.stack.hidden__weight[k], alone.hidden.weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(pack.stack.out__bias[k], alone.out.bias, rtol=1e-4, atol=1e-5)


def test_a_network_drawing_from_the_global_generator_is_refused() -> None:
    networks = [nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)) for _ in range(2)]
    with pytest.raises(RuntimeError, match="models.dropout.Dropout"):
        Stack(networks)(torch.randn(2, 5, 4), torch.tensor([1, 2]))
    keyed = [nn.Sequential(nn.Linear(4, 3), Dropout(0.5)) for _ in range(2)]
    assert Stack(keyed)(torch.randn(2, 5, 4), torch.tensor([1, 2])).shape == (2, 5, 3)


def test_members_must_share_one_optimizer_and_pass_the_registry_checks() -> None:
    pack = PackModule([Member("momentum", "keras"), Member("momentum", hparams={"form": "ema", "lr": 0.1})])
    built = [pack.spec.torch_kwargs(hparams) for hparams in pack.member_hparams]
    assert [p["lr"] for p in built] == [0.01, 0.1] and [p["dampening"] for p in built] == [0.0, 0.9]
    with pytest.raises(ValueError, match="one optimizer"):
        PackModule([Member("adam"), Member("sgd")])
    with pytest.raises(ValueError, match="rho"):
        PackModule([Member("adam", hparams={"rho": 0.9})])


def varied(name: str, k: int) -> dict[str, Any]:
    """Member k's hyperparameters: every float scaled away from the preset, flags and choices alternating."""
    spec = get_spec(name)
    values: dict[str, Any] = {}
    for key, hp in spec.hyperparams.items():
        base = spec.presets["torch"][key]
        if hp.kind is bool:
            values[key] = k % 2 == 1
        elif hp.kind is str:
            values[key] = (hp.choices or ())[k % 2]
        elif hp.kind is tuple:  # beta2 0.999, 0.799, 0.599: RAdam rectifies from step 6, 7 and never
            values[key] = (base[0] - 0.05 * k, base[1] - 0.2 * k)
        elif key == "weight_decay":
            values[key] = 0.01 * k
        elif key == "momentum" and hp.low_inclusive:
            values[key] = 0.3 * k  # rmsprop: with and without momentum in one pack
        elif hp.high == 1.0:
            values[key] = base * (1 - 0.1 * k) if base else 0.1 * k
        else:
            values[key] = base * (1 + 0.5 * k) if base else 0.1 * k
    return values


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_packed_rule_steps_each_slice_as_torch_does(name: str) -> None:
    k_members, steps = 3, 7
    spec = get_spec(name)
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(k_members, 4, 3, generator=generator)
    bias = torch.randn(k_members, 3, generator=generator)
    grads = [
        (torch.randn(weight.shape, generator=generator), torch.randn(bias.shape, generator=generator))
        for _ in range(steps)
    ]
    hparams = [spec.resolve(**varied(name, k)) for k in range(k_members)]
    stacked = [weight.clone().requires_grad_(), bias.clone().requires_grad_()]
    packed = PackedOptimizer(stacked, name, hparams)
    alone = [[weight[k].clone().requires_grad_(), bias[k].clone().requires_grad_()] for k in range(k_members)]
    torch_optimizers = [spec.build(params, hparams[k]) for k, params in enumerate(alone)]
    for g_weight, g_bias in grads:
        stacked[0].grad, stacked[1].grad = g_weight.clone(), g_bias.clone()
        packed.step()
        for k, optimizer in enumerate(torch_optimizers):
            alone[k][0].grad, alone[k][1].grad = g_weight[k].clone(), g_bias[k].clone()
            optimizer.step()
    for k in range(k_members):
        assert not torch.equal(alone[k][0], weight[k])
        torch.testing.assert_close(stacked[0][k], alone[k][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stacked[1][k], alone[k][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_members_optimizer_state_goes_on_alone_and_back_in_a_pack(name: str) -> None:
    """A packed optimizer's state split into each member's torch optimizer (as a trial alone saves it) and
    joined again: both step on as the pack would have."""
    k_members, spec = 3, get_spec(name)
    generator = torch.Generator().manual_seed(1)
    hparams = [spec.resolve(**varied(name, k)) for k in range(k_members)]
    weight = torch.randn(k_members, 4, 3, generator=generator).requires_grad_()
    packed = PackedOptimizer([weight], name, hparams)
    grads = [torch.randn(weight.shape, generator=generator) for _ in range(4)]
    for grad in grads[:3]:
        weight.grad = grad.clone()
        packed.step()
    saved, at = packed.state_dict(), weight.detach().clone()
    alone = [weight[k].detach().clone().requires_grad_() for k in range(k_members)]
    torch_optimizers = [spec.build([w], hparams[k]) for k, w in enumerate(alone)]
    for k, optimizer in enumerate(torch_optimizers):
        optimizer.load_state_dict(alone_state(saved, k, optimizer))
    again = at.clone().requires_grad_()
    rejoined = PackedOptimizer([again], name, hparams)
    rejoined.load_state_dict(joined_state([o.state_dict() for o in torch_optimizers]))
    weight.grad, again.grad = grads[3].clone(), grads[3].clone()
    packed.step()
    rejoined.step()
    torch.testing.assert_close(again, weight, rtol=1e-5, atol=1e-6)
    for k, optimizer in enumerate(torch_optimizers):
        alone[k].grad = grads[3][k].clone()
        optimizer.step()
        torch.testing.assert_close(alone[k], weight[k], rtol=1e-5, atol=1e-6)


def test_freed_slots_leave_the_optimizer_state_and_keep_the_rest() -> None:
    name = "adam"
    spec = get_spec(name)
    weight = torch.randn(3, 5, 2).requires_grad_()
    optimizer = PackedOptimizer([weight], name, [spec.resolve(**varied(name, k)) for k in range(3)])
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    copy_of = copy.deepcopy(optimizer.state[weight])
    rows = torch.tensor([0, 2])
    weight.data = weight.data[rows]
    optimizer.keep(rows)
    state = optimizer.state[weight]
    assert state["exp_avg"].shape == (2, 5, 2) and torch.equal(state["exp_avg"], copy_of["exp_avg"][rows])
    assert optimizer.param_groups[0]["lr"].tolist() == [spec.resolve(**varied(name, k))["lr"] for k in (0, 2)]


@pytest.mark.gpu
def test_a_pack_on_cuda_equals_its_members_trained_alone_on_cuda(data_dir: Path) -> None:
    """Within TF32 tolerance: cuDNN may use TF32 for convolutions, differently for grouped and single ones."""
    members = MEMBERS[:3]
    pack = PackModule(members)
    trainer(accelerator="gpu").fit(pack, datamodule=PackData(data(data_dir), pack))
    for k, member in enumerate(members):
        module = OptimizerModule(
            member.optimizer, member.preset, member.hparams, init=member.init, seed=member.seed
        )
        rows = EpochRows()
        trainer(callbacks=[rows], accelerator="gpu").fit(module, datamodule=data(data_dir, member.seed))
        for got, want in zip(pack.history[k], rows.rows, strict=True):
            assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-2)
            assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_optimizer_trains_on_cuda_alone_and_packed(data_dir: Path, name: str) -> None:
    alone = OptimizerModule(name, seed=0)
    trainer(epochs=1, accelerator="gpu").fit(alone, datamodule=data(data_dir))
    packed = PackModule([Member(name, seed=s) for s in range(2)])
    trainer(epochs=1, accelerator="gpu").fit(packed, datamodule=PackData(data(data_dir), packed))
    assert alone.records[0].ended != "diverged" and math.isfinite(alone.history[0][-1]["val_acc"])
    assert all(len(h) == 1 and math.isfinite(h[0]["train_loss"]) for h in packed.history)
