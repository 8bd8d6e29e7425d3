"""Constructors read as hyperparameters: an optimizer class outside the registry checked like an entry, and
a user's kwargs typed by their defaults."""

from __future__ import annotations

import pytest
import torch
from torch.optim.optimizer import required

from models.introspect import class_spec, read_arguments


def test_torch_sgd_read_as_a_registry_entry():
    spec = class_spec("torch.optim:SGD", torch.optim.SGD)

    assert spec.name == "torch.optim:SGD" and spec.torch_class is torch.optim.SGD
    assert {k: hp.kind for k, hp in spec.hyperparams.items()} == {
        "lr": float,
        "momentum": float,  # annotated float, default 0
        "dampening": float,
        "weight_decay": float,
        "nesterov": bool,
        "maximize": bool,
        "differentiable": bool,
    }  # foreach and fused default to None: switches, not hyperparameters
    assert spec.presets["torch"] == spec.presets["keras"] == spec.resolve()
    assert spec.resolve(lr=0.5, nesterov=True, momentum=0.9)["lr"] == 0.5
    with pytest.raises(ValueError, match="nesterov must be a bool"):
        spec.resolve(nesterov="yes")
    optimizer = spec.build([torch.nn.Parameter(torch.zeros(2))], spec.resolve(lr=0.25))
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.25


def test_a_pair_and_a_string_are_hyperparameters_too():
    class Custom(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.99), mode="fast", steps=3):
            super().__init__(params, {"lr": lr})

    spec = class_spec("m:Custom", Custom)

    assert {k: hp.kind for k, hp in spec.hyperparams.items()} == {
        "lr": float,
        "betas": tuple,
        "mode": str,
        "steps": int,
    }
    assert spec.resolve(betas=[0.8, 0.9], mode="slow")["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="steps must be an integer"):
        spec.resolve(steps=2.5)
    with pytest.raises(ValueError, match="mode must be a string"):
        spec.resolve(mode=3)


@pytest.mark.parametrize("lr", [inspect_empty := object(), required])
def test_an_optimizer_argument_without_a_default_is_named(lr):
    if lr is inspect_empty:

        class Custom(torch.optim.Optimizer):
            def __init__(self, params, lr: float, momentum: float = 0.0):
                super().__init__(params, {"lr": lr})

    else:

        class Custom(torch.optim.Optimizer):
            def __init__(self, params, lr=required, momentum: float = 0.0):
                super().__init__(params, {"lr": lr})

    with pytest.raises(ValueError, match="argument 'lr' has no default"):
        class_spec("m:Custom", Custom)


def test_a_networks_arguments_names_kinds_and_the_required_ones():
    def factory(num_classes: int, width: float = 1.0, depth=2, act="relu", init=None, **extra):
        raise AssertionError("only read, never called")

    arguments = read_arguments(factory)

    assert arguments.names == {"num_classes", "width", "depth", "act", "init"} and arguments.open
    assert arguments.required == ("num_classes",)
    assert {k: hp.kind for k, hp in arguments.hyperparams.items()} == {
        "num_classes": int,
        "width": float,
        "depth": int,
        "act": str,
    }
    assert arguments.defaults == {"width": 1.0, "depth": 2, "act": "relu", "init": None}
