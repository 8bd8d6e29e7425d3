"""``sweeps bench-help``: how fast the command line answers before any work: ``sweeps --help``, a command's
``-h``, ``--version`` and a mistyped command, each in a fresh process (what a user waits for), median of a few
runs.

The commands import torch, Lightning and MLflow only once their arguments are checked; a slow answer here
means a heavy import crept back to module level (``python -X importtime -m sweeps --help`` finds it).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import timeit
from functools import partial

ASKED = (("--help",), ("run", "-h"), ("report", "-h"), ("--version",), ("rn",))
"""What is timed: the top help, two commands' help, the version and a typo (answered "did you mean")."""


def seconds(args: tuple[str, ...], repeats: int) -> float:
    """Median wall-clock seconds of ``python -m sweeps ARGS`` over ``repeats`` fresh processes."""
    run = partial(subprocess.run, [sys.executable, "-m", "sweeps", *args], capture_output=True, check=False)
    return statistics.median(timeit.repeat(run, number=1, repeat=repeats))
