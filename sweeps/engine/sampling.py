"""How a sweep's study searches and prunes: Optuna's samplers and pruners, built from the spec."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.config.sweep import SweepConfig
from sweeps.names import trial_optimizer


class GridWalk(optuna.samplers.BruteForceSampler):
    """BruteForceSampler without its ``study.stop()`` once the grid is covered: that call is legal only inside
    ``Study.optimize``, and workers ask and tell; a grid study's budget queue (its size) ends it instead."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: object) -> None:
        return None


def sampler_for(sweep: SweepConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Each worker gets its own seed, so parallel workers never replay each other's suggestions; TPE also
    treats running trials as constant liars."""
    study, seed = sweep.study, sweep.study.seed + worker
    if study.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if study.sampler == "grid":  # walks a conditional space; GridSampler needs one flat product
        return GridWalk(seed=seed)
    if study.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


class PerOptimizer(optuna.pruners.BasePruner):
    """Prunes a trial against the trials of its own optimizer only. In ``per_optimizer`` mode each optimizer
    has its own budget, so a slow starter (Adadelta, NAdam) must not be cut for trailing Adam's curves; a
    median over the whole study pruned every one of its trials in a shoot-out here."""

    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_SameOptimizer(study, trial_optimizer(trial)), trial)


class _SameOptimizer:
    """A read-only view of a study holding one optimizer's trials; what a pruner reads of it."""

    def __init__(self, study: optuna.Study, optimizer: str) -> None:
        self._study, self._optimizer = study, optimizer

    def __getattr__(self, name: str) -> object:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None
    ) -> list[FrozenTrial]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if trial_optimizer(t) == self._optimizer]


def pruner_for(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    study = sweep.study
    if study.pruner == "median":
        pruner: optuna.pruners.BasePruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    elif study.pruner == "successive_halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner()
    elif study.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sweep.trainer.max_epochs)
    else:
        return optuna.pruners.NopPruner()
    return PerOptimizer(pruner) if study.per_optimizer else pruner
