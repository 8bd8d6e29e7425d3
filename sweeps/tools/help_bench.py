"""How fast the command line answers before any work: ``sweeps --help``, a command's ``-h``, ``--version``
and a mistyped command, each in a fresh process (what a user waits for), median of a few runs.

    python -m sweeps.tools.help_bench --repeats 5

The commands import torch, Lightning and MLflow only once their arguments are checked; a slow answer here
means a heavy import crept back to module level (``python -X importtime -m sweeps --help`` finds it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

ASKED = (("--help",), ("run", "-h"), ("report", "-h"), ("--version",), ("rn",))
"""What is timed: the top help, two commands' help, the version and a typo (answered "did you mean")."""


def seconds(args: tuple[str, ...], repeats: int) -> float:
    """Median wall-clock seconds of ``python -m sweeps ARGS`` over ``repeats`` fresh processes."""
    taken = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sweeps", *args], capture_output=True, check=False)
        taken.append(time.perf_counter() - start)
    return statistics.median(taken)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per command (median)")
    repeats = parser.parse_args(argv).repeats
    for args in ASKED:
        print(f"sweeps {' '.join(args):<12} {seconds(args, repeats):6.2f} s")


if __name__ == "__main__":
    main()
