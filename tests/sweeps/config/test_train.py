"""The run config: YAML and `key.sub=value` overrides validated into frozen models; errors name the field."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from models.optimizers import REGISTRY
from sweeps.config.files import ConfigError, parse_overrides, parse_yaml, read_yaml
from sweeps.config.train import TrainConfig, load
from tests.sweeps.helpers import CONF, TRAIN_YAML


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def refused(overrides: list[str], path: Path = TRAIN_YAML) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, overrides)
    return str(caught.value)


def names_field(message: str, field: str) -> bool:
    """Whether one line of ``message`` reports a problem with the dotted ``field``."""
    return any(line.startswith(f"{field}:") for line in message.splitlines())


# --- parsing overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 0.001),
        ("3E-4", 0.0003),
        ("-2.5e+2", -250.0),
        ("1e6", 1e6),
        ("0.9", 0.9),
        (".5", 0.5),
        ("64", 64),
        ("[0.9, 0.999]", [0.9, 0.999]),
        ("[1e-3, 2e-3]", [0.001, 0.002]),
        ("full", "full"),
        ("null", None),
        ("~", None),
        ("true", True),
        ("false", False),
        ("fashion_mnist", "fashion_mnist"),
        ("", ""),
    ],
)
def test_override_values_parse_as_yaml_scalars(text, expected):
    parsed = parse_overrides([f"optimizer.x={text}"])["optimizer"]["x"]

    assert parsed == expected
    assert type(parsed) is type(expected)


def test_overrides_build_a_nested_tree_and_the_last_one_wins():
    tree = parse_overrides(["a.b.c=1", "a.b.d=x", "e=2", "a.b.c=3"])

    assert tree == {"a": {"b": {"c": 3, "d": "x"}}, "e": 2}


def test_yaml_file_floats_in_exponent_form_are_floats(tmp_path):
    """PyYAML's YAML 1.1 reads ``1e-3`` as a string; configs mean the number."""
    path = write(tmp_path / "c.yaml", "optimizer:\n  name: adam\n  lr: 1e-3\n  betas: [8e-1, 0.99]\n")

    cfg = load(path)

    assert cfg.optimizer.overrides() == {"lr": 0.001, "betas": [0.8, 0.99]}
    assert cfg.optimizer.resolved()["lr"] == 0.001
    assert cfg.optimizer.resolved()["betas"] == (0.8, 0.99)
    assert parse_yaml("x: 5e-4") == {"x": 0.0005}


# --- loading ------------------------------------------------------------------------------------------


def test_train_yaml_spells_out_the_defaults():
    assert load(TRAIN_YAML) == TrainConfig()


def test_overrides_are_applied_over_the_yaml(tmp_path):
    path = write(
        tmp_path / "c.yaml",
        "experiment: base\ndata:\n  batch_size: 32\n  train_subset: 5000\n"
        "optimizer:\n  name: adam\n  lr: 0.1\n",
    )

    cfg = load(
        path,
        [
            "optimizer.name=momentum",
            "optimizer.lr=1e-3",
            "optimizer.momentum=0.8",
            "optimizer.form=ema",
            "data.batch_size=full",
            "data.train_subset=null",
            f"data.dir={tmp_path}",
            "trainer.precision=bf16",
            "trainer.max_epochs=3",
            "run_name=r1",
        ],
    )

    assert cfg.experiment == "base"
    assert cfg.run_name == "r1"
    assert cfg.optimizer.name == "momentum"
    assert cfg.optimizer.overrides() == {"lr": 0.001, "momentum": 0.8, "form": "ema"}
    assert cfg.data.batch_size == "full"
    assert cfg.data.train_subset is None
    assert cfg.data.dir == tmp_path
    assert cfg.trainer.precision == "bf16"
    assert cfg.trainer.max_epochs == 3


@pytest.mark.parametrize("batch_size", ["1", "64", "full"])
def test_batch_size_takes_full_or_a_positive_integer(batch_size):
    cfg = load(TRAIN_YAML, [f"data.batch_size={batch_size}"])

    assert str(cfg.data.batch_size) == batch_size


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_precision_accepts_32_as_number_or_text_and_bf16(precision):
    assert load(TRAIN_YAML, [f"trainer.precision={precision}"]).trainer.precision == precision


def test_an_empty_yaml_file_means_all_defaults(tmp_path):
    assert load(write(tmp_path / "empty.yaml", "")) == TrainConfig()


def test_config_models_are_frozen():
    cfg = load(TRAIN_YAML, ["optimizer.lr=0.01"])

    with pytest.raises(pydantic.ValidationError):
        cfg.trainer.max_epochs = 3  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.data.batch_size = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.optimizer.name = "sgd"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.optimizer.lr = 10.0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.experiment = "other"  # type: ignore[misc]
    assert cfg.optimizer.overrides() == {"lr": 0.01}


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    """Run configs load as TrainConfig; sweep specs (a ``study`` block) as SweepConfig, which is one."""
    from sweeps.config.sweep import load_sweep

    cfg = load_sweep(path) if "study" in read_yaml(path) else load(path)

    assert isinstance(cfg, TrainConfig)
    assert cfg.optimizer.name in REGISTRY or cfg.optimizer.name.startswith("torch.optim:")


def test_the_shipped_configs_are_found():
    names = {p.name for p in CONF.glob("*.yaml")}

    assert {"train.yaml", "quickstart.yaml"} <= names


# --- refusals -----------------------------------------------------------------------------------------

BAD = [
    # (overrides, dotted field the message must name, fragment of the message)
    (["bogus=1"], "bogus", "unknown key"),
    (["data.bogus=1"], "data.bogus", "unknown key"),
    (["trainer.bogus=1"], "trainer.bogus", "unknown key"),
    (["model.bogus=1"], "model.bogus", "unknown key"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs", "integer"),
    (["trainer.max_epochs=0"], "trainer.max_epochs", "greater than 0"),
    (["trainer.seed=1.5"], "trainer.seed", "integer"),
    (["data.download=maybe"], "data.download", "boolean"),
    (["data.train_subset=0"], "data.train_subset", "greater than 0"),
    (["data.val_split=train"], "data.val_split", "holdout"),
    (["data=3"], "data", "dictionary"),
    (["model.init=he"], "model.init", "keras"),
    (["optimizer.lr=0"], "optimizer.lr", "> 0"),
    (["optimizer.lr=-1e-3"], "optimizer.lr", "> 0"),
    (["optimizer.lr=abc"], "optimizer.lr", "number"),
    (["optimizer.lr=.inf"], "optimizer.lr", "> 0"),
    (["data.batch_size=0"], "data.batch_size", "full"),
    (["data.batch_size=-4"], "data.batch_size", "full"),
    (["data.batch_size=fulll"], "data.batch_size", "full"),
    (["data.batch_size=true"], "data.batch_size", "full"),
    (["optimizer.name=foo"], "optimizer.name", "unknown optimizer 'foo'"),
    (["optimizer.preset=tf"], "optimizer.preset", "keras"),
    (["data.name=cifar10"], "data.name", "unknown dataset 'cifar10'"),
    (["optimizer.rho=0.9"], "optimizer.rho", "adam takes no 'rho'"),
    (
        ["optimizer.name=adadelta", "optimizer.momentum=0.9"],
        "optimizer.momentum",
        "adadelta takes no 'momentum'",
    ),
    (["optimizer.name=sgd", "optimizer.momentum=0.9"], "optimizer.momentum", "sgd takes no 'momentum'"),
    (["optimizer.name=nesterov", "optimizer.form=ema"], "optimizer.form", "nesterov takes no 'form'"),
    (["optimizer.name=adam", "optimizer.alpha=0.9"], "optimizer.alpha", "adam takes no 'alpha'"),
    (["optimizer.name=momentum", "optimizer.form=nesterov"], "optimizer.form", "'ema'"),
    (["optimizer.name=momentum", "optimizer.momentum=0"], "optimizer.momentum", "(0, 1)"),
    (["optimizer.name=momentum", "optimizer.momentum=1.0"], "optimizer.momentum", "(0, 1)"),
    (["optimizer.name=momentum", "optimizer.momentum=-0.5"], "optimizer.momentum", "(0, 1)"),
    (["optimizer.betas=[0.9]"], "optimizer.betas", "pair"),
    (["optimizer.betas=[0.9, 1.0]"], "optimizer.betas", "pair"),
    (["optimizer.betas=[-0.1, 0.9]"], "optimizer.betas", "pair"),
    (["optimizer.betas=[0.9, a]"], "optimizer.betas", "pair"),
    (["optimizer.betas=0.9"], "optimizer.betas", "pair"),
    (["optimizer.betas=[0.9, 0.99, 0.999]"], "optimizer.betas", "pair"),
    (["optimizer.amsgrad=1"], "optimizer.amsgrad", "bool"),
    (["optimizer.name=adadelta", "optimizer.rho=1.5"], "optimizer.rho", "[0, 1)"),
    (["optimizer.name=rmsprop", "optimizer.alpha=1"], "optimizer.alpha", "[0, 1)"),
    (["trainer.precision=16"], "trainer.precision", "bf16"),
    (["trainer.precision=fp64"], "trainer.precision", "bf16"),
    (["trainer.accelerator=tpu"], "trainer.accelerator", "gpu"),
    (["trainer.threads=0"], "trainer.threads", "greater than 0"),
    (["data.name.x=1"], "data.name", "not a section"),
    (["trainer.seed.value=1"], "trainer.seed", "not a section"),
    (["model.target=mynet"], "model.target", "'package.module:name'"),
    (["model.target=my net:Net"], "model.target", "'package.module:name'"),
    (["model.kwargs.width=3"], "model.kwargs", "only for a model.target"),
    (["model.target=mynet:Net", "model.init=keras"], "model.init", "seed CNN's"),
    (["data.kwargs.n=3"], "data.kwargs", "only for a data.target"),
    (["data.target=mydata:Data", "data.train_subset=10"], "data.train_subset", "built-in data sets"),
    (["data.target=mydata:Data", "data.dir=/tmp"], "data.dir", "built-in data sets"),
    (["data.target=mydata:Data", "data.kwargs.batch_size=8"], "data.kwargs", "data.batch_size"),
    (["data.target=mydata:Data", "data.batch_size=full"], "data.batch_size", "integer"),
    (["optimizer.name=nowhere:Opt"], "optimizer.name", "does not import"),
    (["optimizer.name=torch.nn:Linear"], "optimizer.name", "not a torch.optim.Optimizer subclass"),
    (
        ["optimizer.name=torch.optim:ASGD", "optimizer.momentum=0.9"],
        "optimizer.momentum",
        "takes no 'momentum'",
    ),
    (["optimizer.name=torch.optim:ASGD", "optimizer.t0=soon"], "optimizer.t0", "number"),
    (["scheduler=linear"], "scheduler.name", "cosine"),
    (["scheduler.name=cosine", "scheduler.gamma=0.5"], "scheduler.gamma", "cosine schedule takes no 'gamma'"),
    (["scheduler.gamma=0.5"], "scheduler.gamma", "none schedule takes no 'gamma'"),
    (["scheduler.name=step", "scheduler.gamma=1.5"], "scheduler.gamma", "less than or equal to 1"),
    (["scheduler.name=step", "scheduler.warmup_epochs=10"], "scheduler.warmup_epochs", "fewer than trainer"),
]


@pytest.mark.parametrize(("overrides", "field", "fragment"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_values_are_refused_naming_the_field(overrides, field, fragment):
    message = refused(overrides)

    assert names_field(message, field), message
    assert fragment in message


def test_every_problem_is_reported_at_once():
    message = refused(["bogus=1", "data.batch_size=0", "trainer.precision=64"])

    for field in ("bogus", "data.batch_size", "trainer.precision"):
        assert names_field(message, field), message


def test_unknown_keys_in_the_yaml_file_are_named_with_their_section(tmp_path):
    path = write(tmp_path / "c.yaml", "data:\n  name: mnist\n  batchsize: 32\ntrainr:\n  max_epochs: 1\n")

    message = refused([], path)

    assert names_field(message, "data.batchsize"), message
    assert names_field(message, "trainr"), message


def test_a_hyperparameter_the_optimizer_does_not_take_in_the_yaml_file(tmp_path):
    path = write(tmp_path / "c.yaml", "optimizer:\n  name: adadelta\n  betas: [0.9, 0.999]\n")

    assert names_field(refused([], path), "optimizer.betas")


@pytest.mark.parametrize("override", ["nokey", "=1", "optimizer..lr=1", ".lr=1", "optimizer.=1"])
def test_malformed_overrides_are_refused(override):
    message = refused([override])

    assert repr(override) in message
    assert "key.sub=value" in message


def test_an_override_into_a_value_set_by_another_override_is_refused():
    with pytest.raises(ConfigError, match="optimizer"):
        parse_overrides(["optimizer=adam", "optimizer.lr=1"])


def test_an_override_value_that_is_not_yaml_is_refused():
    with pytest.raises(ConfigError, match="optimizer.betas"):
        parse_overrides(["optimizer.betas=[0.9, 0.99"])


def test_a_missing_file_is_refused_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"

    message = refused([], missing)

    assert str(missing) in message
    assert "does not exist" in message


def test_a_folder_is_not_a_config_file(tmp_path):
    assert str(tmp_path) in refused([], tmp_path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_yaml_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    path = write(tmp_path / "c.yaml", text)

    message = refused([], path)

    assert str(path) in message
    assert "mapping" in message


def test_a_file_that_is_not_yaml_is_refused(tmp_path):
    path = write(tmp_path / "c.yaml", "data: [1, 2\n")

    message = refused([], path)

    assert str(path) in message
    assert "YAML" in message


@pytest.mark.parametrize(
    "override", ["trainer.max_epochs=true", "trainer.seed=false", "data.holdout_size=true"]
)
def test_booleans_are_not_integers(override):
    field = override.partition("=")[0]

    assert names_field(refused([override]), field)


def test_a_class_path_optimizer_takes_its_constructors_hyperparameters():
    cfg = load(TRAIN_YAML, ["optimizer.name=torch.optim:ASGD", "optimizer.lambd=0.001", "optimizer.lr=0.05"])

    assert cfg.optimizer.resolved() | {"lambd": 0.001, "lr": 0.05} == cfg.optimizer.resolved()
    assert cfg.optimizer.resolved()["t0"] == 1e6  # ASGD's own default


def test_targets_schedules_and_their_settings_load(tmp_path):
    cfg = load(
        TRAIN_YAML,
        [
            "model.target=mynet:Net",
            "model.kwargs={width: 32, act: gelu}",
            "data.target=pkg.data:Module",
            "data.kwargs.n=10",
            "scheduler.name=cosine",
            "scheduler.warmup_epochs=2",
        ],
    )

    assert (cfg.model.target, cfg.model.kwargs) == ("mynet:Net", {"width": 32, "act": "gelu"})
    assert (cfg.data.target, cfg.data.kwargs, cfg.data.label) == (
        "pkg.data:Module",
        {"n": 10},
        "pkg.data:Module",
    )
    assert (cfg.scheduler.name, cfg.scheduler.settings()) == ("cosine", {"warmup_epochs": 2})
    assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert load(TRAIN_YAML, ["scheduler=onecycle"]).scheduler.name == "onecycle"  # the name alone
