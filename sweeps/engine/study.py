"""A sweep's Optuna study: created with its parent run in MLflow, its trial budget, and its retrains.

The study is created once, by ``sweeps run``, before any worker starts. Everything a worker needs is kept in
the study's user attrs (the validated spec, the MLflow experiment and parent run), so ``sweeps worker`` on
another machine needs only the study's name and storage URL.

The budget is a queue: the creator enqueues exactly ``n_trials`` waiting trials (per optimizer in
``per_optimizer`` mode, each with its optimizer fixed), workers run trials only while one is waiting, and a
retried trial (its worker was killed) comes back as a new waiting trial with the same params. So the budget
holds across any number of workers and machines without a coordinator.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from sweeps.config.sweep import SweepConfig
from sweeps.engine.retry import first_line
from sweeps.engine.sampling import pruner_for, sampler_for
from sweeps.engine.servers import Unreachable, check_tracking
from sweeps.engine.space import preset_params
from sweeps.engine.storage.rdb import StudyNotFoundError, create_study_once, load_study, open_storage
from sweeps.masking import is_masked, mask
from sweeps.names import (
    COMMAND_ATTR,
    DEFAULT,
    ELAPSED_ATTR,
    EXPERIMENT_ATTR,
    FAIL_REASON_ATTR,
    OPTIMIZER_ATTR,
    PARENT_ATTR,
    PHASE_ATTR,
    SEARCH,
    SPEC_ATTR,
    SPENT_ATTR,
    STARTED_ATTR,
    TRACKING_ATTR,
    TUNED,
    phase,
    trial_optimizer,
)
from sweeps.tracking import runs
from sweeps.tracking.uris import SQLITE, TRACKING_ENV, absolute_sqlite


def create(
    sweep: SweepConfig, storage_url: str, tracking_uri: str, command: Sequence[str] = ()
) -> optuna.Study:
    """Create the study and its parent run, or resume the existing one (same spec required); top up the
    budget queue either way. ``command`` (the spec file and overrides it was made or last continued with) is
    kept for the report's suggestions: a study made before it was recorded, or by a library call, gets it
    when a command continues it."""
    storage = open_storage(storage_url)
    spec = sweep.model_dump_json(exclude={"launcher"})  # where the workers run may change on a resume
    timed = sweep.study.time_objective  # a second objective: total training seconds, minimised
    study, new = create_study_once(
        storage,
        sweep.study.name,
        [sweep.study.direction, *(["minimize"] if timed else [])],
        sampler=sampler_for(sweep),
        pruner=pruner_for(sweep),
        user_attrs={SPEC_ATTR: spec, STARTED_ATTR: time.time(), ELAPSED_ATTR: 0.0},
    )
    if new:
        try:
            experiment_id, parent = runs.start_parent(
                tracking_uri,
                sweep.experiment,
                sweep.study.name,
                storage_url,
                sweep.study.model_dump(),
                sweep.model_dump(mode="json"),
            )
        except BaseException:
            optuna.delete_study(study_name=sweep.study.name, storage=storage)  # no study without its parent
            raise
        study.set_user_attr(EXPERIMENT_ATTR, experiment_id)
        study.set_user_attr(PARENT_ATTR, parent)
        study.set_user_attr(TRACKING_ATTR, mask(tracking_uri))  # user attrs are shown by optuna-dashboard
        study.set_user_attr(COMMAND_ATTR, [mask(word) for word in command])
        # optuna-dashboard's axes, not "Objective 0"
        study.set_metric_names([sweep.study.metric, *(["total_seconds"] if timed else [])])
    else:
        _check_resumable(json.loads(study.user_attrs[SPEC_ATTR]), json.loads(spec), mask(storage_url))
        study.set_user_attr(SPEC_ATTR, spec)  # workers read the budget from here
        tracking_store(study, tracking_uri)
        study.set_user_attr(STARTED_ATTR, time.time())
        if command:
            study.set_user_attr(COMMAND_ATTR, [mask(word) for word in command])
        end_parent(study, tracking_uri, "RUNNING")
    top_up(study, sweep)
    return study


GROWABLE = {"study.n_trials", "study.timeout", "study.retrain_seeds"}
"""What may change when a sweep is run again: its budget may grow, and a search-only sweep may ask for its
retrains. Anything else would mix trials of two different sweeps in one study."""


def _check_resumable(before: dict[str, Any], after: dict[str, Any], where: str) -> None:
    """Refuse a changed spec, naming the keys that differ, unless only its budget grew."""
    changed = sorted(_differences(before, after))
    name = after["study"]["name"]
    fixed = [key for key in changed if key not in GROWABLE]
    study_before, study_after = before["study"], after["study"]
    if (study_after["n_trials"] or 0) < (study_before["n_trials"] or 0):
        fixed.append("study.n_trials (it may only grow)")
    if study_before["retrain_seeds"] and study_after["retrain_seeds"] != study_before["retrain_seeds"]:
        fixed.append("study.retrain_seeds (its retrains are queued already)")
    if fixed:
        raise ValueError(
            f"study {name!r} already exists in {where} with a different {', '.join(fixed)}; use another"
            " study.name, or the same spec to resume it (only study.n_trials, study.timeout and, on a"
            " search-only sweep, study.retrain_seeds may change)"
        )


def _differences(before: Any, after: Any, prefix: str = "") -> set[str]:
    """The dotted keys whose values differ between two nested dicts."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return set() if before == after else {prefix.rstrip(".")}
    keys = before.keys() | after.keys()
    return {d for k in keys for d in _differences(before.get(k), after.get(k), f"{prefix}{k}.")}


def end_parent(study: optuna.Study, tracking_uri: str, status: str = "FINISHED") -> None:
    """The sweep's parent run ends with it (``KILLED`` when interrupted); ``RUNNING`` again on a resume."""
    runs.end_parent(tracking_uri, study.user_attrs[PARENT_ATTR], status)


def close_lost_runs(study: optuna.Study, tracking_uri: str) -> None:
    """End FAILED the MLflow runs that failed trials left RUNNING (a killed worker cannot end its own)."""
    lost = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    if lost:
        attrs = study.user_attrs
        runs.close_lost(MlflowClient(tracking_uri), attrs[EXPERIMENT_ATTR], attrs[PARENT_ATTR], lost)


def count_running_time(study: optuna.Study) -> None:
    """Add the run that is ending to the sweep's running time, so a resumed sweep gets what is left of
    ``study.timeout``, not what is left since it was first created."""
    attrs = study.user_attrs
    study.set_user_attr(ELAPSED_ATTR, attrs.get(ELAPSED_ATTR, 0.0) + time.time() - attrs[STARTED_ATTR])
    study.set_user_attr(STARTED_ATTR, time.time())


def deadline(study: optuna.Study, sweep: SweepConfig) -> float:
    """When the sweep's ``study.timeout`` runs out (wall-clock seconds since the epoch; inf without one)."""
    if sweep.study.timeout is None:
        return float("inf")
    attrs = study.user_attrs
    return attrs[STARTED_ATTR] + sweep.study.timeout - attrs.get(ELAPSED_ATTR, 0.0)


def search_failed(study: optuna.Study) -> tuple[bool, str]:
    """Whether every search trial that ended failed (none completed or was pruned), and the commonest
    reason: a sweep that learned nothing must not end as if it had."""
    ended = [
        t
        for t in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
        if phase(t) == SEARCH
    ]
    if not ended or any(t.state != TrialState.FAIL for t in ended):
        return False, ""
    return True, Counter(fail_reason(t) for t in ended).most_common(1)[0][0]


def fail_reason(trial: FrozenTrial) -> str:
    """Why a FAIL trial failed: its recorded error, or (none recorded) its worker was lost or stopped."""
    return trial.user_attrs.get(FAIL_REASON_ATTR) or "its worker was lost or stopped (see the worker logs)"


def tracking_store(study: optuna.Study, given: str | None) -> str:
    """The MLflow store a process of this sweep uses: ``given`` (its flag or environment, as this machine
    reaches the server), else the recorded one; a recorded store whose password was masked comes from
    ``$MLFLOW_TRACKING_URI``. Checked to answer and to hold the sweep's parent run, so that no trial is
    written to the wrong store."""
    stored = study.user_attrs[TRACKING_ATTR]  # as the sweep was created with, a password masked
    given = given or (os.environ.get(TRACKING_ENV) if is_masked(stored) else None)
    if not given and is_masked(stored):
        raise runs.WrongStore(
            f"the sweep's MLflow store {stored} needs a password, which is not stored with the study:"
            " pass --tracking-uri or set $MLFLOW_TRACKING_URI"
        )
    uri = absolute_sqlite(given) if given else stored
    check_tracking(uri)
    try:
        runs.check_parent(uri, study.user_attrs[EXPERIMENT_ATTR], study.user_attrs[PARENT_ATTR], stored)
    except SQLAlchemyError as error:  # MLflow opening its database: not one, or locked by a stopped process
        raise Unreachable(f"cannot read the MLflow store {mask(uri)}: {first_line(error)}") from None
    return uri


def budget_key(trial: FrozenTrial, per_optimizer: bool) -> str:
    fixed = trial.system_attrs.get("fixed_params", {}) or trial.params
    return str(fixed.get("optimizer", "")) if per_optimizer else ""


def spent(trial: FrozenTrial) -> bool:
    """Whether a trial uses up budget: all but FAIL trials stopped from outside (see ``SPENT_ATTR``); a killed
    worker's trial is replaced by its retry, which counts instead."""
    return trial.state != TrialState.FAIL or bool(trial.user_attrs.get(SPENT_ATTR))


def top_up(study: optuna.Study, sweep: SweepConfig) -> int:
    """Enqueue waiting trials until the budget is covered; returns how many were added."""
    n_trials = sweep.study.n_trials
    if n_trials is None:
        return 0
    per = sweep.study.per_optimizer
    have = Counter(
        budget_key(t, per) for t in study.get_trials(deepcopy=False) if spent(t) and phase(t) == SEARCH
    )
    slots = sweep.search.optimizers if per else [""]
    added = 0
    for round_ in range(n_trials):
        for key in slots:
            if have[key] > round_:
                continue
            fixed = (preset_params(sweep, key) if round_ == 0 else {"optimizer": key}) if per else {}
            study.enqueue_trial(fixed, skip_if_exists=False)
            have[key] += 1
            added += 1
    return added


def _best(study: optuna.Study, trials: list[FrozenTrial] | None, of_phase: str) -> dict[str, FrozenTrial]:
    """Per optimizer, its best complete trial of one phase (of ``trials``, else of the study) by the first
    objective."""
    better = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    found: dict[str, FrozenTrial] = {}
    for t in trials if trials is not None else study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE and phase(t) == of_phase:
            name = trial_optimizer(t)
            found[name] = better(found.get(name, t), t, key=lambda done: done.values[0])
    return found


def best_search(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> FrozenTrial | None:
    """The best complete search trial (of ``trials``, else of the study): retrains are scored on another
    split and never compete with the search's values."""
    if len(study.directions) > 1:
        return None
    best = sorted(_best(study, trials, SEARCH).values(), key=lambda t: t.number)  # ties: the first
    better = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return better(best, key=lambda t: t.value) if best else None


def best_per_optimizer(
    study: optuna.Study, sweep: SweepConfig, of_phase: str = SEARCH, trials: list[FrozenTrial] | None = None
) -> dict[str, FrozenTrial]:
    """Each optimizer's best complete trial of one phase, in the spec's optimizer order."""
    best = _best(study, trials, of_phase)
    return {name: best[name] for name in sweep.search.optimizers if name in best}


def queue_retrains(study: optuna.Study, sweep: SweepConfig) -> int:
    """Once the search is over: per optimizer, one ``default`` trial and one ``tuned`` trial (its best search
    params, all fixed), unless queued before; returns how many were added. Run by the launcher only, so two
    processes never queue the same retrain."""
    if not sweep.study.retrain_seeds:
        return 0
    queued = {(phase(t), trial_optimizer(t)) for t in study.get_trials(deepcopy=False) if spent(t)}
    best = best_per_optimizer(study, sweep)
    added = 0
    for name in sweep.search.optimizers:
        for kind, params in ((DEFAULT, {}), (TUNED, best[name].params if name in best else None)):
            if params is None or (kind, name) in queued:
                continue
            attrs = {PHASE_ATTR: kind, OPTIMIZER_ATTR: name}
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=False)
            added += 1
    return added


def finished(study: optuna.Study, sweep: SweepConfig) -> bool:
    """Nothing waiting or running, and the retrains (if asked for) were queued: what a worker that joined
    from elsewhere can tell without the launcher."""
    trials = study.get_trials(deepcopy=False)
    busy = any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials)
    return not busy and (not sweep.study.retrain_seeds or any(phase(t) != SEARCH for t in trials))


def open_sweep(name: str, storage_url: str, worker: int = 0) -> tuple[optuna.Study, SweepConfig]:
    """An existing sweep, as a worker sees it: the study with this worker's sampler, and the stored spec. A
    SQLite file that is not there holds no sweep: it is not created (opening it would)."""
    if storage_url.startswith(SQLITE) and not Path(storage_url.removeprefix(SQLITE)).exists():
        raise StudyNotFoundError(
            f"no study {name!r}: {mask(storage_url)} does not exist; run the sweep first (sweeps run SPEC),"
            " or name its storage (--storage / $SWEEPS_STORAGE)"
        )
    study = load_study(open_storage(storage_url), name)
    spec = SweepConfig.model_validate_json(study.user_attrs[SPEC_ATTR])
    study.sampler, study.pruner = sampler_for(spec, worker), pruner_for(spec)
    return study, spec


def waiting(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
