"""Process-level settings for training: the allocator tuned, denormals flushed while training and put back."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from sweeps.engine.runtime import _flushing, denormals_flushed, tune_allocator

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


def test_a_run_trains_with_denormals_flushed_and_leaves_them_as_they_were(tiny_data, store) -> None:
    from lightning.pytorch.callbacks import Callback

    from sweeps.config.train import load
    from sweeps.engine.training import train
    from tests.sweeps.helpers import TRAIN_YAML, tiny

    seen = []

    class Probe(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            seen.append((torch.tensor([1e-39]) * 1.0).item())  # a denormal float32, read as zero when flushed

    torch.set_flush_denormal(False)
    train(load(TRAIN_YAML, tiny(tiny_data, "trainer.max_epochs=1")), store.uri, callbacks=[Probe()])

    assert seen == [0.0]
    assert not _flushing()


def test_denormals_are_flushed_while_it_lasts_and_as_before_afterwards() -> None:
    for before in (False, True):
        torch.set_flush_denormal(before)
        with denormals_flushed() as supported:
            assert _flushing() == supported
        assert _flushing() == before
    torch.set_flush_denormal(False)
