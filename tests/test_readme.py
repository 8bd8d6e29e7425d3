"""Every command the README tells a user to type is run here, as written, on tiny data (benchmarks on a
subset)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.workdir import DEFAULT_FOLDER, REPORTS, RUNS, STUDIES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
LINES = [
    [part.strip() for part in line.split("&&")]
    for block in BLOCKS
    for line in block.splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
SWEEPS = [part for line in LINES for part in line if part.startswith("sweeps ")]
FILES = dict(re.findall(r"```python\n# (\w+\.py)\n(.*?)```", README, flags=re.S))
"""Python files the README shows (a block starting with ``# name.py``), written where its commands run."""
SWEEPS_LINES = [" && ".join(line) for line in LINES if line[0].startswith("sweeps ")]
"""A line of ``sweeps`` commands joined by ``&&`` runs in order in one folder (a report reads its sweep)."""


def test_setup_commands_are_the_ones_the_guide_promises() -> None:
    lines = BLOCKS[0].strip().splitlines()
    assert "pip install" in lines[1] and "sweeps run conf/quickstart.yaml" in lines[1]
    assert "pip install" in lines[1] and "[dev]" not in lines[1]  # a user install needs no dev extras
    assert lines[3:] == [
        'pip install -e ".[dev]" && python -m pytest -m "not slow" -n 2 --dist loadgroup',
        "python -m pytest -n 2 --dist loadgroup",
    ]
    assert (ROOT / "conf/quickstart.yaml").is_file()


def test_every_readme_sweeps_command_is_known_to_the_cli() -> None:
    from typer.main import get_command

    from sweeps.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    assert SWEEPS
    for line in SWEEPS:
        assert shlex.split(line)[1] in commands, line


ELSEWHERE = {
    "sweeps run conf/quickstart.yaml": "tests/sweeps/test_sweep.py (test_readme_quickstart_...)",
    "sweeps report quickstart": "tests/sweeps/test_sweep.py (test_readme_quickstart_...)",
    "sweeps ui quickstart": "tests/sweeps/tools/test_ui.py (a server until Ctrl-C; with --optuna)",
    "sweeps bench --repeats 2 --bf16 --out bench.json": "tests/sweeps/tools/test_bench.py (on a subset)",
    "sweeps bench --trials --packs 1,4 --processes 2 --epochs 10 --steps 30 --device cpu --out trials.json": (
        "tests/sweeps/tools/test_throughput.py (on tiny data)"
    ),
    "sweeps run conf/sweep.yaml": "tests/sweeps/test_sweep.py (the same command on tiny data)",
    "sweeps run conf/sweep.yaml --launcher slurm --workers 8 launcher.slurm.partition=gpu"
    " launcher.slurm.time=4:00:00": "tests/sweeps/engine/test_slurm.py (a real single-node SLURM, tiny data)",
    "sweeps run conf/sweep.yaml --launcher ray --ray-address 10.0.0.5:6379": (
        "tests/sweeps/engine/test_raycluster.py (a real local Ray, tiny data)"
    ),
    "sweeps run conf/sweep.yaml --workers 0": "tests/sweeps/test_stack.py (the study a stack's workers join)",
    "sweeps status sweep": "tests/sweeps/test_sweep.py and engine/test_slurm.py (a sweep's status)",
    "sweeps run conf/seed_table.yaml data.train_subset=2000 trainer.max_epochs=2 study.name=seed_quick"
    " && sweeps report seed_quick": (
        "tests/sweeps/report/test_report.py (the seed table's sweep in process, then its report, tiny data)"
    ),
}


def test_commands_run_elsewhere_are_still_in_the_readme() -> None:
    assert set(ELSEWHERE) <= set(SWEEPS) | set(SWEEPS_LINES)


SMALLEST = ["data.train_subset=192", "data.holdout_size=64", "trainer.max_epochs=2"]
"""Appended to a README command (the last value of a key wins): the command as written, on tiny IDX files of
its data set, at the smallest size that still runs every step of it (two epochs: a schedule may warm up for
one)."""
FEWER_TRIALS = "study.n_trials=2"
"""For a command that sets its own budget: two trials still make a study and a report."""


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory: pytest.TempPathFactory, write_idx_dataset, slow_setup) -> Path:
    """Fashion-MNIST's files with 320 random train and 64 test images: what the README's specs read."""
    folder = tmp_path_factory.mktemp("fashion")
    write_idx_dataset(folder, "fashion_mnist", n_train=320, n_test=64)
    return folder


def smallest(args: list[str], data: Path) -> list[str]:
    """``args`` (``sweeps CMD ...``) with ``SMALLEST``'s overrides and ``data`` as data folder appended."""
    extra = [*SMALLEST] if args[1] in ("train", "run") else []
    if extra and not any(a.startswith("data.target=") for a in args):
        extra.append(f"data.dir={data}")
    if any(a.startswith("study.n_trials=") for a in args):
        extra.append(FEWER_TRIALS)
    return [*args, *extra]


@pytest.mark.parametrize("line", [c for c in SWEEPS_LINES if c not in ELSEWHERE])
def test_readme_sweeps_command_runs(line: str, tmp_path: Path, tiny_fashion_mnist: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    for command in line.split(" && "):
        args = [(str(ROOT / a) if a.startswith("conf/") else a) for a in shlex.split(command)]
        proc = subprocess.run(
            [sys.executable, "-m", "sweeps", *smallest(args, tiny_fashion_mnist)[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        out = tmp_path / DEFAULT_FOLDER  # everything the tool writes, as the README says
        if args[1] == "train":
            assert "done " in proc.stdout and (out / RUNS).exists()
        elif args[1] == "run":
            assert "waiting 0" in proc.stdout and (out / STUDIES).exists()
            assert (out / RUNS).exists()
        elif args[1] == "trajectories":
            assert (out / "trajectories" / "trajectories.png").is_file()
        elif args[1] == "report":
            assert (out / REPORTS / args[2] / "report.md").is_file()


def test_the_python_files_are_found_and_named_by_a_command():
    assert set(FILES) == {"mynet.py"}
    assert any("model.target=mynet:" in line for line in SWEEPS)
