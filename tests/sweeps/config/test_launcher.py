"""The spec's ``launcher`` block: SLURM's time formats, sbatch lines passed through, options the launcher
sets itself refused naming where they are set."""

from __future__ import annotations

import pytest

from sweeps.config.files import ConfigError
from sweeps.config.launcher import SlurmConfig, slurm_minutes
from sweeps.config.sweep import load_sweep
from tests.sweeps.helpers import CONF


@pytest.mark.parametrize(
    ("given", "minutes"),
    [("90", 90), ("1:30", 2), ("2:00:00", 120), ("1-0", 1440), ("1-2:30", 1590), ("0-0:0:59", 1), ("0", 1)],
)
def test_slurm_time_formats_are_read_as_whole_minutes(given: str, minutes: int) -> None:
    assert slurm_minutes(given) == minutes


def test_sbatch_lines_pass_through_as_options() -> None:
    settings = SlurmConfig(sbatch=["--constraint=a100", "#SBATCH --exclusive", "--gres gpu:a100:1"])
    assert settings.extra_options() == {"constraint": "a100", "exclusive": True, "gres": "gpu:a100:1"}
    assert SlurmConfig(time="4:00:00").minutes() == 240 and SlurmConfig(time=30).minutes() == 30


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("launcher.slurm.time=four hours", "launcher.slurm.time"),
        ("launcher.slurm.sbatch=[-C a100]", "launcher.slurm.sbatch"),
        ("launcher.slurm.sbatch=[--partition=gpu]", "set from launcher.slurm.partition"),
        ("launcher.slurm.sbatch=[--array=0-9]", "set from --workers"),
        ("launcher.slurm.gpus_per_worker=-1", "launcher.slurm.gpus_per_worker"),
        ("launcher.slurm.signal_seconds=1", "launcher.slurm.signal_seconds"),
        ("launcher.ray.gpus_per_worker=-0.5", "launcher.ray.gpus_per_worker"),
        ("launcher.kubernetes.pods=4", "launcher.kubernetes"),
    ],
)
def test_a_wrong_launcher_setting_is_refused_naming_it(override: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_sweep(CONF / "sweep.yaml", [override])
    assert named in " ".join(str(refused.value).split())
