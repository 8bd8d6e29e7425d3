"""How a ``sweeps`` process is set up, in one place: :func:`bootstrap` for every command (the app's callback
runs it), :func:`bootstrap_worker` besides for ``sweeps worker``, :func:`quiet_libraries` once a command has
imported the libraries it quiets (each sets its own log levels on import).

Every change lasts as long as the command: the app's context undoes them all as it closes, so a process that
goes on afterwards (a Ray actor or an array task that ran ``worker_main``, a test, a user's program) finds
itself as it was. Library functions below the CLI change nothing process-wide."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TypeVar

import typer

from sweeps.environ import scoped_environ
from sweeps.masking import masked_output

_NOISE = (
    r".*LeafSpec.*is deprecated",  # Lightning's own use of a deprecated torch API
    r".*smaller than the logging interval.*",  # Lightning's hint for per-step logging
    r".*The `srun` command is available on your system",  # Lightning on SLURM nodes
)
_CHATTY = ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning", "mlflow", "optuna")
TRACKING_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
"""A worker's, where unset. MLflow retries each request with urllib3's backoff, ``factor * 2**(n-1)`` seconds
capped at 120: its defaults (7 retries, factor 2) wait 4, 8, 16, 32, 64 s, so a server back after 30 s is
noticed only after 60; these wait 1, 2, 4, ... (noticed within twice the outage) and give up after about 6
minutes, like the study storage."""
T = TypeVar("T")
_UNDO = ExitStack()
"""What the running command changed, undone as the app's context closes."""


VERBOSE_ENV = "SWEEPS_VERBOSE"
"""Set by ``sweeps -v``; inherited by the workers a sweep starts, so their logs keep the libraries' lines."""


def bootstrap(context: typer.Context, verbose: bool = False, exported: dict[str, str] | None = None) -> None:
    """Every command: passwords masked in all it prints and logs, libraries' warnings about themselves off;
    ``verbose`` keeps the libraries' notes, here and in the workers the command starts; ``exported``
    variables are set for the command and the workers it starts."""
    context.call_on_close(_UNDO.close)
    _UNDO.enter_context(scoped_environ(exported))
    if verbose:
        _UNDO.enter_context(scoped_environ({VERBOSE_ENV: "1"}))
    _UNDO.enter_context(masked_output())
    _UNDO.enter_context(warnings.catch_warnings())
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def quiet_libraries() -> None:
    """Lightning's banners and tips, MLflow's table creation, missing-experiment and pickle notes and its
    "View run" links, Optuna's notes are noise on a terminal that shows one line per epoch (``sweeps -v``
    keeps them); Optuna marks features the service relies on experimental. MLflow sets its logger's level
    when it is imported, hence its variable as well as the level."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if os.environ.get(VERBOSE_ENV):
        return
    quiet = {"MLFLOW_LOGGING_LEVEL": "WARNING", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    _UNDO.enter_context(scoped_environ({k: os.environ.get(k, v) for k, v in quiet.items()}))
    for name in _CHATTY:
        _UNDO.enter_context(_level(name, logging.WARNING))
    _UNDO.enter_context(_level("mlflow.pytorch", logging.ERROR))  # its pickle caution: we load tensors only
    for creates_experiment in ("lightning.pytorch.loggers.mlflow", "pytorch_lightning.loggers.mlflow"):
        _UNDO.enter_context(_level(creates_experiment, logging.ERROR))  # "not found. Creating it": expected


def restrict_imports(allowed: str | None) -> None:
    """``--allow-imports`` for this command and, by inheritance, for the workers it starts."""
    if allowed is not None:
        from sweeps.config.imports import ALLOW_ENV

        _UNDO.enter_context(scoped_environ({ALLOW_ENV: allowed}))


def bootstrap_worker(threads: int | None) -> None:
    """``sweeps worker`` besides: its log (stderr) shows what the engine reports at INFO (a trial pruned, or
    resumed from its checkpoint at some epoch); glibc keeps training's blocks in the heap (not undone: it only
    speeds up what allocates); MLflow's HTTP retries are :data:`TRACKING_RETRIES` where unset; torch uses
    ``threads`` CPU threads."""
    from sweeps.engine.runtime import tune_allocator

    tune_allocator()
    _UNDO.enter_context(scoped_environ({k: v for k, v in TRACKING_RETRIES.items() if k not in os.environ}))
    _UNDO.enter_context(_engine_log())
    if threads:
        import torch

        _UNDO.enter_context(_while(torch.get_num_threads, torch.set_num_threads, threads))


@contextmanager
def _while(get: Callable[[], T], put: Callable[[T], object], value: T) -> Iterator[None]:
    """``value`` put in place of what ``get`` reads, and the old value put back on leaving."""
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)


def _level(name: str, level: int) -> AbstractContextManager[None]:
    logger = logging.getLogger(name)
    return _while(lambda: logger.level, logger.setLevel, level)


@contextmanager
def _engine_log() -> Iterator[None]:
    engine = logging.getLogger("sweeps")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    engine.addHandler(handler)
    with _level("sweeps", logging.INFO):
        try:
            yield
        finally:
            engine.removeHandler(handler)
