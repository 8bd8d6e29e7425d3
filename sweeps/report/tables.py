"""The comparison tables of a sweep, each as display cells (the terminal, Markdown, HTML) and numbers (CSV).

The *epoch table* gives per optimizer val accuracy and loss at epochs 1, 5 and 10 and the total time; when
the sweep is the classic Keras comparison's setting (Keras presets and init, batch 64, nothing tuned, the six
published optimizers) it is the *seed table*, with the published ranks beside ours. The *shoot-out* (a sweep
with ``study.retrain_seeds``) puts each optimizer's untuned default beside its tuned best, with intervals,
group ranks, the gain from tuning and the time to a target accuracy. Every row names the split its numbers
were measured on and how many seeds they come from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from sweeps.names import SEARCH, TUNED, settings_label
from sweeps.report.evidence import Evidence, PhaseEvidence, seconds_to
from sweeps.report.results import Entry, Results
from sweeps.report.stats import Interval, best_first, interval

PUBLISHED_ACC_10 = {
    "adam": 0.9908,
    "rmsprop": 0.9857,
    "momentum": 0.9697,
    "sgd": 0.9693,
    "adagrad": 0.9286,
    "adadelta": 0.8375,
}
"""Validation accuracy at epoch 10 in the classic comparison (MNIST, Keras defaults, batch 64, inputs scaled
by 1/255); each run there took 6:42-10:01 min."""
PUBLISHED_RANK = {name: rank for rank, name in enumerate(PUBLISHED_ACC_10, start=1)}
SEED_EPOCHS = (1, 5, 10)
SEED_BATCH_SIZE = 64
SCALINGS = {
    "standard": "standardised with the mean and std of the training images used",
    "unit": "pixels / 255, as in the published comparison",
}
SHORT = {"val_acc": "acc", "val_loss": "loss", "train_loss": "train loss"}


@dataclass(frozen=True)
class Report:
    """One table: display cells (what people read) and numbers (the CSV), with a title and footnotes;
    ``terminal`` tables are also printed (the long pairwise ones only go to the files)."""

    name: str
    title: str
    display: pd.DataFrame
    numbers: pd.DataFrame
    notes: tuple[str, ...] = ()
    terminal: bool = True
    optional: tuple[str, ...] = ()
    """Display columns a narrow terminal may drop, the first to go first."""


def cell(
    found: Interval, seeds: int | None = None, digits: int = 4, std: bool = True, bounds: bool = True
) -> str:
    """``mean ± std [low, high]`` (without ``std`` or ``bounds``, less those parts); the mean alone from one
    seed, ``—`` from none; ``(n/k)`` when only n of the k seeds have a value."""
    if not found.n:
        return "—"
    text = f"{found.mean:.{digits}f}"
    if found.n > 1:
        text += f" ± {found.std:.{digits}f}" if std else ""
        text += f" [{found.low:.{digits}f}, {found.high:.{digits}f}]" if bounds else ""
    return text + (f" ({found.n}/{seeds})" if seeds and found.n < seeds else "")


def numbers(prefix: str, found: Interval) -> dict[str, float | int]:
    """An interval's columns for the CSV."""
    return {
        prefix: found.mean,
        f"{prefix}_std": found.std,
        f"{prefix}_ci_low": found.low,
        f"{prefix}_ci_high": found.high,
        f"{prefix}_n": found.n,
    }


def setting(results: Results) -> str:
    """One line of what every number of the sweep shares."""
    sweep = results.sweep
    subset = sweep.data.train_subset
    images = f"{subset:,} training images" if subset else "all training images"
    epochs = sweep.trainer.max_epochs
    model = sweep.model.target or f"the seed CNN (init {sweep.model.init})"  # init is the seed CNN's alone
    return (
        f"{model} on {sweep.data.label}, {images}, {epochs} epoch{'s' * (epochs > 1)}, preset"
        f" {sweep.optimizer.preset}; input scaling {sweep.data.scaling} ({SCALINGS[sweep.data.scaling]})."
    )


def is_seed_setting(results: Results, entries: Mapping[str, Entry]) -> bool:
    """Whether these entries ran the classic comparison's setting: Keras presets and init, batch 64,
    no hyperparameter set or tuned, and only the published optimizers."""
    sweep = results.sweep
    return (
        bool(entries)
        and sweep.optimizer.preset == "keras"
        and sweep.model.init == "keras"
        and all(
            e.optimizer in PUBLISHED_RANK
            and e.config.get("batch_size") == SEED_BATCH_SIZE
            and set(e.config) <= {"optimizer", "batch_size"}
            for e in entries.values()
        )
    )


def _minutes(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _time_note(runs: Mapping[str, int]) -> str:
    """What the time column is: a mean over runs, not one trial's time, which would depend on whether the
    trial was its worker's first."""
    counts = set(runs.values())
    over = (
        f"{counts.pop()} runs each"
        if len(counts) == 1
        else "runs: " + ", ".join(f"{k} {n}" for k, n in runs.items())
    )
    return (
        "time: mean training time (m:ss) of one run over each optimizer's completed trials, every seed and"
        " phase, except each worker's first run, which also paid the worker's warm-up (kept where an"
        f" optimizer has no other) ({over}): Lightning's fit, its epochs with their validation, not the start"
        " of the process or the loading of data and model."
    )


def _ranks(results: Results, evidence: Evidence) -> tuple[dict[str, str], str]:
    """Per headline optimizer its rank, and what the rank means. With seeds, group ranks of the headline
    phase (those the seeds cannot tell apart share one; ``—`` for an optimizer shown from another phase);
    with one seed, the order of the values, which says nothing about seed noise."""
    entries = results.headline
    phase = evidence.phases.get(TUNED if results.tuned else SEARCH)
    if phase and phase.comparison:
        groups = phase.comparison.ranks
        return (
            {n: str(groups[n]) if e.phase == phase.phase else "—" for n, e in entries.items()},
            f"rank: {group_rule(evidence, phase)}",
        )
    values = {n: interval(e.column(results.ranked_curve, e.epochs)).mean for n, e in entries.items()}
    order = best_first(values, results.higher_is_better)
    return (
        {name: str(rank) for rank, name in enumerate(order, start=1)},
        f"rank: by {evidence.ranked_on} of one seed each, untested; train on 3 or more seeds "
        "(study.repeats or study.retrain_seeds) for group ranks.",
    )


def group_rule(evidence: Evidence, phase: PhaseEvidence) -> str:
    """How a phase's group ranks were decided, in one sentence."""
    pairs = len(phase.comparison.pairs) if phase.comparison else 0
    test = evidence.test_name
    return (
        f"group ranks on {evidence.ranked_on} ({phase.split} split, {len(phase.seeds)} paired seeds): "
        f"{test} per pair, Holm-corrected over {pairs} pairs, α = {evidence.alpha:g}; rank = 1 + the "
        "number of optimizers significantly better, so optimizers the seeds cannot tell apart share a rank."
    )


def epoch_table(results: Results, evidence: Evidence) -> Report:
    """Per optimizer (its retrained best where there is one), accuracy and loss at epochs 1, 5 and 10 (those
    the sweep ran, and its last), total time and rank; the published rank in the seed table's setting."""
    entries = results.headline
    seed = is_seed_setting(results, entries)
    max_epochs = results.sweep.trainer.max_epochs
    epochs = sorted({e for e in SEED_EPOCHS if e <= max_epochs} | {max_epochs})
    mnist = results.sweep.data.name == "mnist" and results.sweep.data.target is None
    ranks, rank_note = _ranks(results, evidence)
    shown_metrics = [("val_acc", "acc"), ("val_loss", "loss")]
    if results.ranked_curve not in ("val_acc", "val_loss"):  # a user's module logging its own metric
        shown_metrics.append((results.ranked_curve, results.ranked_curve))
    display, rows = [], []
    for name, entry in entries.items():
        shown = {"optimizer": name, "split": entry.split, "seeds": str(entry.seeds)}
        row: dict[str, object] = {"optimizer": name, "phase": entry.phase, "trial": entry.trial}
        row |= {"split": entry.split, "seeds": entry.seeds}
        for epoch in epochs:
            for metric, short in shown_metrics:
                found = interval(entry.column(metric, epoch))
                shown[f"{short} @{epoch}"] = cell(found, entry.seeds, bounds=False)
                row[f"{metric}_{epoch}"], row[f"{metric}_{epoch}_std"] = found.mean, found.std
        seconds = interval(results.run_seconds.get(name, ()))
        shown["time"] = _minutes(seconds.mean)
        row |= {"total_seconds": seconds.mean, "total_seconds_std": seconds.std, "timed_runs": seconds.n}
        shown["rank"] = row["rank"] = ranks[name]
        shown["settings"] = settings_label(entry.config)
        if seed:
            row["published_rank"] = PUBLISHED_RANK[name]
            shown["published rank"] = str(PUBLISHED_RANK[name])
        if seed and mnist:
            shown["published acc @10"] = f"{PUBLISHED_ACC_10[name]:.4f}"
            row["published_val_acc_10"] = PUBLISHED_ACC_10[name]
        display.append(shown)
        rows.append(row)
    shared = _shared(display, ("split", "seeds"))
    for row in display:
        for column in shared:
            del row[column]
    notes = [
        setting(results) + f" Batch {results.sweep.data.batch_size} unless tuned.",
        _time_note({name: len(results.run_seconds.get(name, ())) for name in entries}),
        _measured(shared),
        rank_note,
    ]
    if seed:
        notes.append(
            "Published: MNIST, Keras defaults, batch 64, 10 epochs, inputs scaled by 1/255 (6:42-10:01 min"
            " per optimizer there)."
            + ("" if mnist else " On another data set compare the ranks, not the numbers.")
        )
    name, title = ("seed_table", "Seed table") if seed else ("epochs", "Accuracy and loss by epoch")
    early = [e for e in epochs if e != max_epochs]
    optional = (*(f"loss @{e}" for e in early), *(f"acc @{e}" for e in early), "time", f"loss @{max_epochs}")
    return Report(name, title, pd.DataFrame(display), pd.DataFrame(rows), tuple(notes), optional=optional)


def shootout_table(results: Results, evidence: Evidence) -> Report:
    """Per optimizer: default vs tuned on the ranked quantity with intervals and group ranks, the gain from
    tuning, the time to the target accuracy, and the tuned hyperparameters (those the search set)."""
    k = results.sweep.study.retrain_seeds
    short = SHORT.get(results.ranked_curve, results.ranked_curve)
    time = seconds_to(evidence.target)
    published = is_seed_setting(results, results.default)
    display, rows = [], []
    for name in [n for n in results.sweep.search.optimizers if n in results.tuned or n in results.default]:
        shown: dict[str, str] = {"optimizer": name}
        row: dict[str, object] = {"optimizer": name, "split": "test", "seeds": k}
        row["target_acc"] = evidence.target
        for label in ("default", "tuned"):
            phase = evidence.phases.get(label)
            value = phase.ranked.get(name) if phase else None
            shown[f"{label} {short}"] = cell(value, k, std=False) if value else "—"
            row |= numbers(f"{label}_final_{results.ranked_curve}", value) if value else {}
            comparison = phase.comparison if phase else None
            group = comparison.ranks.get(name) if comparison else None
            shown[f"{label} group"] = str(group or "—")
            row[f"{label}_group"] = group
            if label == "default" and published:
                shown["published rank"] = str(PUBLISHED_RANK[name])
                row["published_rank"] = PUBLISHED_RANK[name]
        gained = evidence.gains.get(name)
        shown["gain"] = cell(gained, k, std=False) if gained else "—"
        row |= numbers("gain", gained) if gained else {}
        for label in ("default", "tuned"):
            phase = evidence.phases.get(label)
            found = phase.intervals.get(name) if phase else None
            shown[f"{label} {time}"] = (
                cell(found[time], k, digits=1, std=False, bounds=False) if found else "—"
            )
            row |= numbers(f"{label}_seconds_to_target", found[time]) if found else {}
        tuned = results.tuned.get(name)
        if tuned:
            hparams = {key: v for key, v in tuned.config.items() if key != "optimizer"}
            shown["tuned hyperparameters"] = ", ".join(f"{key}={_short(v)}" for key, v in hparams.items())
            row |= {f"tuned.{key}": v for key, v in hparams.items()}
        else:
            why = "retrain failed" if name in results.search else "no search trial completed"
            shown["tuned hyperparameters"] = why
            row["tuned_missing"] = why
        display.append(shown)
        rows.append(row)
    notes = [
        f"Final-epoch {results.ranked_curve} on the test split over {k} paired seeds (the same seeds for"
        f" every optimizer): mean [95 % t interval] (std and the other quantities: the intervals tables);"
        f" tuned = the best of {results.sweep.study.n_trials} search trials per optimizer, retrained.",
        *(
            f"{label} group: {group_rule(evidence, evidence.phases[label])}"
            for label in ("default", "tuned")
            if label in evidence.phases and evidence.phases[label].comparison
        ),
        "gain: tuned − default per seed (for a loss, default − tuned), so > 0 means tuning helped.",
        f"{time}: mean training seconds until the first epoch at or above {evidence.target:.2f} val accuracy,"
        " over the seeds that got there ((n/k): only n of k did; —: none).",
    ]
    if published:
        notes.append("published rank: the classic Keras comparison (MNIST), whose setting the defaults are.")
    title = f"Fair shoot-out: default vs tuned (test split, {k} paired seeds)"
    return Report("shootout", title, pd.DataFrame(display), pd.DataFrame(rows), tuple(notes))


def _shared(rows: list[dict[str, str]], columns: tuple[str, ...]) -> dict[str, str]:
    """Of ``columns``, those with one value in every row, and that value: said once, in the caption."""
    return {c: rows[0][c] for c in columns if rows and len({row[c] for row in rows}) == 1}


def _measured(shared: Mapping[str, str]) -> str:
    """Where the numbers were measured and over how many seeds: once for rows alike, else per row."""
    seeds = shared.get("seeds")
    over = {None: "mean ± std over the row's seeds", "1": "of one seed each"}.get(
        seeds, f"mean ± std over {seeds} seeds"
    )
    where = {
        None: "its split (test: the test split; holdout: held-out training images, the search's)",
        "test": "the test split",
        "holdout": "held-out training images, the split the search selected on",
    }
    split = shared.get("split")
    return f"Values are {over}, measured on {where.get(split, split)}."


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
