"""The optimizer registry, checked against each algorithm's update equations written out by hand.

Every optimizer gets the same fixed, different-each-step gradients (set on ``.grad`` directly, float64), and
the weights it reaches are compared with the textbook recurrences below. Eight steps, because RAdam only
switches to its rectified update once rho_t > 5, at step 6. The packed optimizer (one update for K stacked
trials) is held to the same equations, each slice with its own hyperparameters.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import torch

from models.optimizers import PRESETS, REGISTRY, HyperParam, get_spec
from models.pack.optim import PackedOptimizer

W0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
GRADS = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
Reference = Callable[[Mapping[str, Any]], torch.Tensor]


def ref_sgd(hp: Mapping[str, Any]) -> torch.Tensor:
    w = W0.clone()
    for g in GRADS:
        w = w - hp["lr"] * (g + hp["weight_decay"] * w)
    return w


def ref_momentum(hp: Mapping[str, Any]) -> torch.Tensor:
    """torch form v = mu*v + g; EMA form v = beta*v + (1-beta)*g; PyTorch starts both with v1 = g1."""
    w, v, mu = W0.clone(), None, hp["momentum"]
    for g in GRADS:
        g = g + hp["weight_decay"] * w
        if v is None:
            v = g
        elif hp["form"] == "ema":
            v = mu * v + (1 - mu) * g
        else:
            v = mu * v + g
        w = w - hp["lr"] * v
    return w


def ref_nesterov(hp: Mapping[str, Any]) -> torch.Tensor:
    """NAG in PyTorch's form: v = mu*v + g; w -= lr * (g + mu*v)."""
    w, v, mu = W0.clone(), None, hp["momentum"]
    for g in GRADS:
        g = g + hp["weight_decay"] * w
        v = g if v is None else mu * v + g
        w = w - hp["lr"] * (g + mu * v)
    return w


def ref_adagrad(hp: Mapping[str, Any]) -> torch.Tensor:
    """G += g^2 (from initial_accumulator_value); w -= lr_t * g / (sqrt(G) + eps)."""
    w, acc = W0.clone(), torch.full_like(W0, hp["initial_accumulator_value"])
    for t, g in enumerate(GRADS, start=1):
        g = g + hp["weight_decay"] * w
        acc = acc + g * g
        lr_t = hp["lr"] / (1 + (t - 1) * hp["lr_decay"])
        w = w - lr_t * g / (acc.sqrt() + hp["eps"])
    return w


def ref_adadelta(hp: Mapping[str, Any]) -> torch.Tensor:
    """E[g^2] and E[dx^2] running averages; dx = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g."""
    w, eg, edx, rho = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0), hp["rho"]
    for g in GRADS:
        g = g + hp["weight_decay"] * w
        eg = rho * eg + (1 - rho) * g * g
        dx = (edx + hp["eps"]).sqrt() / (eg + hp["eps"]).sqrt() * g
        edx = rho * edx + (1 - rho) * dx * dx
        w = w - hp["lr"] * dx
    return w


def ref_rmsprop(hp: Mapping[str, Any]) -> torch.Tensor:
    """E = a*E + (1-a)*g^2 (centered: minus the squared mean gradient); optional momentum on the step."""
    w, sq, mean, buf, a = (
        W0.clone(),
        torch.zeros_like(W0),
        torch.zeros_like(W0),
        torch.zeros_like(W0),
        hp["alpha"],
    )
    for g in GRADS:
        g = g + hp["weight_decay"] * w
        sq = a * sq + (1 - a) * g * g
        var = sq
        if hp["centered"]:
            mean = a * mean + (1 - a) * g
            var = sq - mean * mean
        step = g / (var.sqrt() + hp["eps"])
        if hp["momentum"] > 0:
            buf = hp["momentum"] * buf + step
            step = buf
        w = w - hp["lr"] * step
    return w


def _adam(hp: Mapping[str, Any], decoupled: bool) -> torch.Tensor:
    """m, v bias-corrected: w -= lr * m_hat / (sqrt(v_hat) + eps); AdamW shrinks w by lr*wd first."""
    (b1, b2), lr, wd = hp["betas"], hp["lr"], hp["weight_decay"]
    w, m, v, vmax = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0), torch.zeros_like(W0)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = torch.maximum(vmax, v)
        v_hat = (vmax if hp.get("amsgrad") else v) / (1 - b2**t)
        w = w - lr * (m / (1 - b1**t)) / (v_hat.sqrt() + hp["eps"])
    return w


def ref_adam(hp: Mapping[str, Any]) -> torch.Tensor:
    return _adam(hp, decoupled=False)


def ref_adamw(hp: Mapping[str, Any]) -> torch.Tensor:
    return _adam(hp, decoupled=True)


def ref_nadam(hp: Mapping[str, Any]) -> torch.Tensor:
    """mu_t = b1 * (1 - 0.5 * 0.96**(t*psi)); Nesterov step mixing g and m with the products of mu."""
    (b1, b2), lr, psi = hp["betas"], hp["lr"], hp["momentum_decay"]
    w, m, v, prod = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0), 1.0
    for t, g in enumerate(GRADS, start=1):
        g = g + hp["weight_decay"] * w
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (s * psi)) for s in (t, t + 1))
        prod *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = (v / (1 - b2**t)).sqrt() + hp["eps"]
        w = w - lr * (1 - mu) / (1 - prod) * g / denom - lr * mu_next / (1 - prod * mu_next) * m / denom
    return w


def ref_radam(hp: Mapping[str, Any]) -> torch.Tensor:
    """Plain bias-corrected momentum while rho_t <= 5, then the variance-rectified Adam step."""
    (b1, b2), lr = hp["betas"], hp["lr"]
    w, m, v = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0)
    rho_inf = 2 / (1 - b2) - 1
    rectified = []
    for t, g in enumerate(GRADS, start=1):
        g = g + hp["weight_decay"] * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        rectified.append(rho_t > 5)
        if rho_t > 5:
            adaptive = math.sqrt(1 - b2**t) / (v.sqrt() + hp["eps"])
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            w = w - lr * m_hat * adaptive * r
        else:
            w = w - lr * m_hat
    assert any(rectified) and not all(rectified), "the test must exercise both RAdam branches"
    return w


def ref_adamax(hp: Mapping[str, Any]) -> torch.Tensor:
    """u = max(b2*u, |g| + eps), the infinity norm; w -= lr / (1 - b1^t) * m / u."""
    (b1, b2), lr = hp["betas"], hp["lr"]
    w, m, u = W0.clone(), torch.zeros_like(W0), torch.zeros_like(W0)
    for t, g in enumerate(GRADS, start=1):
        g = g + hp["weight_decay"] * w
        m = b1 * m + (1 - b1) * g
        u = torch.maximum(b2 * u, g.abs() + hp["eps"])
        w = w - lr / (1 - b1**t) * m / u
    return w


# Partial overrides on top of each preset: the preset supplies the rest, so its values are exercised too.
CASES: list[tuple[str, dict[str, Any], Reference]] = [
    ("sgd", {}, ref_sgd),
    ("sgd", {"lr": 0.1, "weight_decay": 0.1}, ref_sgd),
    ("momentum", {}, ref_momentum),
    ("momentum", {"form": "ema", "momentum": 0.8, "weight_decay": 0.1}, ref_momentum),
    ("nesterov", {}, ref_nesterov),
    ("nesterov", {"momentum": 0.8, "weight_decay": 0.1}, ref_nesterov),
    ("adagrad", {}, ref_adagrad),
    (
        "adagrad",
        {"lr_decay": 0.05, "initial_accumulator_value": 0.2, "eps": 1e-3, "weight_decay": 0.1},
        ref_adagrad,
    ),
    ("adadelta", {}, ref_adadelta),
    ("adadelta", {"rho": 0.8, "eps": 1e-3, "weight_decay": 0.1}, ref_adadelta),
    ("rmsprop", {}, ref_rmsprop),
    (
        "rmsprop",
        {"alpha": 0.8, "momentum": 0.5, "centered": True, "eps": 1e-3, "weight_decay": 0.1},
        ref_rmsprop,
    ),
    ("adam", {}, ref_adam),
    ("adam", {"betas": [0.8, 0.95], "eps": 1e-3, "amsgrad": True, "weight_decay": 0.1}, ref_adam),
    ("adamw", {}, ref_adamw),
    ("adamw", {"lr": 0.1, "betas": (0.8, 0.95), "eps": 1e-3, "weight_decay": 0.5}, ref_adamw),
    ("nadam", {}, ref_nadam),
    ("nadam", {"betas": (0.8, 0.95), "momentum_decay": 0.3, "eps": 1e-3, "weight_decay": 0.1}, ref_nadam),
    ("radam", {}, ref_radam),
    ("radam", {"betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.1}, ref_radam),
    ("adamax", {}, ref_adamax),
    ("adamax", {"betas": (0.8, 0.95), "eps": 1e-3, "weight_decay": 0.1}, ref_adamax),
]


@pytest.fixture
def float64_scalars() -> Iterator[None]:
    """torch keeps some optimizer scalars (NAdam's mu product) in the default dtype: make it float64."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def other_member(name: str, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """A pack-mate for a case: half the learning rate, and every flag or choice the other way."""
    spec = get_spec(name)
    resolved = spec.resolve(preset, **overrides)
    changed: dict[str, Any] = {"lr": resolved["lr"] / 2}
    for key, hp in spec.hyperparams.items():
        if hp.kind is bool:
            changed[key] = not resolved[key]
        elif hp.kind is str:
            changed[key] = next(c for c in hp.choices or () if c != resolved[key])
    return {**overrides, **changed}


def built(name: str, params: Any, preset: str = "torch", **overrides: Any) -> torch.optim.Optimizer:
    """A registry optimizer as a run builds one: the preset, overridden."""
    spec = get_spec(name)
    return spec.build(params, spec.resolve(preset, **overrides))


def trained(name: str, preset: str, members: list[dict[str, Any]], packed: bool) -> torch.Tensor:
    """The weights [K, 3] after the eight steps: one torch optimizer per member, or one packed optimizer."""
    if not packed:
        rows = []
        for overrides in members:
            w = W0.clone().requires_grad_()
            optimizer = built(name, [w], preset, **overrides)
            for g in GRADS:
                w.grad = g.clone()
                optimizer.step()
            rows.append(w.detach())
        return torch.stack(rows)
    spec = get_spec(name)
    w = W0.repeat(len(members), 1).requires_grad_()
    optimizer = PackedOptimizer([w], name, [spec.resolve(preset, **overrides) for overrides in members])
    for g in GRADS:
        w.grad = g.repeat(len(members), 1)
        optimizer.step()
    return w.detach()


@pytest.mark.usefixtures("float64_scalars")
@pytest.mark.parametrize("packed", [False, True], ids=["torch", "packed"])
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(
    ("name", "overrides", "reference"),
    [pytest.param(*case, id=f"{case[0]}-{'overrides' if case[1] else 'preset'}") for case in CASES],
)
def test_matches_hand_written_update_equations(
    name: str, overrides: dict[str, Any], reference: Reference, preset: str, packed: bool
) -> None:
    members = [overrides, other_member(name, preset, overrides)] if packed else [overrides]
    weights = trained(name, preset, members, packed)
    for w, member in zip(weights, members, strict=True):
        want = reference(get_spec(name).resolve(preset, **member))
        moved = w - W0
        assert moved.abs().min() > 0
        torch.testing.assert_close(moved, want - W0, rtol=1e-10, atol=1e-15)


def test_every_optimizer_is_covered_by_the_equation_tests() -> None:
    assert {name for name, _, _ in CASES} == set(REGISTRY)


def test_registry_names_and_order() -> None:
    assert list(REGISTRY) == [
        "sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop",
        "adam", "adamw", "nadam", "radam", "adamax",
    ]  # fmt: skip
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.summary and "\n" not in spec.summary
        assert "lr" in spec.hyperparams
        for preset in PRESETS:
            assert list(spec.presets[preset]) == list(spec.hyperparams)


# torch's own default is momentum 0 (plain SGD); the registry's momentum optimizers need a non-zero one.
NOT_TORCH_DEFAULTS = {("momentum", "momentum"), ("nesterov", "momentum"), ("nesterov", "nesterov")}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_torch_preset_is_the_installed_torch_defaults(name: str) -> None:
    spec = get_spec(name)
    signature = inspect.signature(spec.torch_class).parameters
    kwargs = spec.torch_kwargs(spec.resolve("torch"))
    assert set(kwargs) <= set(signature) - {"fused", "foreach", "differentiable", "capturable", "maximize"}
    for key, value in kwargs.items():
        if (name, key) not in NOT_TORCH_DEFAULTS:
            assert value == signature[key].default, f"{name}.{key}"
    if name in ("momentum", "nesterov"):
        assert kwargs["momentum"] == 0.9


def test_torch_preset_values_listed_in_the_design() -> None:
    assert get_spec("sgd").presets["torch"]["lr"] == 1e-3
    assert dict(get_spec("adagrad").presets["torch"]) == {
        "lr": 1e-2, "lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10, "weight_decay": 0.0
    }  # fmt: skip
    assert dict(get_spec("adadelta").presets["torch"]) == {
        "lr": 1.0,
        "rho": 0.9,
        "eps": 1e-6,
        "weight_decay": 0.0,
    }
    assert get_spec("rmsprop").resolve("torch") == {
        "lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0
    }  # fmt: skip
    assert get_spec("adamw").presets["torch"]["weight_decay"] == 1e-2
    assert get_spec("nadam").presets["torch"]["lr"] == 2e-3
    assert get_spec("nadam").presets["torch"]["momentum_decay"] == 4e-3
    assert get_spec("adamax").presets["torch"]["lr"] == 2e-3


KERAS = {
    "sgd": {"lr": 0.01},
    "momentum": {"lr": 0.01, "momentum": 0.9, "form": "torch"},
    "nesterov": {"lr": 0.01, "momentum": 0.9},
    "adagrad": {"lr": 0.001, "initial_accumulator_value": 0.1, "eps": 1e-7, "lr_decay": 0.0},
    "adadelta": {"lr": 0.001, "rho": 0.95, "eps": 1e-7},
    "rmsprop": {"lr": 0.001, "alpha": 0.9, "eps": 1e-7, "momentum": 0.0, "centered": False},
    "adam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "amsgrad": False},
    "adamw": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004},
    "nadam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7, "momentum_decay": 1.0},
    "radam": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7},
    "adamax": {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-7},
}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_keras_preset_is_keras_defaults(name: str) -> None:
    assert get_spec(name).resolve("keras") == {"weight_decay": 0.0, **KERAS[name]}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", list(REGISTRY))
def test_builds_and_trains_a_float32_model_on_cpu(name: str, preset: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = built(name, model.parameters(), preset)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()
    spec = get_spec(name)
    assert bool(optimizer.defaults.get("fused")) == spec.fused
    assert "fused" not in spec.torch_kwargs(spec.resolve(preset))
    for p, old in zip(model.parameters(), before, strict=True):
        assert torch.isfinite(p).all() and not torch.equal(p, old)


def test_fused_falls_back_where_torch_has_no_fused_kernel() -> None:
    w = torch.nn.Parameter(torch.zeros(3, device="meta"))
    assert not built("adam", [w]).defaults.get("fused")


def test_param_groups_from_generators_keep_their_options() -> None:
    w = torch.nn.Parameter(torch.zeros(3))
    optimizer = built("adam", [{"params": (p for p in [w]), "lr": 0.5}])
    assert optimizer.param_groups[0]["params"] == [w]
    assert optimizer.param_groups[0]["lr"] == 0.5 and optimizer.defaults["fused"]


def test_momentum_forms_set_dampening() -> None:
    spec = get_spec("momentum")
    ema = spec.torch_kwargs(spec.resolve(form="ema", momentum=0.8))
    assert ema == {"lr": 1e-3, "momentum": 0.8, "dampening": 0.8, "weight_decay": 0.0, "nesterov": False}
    assert spec.torch_kwargs(spec.resolve())["dampening"] == 0.0
    w = torch.nn.Parameter(torch.zeros(3))
    assert spec.build([w], spec.resolve(form="ema")).param_groups[0]["dampening"] == 0.9
    nesterov = get_spec("nesterov")
    assert nesterov.torch_kwargs(nesterov.resolve()) == {
        "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "dampening": 0.0, "nesterov": True
    }  # fmt: skip


def test_resolve_normalises_values() -> None:
    resolved = get_spec("adam").resolve("keras", lr=1, betas=[0.5, 0.6])
    assert resolved["betas"] == (0.5, 0.6) and isinstance(resolved["lr"], float)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        (
            "adam",
            {"rho": 0.9},
            "adam takes no hyperparameter 'rho'; it takes: lr, betas, eps, weight_decay, amsgrad",
        ),
        ("sgd", {"lr": 0.0}, "lr must be a number > 0, got 0.0"),
        ("sgd", {"lr": -0.1}, "lr must be a number > 0"),
        ("sgd", {"lr": math.inf}, "lr must be a number > 0"),
        ("sgd", {"lr": "1e-3"}, "lr must be a number > 0, got '1e-3'"),
        ("adam", {"betas": [0.9]}, "betas must be a pair of numbers, each in [0, 1)"),
        ("adam", {"betas": (0.9, 0.999, 0.5)}, "betas must be a pair"),
        ("adam", {"betas": (0.9, 1.0)}, "betas must be a pair of numbers, each in [0, 1)"),
        ("momentum", {"form": "foo"}, "form must be one of 'torch', 'ema', got 'foo'"),
        ("momentum", {"momentum": 0.0}, "momentum must be a number in (0, 1)"),
        ("nesterov", {"momentum": 1.0}, "momentum must be a number in (0, 1)"),
        ("rmsprop", {"momentum": 1.0}, "momentum must be a number in [0, 1)"),
        ("rmsprop", {"centered": "yes"}, "centered must be a bool"),
        ("adam", {"amsgrad": 1}, "amsgrad must be a bool"),
        ("adadelta", {"rho": 1.0}, "rho must be a number in [0, 1)"),
        ("adam", {"eps": 0.0}, "eps must be a number > 0"),
        ("adamw", {"weight_decay": -0.01}, "weight_decay must be a number >= 0"),
        ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value must be a number >= 0"),
        ("adagrad", {"lr_decay": -1.0}, "lr_decay must be a number >= 0"),
        ("nadam", {"momentum_decay": -1.0}, "momentum_decay must be a number >= 0"),
    ],
)
def test_resolve_refuses_bad_values(name: str, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        get_spec(name).resolve(**overrides)


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown optimizer 'sgdm'; choose one of: sgd, momentum, .*, adamax$"
    ):
        get_spec("sgdm")
    with pytest.raises(ValueError, match="unknown preset 'tf' for adam; choose one of: torch, keras"):
        get_spec("adam").resolve("tf")
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_spec("Adam")


def test_torch_kwargs_wants_every_hyperparameter() -> None:
    with pytest.raises(ValueError, match="adam needs values for: betas, eps, weight_decay, amsgrad"):
        get_spec("adam").torch_kwargs({"lr": 0.1})


def test_hyperparam_check_bool_and_int() -> None:
    flag = HyperParam("flag", bool)
    assert flag.check(False) is False
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="flag must be a bool"):
            flag.check(bad)
    count = HyperParam("count", int, low=1)
    assert count.check(3) == 3
    with pytest.raises(ValueError, match=r"count must be an integer >= 1, got 2\.5"):
        count.check(2.5)
