"""Results built from numbers, no sweep run: per optimizer and phase the final accuracy of each seed, so that
what a report must conclude is known (or computed by scipy on the same numbers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sweeps.config.sweep import load_sweep
from sweeps.names import DEFAULT, SEARCH, TUNED
from sweeps.report.results import Entry, Results, SearchTrial
from tests.sweeps.helpers import CONF

EPOCHS = 3
RISE = 0.05
"""Each seed's accuracy climbs by this much per epoch to its final value."""


def entry(
    name: str,
    finals: Sequence[float],
    phase: str = TUNED,
    seconds: float = 1.0,
    seeds: Sequence[int] | None = None,
    config: Mapping[str, object] | None = None,
) -> Entry:
    """An optimizer's trial whose seeds end at ``finals`` (seed numbers ``seeds``, default 1, 2, ...)."""
    final = np.asarray(finals, dtype=float)
    acc = final[:, None] - RISE * np.arange(EPOCHS - 1, -1, -1)[None, :]
    curves = {
        "val_acc": acc,
        "val_loss": 1 - acc,
        "train_loss": 1 - acc,
        "epoch_seconds": np.full(acc.shape, seconds),
    }
    numbers = tuple(seeds or range(1, len(final) + 1))
    split = "holdout" if phase == SEARCH else "test"
    return Entry(
        name, phase, 0, dict(config or {"optimizer": name, "batch_size": 64}), curves, split, numbers
    )


def results(
    tuned: Mapping[str, Sequence[float]],
    default: Mapping[str, Sequence[float]] | None = None,
    trials: Sequence[SearchTrial] = (),
    spec: str = "seed_table.yaml",
    overrides: Sequence[str] = (),
) -> Results:
    """A shoot-out's results: ``tuned`` (with a tuned lr) and ``default`` finals per optimizer; as many
    retrain seeds as given."""
    names = list(tuned)
    seeds = max(len(v) for v in tuned.values())
    sweep = load_sweep(
        CONF / spec, [f"search.optimizer=[{', '.join(names)}]", f"study.retrain_seeds={seeds}", *overrides]
    )
    made = {n: entry(n, v, config={"optimizer": n, "batch_size": 64, "lr": 0.0123}) for n, v in tuned.items()}
    defaults = {n: entry(n, v, DEFAULT) for n, v in (default or {}).items()}
    return Results(sweep, made, defaults, made, tuple(trials))
