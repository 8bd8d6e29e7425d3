"""Bad input to the commands, whatever its kind (a field of the spec, a flag, a file, a server), is refused
with exit code 2 and a message naming it, before any study, run or file is written."""

from __future__ import annotations

import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from sweeps.config.imports import ALLOW_ENV
from sweeps.config.sweep import SweepConfig
from sweeps.workdir import LOGS
from tests.sweeps.helpers import invoke, small_sweep_spec


def _leaves(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field of the spec, by its dotted name (sections followed into)."""
    for name, field in model.model_fields.items():
        options = (field.annotation, *typing.get_args(field.annotation))
        section = next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)
        if section is None or name == "per_optimizer":
            yield f"{prefix}{name}"
        else:
            yield from _leaves(section, f"{prefix}{name}.")


FIELDS = [*_leaves(SweepConfig), "optimizer.lr", "search.lr"]


@pytest.fixture
def spec(tmp_path: Path, tiny_data: Path) -> Path:
    return small_sweep_spec(tmp_path, tiny_data)


def nothing_written(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.suffix == ".db" or p.name in ("mlartifacts", LOGS)]


def test_every_field_of_the_spec_is_covered() -> None:
    assert {"data.val_split", "data.split_seed", "study.retrain_seeds", "search.per_optimizer"} <= set(FIELDS)


@pytest.mark.parametrize("field", FIELDS)
def test_a_wrong_value_of_any_field_is_refused_naming_it(field: str, spec: Path, tmp_path: Path) -> None:
    result = invoke("run", str(spec), f"{field}=[[1, 2]]")

    assert result.exit_code == 2, result.output
    assert field in " ".join(result.stderr.split()), result.stderr
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("study.n_trials=0", "study.n_trials"),
        ("study.timeout=-5", "study.timeout"),
        ("study.retrain_seeds=-1", "study.retrain_seeds"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("data.holdout_size=0", "data.holdout_size"),
        ("search.lr={low: 0.1, high: 0.01}", "search.lr"),
        ("search.nonsense=1", "search.nonsense"),
        ("study.colour=red", "study.colour"),
        ("search.optimizer=[adam, sgdd]", "search.optimizer"),
    ],
)
def test_out_of_range_and_unknown_values_are_refused(
    override: str, named: str, spec: Path, tmp_path: Path
) -> None:
    result = invoke("run", str(spec), override)

    assert result.exit_code == 2, result.output
    assert named in " ".join(result.stderr.split())
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workers", "-1"], "--workers"),
        (["--workers-per-gpu", "0"], "--workers-per-gpu"),
        (["--threads", "0"], "--threads"),
        (["--storage", "mysql://u:hunter2@db/x"], "mysql://u:***@db/x"),
        (
            ["--storage", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"],
            "postgresql+psycopg://u:***@127.0.0.1:1/x",
        ),
        (["--tracking-uri", "http://u:hunter2@127.0.0.1:1"], "http://u:***@127.0.0.1:1"),
        (["--storage", "sqlite:////no/such/folder/optuna.db"], "/no/such/folder"),
    ],
)
def test_bad_flags_of_run_are_refused(args: list[str], named: str, spec: Path, tmp_path: Path) -> None:
    result = invoke("run", str(spec), *args)

    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split()) and "hunter2" not in result.output
    assert nothing_written(tmp_path)


def test_allow_imports_refuses_a_target_from_another_package(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)  # the flag sets it for the workers; restored afterwards
    assert "SWEEPS_ALLOW_IMPORTS" in " ".join(invoke("worker", "--help").output.split())

    result = invoke(
        "run", str(spec), "model.target=tests.workload.net:MLP", "--allow-imports", "torch,mynets"
    )

    assert result.exit_code == 2, result.output
    assert (
        "model.target: 'tests.workload.net:MLP' is from package 'tests', which this process may not import"
        in (" ".join(result.stderr.split()))
    )
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--study", "nope"], "no study 'nope'"),
        (["--study", "x", "--index", "-1"], "--index"),
        (["--study", "x", "--threads", "0"], "--threads"),
        (["--study", "x", "--storage", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"], "u:***@127.0.0.1:1"),
    ],
)
def test_bad_flags_of_worker_are_refused(args: list[str], named: str, tmp_path: Path) -> None:
    result = invoke("worker", *args)

    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split()) and "hunter2" not in result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["bench-sweep", "--workers", "1,x", "--out", "OUT"], "--workers"),
        (["bench-sweep", "--workers", "0", "--out", "OUT"], "--workers"),
        (["bench-storage", "--backends", "sqlite,mysql", "--dir", "OUT"], "mysql"),
        (["bench-storage", "--workers", "4", "--trials", "2", "--dir", "OUT"], "--trials"),
        (["bench-checkpoints", "--epochs", "1", "--out", "OUT"], "--epochs"),
        (["bench-checkpoints", "--optimizer", "adamm", "--out", "OUT"], "adamm"),
        (["gpu-check", "--out", "/proc/no/such"], "--out"),
    ],
)
def test_bad_flags_of_the_engine_benches_are_refused(args: list[str], named: str, tmp_path: Path) -> None:
    result = invoke(*(str(tmp_path / "out") if arg == "OUT" else arg for arg in args))

    assert result.exit_code == 2, result.output
    assert named in " ".join(result.output.split())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("command", "content", "fragment"),
    [
        ("run", b"", "study"),  # an empty spec lacks its study (an empty train config is all defaults)
        ("run", b"\x00\x01\x02\xff\xfe binary", "not UTF-8"),
        ("train", b"\x00\x01\x02\xff\xfe binary", "not UTF-8"),
        ("run", b"study: {name: [x\n", ":1:"),
        ("train", b"trainer: {max_epochs: [x\n", ":1:"),
    ],
    ids=["empty-spec", "binary-spec", "binary-config", "broken-spec", "broken-config"],
)
def test_bad_files_are_refused_naming_them(
    command: str, content: bytes, fragment: str, tmp_path: Path
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)

    result = invoke(command, str(path))

    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and str(path) in " ".join(result.stderr.split()) + str(path) * (
        not content
    )
    assert nothing_written(tmp_path)


def test_train_refuses_an_unreachable_tracking_server(tmp_path: Path, tiny_data: Path) -> None:
    from tests.sweeps.helpers import TRAIN_YAML, tiny

    result = invoke(
        "train", str(TRAIN_YAML), *tiny(tiny_data), "--tracking-uri", "http://u:hunter2@127.0.0.1:1"
    )

    assert result.exit_code == 2 and "http://u:***@127.0.0.1:1" in result.stderr
    assert nothing_written(tmp_path)


def test_status_and_report_do_not_import_lightning() -> None:
    """Lightning's import costs about 2 s of a process's start; only the commands that train need it."""
    code = (
        "import sys; import sweeps.cli.live, sweeps.engine.slurm, sweeps.engine.study, sweeps.report.publish,"
        " sweeps.report.terminal; print(sorted(m for m in sys.modules if m.split('.')[0] == 'lightning'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_next_commands_name_a_storage_other_than_the_default_whatever_this_shell_exports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sweeps.cli.sweep import next_commands
    from sweeps.engine.storage.urls import default_storage

    monkeypatch.chdir(tmp_path)
    elsewhere = "postgresql+psycopg://sweeper@db:5432/sweeps"
    monkeypatch.setenv("SWEEPS_STORAGE", elsewhere)  # `SWEEPS_STORAGE=URL sweeps run` sets it
    assert next_commands("s", elsewhere) == [
        f"SWEEPS_STORAGE='{elsewhere}' sweeps report s",
        f"SWEEPS_STORAGE='{elsewhere}' sweeps ui s",
    ]
    assert next_commands("s", default_storage()) == ["sweeps report s", "sweeps ui s"]
