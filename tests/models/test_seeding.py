"""A trial's randomness from its seed alone: derived keys, seeded initialisation, keyed dropout masks."""

from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from models import dropout, seeding
from models.cnn import SeedCNN
from models.module import OptimizerModule


def splitmix64(state: int, n: int) -> int:
    """The n-th output of SplitMix64 from ``state``, written with Python's unbounded integers."""
    z = (state + n * 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return z ^ (z >> 31)


@pytest.mark.parametrize(("state", "n"), [(0, 1), (12345, 7), (2**63 + 5, 3), (-1, 2**40)])
def test_fold_is_splitmix64_in_wrapping_int64_arithmetic(state: int, n: int) -> None:
    key = torch.tensor(seeding.int64(state))
    assert seeding.fold(key, n).item() % 2**64 == splitmix64(state % 2**64, n)
    assert seeding.fold(state % 2**64, n) == splitmix64(state % 2**64, n)  # a Python int key, no tensor
    assert seeding.fold(key.expand(3), torch.tensor([n, n, n])).tolist() == [seeding.fold(key, n).item()] * 3


def test_derived_keys_differ_by_seed_and_purpose() -> None:
    purposes = (seeding.INIT, seeding.DROPOUT)
    keys = {seeding.derive(seed, purpose) for seed in range(20) for purpose in purposes}
    assert len(keys) == 40 and all(0 <= k < 2**63 for k in keys)
    assert seeding.derive(7, seeding.INIT) == seeding.derive(7, seeding.INIT)


def test_seeded_initialisation_ignores_and_keeps_the_global_generator() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with seeding.seeded(5):
        a = SeedCNN().fc2.weight
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)
    with seeding.seeded(5):
        b = SeedCNN().fc2.weight
    with seeding.seeded(6):
        c = SeedCNN().fc2.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_module_initialises_from_its_seed_not_the_global_generator() -> None:
    torch.manual_seed(1)
    a = OptimizerModule("sgd", seed=3).model.conv.weight
    torch.manual_seed(2)
    b = OptimizerModule("sgd", seed=3).model.conv.weight
    assert torch.equal(a, b)
    assert not torch.equal(a, OptimizerModule("sgd", seed=4).model.conv.weight)


def keep_mask(key: seeding.Key, rows: torch.Tensor, length: int, p: float) -> torch.Tensor:
    """The boolean keep-mask under dropout's scaled multiplier."""
    return dropout.keep_scaled(key, rows, length, p) > 0


@pytest.mark.parametrize("p", [0.25, 0.5, 0.3])
def test_keep_mask_has_the_bernoulli_rate_and_depends_on_the_key_alone(p: float) -> None:
    rows = torch.arange(400)
    mask = keep_mask(torch.tensor(11), rows, 1000, p)
    assert mask.dtype == torch.bool and mask.shape == (400, 1000)
    assert abs(mask.float().mean().item() - (1 - p)) < 0.003
    torch.manual_seed(0)
    assert torch.equal(keep_mask(torch.tensor(11), rows, 1000, p), mask)
    other = keep_mask(torch.tensor(12), rows, 1000, p)
    assert abs((other == mask).float().mean().item() - (p * p + (1 - p) ** 2)) < 0.003  # independent


def test_a_key_draws_the_same_mask_as_an_int_or_as_a_tensor() -> None:
    key = next(k for k in (seeding.fold(7, n) for n in range(20)) if k >= 2**63)  # negative as int64
    as_tensor = torch.tensor(seeding.int64(key))
    for p in (0.25, 0.3):
        assert torch.equal(
            keep_mask(key, torch.arange(5), 77, p),
            keep_mask(as_tensor, torch.arange(5), 77, p),
        )


def test_a_row_is_the_same_whatever_order_the_rows_are_stored_in() -> None:
    key = torch.tensor(3)
    rows = torch.arange(12).view(3, 4)
    mask = keep_mask(key, rows, 169, 0.25)
    transposed = keep_mask(key, rows.t(), 169, 0.25)
    assert torch.equal(transposed, mask.transpose(0, 1))


def test_layers_and_steps_draw_different_keys_and_vmap_gives_each_member_its_own() -> None:
    def masks(key: torch.Tensor) -> torch.Tensor:
        with dropout.keyed(key):
            return torch.stack([dropout.dropout(torch.ones(8, 64), 0.5) for _ in range(2)])

    keys = torch.tensor([1, 2, 3])
    packed = vmap(masks, randomness="error")(keys)
    for k in range(3):
        assert torch.equal(packed[k], masks(keys[k]))
    assert not torch.equal(packed[0, 0], packed[0, 1])  # second layer, second key
    assert not torch.equal(packed[0], packed[1])


@pytest.mark.gpu
def test_cpu_and_cuda_draw_the_same_masks() -> None:
    rows = torch.arange(64 * 32).view(64, 32)
    for p in (0.25, 0.3):
        on_cpu = keep_mask(torch.tensor(99), rows, 169, p)
        on_cuda = keep_mask(torch.tensor(99, device="cuda"), rows.cuda(), 169, p)
        assert torch.equal(on_cuda.cpu(), on_cpu)
