"""Sweeps as workloads: each one's time to its own target, and the performance profile over them."""

from __future__ import annotations

import math

import pytest

from sweeps.report.evidence import weigh
from sweeps.report.results import Results
from sweeps.report.workloads import Workload, profile, profile_table, time_to_target, workload_table
from tests.sweeps.report.constructed import entry, results


def test_time_to_target_is_the_median_seed_and_a_miss_is_infinitely_slow() -> None:
    # seeds end at 0.90, 0.90, 0.80, rising 0.05 per 1-second epoch: they reach 0.85 after 2 s, 2 s, never
    reached = entry("adam", [0.90, 0.90, 0.80])
    assert time_to_target(reached, 0.85) == 2.0
    assert math.isinf(time_to_target(entry("sgd", [0.90, 0.80, 0.80]), 0.85))  # 2 of 3 never get there


def _workload(name: str, seconds: dict[str, float], target: float = 0.85) -> Workload:
    """All seeds of every optimizer reach ``target`` after 2 epochs, each epoch taking ``seconds[name]``."""
    base = results({n: [0.90] * 3 for n in seconds})
    made = {n: entry(n, [0.90] * 3, seconds=s) for n, s in seconds.items()}
    found = Results(base.sweep, made, {}, made)
    return Workload(name, found, weigh(found, target=target))


def test_profile_over_workloads_by_hand() -> None:
    fast = _workload("mnist", {"adam": 1.0, "sgd": 2.0})  # times 2 s, 4 s: ratios 1, 2
    slow = _workload("kmnist", {"adam": 3.0, "sgd": 1.0})  # 6 s, 2 s: ratios 3, 1
    never = _workload("emnist", {"adam": 1.0, "sgd": 1.0}, target=0.99)  # nobody reaches 0.99
    found = profile([fast, slow, never])
    assert found.workloads == ("mnist", "kmnist") and found.dropped == ("emnist",)
    assert found.ratios == {"adam": {"mnist": 1.0, "kmnist": 3.0}, "sgd": {"mnist": 2.0, "kmnist": 1.0}}
    table = profile_table(found)
    rows = table.numbers.set_index("optimizer")
    assert rows.loc["adam", ["rho_1", "rho_1.5", "rho_2", "rho_4"]].tolist() == pytest.approx(
        [0.5, 0.5, 0.5, 1.0]
    )
    assert rows.loc["sgd", ["rho_1", "rho_2"]].tolist() == pytest.approx([0.5, 1.0])
    assert any("emnist" in note for note in table.notes)
    stated = workload_table([fast, slow, never], found).display.set_index("workload")
    assert stated.loc["mnist", "target acc"] == "0.85" and stated.loc["emnist", "target acc"] == "0.99"
    assert (stated.loc["kmnist", "fastest"], stated.loc["kmnist", "seconds"]) == ("sgd", "2.0")
    assert stated.loc["emnist", "fastest"].startswith("—")
    assert table.display.set_index("optimizer").loc["adam", "× on kmnist"] == "3.00"
