"""The command line's own help: -h and --help, --version, one paragraph per text, choices and environment
variables shown the same way on every command (at 80 columns)."""

from __future__ import annotations

import re
import typing

import pytest
import typer.main
from typer.testing import CliRunner

from models.optimizers import PRESETS
from sweeps.cli import app
from sweeps.cli.tools import Preset

COMMANDS = ["run", "status", "report", "ui", "train", "worker", "optimizers", "bench", "trajectories"]


def _help(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(app, [*args], env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_h_is_help_and_version_prints_the_packages_version() -> None:
    assert _help("-h") == _help("--help")
    assert _help("run", "-h") == _help("run", "--help")
    assert re.fullmatch(r"sweeps \d+\.\d+\.\d+\n", _help("--version"))


def test_commands_are_listed_in_the_order_people_use_them_each_as_one_paragraph() -> None:
    text = _help("--help")
    rows = [line for line in text.splitlines() if line.startswith("│ ") and not line.startswith("│  ")]
    listed = [row.split()[1] for row in rows if row.split()[1] in COMMANDS]
    assert listed == COMMANDS
    # a docstring's line break used to end a help line early, mid-sentence ("... or the CPU cores, or")
    for name, command in typer.main.get_command(app).commands.items():
        assert "\n" not in (command.help or ""), name
    flat = " ".join(" ".join(line.strip("│ ").split()) for line in text.splitlines())
    assert "every GPU, or on the CPU cores, or through SLURM or Ray." in flat


@pytest.mark.parametrize("command", COMMANDS)
def test_options_that_read_the_environment_say_so_the_same_way(command: str) -> None:
    click = typer.main.get_command(app).commands[command]
    for option in click.params:
        help_text = getattr(option, "help", "") or ""
        assert "$" not in help_text, (command, option.name)  # named by [env var: X], never in the text
    with_env = [o for o in click.params if getattr(o, "envvar", None)]
    text = _help(command, "-h", width=200)
    for option in with_env:
        assert f"[env var: {option.envvar}]" in text, (command, option.envvar)


def test_fixed_choices_are_listed() -> None:
    assert "<torch|keras>" in _help("trajectories", "-h")
    assert "<auto|cpu|cuda>" in _help("bench", "-h")
    assert set(typing.get_args(Preset)) == set(PRESETS)


def test_the_optimizer_registry_is_whole_at_80_columns(monkeypatch) -> None:
    import io

    from rich.console import Console

    from sweeps.cli import tools

    terminal = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    monkeypatch.setattr(tools, "console", terminal)
    tools.optimizers()
    lines = terminal.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in "".join(lines)
    assert "initial_accumulator_value=0.0," in "".join(lines)  # the longest setting, whole on one line
    assert "Not shown at this width (widen the terminal, or print to a file): summary." in " ".join(lines)


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_every_commands_help_is_whole_at_80_columns(command: str) -> None:
    """An option's text (a default URL, an environment variable) is wrapped, never cut short with '…'."""
    assert "…" not in _help(command, "-h")
