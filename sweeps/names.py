"""Names that several layers read and write: the keys a sweep keeps in Optuna's study and trial user attrs,
the MLflow tags of its runs, and the phases of a trial. Defined once so that the engine, tracking, the report
and the tools agree on them without importing one another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXIT_PREEMPTED = 75
"""A stopped worker's exit code (``EX_TEMPFAIL``: try again later): its trials were given back. A Kubernetes
Job's pod failure policy ignores it, so an evicted worker's index runs again without spending its retries; the
SLURM launcher counts it as no failure."""

# --- a study's user attrs: everything a worker on another machine needs besides the study's name ------------
SPEC_ATTR = "sweeps.spec"
"""The validated sweep spec, as JSON."""
PARENT_ATTR = "sweeps.parent_run_id"
EXPERIMENT_ATTR = "sweeps.experiment_id"
TRACKING_ATTR = "sweeps.tracking_uri"
STARTED_ATTR = "sweeps.started_at"
"""When the sweep's current run started (``sweeps run`` creating or resuming it)."""
ELAPSED_ATTR = "sweeps.elapsed_seconds"
"""How long its earlier runs ran: with ``STARTED_ATTR``, what is left of ``study.timeout``."""
COMMAND_ATTR = "sweeps.command"
"""The ``sweeps run`` arguments that made the sweep (spec file, overrides): the report builds the command
that continues it from them."""
JOBS_ATTR = "sweeps.jobs"
"""The scheduler jobs that run the sweep's workers (``{"launcher": "slurm", "job_id": ..., "workers": N}``),
which ``sweeps status`` asks the scheduler about."""

# --- a trial's user attrs -----------------------------------------------------------------------------------
RUN_ATTR = "mlflow_run_id"
CONFIG_ATTR = "config"
"""What sets the trial's config apart from the registry's preset (optimizer, batch size, hyperparameters)."""
WORKER_ATTR = "worker"
FAIL_REASON_ATTR = "sweeps.fail_reason"
"""The first line of the error that failed a trial, password masked: the live view counts trials by it."""
SPENT_ATTR = "spent"
"""Set on a trial that failed on its own (diverged, out of memory, an error): it used up its budget slot.
A FAIL trial without it was stopped from outside (Ctrl-C, a killed worker) and its slot is given back."""
PHASE_ATTR = "sweeps.phase"
OPTIMIZER_ATTR = "sweeps.optimizer"
CHECKPOINT_ATTR = "sweeps.checkpoint"
"""The key of a trial's checkpoints (``trial-<n>``, n the first trial of its params): the heartbeat retry
copies user attrs to the trial that re-runs a lost one, which resumes from what the lost one saved."""

PREEMPTED_ATTR = "sweeps.preempted"
"""How often a trial was preempted (given back at an epoch end when its worker was told to stop) and resumed:
no failure, no retry spent."""
GIVEN_BACK_ATTR = "sweeps.given_back"
"""The number of a trial given back to the queue as it was: the worker that takes it next reopens its MLflow
run. Optuna's heartbeat retry copies user attrs to a lost trial's re-run, whose other number makes it open a
run of its own."""

SEARCH, DEFAULT, TUNED = "search", "default", "tuned"
"""A trial's phase (a user attr, kept by the heartbeat retry): ``search`` trials are sampled and spend the
budget; with ``study.retrain_seeds`` each optimizer then gets a ``default`` trial (its preset, untuned) and a
``tuned`` trial (its best search config), each trained on that many fresh seeds: the fair table's columns."""

# --- MLflow tags --------------------------------------------------------------------------------------------
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "sweeps.trial"
STATE_TAG = "sweeps.trial_state"
STUDY_TAG = "sweeps.study"
OPTIMIZER_TAG = OPTIMIZER_ATTR
PHASE_TAG = PHASE_ATTR
WORKER_TAG = "sweeps.worker"
ROLE_TAG = "sweeps.role"
STORAGE_TAG = "sweeps.storage"
DEVICE_TAG = "sweeps.device"
OUTCOME_TAG = "sweeps.outcome"
REASON_TAG = "sweeps.reason"
PREEMPTED_TAG = PREEMPTED_ATTR

EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
"""MLflow's own tag for what an experiment holds: model training runs. MLflow 3 UIs with a per-experiment kind
open such an experiment on its runs; 3.17's follows a global view instead (see ``sweeps.tools.ui``)."""

VIEW_TAG = "mlflow.sharedViewState."
"""MLflow UI's shared views: an experiment tag ``<prefix><key>`` holding a runs-table view as JSON (its
columns), which the UI applies when its URL carries ``viewStateShareKey=<key>``. A sweep's key is its parent
run's id."""

# --- the metrics the service's own module logs per epoch (step = the 1-based epoch) ------------------------
EPOCH_METRICS = ("train_loss", "val_loss", "val_acc", "epoch_seconds")


def trial_run_name(number: int, config: Mapping[str, Any], of_phase: str = SEARCH) -> str:
    """``t3 adam lr=1.2e-03 bs=64``: a trial's run named by what it trained (a retrain says which), so a
    list of runs reads as a list of configs."""
    retrain = [] if of_phase == SEARCH else [of_phase]
    return " ".join([f"t{number}", *retrain, str(config.get("optimizer", "")), settings_label(config)])


def settings_label(config: Mapping[str, Any]) -> str:
    """``lr=1.2e-03 momentum=0.795 hidden=128 bs=64``: a trial's ``CONFIG_ATTR`` less its optimizer
    (hyperparameters, searched settings by their last part, batch size last), short enough for a run name
    or a table cell."""
    shown = {k: v for k, v in config.items() if k not in ("optimizer", "batch_size")}
    settings = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in shown.items()]
    return " ".join([*settings, *([f"bs={config['batch_size']}"] if "batch_size" in config else [])])


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1e}" if 0 < abs(value) < 0.01 else f"{value:.3g}"
    return str(value)


def phase(trial: Any) -> str:
    """The phase of an Optuna trial (live or frozen): ``search`` unless a retrain was queued."""
    return trial.user_attrs.get(PHASE_ATTR, SEARCH)


def trial_optimizer(trial: Any) -> str:
    """The optimizer a trial trains: fixed when it was queued for one, else the one its config holds."""
    return trial.user_attrs.get(OPTIMIZER_ATTR) or trial.user_attrs.get(CONFIG_ATTR, {}).get("optimizer", "")
