"""A command run in a process that goes on (a Ray actor, a test, a user's program) leaves the process as it
found it: streams, log records, log levels and handlers, warning filters, environment variables, torch's
threads and the denormal flush."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from sweeps.config.sweep import load_sweep
from sweeps.engine.runtime import _flushing
from sweeps.engine.study import create
from sweeps.names import SPEC_ATTR
from tests.sweeps.helpers import CONF, TRAIN_YAML, invoke, tiny

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


def test_train_leaves_the_process_as_it_found_it(tiny_data: Path, tmp_path: Path) -> None:
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


def test_a_worker_leaves_the_process_as_it_found_it(tiny_data: Path, tmp_path: Path) -> None:
    sweep = load_sweep(
        CONF / "quickstart.yaml",
        [f"data.dir={tiny_data}", "data.name=mnist", "data.train_subset=128", "data.holdout_size=64"]
        + ["trainer.max_epochs=1", "study.n_trials=1", "search.optimizer=[momentum]"],
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    created = create(sweep, url, f"sqlite:///{tmp_path / 'mlflow.db'}")
    refused = json.loads(created.user_attrs[SPEC_ATTR])  # fails its trial at once: the test is about the rest
    refused["model"] |= {"target": "os:getcwd"}
    created.set_user_attr(SPEC_ATTR, json.dumps(refused))
    before = process_state()

    result = invoke(
        "worker", "--study", "quickstart", "--storage", url, "--threads", "1", "--allow-imports", "x"
    )

    assert result.exit_code == 0, result.output
    assert process_state() == before
