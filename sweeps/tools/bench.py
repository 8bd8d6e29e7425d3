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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

PATHS = {
    "a": "Lightning + DataLoader, per-sample ToTensor/Normalize dataset",
    "b": "plain PyTorch loop, resident tensors",
    "c": "ours (sweeps train path)",
    "c_bf16": "ours, bf16 autocast",
}


class BenchFailed(RuntimeError):
    """A measuring subprocess exited with an error; its stderr tail is the message."""


def check_options(optimizer: str, dataset: str, device: str) -> None:
    """The options both benches share, each error naming its option."""
    from models.data.catalogue import dataset_info
    from models.optimizers import get_spec

    get_spec(optimizer)
    try:
        dataset_info(dataset)
    except ValueError as exc:
        raise ValueError(f"--dataset: {exc}") from None
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or auto, got {device!r}")


@dataclass(frozen=True)
class BenchSpec:
    dataset: str = "fashion_mnist"
    data_dir: Path | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    train_subset: int | None = None
    repeats: int = 1
    device: str = "auto"
    bf16: bool = False

    def __post_init__(self) -> None:
        check_options(self.optimizer, self.dataset, self.device)

    def paths(self) -> list[str]:
        return ["a", "b", "c", *(["c_bf16"] if self.bf16 else [])]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "data_dir": str(self.data_dir) if self.data_dir else None})

    @classmethod
    def from_json(cls, text: str) -> BenchSpec:
        raw = json.loads(text)
        return cls(**{**raw, "data_dir": Path(raw["data_dir"]) if raw["data_dir"] else None})


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


def run(spec: BenchSpec, console: Console | None = None) -> BenchReport:
    """Time every path ``spec.repeats`` times, interleaved, each in its own process."""
    from models.data.files import check_available

    check_available(spec.dataset, spec.data_dir, download=False)
    report: BenchReport | None = None
    for repeat in range(spec.repeats):
        for path in spec.paths():
            if console:
                console.print(f"[dim]repeat {repeat + 1}/{spec.repeats}: ({path}) {PATHS[path]} ...[/]")
            result = _subprocess(path, spec)
            if report is None:
                report = BenchReport(
                    spec, result["device"], result["steps"], environment=result["environment"]
                )
            report.seconds.setdefault(path, []).append(result["seconds"])
    assert report is not None
    return report


def table(report: BenchReport) -> Table:
    """The results as a rich table (imported here: the report layer brings MLflow, which the measuring
    processes, importing this module, need not start with)."""
    from sweeps.report.terminal import named_rows

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
    return named_rows(Table(title=title), ["path", "what", "s/epoch (median)", "runs", "vs (a)"], rows)


def _subprocess(path: str, spec: BenchSpec) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.tools.bench", path, spec.to_json()],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchFailed(f"bench path ({path}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- inside the measuring subprocess -------------------------------------------------------------------


def resolve_device(choice: str) -> str:
    """``auto``: CUDA when there is one, else the CPU."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def quiet() -> None:
    """A measuring process prints its JSON only."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def _train_tensors(spec: BenchSpec) -> tuple[Any, Any]:
    import torch

    from models.data.files import load_split

    images, labels = load_split(spec.dataset, spec.data_dir, "train")
    if spec.train_subset:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[: spec.train_subset]
        images, labels = images[keep], labels[keep]
    return images, labels


def _usual_recipe(spec: BenchSpec, device: str) -> tuple[float, int]:
    """(a): what a typical Lightning tutorial does for MNIST."""
    import lightning as L
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from models.cnn import SeedCNN
    from sweeps.tools.timer import Timer

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
    timer = Timer(device)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator=device,
        devices=1,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(Usual(), train_dataloaders=loader)
    return timer.step_seconds * timer.steps, timer.steps


def _plain_loop(spec: BenchSpec, device: str) -> tuple[float, int]:
    """(b): a hand-written loop over normalised tensors already on the device."""
    import torch
    import torch.nn.functional as F

    from models.cnn import SeedCNN
    from sweeps.tools.timer import first_epoch_warmup, sync

    images, labels = _train_tensors(spec)
    x = images.float().div(255).unsqueeze(1)
    x = ((x - x.mean()) / x.std()).to(device)
    y = labels.to(device)
    model = SeedCNN(fused=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(y), device=device)
    steps = -(-len(y) // spec.batch_size)
    for i in range(steps):
        if i == first_epoch_warmup(steps):
            sync(device)
            start = time.perf_counter()
        idx = order[i * spec.batch_size : (i + 1) * spec.batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync(device)
    return (time.perf_counter() - start) * steps / (steps - first_epoch_warmup(steps)), steps


def _ours(spec: BenchSpec, device: str, precision: str) -> tuple[float, int]:
    """(c): the very functions ``sweeps train`` calls, with validation and tracking switched off."""
    from sweeps.config.files import validate
    from sweeps.config.train import TrainConfig
    from sweeps.engine.runtime import tune_allocator
    from sweeps.engine.training import build_trainer, prepare
    from sweeps.engine.workload import build_datamodule, build_module
    from sweeps.tools.timer import Timer

    tune_allocator()
    cfg = validate(
        TrainConfig,
        {
            "data": {
                "name": spec.dataset,
                "dir": spec.data_dir,
                "batch_size": spec.batch_size,
                "train_subset": spec.train_subset,
            },
            "optimizer": {"name": spec.optimizer},
            "trainer": {
                "max_epochs": 1,
                "precision": precision,
                "accelerator": "gpu" if device == "cuda" else "cpu",
            },
        },
    )
    prepare(cfg)
    datamodule = build_datamodule(cfg)
    timer = Timer(device)
    trainer = build_trainer(cfg, callbacks=[timer], limit_val_batches=0)
    trainer.fit(build_module(cfg, datamodule).module, datamodule=datamodule)
    return timer.step_seconds * timer.steps, timer.steps


def _measure(path: str, spec: BenchSpec) -> dict[str, Any]:
    from sweeps.tracking.environment import environment_tags

    if path != "b":
        import lightning  # noqa: F401  before quiet(): importing Lightning sets its loggers' level
    quiet()
    device = resolve_device(spec.device)
    if path == "a":
        seconds, steps = _usual_recipe(spec, device)
    elif path == "b":
        seconds, steps = _plain_loop(spec, device)
    else:
        seconds, steps = _ours(spec, device, "bf16" if path == "c_bf16" else "32")
    return {
        "seconds": seconds,
        "steps": steps,
        "device": device_name(device),
        "environment": environment_tags(),
    }


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1], BenchSpec.from_json(sys.argv[2]))))
