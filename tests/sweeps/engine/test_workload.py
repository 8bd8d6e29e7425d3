"""What a run trains, built from a config: the seed CNN, a user's network wrapped by the service, a user's
LightningModule with the config's optimizer injected, a user's data module offered the batch size."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from models.cnn import SeedCNN
from models.module import OptimizerModule
from sweeps.config.files import ConfigError, validate
from sweeps.config.imports import ALLOW_ENV
from sweeps.config.sweep import SweepConfig
from sweeps.config.train import TrainConfig
from sweeps.engine.preflight import check_sweep
from sweeps.engine.workload import build_datamodule, build_module
from tests.workload.blobs import Blobs
from tests.workload.net import MLP, AutoEncoder

USERS = {"data": {"target": "tests.workload.blobs:Blobs", "batch_size": 16, "kwargs": {"n": 64}}}


def config(**sections: object) -> TrainConfig:
    return validate(TrainConfig, {**USERS, **sections})


def test_the_users_data_module_is_offered_the_batch_size():
    datamodule = build_datamodule(config())

    assert isinstance(datamodule, Blobs) and (datamodule.batch_size, datamodule.n) == (16, 64)


@pytest.mark.parametrize(
    ("target", "factory", "kwargs", "width"),
    [("tests.workload.net:MLP", False, {"hidden": 8}, 8), ("tests.workload.net:mlp", True, {"width": 4}, 4)],
)
def test_a_network_or_a_factory_is_wrapped_and_offered_the_number_of_classes(target, factory, kwargs, width):
    model = {"target": target, "factory": factory, "kwargs": kwargs}
    cfg = config(model=model, optimizer={"name": "torch.optim:ASGD"})

    workload = build_module(cfg, build_datamodule(cfg))

    assert workload.own and isinstance(workload.module, OptimizerModule)
    assert isinstance(workload.model(), MLP) and workload.model().layers[1].out_features == width
    assert workload.model().layers[-1].out_features == 3  # Blobs' classes
    assert isinstance(workload.module.configure_optimizers, partial)  # the plan, in place of the module's
    assert workload.plan.spec.torch_class is torch.optim.ASGD


def test_the_seed_cnn_is_the_default_and_trains_with_the_configs_schedule():
    cfg = validate(TrainConfig, {"scheduler": "cosine", "data": {"download": False}})

    workload = build_module(cfg, None)

    assert workload.own and isinstance(workload.model(), SeedCNN) and workload.plan.schedule.name == "cosine"


def test_a_lightning_module_keeps_its_class_and_gets_the_configs_optimizer_in_place_of_its_own():
    cfg = config(model={"target": "tests.workload.net:AutoEncoder", "kwargs": {"bottleneck": 3}})

    workload = build_module(cfg, build_datamodule(cfg))

    assert not workload.own and type(workload.module) is AutoEncoder
    assert workload.module.encode.out_features == 3
    assert "configure_optimizers" in vars(workload.module)
    model = workload.model()
    assert model is workload.module and "configure_optimizers" not in vars(model)  # logged as written


def test_a_constructor_that_raises_is_a_config_error_about_its_kwargs():
    cfg = validate(TrainConfig, {"model": {"target": "models.resnet:ResNet", "kwargs": {"width": 0}}})

    with pytest.raises(ConfigError, match=r"model.kwargs: models.resnet:ResNet raised ValueError: width"):
        build_module(cfg, None)


def test_an_argument_without_a_default_must_be_given():
    cfg = config(model={"target": "tests.workload.net:MLP"})

    with pytest.raises(ConfigError, match="model.kwargs: tests.workload.net:MLP needs 'num_classes'"):
        build_module(cfg, object())  # a data module that does not say how many classes it has


def test_a_metric_the_services_module_does_not_log_is_refused_before_anything_is_created(tmp_path):
    sweep = validate(
        SweepConfig,
        {
            **USERS,
            "model": {"target": "tests.workload.net:MLP"},
            "study": {"name": "m", "n_trials": 1, "metric": "val_f1", "direction": "maximize"},
            "search": {"optimizer": "adam"},
        },
    )

    with pytest.raises(ConfigError, match="study.metric: the service's classifier module logs no 'val_f1'"):
        check_sweep(sweep)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("model", "refusal"),
    [
        (
            {"target": "os:system"},
            "model.target: os:system is not an nn.Module or a LightningModule class: it is a"
            " builtin_function_or_method",
        ),
        (
            {"target": "os:system", "factory": True},
            "model.target: os:system is declared a factory (model.factory: true) but is not a Python",
        ),
        (
            {"target": "tests.workload.net:mlp"},
            "it is a function; a function returning one needs model.factory: true",
        ),
    ],
)
def test_only_a_target_of_its_fields_kind_is_called(model, refusal, tmp_path):
    marker = tmp_path / "called"
    cfg = config(model={**model, "kwargs": {"command": f"touch {marker}"} if "os" in model["target"] else {}})

    with pytest.raises(ConfigError) as refused:
        build_module(cfg, build_datamodule(cfg))

    assert refusal in str(refused.value)
    assert not marker.exists()


def test_only_allowed_packages_are_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "untrusted.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(ALLOW_ENV, "tests, torch")
    cfg = config(model={"target": "untrusted:Net"})

    with pytest.raises(ConfigError) as refused:
        build_module(cfg, build_datamodule(cfg))

    assert str(refused.value) == (
        "model.target: 'untrusted:Net' is from package 'untrusted', which this process may not import from"
        " (allowed: tests, torch; --allow-imports / $SWEEPS_ALLOW_IMPORTS)"
    )
    assert not marker.exists()
    build_module(config(model={"target": "tests.workload.net:MLP"}), build_datamodule(cfg))  # allowed


@pytest.mark.parametrize(
    ("section", "refusal"),
    [
        ("model", "model.target: platform:python_version returned a str, not an nn.Module or a Lightning"),
        ("data", "data.target: platform:python_version returned a str, not a LightningDataModule"),
    ],
)
def test_a_factory_that_returns_another_kind_is_refused_naming_what_it_returned(section, refusal):
    cfg = config(**{section: {"target": "platform:python_version", "factory": True}})

    with pytest.raises(ConfigError) as refused:
        build_module(cfg, build_datamodule(cfg))

    assert str(refused.value).startswith(refusal)
