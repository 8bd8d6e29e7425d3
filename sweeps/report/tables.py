"""The comparison tables of a sweep, each as display cells (the terminal, Markdown, HTML) and numbers (CSV).

Two tables. The *seed table* has the shape of the classic Keras comparison (per optimizer: val accuracy and
loss at epochs 1, 5 and 10, total time) with the published figures beside ours. The *shoot-out* (a sweep with
``study.retrain_seeds``) puts each optimizer's untuned default beside its tuned best, both as mean ± std over
fresh seeds, with the time to a target accuracy and the tuned hyperparameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from rich.table import Table

from sweeps.report.results import Entry, Results

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


@dataclass(frozen=True)
class Report:
    """One table: display cells (what people read) and numbers (the CSV), with a title and footnotes."""

    name: str
    title: str
    display: pd.DataFrame
    numbers: pd.DataFrame
    notes: tuple[str, ...] = ()


def _pm(mean: float, std: float, seeds: int, digits: int = 4) -> str:
    """``mean ± std`` over seeds; ``—`` for no value."""
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if seeds > 1 else f"{mean:.{digits}f}"


def _minutes(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _ranks(entries: dict[str, Entry], metric: str, maximize: bool) -> dict[str, int]:
    """Ranks by the final value of the study's metric, best first (a missing value last)."""
    sign = -1 if maximize else 1
    order = sorted(entries, key=lambda n: _or_inf(sign * entries[n].final(metric)[0]))
    return {name: rank for rank, name in enumerate(order, start=1)}


def _or_inf(value: float) -> float:
    return math.inf if math.isnan(value) else value


def seed_table(results: Results) -> Report:
    """Per optimizer (its retrained best where there is one), accuracy and loss at epochs 1, 5 and 10 (those
    the sweep ran, and its last), total time, our rank and the published one."""
    entries = results.headline
    max_epochs = results.sweep.trainer.max_epochs
    epochs = sorted({e for e in SEED_EPOCHS if e <= max_epochs} | {max_epochs})
    sweep = results.sweep
    mnist = sweep.data.name == "mnist" and sweep.data.target is None
    ranks = _ranks(entries, sweep.study.epoch_metric, sweep.study.direction == "maximize")
    shown_metrics = [("val_acc", "acc"), ("val_loss", "loss")]
    if sweep.study.epoch_metric not in ("val_acc", "val_loss"):
        shown_metrics.append((sweep.study.epoch_metric, sweep.study.epoch_metric))
    display, numbers = [], []
    for name, entry in entries.items():
        shown: dict[str, str] = {"optimizer": name, "seeds": str(entry.seeds)}
        row: dict[str, object] = {"optimizer": name, "phase": entry.phase, "trial": entry.trial}
        row["seeds"] = entry.seeds
        for epoch in epochs:
            for metric, short in shown_metrics:
                mean, std = entry.at(metric, epoch)
                shown[f"{short} @{epoch}"] = _pm(mean, std, entry.seeds)
                row[f"{metric}_{epoch}"], row[f"{metric}_{epoch}_std"] = mean, std
        seconds, seconds_std = entry.total_seconds()
        shown["time"] = _minutes(seconds)
        row["total_seconds"], row["total_seconds_std"] = seconds, seconds_std
        shown["rank"] = str(ranks[name])
        row["rank"] = ranks[name]
        published = PUBLISHED_RANK.get(name)
        shown["published rank"] = str(published or "—")
        row["published_rank"] = published
        if mnist:
            acc = PUBLISHED_ACC_10.get(name)
            shown["published acc @10"] = f"{acc:.4f}" if acc else "—"
            row["published_val_acc_10"] = acc
        display.append(shown)
        numbers.append(row)
    notes = [
        f"{results.sweep.data.label}, batch {results.sweep.data.batch_size}, {max_epochs} epochs, "
        f"preset {results.sweep.optimizer.preset}, init {results.sweep.model.init}; time is training time.",
        "Published: MNIST, Keras defaults, batch 64, 10 epochs (6:42-10:01 min per optimizer there)."
        + ("" if mnist else " On another data set compare the ranks, not the numbers."),
    ]
    return Report("seed_table", "Seed table", pd.DataFrame(display), pd.DataFrame(numbers), tuple(notes))


TARGET_SHARE = 0.95


def target_accuracy(results: Results) -> float:
    """95 % of the best final mean accuracy, floored to 0.01: near enough the best that reaching it means
    something, low enough that the good optimizers all do, so their times compare."""
    finals = [e.final("val_acc")[0] for e in results.headline.values()]
    finals = [f for f in finals if not math.isnan(f)]
    return math.floor(max(finals) * TARGET_SHARE * 100) / 100 if finals else float("nan")


def shootout_table(results: Results, target: float) -> Report:
    """Per optimizer: default vs tuned, mean ± std over the retrain seeds, time to ``target`` accuracy, and
    the tuned hyperparameters (those the search set)."""
    display, numbers = [], []
    names = [n for n in results.sweep.search.optimizers if n in results.tuned or n in results.default]
    for name in names:
        default, tuned = results.default.get(name), results.tuned.get(name)
        shown: dict[str, str] = {"optimizer": name}
        row: dict[str, object] = {"optimizer": name, "seeds": results.sweep.study.retrain_seeds}
        row["target_acc"] = target
        for label, entry in (("default", default), ("tuned", tuned)):
            for metric, short in (("val_acc", "acc"), ("val_loss", "loss")):
                mean, std = entry.final(metric) if entry else (math.nan, math.nan)
                shown[f"{label} {short}"] = _pm(mean, std, entry.seeds if entry else 1)
                row[f"{label}_{metric}"], row[f"{label}_{metric}_std"] = mean, std
            seconds, reached = entry.seconds_to(target) if entry else (math.nan, 0)
            shown[f"{label} s to {target:.2f}"] = (
                "—"
                if not reached
                else f"{seconds:.1f}" + ("" if reached == entry.seeds else f" ({reached}/{entry.seeds})")
            )
            row[f"{label}_seconds_to_target"], row[f"{label}_seeds_reaching_target"] = seconds, reached
        if tuned:
            hparams = {k: v for k, v in tuned.config.items() if k != "optimizer"}
            shown["tuned hyperparameters"] = ", ".join(f"{k}={_short(v)}" for k, v in hparams.items())
            row |= {f"tuned.{k}": v for k, v in hparams.items()}
        else:
            why = "retrain failed" if name in results.search else "no search trial completed"
            shown["tuned hyperparameters"] = why
            row["tuned_missing"] = why
        display.append(shown)
        numbers.append(row)
    seeds = results.sweep.study.retrain_seeds
    notes = (
        f"Final-epoch values, mean ± std over {seeds} fresh seeds; tuned = the best of "
        f"{results.sweep.study.n_trials} search trials per optimizer, retrained.",
        f"Time to {target:.2f} val accuracy: training seconds until the first epoch at or above it "
        "(— never; (n/k) when only n of k seeds got there).",
    )
    return Report(
        "shootout", "Fair shoot-out: default vs tuned", pd.DataFrame(display), pd.DataFrame(numbers), notes
    )


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def reports(results: Results, target: float | None = None) -> list[Report]:
    tables = [seed_table(results)]
    if results.tuned or results.default:
        tables.append(shootout_table(results, target if target is not None else target_accuracy(results)))
    return tables


def rich_table(report: Report) -> Table:
    table = Table(*report.display.columns, title=report.title, caption="\n".join(report.notes))
    for row in report.display.itertuples(index=False):
        table.add_row(*map(str, row))
    return table
