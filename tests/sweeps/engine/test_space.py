"""The conditional search space, sampled on real Optuna studies (in memory and SQLite)."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from models.optimizers import get_spec
from sweeps.config.files import validate
from sweeps.config.search import Range, Searched
from sweeps.config.sweep import SweepConfig, load_sweep
from sweeps.config.train import TrainConfig
from sweeps.engine.space import suggest, trial_params
from tests.sweeps.helpers import CONF

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "nadam"]
SEARCH: dict[str, Any] = {
    "optimizer": OPTIMIZERS,
    "batch_size": ["full", 1, 32, 64],
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "momentum": {"low": 0.5, "high": 0.99},
    "rho": [0.9, 0.95],
    "betas": [{"low": 0.8, "high": 0.95}, 0.999],
    "form": ["torch", "ema"],
    "eps": 1e-7,  # fixed: applied, never suggested
    "per_optimizer": {"adadelta": {"lr": {"low": 0.01, "high": 10, "log": True}}},
}
# The parameters each optimizer may be given a suggestion for (besides optimizer and batch_size).
EXPECTED = {
    "sgd": {"lr"},
    "momentum": {"lr", "momentum", "form"},
    "nesterov": {"lr", "momentum"},
    "adagrad": {"lr"},
    "adadelta": {"lr", "rho"},
    "rmsprop": {"lr", "momentum"},
    "adam": {"lr", "betas.0"},
    "adamw": {"lr", "betas.0"},
    "nadam": {"lr", "betas.0"},
}


def sweep(search: dict[str, Any] = SEARCH, **study: Any) -> SweepConfig:
    spec = {
        "optimizer": {"preset": "keras", "weight_decay": 1e-5},
        "study": {"name": "space", "n_trials": 10, **study},
        "search": search,
    }
    return validate(SweepConfig, spec)


def objective_value(config: TrainConfig) -> float:
    """A smooth function of the config, so that TPE has something to model."""
    lr = config.optimizer.overrides().get("lr", 1e-3)
    return -abs(math.log10(lr) + 2) + (0.1 if config.optimizer.name == "adam" else 0.0)


def run(study: optuna.Study, cfg: SweepConfig, n: int) -> list[tuple[optuna.trial.FrozenTrial, TrainConfig]]:
    seen = []
    for _ in range(n):
        trial = study.ask()
        config = suggest(trial, cfg)
        study.tell(trial, objective_value(config))
        seen.append((study.trials[trial.number], config))
    return seen


@pytest.fixture(params=["tpe", "random"], scope="module")
def sampled(request) -> list[tuple[optuna.trial.FrozenTrial, TrainConfig]]:
    samplers = {
        "tpe": optuna.samplers.TPESampler(seed=1, n_startup_trials=20),
        "random": optuna.samplers.RandomSampler(seed=1),
    }
    study = optuna.create_study(direction="maximize", sampler=samplers[request.param])
    return run(study, sweep(), 180)


def test_only_hyperparameters_the_chosen_optimizer_takes_are_suggested(sampled):
    chosen = set()
    for trial, config in sampled:
        name = trial.params["optimizer"]
        chosen.add(name)
        assert config.optimizer.name == name
        assert set(trial.params) == {"optimizer", "batch_size"} | {f"{name}.{p}" for p in EXPECTED[name]}
    assert chosen == set(OPTIMIZERS)
    suggested = {p for trial, _ in sampled for p in trial.params}
    assert not {p for p in suggested if p.endswith(".momentum")} - {
        "momentum.momentum",
        "nesterov.momentum",
        "rmsprop.momentum",
    }
    assert {p for p in suggested if ".rho" in p} == {"adadelta.rho"}
    assert {p for p in suggested if ".betas" in p} == {"adam.betas.0", "adamw.betas.0", "nadam.betas.0"}


def test_every_value_is_in_its_configured_range_and_valid_for_the_optimizer(sampled):
    for trial, config in sampled:
        name = config.optimizer.name
        given = config.optimizer.overrides()
        lr_low, lr_high = (0.01, 10) if name == "adadelta" else (1e-4, 1.0)  # adadelta: its own range
        assert lr_low <= given["lr"] <= lr_high
        if "momentum" in EXPECTED[name]:
            assert 0.5 <= given["momentum"] <= 0.99
        if name == "adadelta":
            assert given["rho"] in (0.9, 0.95)
        if name in ("adam", "adamw", "nadam"):
            assert 0.8 <= given["betas"][0] <= 0.95
            assert given["betas"][1] == 0.999
        assert config.data.batch_size in ("full", 1, 32, 64)
        assert config.data.batch_size == trial.params["batch_size"]
        for key, value in given.items():
            assert get_spec(name).hyperparams[key].check(value) == pytest.approx(value)


def test_the_sampled_config_is_a_valid_train_config(sampled):
    for _, config in sampled:
        assert type(config) is TrainConfig
        assert TrainConfig.model_validate(config.model_dump()) == config
        resolved = get_spec(config.optimizer.name).resolve(
            config.optimizer.preset, **config.optimizer.overrides()
        )
        assert resolved == config.optimizer.resolved()
        assert config.experiment == "space"
        assert (config.trainer.max_epochs, config.data.name) == (10, "fashion_mnist")


def test_fixed_values_and_the_base_section_are_applied_without_suggestions(sampled):
    for trial, config in sampled:
        name = config.optimizer.name
        takes = get_spec(name).hyperparams
        given = config.optimizer.overrides()
        assert config.optimizer.preset == "keras"
        assert given.get("eps") == (1e-7 if "eps" in takes else None)
        assert given.get("weight_decay") == 1e-5  # every optimizer here takes it
        assert not any(p.endswith((".eps", ".weight_decay")) for p in trial.params)


def test_per_optimizer_ranges_are_their_own_distribution():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cfg = sweep()
    for name in ("adadelta", "sgd"):
        study.enqueue_trial({"optimizer": name})
    run(study, cfg, 2)

    adadelta, sgd = study.trials
    assert adadelta.distributions["adadelta.lr"] == FloatDistribution(0.01, 10, log=True)
    assert sgd.distributions["sgd.lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert adadelta.distributions["optimizer"] == CategoricalDistribution(OPTIMIZERS)


def test_an_enqueued_optimizer_is_honoured(tmp_path):
    """``per_optimizer`` mode enqueues each trial with its optimizer fixed; workers share SQLite storage."""
    cfg = sweep(per_optimizer=True)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3),
    )
    order = [name for _ in range(2) for name in cfg.search.optimizers]
    for name in order:
        study.enqueue_trial({"optimizer": name})

    seen = run(study, cfg, len(order))

    assert [config.optimizer.name for _, config in seen] == order
    assert [trial.params["optimizer"] for trial, _ in seen] == order
    for trial, config in seen:
        assert set(trial.params) - {"optimizer", "batch_size"} == {
            f"{config.optimizer.name}.{p}" for p in EXPECTED[config.optimizer.name]
        }


def test_a_retried_trial_gets_the_same_config():
    """Retrying a killed worker's trial enqueues its params; the config must come back identical."""
    cfg = sweep()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    [(first, config)] = run(study, cfg, 1)
    study.enqueue_trial(first.params)

    [(_, again)] = run(study, cfg, 1)

    assert again == config


def test_grid_visits_every_distinct_configuration_exactly_once():
    """``grid`` runs on BruteForceSampler: it enumerates the conditional tree, also for trials enqueued
    empty as the budget queue does, and stops itself; GridSampler would multiply momentum.momentum by
    adam.lr and refuses enqueued trials."""
    search = {
        "optimizer": ["sgd", "momentum", "adam"],
        "batch_size": [32, "full"],
        "lr": [0.01, 0.1],
        "momentum": [0.8, 0.9],
        "form": "ema",
    }
    cfg = sweep(search, sampler="grid", n_trials=None)
    combos = {
        (name, batch, lr, momentum)
        for name in ("sgd", "momentum", "adam")
        for batch in (32, "full")
        for lr in (0.01, 0.1)
        for momentum in ((0.8, 0.9) if name == "momentum" else (None,))
    }
    assert cfg.study.n_trials == cfg.search.grid_size() == len(combos) == 16
    sampler = optuna.samplers.BruteForceSampler(seed=cfg.study.seed)
    study = optuna.create_study(sampler=sampler)
    for _ in range(cfg.study.n_trials):
        study.enqueue_trial({})

    configs: list[TrainConfig] = []

    def objective(trial: optuna.Trial) -> float:
        configs.append(suggest(trial, cfg))
        return objective_value(configs[-1])

    study.optimize(objective, n_trials=2 * len(combos))  # the sampler stops the study when done

    visited = [
        (
            c.optimizer.name,
            c.data.batch_size,
            c.optimizer.overrides()["lr"],
            c.optimizer.overrides().get("momentum"),
        )
        for c in configs
    ]
    assert len(visited) == len(combos)
    assert set(visited) == combos
    assert all(
        c.optimizer.overrides().get("form") == ("ema" if c.optimizer.name == "momentum" else None)
        for c in configs
    )


def test_a_fixed_optimizer_and_batch_size_are_not_suggested():
    search = {"optimizer": "nesterov", "batch_size": "full", "lr": [0.1, 0.3], "momentum": 0.8}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    seen = run(study, sweep(search), 5)

    for trial, config in seen:
        assert set(trial.params) == {"nesterov.lr"}
        assert (config.optimizer.name, config.data.batch_size) == ("nesterov", "full")
        assert config.optimizer.overrides()["momentum"] == 0.8


def test_integer_ranges_are_suggested_as_integers():
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()

    value = Searched("warmup", int, Range(low=0, high=10, step=2)).sample(trial, "opt.warmup")

    assert isinstance(value, int)
    assert value in range(0, 11, 2)
    assert trial.distributions["opt.warmup"] == IntDistribution(0, 10, step=2)


def test_trial_params_are_the_trial_config_as_a_plain_dict():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"optimizer": "adam"})
    [(trial, config)] = run(study, sweep(), 1)

    params = trial_params(config)

    assert params == {
        "optimizer": "adam",
        "batch_size": trial.params["batch_size"],
        "lr": trial.params["adam.lr"],
        "betas": (trial.params["adam.betas.0"], 0.999),
        "eps": 1e-7,
        "weight_decay": 1e-5,
    }


def test_the_shipped_sweep_samples_valid_configs():
    cfg = load_sweep(CONF / "sweep.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))

    seen = run(study, cfg, 30)

    assert {config.optimizer.name for _, config in seen} <= set(cfg.search.optimizers)
    assert all(config.data.train_subset == 5000 and config.trainer.max_epochs == 3 for _, config in seen)


def test_settings_are_sampled_by_their_kind_and_a_schedules_only_under_it():
    search = {
        "optimizer": ["adam", "torch.optim:ASGD"],
        "lr": {"low": 1e-3, "high": 0.1, "log": True},
        "lambd": [1e-4, 1e-3],
        "trainer.max_epochs": {"low": 2, "high": 5},
        "scheduler.name": ["none", "step", "cosine"],
        "scheduler.gamma": {"low": 0.1, "high": 0.9},
        "scheduler.warmup_epochs": [0, 1],
        "model.kwargs.hidden": {"low": 8, "high": 64, "log": True},
        "model.kwargs.dropout": {"low": 0.0, "high": 0.5},
    }
    cfg = validate(
        SweepConfig,
        {
            "model": {"target": "tests.workload.net:MLP"},
            "data": {"target": "tests.workload.blobs:Blobs"},
            "scheduler": {"name": "step", "step_size": 2},
            "study": {"name": "settings", "n_trials": 30},
            "search": search,
        },
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    seen = run(study, cfg, 30)

    for trial, config in seen:
        schedule = config.scheduler.name
        assert trial.params["scheduler.name"] == schedule
        assert ("scheduler.gamma" in trial.params) == (schedule == "step")
        assert ("scheduler.warmup_epochs" in trial.params) == (schedule != "none")
        assert config.scheduler.step_size == (
            2 if schedule == "step" else None
        )  # the base's, where it applies
        assert isinstance(config.model.kwargs["hidden"], int) and 8 <= config.model.kwargs["hidden"] <= 64
        assert isinstance(config.model.kwargs["dropout"], float)
        assert isinstance(config.trainer.max_epochs, int) and 2 <= config.trainer.max_epochs <= 5
        assert ("torch.optim:ASGD.lambd" in trial.params) == (config.optimizer.name == "torch.optim:ASGD")
        params = trial_params(config, cfg.search.settings())
        assert params.get("scheduler.gamma") == config.scheduler.gamma
        assert params["model.kwargs.hidden"] == config.model.kwargs["hidden"]
    assert {config.scheduler.name for _, config in seen} == {"none", "step", "cosine"}
    assert trial.distributions["model.kwargs.hidden"] == IntDistribution(8, 64, log=True)
