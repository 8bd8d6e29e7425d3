"""Study set-up for a fair comparison: each optimizer starts from its default and is pruned among its own."""

from __future__ import annotations

import json
import re

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.config.sweep import load_sweep
from sweeps.engine.sampling import PerOptimizer, pruner_for
from sweeps.engine.servers import Unreachable
from sweeps.engine.space import preset_params
from sweeps.engine.study import create, tracking_store
from sweeps.names import COMMAND_ATTR, EXPERIMENT_ATTR, PARENT_ATTR, SPEC_ATTR, TRACKING_ATTR
from tests.sweeps.helpers import CONF


def test_the_default_is_each_optimizers_first_trial_where_the_space_admits_it() -> None:
    sweep = load_sweep(CONF / "shootout.yaml")
    assert preset_params(sweep, "sgd") == {"optimizer": "sgd", "batch_size": 64, "sgd.lr": 0.01}
    adadelta = {"optimizer": "adadelta", "batch_size": 64, "adadelta.lr": 0.001}
    assert preset_params(sweep, "adadelta") == adadelta
    # Keras' RMSprop has momentum 0, outside the searched 0.5-0.99: that one is sampled
    assert preset_params(sweep, "rmsprop") == {"optimizer": "rmsprop", "batch_size": 64, "rmsprop.lr": 0.001}
    narrow = load_sweep(CONF / "shootout.yaml", ["search.lr.low=0.05", "search.batch_size=[32, 128]"])
    assert preset_params(narrow, "sgd") == {"optimizer": "sgd"}


def test_the_queue_starts_every_optimizer_at_its_default(tmp_path) -> None:
    sweep = load_sweep(CONF / "shootout.yaml", ["study.n_trials=2", "search.optimizer=[sgd, momentum]"])
    study = create(sweep, f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    queued = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))]
    assert queued == [preset_params(sweep, "sgd"), preset_params(sweep, "momentum")] + [
        {"optimizer": "sgd"},
        {"optimizer": "momentum"},
    ]


def _curve(study: optuna.Study, optimizer: str, value: float) -> None:
    study.add_trial(
        create_trial(
            value=value,
            params={"lr": 0.1},
            distributions={"lr": FloatDistribution(0.01, 1.0)},
            user_attrs={"config": {"optimizer": optimizer}},
            intermediate_values={1: value, 2: value},
        )
    )


def test_a_shootout_prunes_a_trial_among_its_own_optimizer_only() -> None:
    sweep = load_sweep(CONF / "shootout.yaml")
    assert isinstance(pruner_for(sweep), PerOptimizer)
    study = optuna.create_study(direction="maximize")
    for _ in range(4):
        _curve(study, "adam", 0.9)
        _curve(study, "adadelta", 0.3)
    running = {}
    for value in (0.35, 0.2):
        trial = study.ask()
        trial.set_user_attr("config", {"optimizer": "adadelta"})
        trial.report(value, step=2)
        running[value] = study.get_trials(states=(TrialState.RUNNING,))[-1]
    whole_study = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    assert whole_study.prune(study, running[0.35])  # trails Adam: the plain median would cut it
    assert not pruner_for(sweep).prune(study, running[0.35])  # leads the other Adadelta trials
    assert pruner_for(sweep).prune(study, running[0.2])  # trails them


def test_one_shared_budget_keeps_the_plain_pruner() -> None:
    sweep = load_sweep(CONF / "sweep.yaml")
    assert isinstance(pruner_for(sweep), optuna.pruners.MedianPruner)


def test_a_shootout_refuses_a_pruner_that_reads_the_whole_study() -> None:
    from sweeps.config.files import ConfigError

    with pytest.raises(ConfigError, match="study.pruner: hyperband"):
        load_sweep(CONF / "shootout.yaml", ["study.pruner=hyperband"])
    assert isinstance(
        pruner_for(load_sweep(CONF / "shootout.yaml", ["study.pruner=successive_halving"])), PerOptimizer
    )


def test_a_sweep_run_again_may_grow_its_budget_and_ask_for_retrains_but_nothing_else(tmp_path, store) -> None:
    url, uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = ["study.n_trials=1", "search.optimizer=[sgd, momentum]"]
    create(load_sweep(CONF / "quickstart.yaml", base), url, uri)  # a library call: no command to record
    more = [*base, "study.n_trials=3", "study.retrain_seeds=5"]
    study = create(load_sweep(CONF / "quickstart.yaml", more), url, uri, ["conf/quickstart.yaml", *more])
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 6
    assert json.loads(study.user_attrs[SPEC_ATTR])["study"]["retrain_seeds"] == 5  # what workers read
    assert study.user_attrs[COMMAND_ATTR] == ["conf/quickstart.yaml", *more]  # the report's "To rank them"
    assert create(load_sweep(CONF / "quickstart.yaml", more), url, uri).user_attrs[COMMAND_ATTR][0] == (
        "conf/quickstart.yaml"
    )
    for changed, named in (
        (["study.n_trials=2"], "study.n_trials (it may only grow)"),
        (["trainer.max_epochs=3", "data.train_subset=100"], "data.train_subset, trainer.max_epochs"),
        (["study.retrain_seeds=3"], "study.retrain_seeds (its retrains are queued already)"),
    ):
        with pytest.raises(ValueError, match=re.escape(f"with a different {named};")):
            create(load_sweep(CONF / "quickstart.yaml", [*more, *changed]), url, uri)


def test_an_mlflow_store_that_cannot_be_read_is_a_one_line_error_naming_it(tmp_path) -> None:
    """A process joining a sweep opens its MLflow store first: a file that is no database (or one a stopped
    process holds locked) ends it with the store's name and why, not MLflow's traceback."""
    not_a_database = tmp_path / "mlflow.db"
    not_a_database.write_text("notes, not a database\n" * 100)
    study = optuna.create_study()
    for key, value in {TRACKING_ATTR: "sqlite:///other.db", EXPERIMENT_ATTR: "1", PARENT_ATTR: "a"}.items():
        study.set_user_attr(key, value)

    with pytest.raises(Unreachable, match=r"MLflow store sqlite:.*/mlflow\.db: file is not a database$"):
        tracking_store(study, f"sqlite:///{not_a_database}")
