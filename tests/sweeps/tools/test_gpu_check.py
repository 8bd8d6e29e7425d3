"""The one-command GPU check: what it runs, and how a step's end (done, failed, hung) reaches its summary."""

from __future__ import annotations

import sys
from pathlib import Path

from sweeps.tools.gpu_check import Step, run_step, steps, summary


def test_the_full_check_runs_what_the_gpu_figures_need() -> None:
    full = {step.name: step.argv for step in steps(quick=False)}
    assert full["gpu tests"][-3:-1] == ["gpu", str(Path(__file__).resolve().parents[2])]
    trials = full["trials bench fp32"]
    assert trials[trials.index("--packs") + 1] == "1,8,32,64,128" and "--processes" in trials
    assert "--bf16" in full["trials bench bf16"]
    sweeps = [argv for name, argv in full.items() if name.startswith("sweep,")]
    assert len(sweeps) == 3 and "--workers-per-gpu" in sweeps[1] and "--pack" in sweeps[2]
    names = [next(a for a in argv if a.startswith("study.name=")) for argv in sweeps]
    assert len({tuple(argv[: argv.index(name)]) for argv, name in zip(sweeps, names, strict=True)}) == 1


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
