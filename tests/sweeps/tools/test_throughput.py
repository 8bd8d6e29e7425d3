"""``sweeps bench --trials``: every path timed in its own processes, trials per hour side by side."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sweeps.tools.throughput import TRAIN_IMAGES, Shape, pack_sizes
from tests.sweeps.helpers import invoke


@pytest.mark.slow
def test_trials_per_hour_of_each_path_side_by_side(tmp_path: Path, tiny_data: Path) -> None:
    out = tmp_path / "trials.json"
    started = time.perf_counter()
    result = invoke(
        "bench",
        "--trials",
        "--dataset",
        "mnist",
        "--data-dir",
        str(tiny_data),
        "--packs",
        "1,3",
        "--processes",
        "2",
        "--epochs",
        "2",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    wall = time.perf_counter() - started

    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = {row["path"]: row for row in report["rows"]}
    assert list(rows) == ["one trial per process", "2 processes per device", "pack of 1", "pack of 3"]
    steps_per_trial = 2 * -(-TRAIN_IMAGES // 64)
    assert report["steps_per_trial"] == steps_per_trial
    for row in rows.values():
        assert row["error"] is None and row["step_seconds"] > 0
    assert report["flops_per_trial_step"] == pytest.approx(3 * 64 * 3.163e6, rel=0.05)  # forward and backward
    # each rate checked against clocks of its own: the 2 timed steps of each of its K trials in flight took
    # less than the whole bench's wall time, and all its trials' steps together no less than their FLOPs
    # at 1 TFLOP/s (beyond any CPU this runs on)
    fastest = 3600 * 1e12 / (report["flops_per_trial_step"] * steps_per_trial)
    for path, in_flight in {"one trial per process": 1, "2 processes per device": 2, "pack of 3": 3}.items():
        slowest = 3600 * in_flight * 2 / (wall * steps_per_trial)
        assert slowest < rows[path]["trials_per_hour"] < fastest, rows[path]
    assert "pack of 3" in result.stdout and "trials/hour" in result.stdout


@pytest.mark.parametrize("text", ["x", "0,8", "", "8,-1"])
def test_pack_sizes_are_positive_integers(text: str) -> None:
    with pytest.raises(ValueError, match="--packs"):
        pack_sizes(text)


def test_an_unknown_optimizer_or_device_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown optimizer"):
        Shape(optimizer="adamm")
    with pytest.raises(ValueError, match="--device"):
        Shape(device="tpu")
