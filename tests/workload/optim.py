"""The user's optimizer: signSGD with momentum, w -= lr * sign(m), m = momentum * m + g."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


class SignSGD(torch.optim.Optimizer):
    """Steps of size ``lr`` in the direction of the sign of a momentum average of the gradients."""

    def __init__(self, params: Iterable, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0):
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"lr must be > 0 and momentum in [0, 1), got {lr}, {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"])
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(grad)
                p.add_(buffer.sign(), alpha=-group["lr"])
        return loss
