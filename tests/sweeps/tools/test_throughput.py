"""``sweeps bench --trials``: every path timed in its own processes, trials per hour side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweeps.tools.throughput import TRAIN_IMAGES, Shape, pack_sizes
from tests.sweeps.helpers import invoke


@pytest.mark.slow
def test_trials_per_hour_of_each_path_side_by_side(tmp_path: Path, tiny_data: Path) -> None:
    out = tmp_path / "trials.json"
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

    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = {row["path"]: row for row in report["rows"]}
    assert list(rows) == ["one trial per process", "2 processes per device", "pack of 1", "pack of 3"]
    steps_per_trial = 2 * -(-TRAIN_IMAGES // 64)
    assert report["steps_per_trial"] == steps_per_trial
    for row in rows.values():
        assert row["error"] is None and row["step_seconds"] > 0
    pack = rows["pack of 3"]
    assert pack["trials_per_hour"] == pytest.approx(3600 * 3 / (pack["step_seconds"] * steps_per_trial))
    assert report["flops_per_trial_step"] == pytest.approx(3 * 64 * 3.163e6, rel=0.05)  # forward and backward
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
