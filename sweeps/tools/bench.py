"""``sweeps bench``: seconds per training epoch of three ways to train the seed CNN, side by side.

(a) the usual recipe: Lightning Trainer + DataLoader over a per-sample dataset whose items go through a
    ToTensor + Normalize transform (what torchvision's MNIST and most tutorials do), the default Adam;
(b) a plain PyTorch loop over tensors already on the device, the textbook layers, the default Adam;
(c) this project's path, exactly as ``sweeps train`` runs it (resident data, fused CPU kernels, fused
    optimizer, allocator tuning, Lightning).

Each measurement runs in a fresh subprocess, so no path inherits another's warm caches, threads or
allocator state; repeats are interleaved (a, b, c, a, b, c, ...) so machine noise hits all paths alike.
The first few steps (allocation, kernel selection) are excluded and the rest scaled to a full epoch.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sweeps.tools.measuring import Timer

PATHS = {
    "a": "Lightning + DataLoader, per-sample ToTensor/Normalize dataset",
    "b": "plain PyTorch loop, resident tensors",
    "c": "ours (sweeps train path)",
    "c_bf16": "ours, bf16 autocast",
}


class BenchFailed(RuntimeError):
    """A measuring subprocess exited with an error; its stderr tail is the message."""


class Settings:
    """What a bench's dataclass shares with the other's: its options checked as it is made, each error naming
    its option, and its trip as JSON to the measuring processes."""

    dataset: str
    data_dir: Path | None
    optimizer: str
    device: str

    def __post_init__(self) -> None:
        from models.data.catalogue import dataset_info
        from models.optimizers import get_spec

        get_spec(self.optimizer)
        try:
            dataset_info(self.dataset)
        except ValueError as exc:
            raise ValueError(f"--dataset: {exc}") from None
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be cpu, cuda or auto, got {self.device!r}")

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "data_dir": str(self.data_dir) if self.data_dir else None})

    @classmethod
    def from_json(cls, text: str) -> Self:
        raw = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()}
        return cls(**raw | {"data_dir": Path(raw["data_dir"]) if raw["data_dir"] else None})


def measure(runs: Sequence[tuple[str, Sequence[str]]], module: str) -> list[dict[str, Any]]:
    """``python -m module ARGS`` for each ``(label, ARGS)``, all at once; the last line each prints, as JSON,
    in order. One that fails raises ``BenchFailed`` with its label and the tail of its stderr, the others
    stopped."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _, args in runs
    ]
    results = []
    try:
        for (label, _), proc in zip(runs, procs, strict=True):
            out, error = proc.communicate()
            if proc.returncode != 0:
                raise BenchFailed(f"{label} failed:\n{error[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            proc.kill()  # a no-op for those that ended
            proc.wait()
    return results


@dataclass(frozen=True)
class BenchSpec(Settings):
    dataset: str = "fashion_mnist"
    data_dir: Path | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    train_subset: int | None = None
    repeats: int = 1
    device: str = "auto"
    bf16: bool = False

    def paths(self) -> list[str]:
        return ["a", "b", "c", *(["c_bf16"] if self.bf16 else [])]


@dataclass
class BenchReport:
    spec: BenchSpec
    device: str
    steps_per_epoch: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)

    def median(self, path: str) -> float:
        return statistics.median(self.seconds[path])

    def ratios(self) -> dict[str, float]:
        """How many times faster than the usual recipe (a) each path is."""
        return {f"a/{p}": self.median("a") / self.median(p) for p in self.seconds if p != "a"}

    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": json.loads(self.spec.to_json()),
                "device": self.device,
                "steps_per_epoch": self.steps_per_epoch,
                "seconds_per_epoch": self.seconds,
                "median_seconds_per_epoch": {p: self.median(p) for p in self.seconds},
                "speedup_vs_a": self.ratios(),
                "environment": self.environment,
            },
            indent=2,
        )


def run(spec: BenchSpec, console: Console) -> BenchReport:
    """Time every path ``spec.repeats`` times, interleaved, each in its own process."""
    from models.data.files import check_available

    check_available(spec.dataset, spec.data_dir, download=False)
    report: BenchReport | None = None
    for repeat in range(spec.repeats):
        for path in spec.paths():
            console.print(f"[dim]repeat {repeat + 1}/{spec.repeats}: ({path}) {PATHS[path]} ...[/]")
            (result,) = measure([(f"bench path ({path})", [path, spec.to_json()])], "sweeps.tools.bench")
            if report is None:
                report = BenchReport(
                    spec, result["device"], result["steps"], environment=result["environment"]
                )
            report.seconds.setdefault(path, []).append(result["seconds"])
    assert report is not None
    return report


def named_table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A bench's results as a rich table (imported here: the report layer brings MLflow, which the measuring
    processes, importing the benches' modules, need not start with)."""
    from sweeps.report.terminal import named_rows

    return named_rows(Table(title=title), columns, rows)


def table(report: BenchReport) -> Table:
    spec = report.spec
    title = (
        f"s/epoch, {spec.dataset}{f' subset {spec.train_subset}' if spec.train_subset else ''}, batch "
        f"{spec.batch_size}, {spec.optimizer}, {report.device}, {report.steps_per_epoch} steps/epoch"
    )
    ratios = report.ratios()
    rows = [
        [
            f"({path})",
            PATHS[path],
            f"{report.median(path):.2f}",
            " ".join(f"{s:.2f}" for s in runs),
            f"{ratios.get(f'a/{path}', 1.0):.2f}×",
        ]
        for path, runs in report.seconds.items()
    ]
    return named_table(title, ["path", "what", "s/epoch (median)", "runs", "vs (a)"], rows)


# --- inside the measuring subprocess -------------------------------------------------------------------


def _train_tensors(spec: BenchSpec) -> tuple[Any, Any]:
    import torch

    from models.data.files import load_split

    images, labels = load_split(spec.dataset, spec.data_dir, "train")
    if spec.train_subset:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[: spec.train_subset]
        images, labels = images[keep], labels[keep]
    return images, labels


def _usual_recipe(spec: BenchSpec, timer: Timer) -> None:
    """(a): what a typical Lightning tutorial does for MNIST."""
    import lightning as L
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from models.cnn import SeedCNN
    from sweeps.tools.measuring import bare_trainer

    images, labels = _train_tensors(spec)
    mean, std = images.float().div(255).mean().item(), images.float().div(255).std().item()

    class PerSample(Dataset):
        """torchvision's MNIST ``__getitem__`` with ``Compose([ToTensor(), Normalize(mean, std)])``."""

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            picture = Image.fromarray(images[i].numpy(), mode="L")
            x = torch.from_numpy(np.array(picture, copy=True)).view(1, 28, 28).float().div(255)
            return (x - mean) / std, int(labels[i])

    class Usual(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = SeedCNN(fused=False)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    loader = DataLoader(PerSample(), batch_size=spec.batch_size, shuffle=True)
    bare_trainer(timer.device, timer, max_epochs=1).fit(Usual(), train_dataloaders=loader)


def _plain_loop(spec: BenchSpec, timer: Timer) -> None:
    """(b): a hand-written loop over normalised tensors already on the device, timed by the same clock as
    the others (its Lightning hooks called by hand)."""
    import torch
    import torch.nn.functional as F

    from models.cnn import SeedCNN
    from sweeps.tools.measuring import first_epoch_warmup

    device = timer.device
    images, labels = _train_tensors(spec)
    x = images.float().div(255).unsqueeze(1)
    x = ((x - x.mean()) / x.std()).to(device)
    y = labels.to(device)
    model = SeedCNN(fused=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(y), device=device)
    steps = -(-len(y) // spec.batch_size)
    timer.warmup = first_epoch_warmup(steps)
    for i in range(steps):
        timer.on_train_batch_start(None)
        idx = order[i * spec.batch_size : (i + 1) * spec.batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    timer.on_train_end(None)


def _ours(spec: BenchSpec, timer: Timer, precision: str) -> None:
    """(c): the very functions ``sweeps train`` calls, with validation and tracking switched off."""
    from sweeps.config.files import validate
    from sweeps.config.train import TrainConfig
    from sweeps.engine.runtime import tune_allocator
    from sweeps.engine.training import build_trainer, prepare
    from sweeps.engine.workload import build_datamodule, build_module

    tune_allocator()
    data = dict(
        name=spec.dataset, dir=spec.data_dir, batch_size=spec.batch_size, train_subset=spec.train_subset
    )
    fit = dict(max_epochs=1, precision=precision, accelerator="gpu" if timer.device == "cuda" else "cpu")
    cfg = validate(TrainConfig, {"data": data, "optimizer": {"name": spec.optimizer}, "trainer": fit})
    prepare(cfg)
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg, callbacks=[timer], limit_val_batches=0)
    trainer.fit(build_module(cfg, datamodule).module, datamodule=datamodule)


def _measure(path: str, spec: BenchSpec) -> dict[str, Any]:
    from sweeps.tools.measuring import Timer, device_name, quiet, resolve_device
    from sweeps.tracking.environment import environment_tags

    quiet()
    timer = Timer(resolve_device(spec.device))
    if path == "a":
        _usual_recipe(spec, timer)
    elif path == "b":
        _plain_loop(spec, timer)
    else:
        _ours(spec, timer, "bf16" if path == "c_bf16" else "32")
    return {
        "seconds": timer.step_seconds * timer.steps,
        "steps": timer.steps,
        "device": device_name(timer.device),
        "environment": environment_tags(),
    }


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], BenchSpec.from_json(sys.argv[2]))))
