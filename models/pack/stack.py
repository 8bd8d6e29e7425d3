"""K networks of one architecture as one module, each member its own slice of every parameter.

How: ``torch.func.stack_module_state`` stacks the members' parameters and buffers, and the forward is
``vmap`` over ``functional_call`` of one member network. That is generic (any ``nn.Module``), and ``vmap``
turns each layer into one batched kernel for all K: a Linear into a batched matrix multiply, a Conv2d into
a grouped convolution; the seed CNN's fused CPU block brings its own ``vmap`` rule (:mod:`models.fused`).
Measured on the 2-core development VM (seed CNN, batch 64, forward and backward, K = 4, CPU time on one
thread, best of 9): 17.7 ms for one network alone; per member in a pack, 26.8 ms with vmap over the
textbook layers, 19.0 ms hand-batched (batched multiplies around the packed fused block), 19.7 ms with vmap
over the fused block and 16.9 ms once the parameters have their gradients' layouts
(:meth:`Stack.settle_layouts`). So vmap costs nothing over hand-batching here; on a CPU a pack saves little
arithmetic, it exists for the GPU, where one trial leaves most of the chip idle.

Randomness: pass one int64 dropout key per member; each member's dropout layers draw from its own key
(:mod:`models.dropout`), so its masks do not depend on its pack-mates. ``vmap`` runs with
``randomness="error"``: a network that draws from torch's global generator (``nn.Dropout``) is refused
rather than given masks that depend on the pack; use :class:`models.dropout.Dropout` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from models.dropout import keyed
from models.pack.slots import dense, relaid, take

Tensors = dict[str, Tensor]


class Stack(nn.Module):
    """``networks`` (same architecture) stacked: each parameter and buffer [K, *shape]; ``forward(x)`` maps
    x [K, B, ...] (or [B, ...] with ``shared=True``, one batch for all members) to outputs [K, B, ...]."""

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a stack needs at least one network")
        params, buffers = stack_module_state(list(networks))
        self._names = {name: name.replace(".", "__") for name in (*params, *buffers)}
        for name, value in params.items():
            self.register_parameter(self._names[name], nn.Parameter(value.detach()))
        for name, value in buffers.items():
            self.register_buffer(self._names[name], value)
        self._param_names, self._buffer_names = list(params), list(buffers)
        # one member network on the meta device, in a list so that it is no submodule: functional_call runs
        # its code with the stacked tensors
        self._template = [copy.deepcopy(networks[0]).to("meta")]
        self._layouts: dict[str, tuple[int, ...]] = {}
        self._recorded = False
        self._hooks = [self._stacked(name).register_hook(self._recorder(name)) for name in params]

    @property
    def size(self) -> int:
        """K, the number of members (slots) now stacked."""
        return len(self._stacked(self._param_names[0]))

    def forward(self, x: Tensor, keys: Tensor | None = None, shared: bool = False) -> Tensor:
        params = {name: self._stacked(name) for name in self._param_names}
        buffers = {name: self._stacked(name) for name in self._buffer_names}
        # the template follows this module's mode here, not in train(): Lightning restores modes by attribute
        network = self._template[0].train(self.training)

        def member(params: Tensors, buffers: Tensors, key: Tensor | None, x: Tensor) -> Any:
            with nullcontext() if key is None else keyed(key):
                return functional_call(network, (params, buffers), (x,))

        in_dims = (0, 0, None if keys is None else 0, None if shared else 0)
        try:
            return vmap(member, in_dims=in_dims, randomness="error")(params, buffers, keys, x)
        except RuntimeError as error:
            if "randomness" not in str(error):
                raise
            raise RuntimeError(
                "a packed network drew from torch's global generator (nn.Dropout?), which would make each "
                "member's masks depend on its pack-mates; use models.dropout.Dropout"
            ) from error

    def member_state(self, stacked: Mapping[str, Tensor], slot: int) -> Tensors:
        """The parameters and buffers of the member in ``slot``, by the member network's own names, from a
        state dict of this stack."""
        return {
            name: stacked[attr][slot].clone(memory_format=torch.contiguous_format)
            for name, attr in self._names.items()
        }

    def stacked_state(self, members: Sequence[Mapping[str, Tensor]]) -> Tensors:
        """A state dict of this stack from its members' own state dicts (the inverse of
        :meth:`member_state`)."""
        return {attr: torch.stack([m[name] for m in members]) for name, attr in self._names.items()}

    def keep(self, rows: Tensor) -> None:
        """Keep only the members in slots ``rows`` (in that order); the others' memory is released."""
        for name in self._param_names:
            param = self._stacked(name)
            param.data = take(param.data, rows)
            param.grad = None
        for name in self._buffer_names:
            setattr(self, self._names[name], take(self._stacked(name), rows))

    def settle_layouts(self) -> None:
        """After a backward: store each parameter in the memory layout its gradient arrived in (once).

        Why: ``vmap`` of a Linear computes the weight's gradient as a batched transpose, and autograd copies
        a gradient into its parameter's layout when they differ: a full transposing copy of the largest
        tensor every step (2.8 ms of 19.7 per member at K = 4 on CPU). Once the parameter has the gradient's
        layout, autograd keeps the gradient as it comes, and the optimizer's element-wise passes read both
        in the same order.
        """
        if not self._recorded:
            return
        for name, stride in self._layouts.items():
            param = self._stacked(name)
            param.data = relaid(param.data, stride)
            if param.grad is not None:
                param.grad = relaid(param.grad, stride)
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._layouts, self._recorded = [], {}, False

    def _stacked(self, name: str) -> Tensor:
        return getattr(self, self._names[name])

    def _recorder(self, name: str) -> Any:
        def record(grad: Tensor) -> None:
            self._recorded = True
            if dense(grad) and grad.stride() != self._stacked(name).stride():
                self._layouts[name] = grad.stride()

        return record
