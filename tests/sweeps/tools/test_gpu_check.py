"""The one-command GPU check: run whole on a CPU at tiny sizes, and how a step's end (done, failed, hung)
reaches its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.tools.gpu_check import Step, run_step, steps, summary
from tests.sweeps.helpers import needs_fashion_mnist


@pytest.mark.slow
@pytest.mark.long
@needs_fashion_mnist
def test_the_quick_check_runs_every_step_on_a_cpu_and_sums_them_up(tmp_path: Path) -> None:
    """The script as on the GPU machine, at ``--quick`` sizes: every step ends well, and each sweep's rate
    and each bench's table reach ``summary.md``."""
    done = subprocess.run(
        [sys.executable, "-m", "sweeps", "gpu-check", "--out", str(tmp_path / "check"), "--quick"],
        capture_output=True,
        text=True,
        timeout=1200,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "check" / "summary.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("- **")]
    assert [line.split("**")[1] for line in lines] == [step.name for step in steps(quick=True)]
    assert all(": exit 0 in " in line for line in lines), lines
    assert len([line for line in lines if "trials/hour" in line]) == 2  # the shared-GPU and packed sweeps
    assert text.count("## ") == 2 and "pack of 4" in text  # epoch bench, trials bench bf16
    assert json.loads((tmp_path / "check" / "trials-bf16.json").read_text())["rows"]


def test_a_steps_end_and_its_rate_reach_the_summary(tmp_path: Path) -> None:
    done = run_step(
        Step("sweep, x", [sys.executable, "-c", "print('| pack of 4 | 1.0 |')"], 30, trials=2), tmp_path
    )
    failed = run_step(Step("bench y", [sys.executable, "-c", "raise SystemExit(3)"], 30), tmp_path)
    hung = run_step(Step("bench z", [sys.executable, "-c", "import time; time.sleep(5)"], 1), tmp_path)

    assert done.startswith("- **sweep, x**: exit 0 in") and "trials/hour" in done
    assert "exit 3" in failed and "trials/hour" not in failed and "exit timeout" in hung
    assert "| pack of 4 | 1.0 |" in (tmp_path / "sweep-x.log").read_text()
    text = summary(tmp_path, [done, failed, hung])
    assert text.count("## bench") == 2 and done in text
