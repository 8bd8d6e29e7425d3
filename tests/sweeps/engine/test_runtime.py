"""Process-level allocator settings applied before training."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from sweeps.engine.runtime import tune_allocator

on_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt tuning needs Linux with glibc",
)

PROBE = """
import resource, sys, torch, torch.nn.functional as F
from models.cnn import SeedCNN
from sweeps.engine.runtime import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else False
model = SeedCNN()
optimizer = torch.optim.Adam(model.parameters())
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
def step():
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 20)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


@on_glibc
def test_training_steps_stop_page_faulting() -> None:
    tuned, faults_per_step = _faults("tuned")
    _, default_faults_per_step = _faults("default")
    assert tuned == "True"
    assert default_faults_per_step > 1_000  # glibc maps the step's large blocks afresh each time
    assert faults_per_step < default_faults_per_step / 10


@on_glibc
def test_tune_allocator_can_run_twice() -> None:
    assert tune_allocator() is True
    assert tune_allocator() is True


def test_a_run_flushes_denormals_to_zero() -> None:
    import torch

    from sweeps.config.train import TrainConfig
    from sweeps.engine.training import prepare

    prepare(TrainConfig())
    assert (torch.tensor([1e-39]) * 1.0).item() == 0.0  # a denormal float32, read as zero
    assert (torch.tensor([1e-37]) * 1.0).item() > 0.0
