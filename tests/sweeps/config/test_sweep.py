"""The sweep spec: the train config plus ``study`` and ``search`` blocks, refused naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pydantic
import pytest
import yaml

from models.optimizers import HyperParam
from sweeps.config.files import ConfigError
from sweeps.config.search import Range, Searched
from sweeps.config.sweep import METRIC_DIRECTIONS, SweepConfig, load_sweep
from sweeps.config.train import TrainConfig
from sweeps.engine.training import RunResult
from sweeps.names import EPOCH_METRICS
from tests.sweeps.helpers import CONF

SWEEP_YAML = CONF / "sweep.yaml"


def write(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def small(**blocks: Any) -> dict[str, Any]:
    """A minimal valid spec, with ``blocks`` merged into its sections."""
    spec: dict[str, Any] = {
        "study": {"name": "s", "n_trials": 4},
        "search": {"optimizer": ["sgd", "momentum", "adam"], "lr": {"low": 1e-3, "high": 0.1, "log": True}},
    }
    for section, values in blocks.items():
        spec[section] = {**spec.get(section, {}), **values} if isinstance(values, dict) else values
    return spec


def refused(overrides: list[str], path: Path = SWEEP_YAML) -> str:
    with pytest.raises(ConfigError) as caught:
        load_sweep(path, overrides)
    return str(caught.value)


def names_field(message: str, field: str) -> bool:
    return any(line.startswith(f"{field}:") for line in message.splitlines())


# --- the shipped spec ----------------------------------------------------------------------------------


def test_the_shipped_sweep_validates_as_written():
    cfg = load_sweep(SWEEP_YAML)

    assert isinstance(cfg, TrainConfig)
    assert cfg.experiment == "sweep"  # one MLflow experiment per sweep, named after the study
    assert cfg.study.name == "sweep"
    assert (cfg.study.sampler, cfg.study.pruner, cfg.study.n_trials) == ("tpe", "median", 24)
    assert (cfg.study.direction, cfg.study.metric) == ("maximize", "best_val_acc")
    assert cfg.study.per_optimizer is False
    assert cfg.search.optimizers == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    assert cfg.search.batch_size == [32, 64, 128]
    assert cfg.search.hyperparams()["lr"] == Range(low=1e-4, high=1.0, log=True)
    assert isinstance(cfg.search.hyperparams()["momentum"], Range)
    assert cfg.search.space("adam").keys() == {"lr"}
    assert cfg.search.space("nesterov").keys() == {"lr", "momentum"}
    assert (cfg.trainer.max_epochs, cfg.data.train_subset) == (3, 5000)


def test_the_metrics_are_those_a_run_reports():
    assert set(METRIC_DIRECTIONS) - {"best_val_acc"} <= set(EPOCH_METRICS)
    assert "best_val_acc" in RunResult.__dataclass_fields__
    assert {k for k, d in METRIC_DIRECTIONS.items() if d == "maximize"} == {"best_val_acc", "val_acc"}


# --- defaults and overrides ---------------------------------------------------------------------------


def test_overrides_reach_study_and_search():
    cfg = load_sweep(
        SWEEP_YAML,
        ["study.n_trials=20", "search.lr.high=0.1", "search.batch_size=[full, 1]", "study.timeout=3600"],
    )

    assert cfg.study.n_trials == 20
    assert cfg.study.timeout == 3600.0
    assert cfg.search.hyperparams()["lr"] == Range(low=1e-4, high=0.1, log=True)
    assert cfg.search.batch_size == ["full", 1]


def test_the_direction_follows_the_metric_unless_given(tmp_path):
    cfg = load_sweep(write(tmp_path, small(study={"metric": "val_loss"})))

    assert cfg.study.direction == "minimize"
    assert load_sweep(write(tmp_path, small())).study.direction == "maximize"


def test_an_explicit_experiment_and_the_base_optimizer_are_kept(tmp_path):
    spec = small(experiment="mine", search={"optimizer": None}, optimizer={"name": "nadam"})
    del spec["search"]["optimizer"]  # not searched: the base optimizer, fixed

    cfg = load_sweep(write(tmp_path, spec))

    assert cfg.experiment == "mine"
    assert cfg.search.optimizer == "nadam"
    assert cfg.search.optimizers == ["nadam"]


def test_timeout_alone_is_a_budget(tmp_path):
    cfg = load_sweep(write(tmp_path, small(study={"n_trials": None, "timeout": 90})))

    assert (cfg.study.n_trials, cfg.study.timeout) == (None, 90.0)


def test_grid_budget_defaults_to_the_number_of_distinct_configurations(tmp_path):
    search = {
        "optimizer": ["sgd", "momentum", "adam"],
        "batch_size": [32, "full"],
        "lr": [0.01, 0.1],
        "momentum": [0.8, 0.9, 0.95],
        "betas": [[0.8, 0.9], 0.999],
        "weight_decay": 0.0,
    }
    spec = small(study={"sampler": "grid", "n_trials": None}, search=search)

    cfg = load_sweep(write(tmp_path, spec))

    # per batch size: sgd 2 lrs + momentum 2 lrs x 3 momenta + adam 2 lrs x 2 betas[0]
    assert cfg.search.grid_size() == 2 * (2 + 6 + 4)
    assert cfg.study.n_trials == 24
    assert load_sweep(write(tmp_path, spec), ["study.n_trials=10"]).study.n_trials == 10


def test_per_optimizer_ranges_replace_the_shared_ones(tmp_path):
    search = {
        "optimizer": ["momentum", "rmsprop"],
        "momentum": {"low": 0.0, "high": 0.9},  # 0 is no momentum at all for `momentum`: refused there ...
        "per_optimizer": {"momentum": {"momentum": {"low": 0.5, "high": 0.99}}},  # ... but replaced
    }

    cfg = load_sweep(write(tmp_path, small(search=search)))

    assert cfg.search.space("momentum")["momentum"] == Range(low=0.5, high=0.99)
    assert cfg.search.space("rmsprop")["momentum"] == Range(low=0.0, high=0.9)


def test_the_spec_survives_a_json_round_trip():
    """The study keeps the validated spec as JSON in its user attrs; workers rebuild it from there."""
    cfg = load_sweep(
        SWEEP_YAML,
        [
            "search.betas=[{low: 0.8, high: 0.95}, [0.99, 0.999]]",
            "search.per_optimizer={adam: {lr: [0.001, 0.01]}}",
            "search.batch_size=[full, 1, 64]",
        ],
    )

    assert SweepConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_sweep_specs_are_frozen():
    cfg = load_sweep(SWEEP_YAML)

    for model, field in [
        (cfg, "experiment"),
        (cfg.study, "n_trials"),
        (cfg.search, "optimizer"),
        (cfg.search, "lr"),
        (cfg.search.hyperparams()["lr"], "high"),
    ]:
        with pytest.raises(pydantic.ValidationError):
            setattr(model, field, 3)
    assert cfg.study.n_trials == 24


# --- refusals -----------------------------------------------------------------------------------------

BAD = [
    # (overrides on conf/sweep.yaml, dotted field the message must name, fragment of the message)
    (["study.bogus=1"], "study.bogus", "unknown key"),
    (["search.lr.hgh=1"], "search.lr.range.hgh", "unknown key"),
    (["study.name=a b"], "study.name", "pattern"),
    (["study.name="], "study.name", "pattern"),
    (["study.name=null"], "study.name", "string"),
    (["study.direction=minimize"], "study.direction", "use direction: maximize"),
    (["study.metric=val_loss", "study.direction=maximize"], "study.direction", "use direction: minimize"),
    (["study.metric=val acc"], "study.metric", "pattern"),
    (["study.sampler=bayes"], "study.sampler", "cmaes"),
    (["study.pruner=asha"], "study.pruner", "hyperband"),
    (["study.seed=1.5"], "study.seed", "integer"),
    (["study.n_trials=null"], "study.n_trials", "study.timeout"),
    (["study.n_trials=0"], "study.n_trials", "greater than 0"),
    (["study.n_trials=true"], "study.n_trials", "integer"),
    (["study.timeout=0"], "study.timeout", "greater than 0"),
    (["study.timeout=true"], "study.timeout", "number"),
    (["study.repeats=0"], "study.repeats", "greater than 0"),
    (["study.retrain_seeds=2"], "study.retrain_seeds", "0 (no retrains) or 3 to 30, got 2"),
    (["study.retrain_seeds=31"], "study.retrain_seeds", "3 to 30, got 31"),
    (["study.retrain_seeds=-1"], "study.retrain_seeds", "greater than or equal to 0"),
    (
        ["study.per_optimizer=true", "study.n_trials=null", "study.timeout=60"],
        "study.per_optimizer",
        "n_trials",
    ),
    (["study.sampler=grid"], "study.sampler", "list the values of sgd.lr"),
    (
        ["study.sampler=grid", "search.lr=[0.1]", "search.momentum=0.9"],
        "study.n_trials",
        "24 exceeds the grid's 18 configurations",
    ),
    (["study.sampler=grid", "study.per_optimizer=true"], "study.per_optimizer", "every configuration"),
    (["study.time_objective=true"], "study.pruner", "multi-objective"),
    (
        ["study.time_objective=true", "study.pruner=none", "study.sampler=cmaes"],
        "study.sampler",
        "single objective",
    ),
    (
        ["study.sampler=cmaes", "search.optimizer=nesterov", "search.lr=[0.1, 0.01]", "search.momentum=0.9"],
        "study.sampler",
        "no range",
    ),
    (["study.sampler=cmaes"], "study.sampler", "tpe or random"),
    (["study.sampler=qmc"], "study.sampler", "fix search.optimizer"),
    (["search.optimizer=[sgd, foo]"], "search.optimizer.list.1", "unknown optimizer 'foo'"),
    (["search.optimizer=foo"], "search.optimizer.value", "unknown optimizer 'foo'"),
    (["search.optimizer=[]"], "search.optimizer", "non-empty"),
    (["search.optimizer=[sgd, sgd]"], "search.optimizer", "repeats"),
    (["search.batch_size=[0, 32]"], "search.batch_size.list.0", "full"),
    (["search.batch_size=fulll"], "search.batch_size.value", "full"),
    (["search.batch_size=[32, 32]"], "search.batch_size", "repeats"),
    (
        ["search.rho=[0.9, 0.95]"],
        "search.rho",
        "none of sgd, momentum, nesterov, adagrad, rmsprop, adam takes",
    ),
    (["search.bogus=1"], "search.bogus", "takes 'bogus'"),
    (["search.lr.high=1e-5"], "search.lr.range.high", "must be > low"),
    (["search.lr.low=0"], "search.lr.range.low", "log range needs low > 0"),
    (["search.lr.step=0.1"], "search.lr.range.step", "log"),
    (["search.lr={low: 0.1, high: 0.5, step: -0.1}"], "search.lr.range.step", "> 0"),
    (["search.lr.low=abc"], "search.lr.range.low", "number"),
    (["search.lr=null"], "search.lr.value", "number"),
    (["search.lr.log=false", "search.lr.low=0"], "search.lr", "lr must be a number > 0"),
    (["search.lr=[0.1, -0.1]"], "search.lr", "lr must be a number > 0"),
    (["search.lr=[0.1, 0.1]"], "search.lr", "repeats"),
    (["search.lr=[]"], "search.lr", "non-empty"),
    (["search.lr=[0.1, {low: 1, high: 2}]"], "search.lr", "not ranges"),
    (["search.momentum.high=1.0"], "search.momentum", "(0, 1), got 1.0 (for optimizer 'momentum')"),
    (["search.momentum.low=0.0"], "search.momentum", "(0, 1), got 0.0"),
    (["search.form=[torch, nesterov]"], "search.form", "'ema'"),
    (["search.amsgrad={low: 0, high: 1}"], "search.amsgrad", "list its values"),
    (["search.betas=[0.9, 1.0]"], "search.betas", "betas[1] must be a number in [0, 1)"),
    (["search.betas=[{low: 0.8, high: 1.5}, 0.999]"], "search.betas", "betas[0]"),
    (["search.betas={low: 0.8, high: 0.9}"], "search.betas", "one search value per element"),
    (["search.betas=[0.9, 0.99, 0.999]"], "search.betas", "one search value per element"),
    (["search.per_optimizer.adadelta.lr=0.1"], "search.per_optimizer.adadelta", "not searched"),
    (["search.per_optimizer.adam.momentum=0.5"], "search.per_optimizer.adam", "adam takes no 'momentum'"),
    (["search.per_optimizer.adam.lr={low: 0, high: 1}"], "search.per_optimizer.adam", "lr: lr must be"),
    (["search.per_optimizer.adam.lr.hgh=1"], "search.per_optimizer.adam.lr.range.hgh", "unknown key"),
    (["search=3"], "search", "dictionary"),
    (["study=3"], "study", "dictionary"),
    (["search.trainer.max_epochs=[0, 2]"], "search.trainer.max_epochs", "greater than 0"),
    (["search.trainer.max_epochs={low: 1.5, high: 4}"], "search.trainer.max_epochs", "integer"),
    (["search.trainer.precision={low: 1, high: 2}"], "search.trainer.precision", "list its values"),
    (["search.trainer.bogus=[1, 2]"], "search.trainer.bogus", "unknown key"),
    (["search.model.init=[torch, keras]"], "search.model.init", "only model.kwargs.<key>"),
    (["search.model.kwargs.a.b=[1, 2]"], "search.model.kwargs.a.range.b", "unknown key"),
    (["search.model.kwargs.width=[8, 8]"], "search.model.kwargs.width", "repeats"),
    (["search.scheduler=[none, linear]"], "search.scheduler.name", "cosine"),
    (["search.scheduler.gamma=[0.1, 0.5]"], "search.scheduler.gamma", "none) takes 'gamma'; step does"),
    (
        ["search.scheduler.name=[none, cosine]", "search.scheduler.gamma=[0.1, 0.5]"],
        "search.scheduler.gamma",
        "none, cosine) takes 'gamma'",
    ),
    (["scheduler.name=step", "search.scheduler.gamma=[0, 0.5]"], "search.scheduler.gamma", "greater than 0"),
    (["search.per_optimizer.adam={trainer.seed: [1, 2]}"], "search.per_optimizer.adam", "searched for all"),
    (
        ["search.scheduler.name=[none, cosine]", "search.scheduler.warmup_epochs=[0, 3]"],
        "search.scheduler.warmup_epochs",
        "up to 3 warm-up epochs, but a trial may run only 3",
    ),
    (
        [
            "search.scheduler.name=step",
            "search.scheduler.warmup_epochs=1",
            "search.trainer.max_epochs=[1, 5]",
        ],
        "search.scheduler.warmup_epochs",
        "may run only 1",
    ),
    (
        ["scheduler.name=cosine", "scheduler.warmup_epochs=3", "search.trainer.max_epochs=[2, 10]"],
        "search.scheduler.warmup_epochs",
        "up to 3 warm-up epochs, but a trial may run only 2",
    ),
]


@pytest.mark.parametrize(("overrides", "field", "fragment"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_specs_are_refused_naming_the_field(overrides, field, fragment):
    message = refused(overrides)

    assert names_field(message, field), message
    assert fragment in message, message


@pytest.mark.parametrize("missing", ["study", "search", "study.name"])
def test_the_study_name_and_both_blocks_are_required(tmp_path, missing):
    spec = small()
    section, _, key = missing.partition(".")
    if key:
        del spec[section][key]
    else:
        del spec[section]

    message = refused([], write(tmp_path, spec))

    assert names_field(message, missing), message
    assert "Field required" in message


def test_base_hyperparameters_must_fit_every_searched_optimizer_that_takes_them(tmp_path):
    """``optimizer.momentum: 0`` is valid for rmsprop, but would be every `momentum` trial's momentum."""
    spec = small(
        optimizer={"name": "rmsprop", "momentum": 0.0}, search={"optimizer": ["rmsprop", "momentum"]}
    )

    message = refused([], write(tmp_path, spec))

    assert names_field(message, "search.optimizer"), message
    assert "momentum cannot start from the optimizer section" in message
    spec["search"]["momentum"] = {"low": 0.5, "high": 0.9}  # searched: the base value is not used
    assert load_sweep(write(tmp_path, spec)).search.space("momentum")["momentum"] == Range(low=0.5, high=0.9)


def test_the_train_config_keys_keep_their_checks():
    message = refused(["trainer.max_epochs=0", "data.batch_size=0", "optimizer.rho=0.9"])

    for field in ("trainer.max_epochs", "data.batch_size", "optimizer.rho"):
        assert names_field(message, field), message


def test_every_problem_in_separate_blocks_is_reported_at_once():
    message = refused(["study.repeats=0", "search.lr.hgh=1", "trainer.seed=x"])

    for field in ("study.repeats", "search.lr.range.hgh", "trainer.seed"):
        assert names_field(message, field), message


def test_integer_hyperparameters_take_integer_ranges_and_steps():
    """No registry optimizer has one yet; the check is ready for one (e.g. a warm-up length)."""
    warmup = HyperParam("warmup", int, low=0)

    Searched.of(warmup, Range(low=0, high=10, step=2)).validated()
    Searched.of(warmup, [0, 5]).validated()
    for bad in (Range(low=0, high=10.5), Range(low=0, high=10, step=0.5), [1.5], Range(low=-1, high=3)):
        with pytest.raises(ValueError, match="warmup"):
            Searched.of(warmup, bad).validated()


def test_one_search_value_counts_and_samples_a_pair_element_by_element():
    betas = HyperParam("betas", tuple, low=0, high=1, high_inclusive=False)
    pair = Searched.of(betas, [[0.8, 0.9], Range(low=0.99, high=0.999)])
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()

    assert Searched.of(betas, [[0.8, 0.9], [0.99, 0.999, 0.9999]]).size() == 6
    assert pair.validated().size() is None
    first, second = pair.sample(trial, "adam.betas")
    assert first in (0.8, 0.9) and 0.99 <= second <= 0.999
    assert set(trial.params) == {"adam.betas.0", "adam.betas.1"}
    with pytest.raises(ValueError, match=r"betas\[1\] must be a number in \[0, 1\)"):
        Searched.of(betas, [0.9, [0.99, 1.0]]).validated()


def test_a_sweep_that_tunes_selects_on_the_hold_out_never_on_the_test_split() -> None:
    assert load_sweep(SWEEP_YAML).data.val_split == "holdout"
    message = refused(["data.val_split=test"])
    assert message.startswith("data.val_split:") and "hold-out of the train split" in message


def test_the_seed_table_compares_fixed_configurations_on_the_test_split_as_the_original() -> None:
    seed_table = load_sweep(CONF / "seed_table.yaml")
    assert seed_table.search.tuned() == []
    assert (seed_table.data.val_split, seed_table.data.scaling) == ("test", "unit")


def test_settings_are_searched_by_dotted_key_written_flat_nested_or_overridden(tmp_path):
    spec = small(
        search={
            "model.kwargs.dropout": {"low": 0.0, "high": 0.5},
            "trainer": {"max_epochs": [2, 4]},
            "scheduler": ["none", "cosine"],
            "scheduler.warmup_epochs": [0, 1],
        }
    )
    cfg = load_sweep(
        write(tmp_path, spec), ["search.model.kwargs.dropout.high=0.3", "search.data.kwargs.n=[64]"]
    )

    assert cfg.search.settings() == {
        "model.kwargs.dropout": Range(low=0.0, high=0.3),
        "trainer.max_epochs": [2, 4],
        "scheduler.name": ["none", "cosine"],
        "scheduler.warmup_epochs": [0, 1],
        "data.kwargs.n": [64],
    }
    assert "model.kwargs.dropout" in cfg.search.ranges()
    assert set(cfg.search.hyperparams()) == {"lr"}
    assert SweepConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_the_grid_counts_a_schedules_settings_only_under_the_schedules_that_take_them(tmp_path):
    spec = small(
        study={"sampler": "grid", "n_trials": None},
        search={
            "optimizer": ["sgd", "adam"],
            "lr": [0.1, 0.01],
            "trainer.max_epochs": [2, 3],
            "scheduler.name": ["none", "step", "cosine"],
            "scheduler.gamma": [0.1, 0.5, 0.9],
            "scheduler.warmup_epochs": [0, 1],
        },
    )

    cfg = load_sweep(write(tmp_path, spec))

    # 2 optimizers x 2 lr, x 2 epochs, x (none: 1 + step: 3 gammas x 2 warm-ups + cosine: 2 warm-ups)
    assert cfg.study.n_trials == cfg.search.grid_size("none") == 2 * 2 * 2 * (1 + 6 + 2)


def test_a_class_path_optimizer_is_searched_like_a_registry_one(tmp_path):
    spec = small(search={"optimizer": ["adam", "torch.optim:ASGD"], "lambd": {"low": 1e-5, "high": 1e-3}})

    cfg = load_sweep(write(tmp_path, spec))

    assert cfg.search.space("torch.optim:ASGD").keys() == {"lr", "lambd"}
    assert cfg.search.space("adam").keys() == {"lr"}


def test_a_metric_the_service_does_not_know_needs_its_direction(tmp_path):
    message = refused([], write(tmp_path, small(study={"metric": "val_mse"})))
    assert names_field(message, "study.direction") and "give study.direction" in message, message

    cfg = load_sweep(write(tmp_path, small(study={"metric": "val_mse", "direction": "minimize"})))

    assert (cfg.study.metric, cfg.study.direction, cfg.study.epoch_metric) == (
        "val_mse",
        "minimize",
        "val_mse",
    )
    assert load_sweep(write(tmp_path, small())).study.epoch_metric == "val_acc"


def test_cmaes_refuses_schedules_each_with_their_own_settings(tmp_path):
    spec = small(
        study={"sampler": "cmaes"}, search={"optimizer": "adam", "scheduler.name": ["none", "cosine"]}
    )

    message = refused([], write(tmp_path, spec))

    assert names_field(message, "study.sampler") and "fix search.scheduler.name" in message, message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["study.n_trails=3"],
            "study.n_trails: unknown key; did you mean study.n_trials? (valid: checkpoints,",
        ),
        (["sudy.name=x"], "sudy: unknown key; did you mean study? (valid: data, experiment, launcher,"),
        (["trainer.max_epoch=3"], "trainer.max_epoch: unknown key; did you mean trainer.max_epochs?"),
    ],
)
def test_an_unknown_key_suggests_the_closest_and_lists_the_valid_ones(
    overrides: list[str], expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_sweep(CONF / "quickstart.yaml", overrides)
    assert str(refused.value).startswith(expected)


def test_a_key_the_spec_sets_can_be_removed_on_the_command_line() -> None:
    sweep = load_sweep(CONF / "quickstart.yaml", ["search.optimizer=[sgd, adam]", "~search.momentum"])
    assert sweep.search.optimizers == ["sgd", "adam"]
    assert set(sweep.search.model_dump(exclude_none=True)) == {"optimizer", "per_optimizer", "lr"}
    with pytest.raises(ConfigError, match=r"^~search\.nope: the spec sets no such key to remove$"):
        load_sweep(CONF / "quickstart.yaml", ["~search.nope"])
