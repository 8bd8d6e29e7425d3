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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The saved state; the hyperparameters stay the members' own (a pack resumed from its members'
        checkpoints is given them by its configs)."""
        kept = [{k: v for k, v in group.items() if k != "params"} for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, values in zip(self.param_groups, kept, strict=True):
            group.update(values)

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


def alone_state(packed: Mapping[str, Any], slot: int, alone: torch.optim.Optimizer) -> dict[str, Any]:
    """The state of the member in ``slot`` of a packed optimizer's ``state_dict`` as the torch optimizer
    ``alone`` (the member's own, as a single run builds it) holds it: its rows of every tensor, contiguous
    as its parameters are (a stacked state may be laid out transposed, and torch's fused kernels take the
    parameter's layout for the state's), the step count and scalars as tensors, ``alone``'s
    hyperparameters."""

    def value(v: Any) -> Any:
        if isinstance(v, Tensor) and v.dim():
            return v[slot].clone(memory_format=torch.contiguous_format)
        return torch.tensor(float(v))

    state = {i: {key: value(v) for key, v in s.items()} for i, s in packed["state"].items()}
    return {"state": state, "param_groups": alone.state_dict()["param_groups"]}


def joined_state(alone: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A packed optimizer's ``state_dict`` from its members' torch optimizers' (the inverse of
    :func:`alone_state`; its hyperparameters are the pack's own, see :meth:`PackedOptimizer.load_state_dict`).
    A state a member lacks (torch's SGD keeps no buffer without momentum) starts at zero."""
    state: dict[int, dict[str, Any]] = {}
    for i in alone[0]["state"]:
        keys = {key for member in alone for key in member["state"][i]}
        state[i] = {}
        for key in keys:
            values = [member["state"][i].get(key) for member in alone]
            like = next(v for v in values if v is not None)
            values = [torch.zeros_like(like) if v is None else v for v in values]
            if key == "step":
                state[i][key] = int(like)
            elif like.dim() == 0:
                state[i][key] = _stacked([float(v) for v in values], torch.device("cpu"))
            else:
                state[i][key] = torch.stack(values)
    groups = [{"params": list(group["params"])} for group in alone[0]["param_groups"]]
    return {"state": state, "param_groups": groups}
