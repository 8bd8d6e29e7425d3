"""A command run in a process that goes on (a Ray actor, a test, a user's program) leaves the process as it
found it: streams, log records, log levels and handlers, warning filters, environment variables, torch's
threads and the denormal flush."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from sweeps.engine.runtime import _flushing
from sweeps.workdir import FOLDER_ENV
from tests.sweeps.helpers import TRAIN_YAML, invoke, tampered_study, tiny

LOGGERS = ("sweeps", "lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "optuna")


def process_state() -> dict[str, Any]:
    return {
        "streams": (sys.stdout, sys.stderr),
        "record factory": logging.getLogRecordFactory(),
        "levels": {name: logging.getLogger(name).level for name in LOGGERS},
        "handlers": {name: list(logging.getLogger(name).handlers) for name in LOGGERS},
        "warning filters": list(warnings.filters),
        "environment": dict(os.environ),
        "threads": torch.get_num_threads(),
        "denormals flushed": _flushing(),
    }


def test_train_leaves_the_process_as_it_found_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FOLDER_ENV)  # as a user's shell has it: the command exports it for its workers only
    args = [
        str(TRAIN_YAML),
        *tiny(tiny_data, "trainer.max_epochs=1"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
    ]
    invoke("train", *args)  # imports the libraries: torch and Lightning set variables of their own on import
    torch.set_flush_denormal(False)  # as a user's process has it
    before = process_state()

    result = invoke("train", *args)

    assert result.exit_code == 0, result.output
    assert process_state() == before


def test_a_worker_leaves_the_process_as_it_found_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FOLDER_ENV)
    # its trial fails at once: the test is about the rest
    url, _ = tampered_study(tmp_path, tiny_data, target="os:getcwd")
    before = process_state()

    result = invoke(
        "worker", "--study", "quickstart", "--storage", url, "--threads", "1", "--allow-imports", "x"
    )

    assert result.exit_code == 0, result.output
    assert process_state() == before


def test_the_command_line_imports_no_heavy_library_until_a_command_needs_it() -> None:
    heavy = ("torch", "lightning", "mlflow", "optuna", "pandas", "matplotlib")
    probe = f"import sys, sweeps.cli; print([m for m in {heavy!r} if m in sys.modules])"

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]", result.stderr
