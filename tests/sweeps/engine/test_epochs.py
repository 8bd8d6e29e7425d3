"""Each epoch's row: what any module logged, read at the epoch's end; divergence, a missing study metric, and
the rows a checkpoint brings back."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from sweeps.engine.epochs import EpochReport, MetricNotLogged
from sweeps.names import EPOCH_METRICS


def end_epoch(report: EpochReport, epoch: int, metrics: dict[str, float]):
    trainer = SimpleNamespace(
        sanity_checking=False,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        current_epoch=epoch - 1,
        should_stop=False,
    )
    report.on_train_epoch_start(trainer, None)
    report.on_train_epoch_end(trainer, SimpleNamespace())
    return trainer


def test_a_member_that_closed_no_epoch_adds_no_row_of_the_previous_epochs_values():
    rows = {1: dict.fromkeys(EPOCH_METRICS, 0.5), 2: None}  # the module's own rows: epoch 2 diverged
    report = EpochReport(read=lambda trainer, module: [rows[trainer.current_epoch + 1]])
    end_epoch(report, 1, dict.fromkeys(EPOCH_METRICS, 0.5))
    end_epoch(report, 2, dict.fromkeys(EPOCH_METRICS, 0.5))

    assert [row["epoch"] for row in report.history] == [1.0]


def test_every_scalar_logged_is_written_once_per_epoch_with_its_epoch_as_step():
    written = []
    report = EpochReport(writes=[lambda metrics, epoch: written.append((epoch, metrics))])
    end_epoch(report, 1, {"mse": 0.5, "step": 3.0})
    end_epoch(report, 1, {"mse": 0.4})  # an epoch ends once; a second call for it adds nothing
    end_epoch(report, 2, {"mse": 0.25})

    assert [epoch for epoch, _ in written] == [1, 2]
    assert [m["mse"] for _, m in written] == [0.5, 0.25]
    assert all(set(m) == {"mse", "epoch_seconds"} and m["epoch_seconds"] >= 0 for _, m in written)


def test_a_non_finite_value_of_a_users_module_stops_the_run_as_diverged():
    report = EpochReport()
    trainer = end_epoch(report, 1, {"mse": math.nan})

    assert trainer.should_stop and report.ended == [("diverged", "non-finite mse in epoch 1")]
    assert report.history == []


def test_a_required_metric_the_module_does_not_log_names_what_it_logs():
    report = EpochReport(required="val_acc")

    with pytest.raises(MetricNotLogged, match=r"logs no 'val_acc'; it logs: epoch_seconds, mse"):
        end_epoch(report, 1, {"mse": 0.5})


def test_restored_rows_are_written_first_and_their_time_counted():
    first = EpochReport()
    end_epoch(first, 1, {"mse": 0.5, "epoch_seconds": 2.0})
    end_epoch(first, 2, {"mse": 0.4, "epoch_seconds": 3.0})
    written = []
    resumed = EpochReport(writes=[lambda metrics, epoch: written.append(epoch)])
    resumed.load_state_dict(first.state_dict())
    resumed.on_train_start(None, None)
    end_epoch(resumed, 3, {"mse": 0.3, "epoch_seconds": 1.0})

    assert written == [1, 2, 3]
    assert resumed.seconds() == 6.0
    assert resumed.best("mse") == 0.5 and math.isnan(resumed.best("val_acc"))


def test_the_engine_hands_each_row_to_the_view_and_prints_nothing(capsys) -> None:
    shown: list[tuple[int, dict[str, float]]] = []
    report = EpochReport(show=lambda metrics, epoch: shown.append((epoch, metrics)))
    report.history.append({"epoch": 1.0, "val_acc": 0.5, "epoch_seconds": 1.5})
    report._flush()
    assert shown == [(1, {"val_acc": 0.5, "epoch_seconds": 1.5})]
    assert capsys.readouterr().out == ""
