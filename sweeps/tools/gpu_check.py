"""The whole GPU check as one command, for a machine lent for minutes: the `gpu`-marked tests, the epoch
bench, the trial-throughput bench (fp32 and bf16), and the same small sweep run three ways (one worker, four
workers per GPU, packs), each step's output kept in ``--out`` with a ``summary.md`` of them all.

    sweeps gpu-check --out gpu-check            # on the GPU machine
    sweeps gpu-check --out /tmp/check --quick   # tiny sizes: the script itself, on a CPU

``--quick`` also runs each kind of step once: the fp32 trial bench and the one-worker sweep, which differ
from the bf16 bench and the shared-GPU sweep by one option, are left out.

Each step runs in its own process with a time limit, so one that fails or hangs costs only its own step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = "conf/quickstart.yaml"
SWEEP = ["search.optimizer=momentum", "data.train_subset=10000", "trainer.max_epochs=1"]
"""The sweep run three ways: one trial shape (momentum, batch 64), so that every trial can join a pack."""


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    timeout: int
    trials: int = 0
    """Trials the step runs (a sweep): its summary line gives trials per hour."""


def steps(quick: bool) -> list[Step]:
    """What the check runs, in order: full sizes for the GPU, or tiny ones to try the script anywhere."""
    sweeps = [sys.executable, "-m", "sweeps"]
    subset = ["--train-subset", "512"] if quick else []
    trials = (
        ["--packs", "4", "--processes", "2", "--epochs", "1", "--steps", "3"]
        if quick
        else ["--packs", "1,8,32,64,128", "--processes", "4", "--epochs", "10", "--steps", "60"]
    )
    n, per_gpu = (2, 2) if quick else (16, 4)
    sharing = ["--workers", str(per_gpu), "--workers-per-gpu", str(per_gpu)]
    sweep = [str(ROOT / SPEC), *SWEEP, f"study.n_trials={n}", "study.pruner=none"]
    sweep += [*(["data.train_subset=256", "data.holdout_size=256"] if quick else []), "study.sampler=random"]
    ways = {
        "sweep, one worker": ("alone", ["--workers", "1"]),
        f"sweep, {per_gpu} workers per GPU": ("workers", sharing),
        "sweep, packs": ("packed", ["--workers", "1", "--pack", str(n)]),
    }
    benches = {"fp32": ([], "trials.json"), "bf16": (["--bf16"], "trials-bf16.json")}
    if quick:
        del benches["fp32"], ways["sweep, one worker"]
    return [
        Step("gpu tests", [sys.executable, "-m", "pytest", "-m", "gpu", str(ROOT / "tests"), "-q"], 300),
        Step("epoch bench", [*sweeps, "bench", "--repeats", "1" if quick else "2", "--bf16", *subset], 300),
        *(
            Step(f"trials bench {kind}", [*sweeps, "bench", "--trials", *bf16, *trials, "--out", out], 300)
            for kind, (bf16, out) in benches.items()
        ),
        *(
            Step(name, [*sweeps, "run", *sweep, f"study.name={study}", *how], 400, n)
            for name, (study, how) in ways.items()
        ),
    ]


def run_step(step: Step, out: Path) -> str:
    """Run one step in ``out`` (its files land there), its output in ``<name>.log``; its summary line."""
    log = out / f"{step.name.replace(' ', '-').replace(',', '')}.log"
    env = os.environ | {"COLUMNS": "160"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            step.argv, cwd=out, env=env, capture_output=True, text=True, timeout=step.timeout
        )
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code, text = "timeout", f"{expired.stdout or ''}{expired.stderr or ''}"
    seconds = time.perf_counter() - started
    log.write_text(f"$ {' '.join(step.argv)}\n{text}")
    rate = f", {3600 * step.trials / seconds:,.0f} trials/hour" if step.trials and code == 0 else ""
    return f"- **{step.name}**: exit {code} in {seconds:.0f} s{rate} (`{log.name}`)"


def summary(out: Path, lines: list[str]) -> str:
    """The steps' lines, then each bench's printed tables (the last lines of its log)."""
    parts = ["# GPU check", "", *lines, ""]
    for log in sorted(out.glob("*bench*.log")):
        tail = log.read_text().splitlines()[-30:]
        parts += [f"## {log.stem}", "", "```", *tail, "```", ""]
    return "\n".join(parts)


def run(out: Path, quick: bool, say: Callable[[str], None]) -> Path:
    """Every step in ``out`` (a folder), each one's line said as it ends; the summary's path."""
    out = out.resolve()
    lines = []
    for step in steps(quick):
        lines.append(run_step(step, out))
        say(lines[-1])
    (out / "summary.md").write_text(summary(out, lines))
    return out / "summary.md"
