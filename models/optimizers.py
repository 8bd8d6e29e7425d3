"""The optimizer registry: every optimizer a sweep may compare, by name, with checked hyperparameters.

Why a table instead of ``getattr(torch.optim, name)``: the sweep compares *algorithms* as the articles name
them (plain SGD, momentum, Nesterov, AdaGrad, ...), several of which are one torch class with different
settings; each needs to say which hyperparameters it takes (so a search space or a YAML file can be checked
before any training starts) and what "default" means. Two sets of defaults are kept:

- ``torch``: PyTorch 2.x's own defaults (momentum/nesterov use momentum 0.9, since torch's default is 0).
- ``keras``: Keras' default values, run by PyTorch's implementation. This is what reproduces the classic
  Keras comparison table; it is *not* bit-for-bit Keras, because the frameworks place epsilon slightly
  differently (e.g. Keras' Adagrad/RMSprop divide by ``sqrt(v + eps)``, torch by ``sqrt(v) + eps``).

``momentum`` comes in two forms (hyperparameter ``form``): ``"torch"``, v = mu*v + g, and ``"ema"``, the
exponential moving average the articles teach, v = beta*v + (1-beta)*g, which is torch SGD with
``dampening = momentum``. PyTorch seeds the momentum buffer with the first gradient undampened (v1 = g1), so
the EMA formula holds from step 2 on. Either way w -= lr * v.

``weight_decay`` always has torch's meaning: an L2 term added to the gradient, except for ``adamw`` where it
is decoupled. :meth:`OptimizerSpec.torch_kwargs` gives the exact keyword arguments handed to the torch class;
those are what get logged as run params. Whether the fused kernel is used is an implementation detail and is
not among them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from models.registry import lookup

PRESETS = ("torch", "keras")

# Devices on which this registry asks for torch's fused kernels; elsewhere the default implementation runs.
_FUSED_DEVICES = frozenset({"cpu", "cuda"})


@dataclass(frozen=True)
class HyperParam:
    """One hyperparameter: its type and valid range, so bad values fail before training, naming the field.

    ``kind`` is ``float``, ``int``, ``bool``, ``str`` (one of ``choices``; any string without them) or
    ``tuple`` (a pair of floats, each within the bounds; YAML gives lists, so lists are accepted and
    normalised to tuples).
    """

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] | None = None
    doc: str = ""

    def _bounds(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            left = "[" if self.low_inclusive else "("
            right = "]" if self.high_inclusive else ")"
            return f"in {left}{low:g}, {high:g}{right}"
        if low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {low:g}"
        if high is not None:
            return f"{'<=' if self.high_inclusive else '<'} {high:g}"
        return "(finite)"

    def _in_bounds(self, x: float) -> bool:
        above = self.low is None or x > self.low or (self.low_inclusive and x == self.low)
        below = self.high is None or x < self.high or (self.high_inclusive and x == self.high)
        return math.isfinite(x) and above and below

    def check(self, value: Any) -> Any:
        """``value`` normalised to ``kind``, or a ``ValueError`` naming this field and its valid range."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be a bool (true or false), got {value!r}")
            return value
        if self.kind is str:
            if self.choices is None and not isinstance(value, str):
                raise ValueError(f"{self.name} must be a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                options = ", ".join(repr(c) for c in self.choices)
                raise ValueError(f"{self.name} must be one of {options}, got {value!r}")
            return value
        if self.kind is tuple:
            pair = isinstance(value, list | tuple) and len(value) == 2 and all(map(is_real, value))
            if not (pair and all(self._in_bounds(float(v)) for v in value)):
                raise ValueError(
                    f"{self.name} must be a pair of numbers, each {self._bounds()}, got {value!r}"
                )
            return tuple(float(v) for v in value)
        integral = self.kind is int
        typed = is_real(value) and (not integral or isinstance(value, numbers.Integral))
        if not (typed and self._in_bounds(float(value))):
            kind = "an integer" if integral else "a number"
            raise ValueError(f"{self.name} must be {kind} {self._bounds()}, got {value!r}")
        return self.kind(value)


def is_real(value: Any) -> bool:
    """Real numbers, numpy's included; bools are refused although Python counts them as ints."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class OptimizerSpec:
    """One registry entry: a torch optimizer class, the hyperparameters it takes and its presets.

    ``fixed`` holds torch keyword arguments that define the algorithm rather than tune it (``nesterov=True``);
    ``fused`` says whether the torch class has a fused kernel worth asking for.
    """

    name: str
    summary: str
    torch_class: type[torch.optim.Optimizer]
    hyperparams: Mapping[str, HyperParam]
    presets: Mapping[str, Mapping[str, Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    fused: bool = False

    def __post_init__(self) -> None:
        # Freeze the tables and prove every preset is complete and valid, so a typo fails at import.
        object.__setattr__(self, "hyperparams", MappingProxyType(dict(self.hyperparams)))
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))
        if set(self.presets) != set(PRESETS):
            raise ValueError(f"{self.name}: presets must be exactly {PRESETS}")
        frozen = {p: MappingProxyType(self._checked(values)) for p, values in self.presets.items()}
        object.__setattr__(self, "presets", MappingProxyType(frozen))

    def _checked(self, values: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [k for k in values if k not in self.hyperparams]
        if unknown:
            raise ValueError(
                f"{self.name} takes no hyperparameter {unknown[0]!r}; it takes: {', '.join(self.hyperparams)}"
            )
        missing = [k for k in self.hyperparams if k not in values]
        if missing:
            raise ValueError(f"{self.name} needs values for: {', '.join(missing)} (use resolve())")
        return {k: hp.check(values[k]) for k, hp in self.hyperparams.items()}

    def resolve(self, preset: str = "torch", **overrides: Any) -> dict[str, Any]:
        """Values of every hyperparameter: the preset's, updated with ``overrides``, each checked."""
        if preset not in self.presets:
            raise ValueError(
                f"unknown preset {preset!r} for {self.name}; choose one of: {', '.join(PRESETS)}"
            )
        return self._checked({**self.presets[preset], **overrides})

    def torch_kwargs(self, resolved: Mapping[str, Any]) -> dict[str, Any]:
        """The exact keyword arguments given to the torch class (and logged as params), ``fused`` excluded.

        ``form`` is no torch argument: the EMA form of momentum is torch SGD with ``dampening = momentum``.
        """
        kwargs = self._checked(resolved)
        if "form" in kwargs:
            kwargs["dampening"] = kwargs["momentum"] if kwargs.pop("form") == "ema" else 0.0
        return {**kwargs, **self.fixed}

    def build(
        self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], resolved: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        """The torch optimizer, using the fused kernel when every parameter is a float tensor on CPU/CUDA."""
        kwargs = self.torch_kwargs(resolved)
        params = _listed(params)
        if self.fused and _fusable(params):
            kwargs["fused"] = True
        return self.torch_class(params, **kwargs)


def _listed(params: Iterable[Any]) -> list[Any]:
    """``params`` and each group's ``"params"`` as lists, to be inspected and still handed to torch."""
    return [
        {**g, "params": [g["params"]] if torch.is_tensor(g["params"]) else list(g["params"])}
        if isinstance(g, dict)
        else g
        for g in params
    ]


def _fusable(params: list[Any]) -> bool:
    """Whether torch's fused kernels can take every parameter (float tensors on CPU/CUDA); else fall back."""
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    return all(
        isinstance(p, torch.Tensor) and p.is_floating_point() and p.device.type in _FUSED_DEVICES
        for p in tensors
    )


def _by_name(*hps: HyperParam) -> dict[str, HyperParam]:
    return {hp.name: hp for hp in hps}


def _unit(name: str, doc: str, *, zero_ok: bool = True) -> HyperParam:
    """A decay rate or momentum factor: in [0, 1), or (0, 1) where 0 would make it another optimizer."""
    return HyperParam(name, float, low=0.0, high=1.0, low_inclusive=zero_ok, high_inclusive=False, doc=doc)


_LR = HyperParam("lr", float, low=0.0, low_inclusive=False, doc="learning rate")
_WD = HyperParam("weight_decay", float, low=0.0, doc="L2 penalty added to the gradient (decoupled in adamw)")
_EPS = HyperParam("eps", float, low=0.0, low_inclusive=False, doc="added to the denominator for stability")
_BETAS = HyperParam(
    "betas", tuple, low=0.0, high=1.0, high_inclusive=False, doc="decay rates of the 1st and 2nd moments"
)
_SGD_MOMENTUM = _unit("momentum", "momentum factor (0 would be plain sgd)", zero_ok=False)
_FORM = HyperParam(
    "form", str, choices=("torch", "ema"), doc="'torch': v = mu*v + g; 'ema': v = beta*v + (1-beta)*g"
)
_ADAM = (_LR, _BETAS, _EPS, _WD)
_B = (0.9, 0.999)

# keras presets: Keras 3 __init__ defaults, keras-team/keras keras/src/optimizers/<name>.py (weight_decay None
# -> 0); radam: TF-Addons' RectifiedAdam, tensorflow_addons/optimizers/rectified_adam.py (Keras has no RAdam).
_SPECS = (
    OptimizerSpec(
        "sgd",
        "plain (mini-batch) stochastic gradient descent: w -= lr * g",
        torch.optim.SGD,
        _by_name(_LR, _WD),
        {"torch": {"lr": 1e-3, "weight_decay": 0.0}, "keras": {"lr": 1e-2, "weight_decay": 0.0}},
        fused=True,
    ),
    OptimizerSpec(
        "momentum",
        "SGD with heavy-ball momentum: v = mu*v + g (or its EMA form); w -= lr * v",
        torch.optim.SGD,
        _by_name(_LR, _SGD_MOMENTUM, _FORM, _WD),
        {
            "torch": {"lr": 1e-3, "momentum": 0.9, "form": "torch", "weight_decay": 0.0},
            "keras": {"lr": 1e-2, "momentum": 0.9, "form": "torch", "weight_decay": 0.0},
        },
        fixed={"nesterov": False},
        fused=True,
    ),
    OptimizerSpec(
        "nesterov",
        "SGD with Nesterov momentum (NAG): v = mu*v + g; w -= lr * (g + mu*v)",
        torch.optim.SGD,
        _by_name(_LR, _SGD_MOMENTUM, _WD),
        {
            "torch": {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0},
            "keras": {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0},
        },
        fixed={"dampening": 0.0, "nesterov": True},
        fused=True,
    ),
    OptimizerSpec(
        "adagrad",
        "AdaGrad: per-weight step lr / sqrt(sum of all squared gradients)",
        torch.optim.Adagrad,
        _by_name(
            _LR,
            HyperParam("lr_decay", float, low=0.0, doc="step t uses lr / (1 + (t-1) * lr_decay)"),
            HyperParam("initial_accumulator_value", float, low=0.0, doc="start of the sum of squares"),
            _EPS,
            _WD,
        ),
        {
            "torch": {
                "lr": 1e-2,
                "lr_decay": 0.0,
                "initial_accumulator_value": 0.0,
                "eps": 1e-10,
                "weight_decay": 0.0,
            },
            "keras": {
                "lr": 1e-3,
                "lr_decay": 0.0,
                "initial_accumulator_value": 0.1,
                "eps": 1e-7,
                "weight_decay": 0.0,
            },
        },
        fused=True,
    ),
    OptimizerSpec(
        "adadelta",
        "AdaDelta: step = RMS(past steps) / RMS(gradients) * g, times lr",
        torch.optim.Adadelta,
        _by_name(_LR, _unit("rho", "decay rate of both running averages"), _EPS, _WD),
        {
            "torch": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0},
            "keras": {"lr": 1e-3, "rho": 0.95, "eps": 1e-7, "weight_decay": 0.0},
        },
    ),
    OptimizerSpec(
        "rmsprop",
        "RMSprop: g divided by the root of a moving average of squared gradients",
        torch.optim.RMSprop,
        _by_name(
            _LR,
            _unit("alpha", "decay rate of the squared-gradient average (Keras: rho)"),
            _EPS,
            _unit("momentum", "momentum factor"),
            HyperParam("centered", bool, doc="divide by the estimated variance, not the second moment"),
            _WD,
        ),
        {
            "torch": {
                "lr": 1e-2,
                "alpha": 0.99,
                "eps": 1e-8,
                "momentum": 0.0,
                "centered": False,
                "weight_decay": 0.0,
            },
            "keras": {
                "lr": 1e-3,
                "alpha": 0.9,
                "eps": 1e-7,
                "momentum": 0.0,
                "centered": False,
                "weight_decay": 0.0,
            },
        },
    ),
    OptimizerSpec(
        "adam",
        "Adam: bias-corrected moving averages of g and g^2",
        torch.optim.Adam,
        _by_name(*_ADAM, HyperParam("amsgrad", bool, doc="use the running maximum of the 2nd moment")),
        {
            "torch": {"lr": 1e-3, "betas": _B, "eps": 1e-8, "amsgrad": False, "weight_decay": 0.0},
            "keras": {"lr": 1e-3, "betas": _B, "eps": 1e-7, "amsgrad": False, "weight_decay": 0.0},
        },
        fused=True,
    ),
    OptimizerSpec(
        "adamw",
        "AdamW: Adam with decoupled weight decay w -= lr * weight_decay * w",
        torch.optim.AdamW,
        _by_name(*_ADAM),
        {
            "torch": {"lr": 1e-3, "betas": _B, "eps": 1e-8, "weight_decay": 1e-2},
            "keras": {"lr": 1e-3, "betas": _B, "eps": 1e-7, "weight_decay": 4e-3},
        },
        fused=True,
    ),
    # Keras' Nadam has no momentum_decay argument: its schedule beta1 * (1 - 0.5 * 0.96**t) is torch's
    # with momentum_decay = 1 (torch's 4e-3 is Dozat's 0.96**(t/250)).
    OptimizerSpec(
        "nadam",
        "NAdam: Adam with Nesterov momentum and a warming-up momentum schedule",
        torch.optim.NAdam,
        _by_name(
            *_ADAM,
            HyperParam("momentum_decay", float, low=0.0, doc="psi in beta1 * (1 - 0.5 * 0.96**(t*psi))"),
        ),
        {
            "torch": {"lr": 2e-3, "betas": _B, "eps": 1e-8, "momentum_decay": 4e-3, "weight_decay": 0.0},
            "keras": {"lr": 1e-3, "betas": _B, "eps": 1e-7, "momentum_decay": 1.0, "weight_decay": 0.0},
        },
    ),
    OptimizerSpec(
        "radam",
        "RAdam: Adam with its adaptive step rectified while the variance estimate is unreliable",
        torch.optim.RAdam,
        _by_name(*_ADAM),
        {
            "torch": {"lr": 1e-3, "betas": _B, "eps": 1e-8, "weight_decay": 0.0},
            "keras": {"lr": 1e-3, "betas": _B, "eps": 1e-7, "weight_decay": 0.0},
        },
    ),
    OptimizerSpec(
        "adamax",
        "Adamax: Adam with the infinity norm u = max(beta2 * u, |g|)",
        torch.optim.Adamax,
        _by_name(*_ADAM),
        {
            "torch": {"lr": 2e-3, "betas": _B, "eps": 1e-8, "weight_decay": 0.0},
            "keras": {"lr": 1e-3, "betas": _B, "eps": 1e-7, "weight_decay": 0.0},
        },
    ),
)

REGISTRY: Mapping[str, OptimizerSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def get_spec(name: str) -> OptimizerSpec:
    """The registry entry for ``name``; a ``ValueError`` listing the valid names otherwise."""
    return lookup(REGISTRY, name, "optimizer")
