"""One registry optimizer over a pack's stacked parameters, each member with its own hyperparameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from models.optimizers import get_spec
from models.pack.rules import RULES, Rule, Value
from models.pack.slots import take


class PackedOptimizer(torch.optim.Optimizer):
    """The update rule of registry entry ``name`` on parameters [K, ...], member k with ``hparams[k]``.

    ``hparams`` are resolved values (``get_spec(name).resolve(preset, **overrides)``), so presets and checks
    are the registry's; they go through ``torch_kwargs`` as for the single-trial optimizer, and the rule is
    chosen by the entry's torch class (:mod:`models.pack.rules`). Each keyword becomes one ``Value`` in the
    single param group: a Python scalar when all members agree, else a tensor of K values (float64, or bool
    for flags) on the parameters' device. ``betas`` is split into ``beta1`` and ``beta2``.
    """

    def __init__(self, params: Iterable[Tensor], name: str, hparams: Sequence[Mapping[str, Any]]) -> None:
        spec = get_spec(name)
        params = list(params)
        if not params or not hparams:
            raise ValueError("a packed optimizer needs parameters and at least one member")
        if any(len(p) != len(hparams) for p in params):
            raise ValueError(f"every parameter must stack {len(hparams)} members along its first dimension")
        kwargs = [spec.torch_kwargs(h) for h in hparams]
        self.rule: Rule = RULES[spec.torch_class]
        flat = [_split_pairs(k) for k in kwargs]
        self.names = list(flat[0])
        defaults = {key: _stacked([f[key] for f in flat], params[0].device) for key in self.names}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hp = {key: group[key] for key in self.names}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                self.rule(p, p.grad, state, hp, state["step"])
        return loss

    def keep(self, rows: Tensor) -> None:
        """Keep the members in slots ``rows``: their state and hyperparameters (the parameters are the
        stack's to slice)."""
        for group in self.param_groups:
            for key in self.names:
                if isinstance(group[key], Tensor):
                    group[key] = group[key][rows.to(group[key].device)]
        for state in self.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor):
                    state[key] = take(value, rows.to(value.device))


def _split_pairs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``betas`` as ``beta1`` and ``beta2``, so that every value is one number or flag per member."""
    flat = {k: v for k, v in kwargs.items() if k != "betas"}
    if "betas" in kwargs:
        flat["beta1"], flat["beta2"] = kwargs["betas"]
    return flat


def _stacked(values: list[Any], device: torch.device) -> Value:
    """One value for all members when they agree, else a tensor of their K values."""
    if all(v == values[0] for v in values):
        return values[0]
    dtype = torch.bool if isinstance(values[0], bool) else torch.float64
    return torch.tensor(values, dtype=dtype, device=device)
