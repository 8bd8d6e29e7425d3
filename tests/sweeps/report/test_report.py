"""The comparison: retrains after the search, the seed-shaped table, the shoot-out, plots, artifacts."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from scipy import stats as scipy_stats

from sweeps.config.sweep import load_sweep
from sweeps.engine.space import preset_params
from sweeps.engine.storage.rdb import open_storage
from sweeps.engine.study import create, queue_retrains
from sweeps.engine.worker import run_worker
from sweeps.names import (
    DEFAULT,
    OPTIMIZER_ATTR,
    PARENT_ATTR,
    PARENT_TAG,
    RUN_ATTR,
    SEARCH,
    TUNED,
    WORKER_ATTR,
    phase,
    trial_optimizer,
)
from sweeps.report.evidence import target_accuracy, weigh
from sweeps.report.results import Entry, Results
from sweeps.report.tables import PUBLISHED_ACC_10, epoch_table, shootout_table
from tests.sweeps.helpers import CONF, FINISHED_SWEEP, invoke, squash

TINY = ("data.name=mnist", "data.train_subset=192", "data.holdout_size=64", "trainer.max_epochs=2")
SEED_ORDER = ["adadelta", "adagrad", "adam", "rmsprop", "momentum", "sgd"]


def _png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def shootout(finished_sweep: Path) -> Path:
    """The shared finished sweep (study ``shootout``, ``FINISHED_SWEEP``), read only."""
    return finished_sweep


SHRUNK = load_sweep(CONF / "shootout.yaml", FINISHED_SWEEP)


def _study(where: Path, name: str = "shootout") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{where / 'optuna.db'}"))


def test_the_search_budget_then_one_default_and_one_tuned_trial_per_optimizer(shootout: Path) -> None:
    trials = _study(shootout).get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for name in ("sgd", "momentum", "adam"):
        mine = [t for t in trials if trial_optimizer(t) == name]
        assert sorted(phase(t) for t in mine) == [DEFAULT, SEARCH, SEARCH, TUNED]
        searched = [t for t in mine if phase(t) == SEARCH and t.state == TrialState.COMPLETE]
        tuned = next(t for t in mine if phase(t) == TUNED)
        assert tuned.params == max(searched, key=lambda t: t.value).params
        assert next(t for t in mine if phase(t) == DEFAULT).params == {}
        first = min((t for t in mine if phase(t) == SEARCH), key=lambda t: t.number)
        assert first.params == preset_params(SHRUNK, name)  # tuning starts from the default


def test_retrains_run_the_same_fresh_seeds_for_every_optimizer_on_the_test_split(shootout: Path) -> None:
    client = MlflowClient(f"sqlite:///{shootout / 'mlflow.db'}")
    for trial in _study(shootout).get_trials():
        run = client.get_run(trial.user_attrs[RUN_ATTR])
        assert run.data.tags["sweeps.phase"] == phase(trial)
        if phase(trial) == SEARCH:
            assert run.data.params["seed"] == "0" and run.data.params["val_split"] == "holdout"
            continue
        seeds = client.search_runs([run.info.experiment_id], f"tags.`{PARENT_TAG}` = '{run.info.run_id}'")
        assert sorted(r.data.params["seed"] for r in seeds) == ["1", "2", "3"]  # paired across optimizers
        assert {r.data.params["val_split"] for r in seeds} == {"test"}
        assert {r.data.params["optimizer"] for r in seeds} == {trial.user_attrs[OPTIMIZER_ATTR]}
        if phase(trial) == DEFAULT:  # the keras preset, nothing sampled
            assert {r.data.params["lr"] for r in seeds} == {
                "0.01" if trial_optimizer(trial) != "adam" else "0.001"
            }
        mean = np.mean([r.data.metrics["best_val_acc"] for r in seeds])
        assert run.data.metrics["best_val_acc_mean"] == pytest.approx(mean) == trial.value


def test_report_writes_tables_page_and_plots_and_logs_them_on_the_parent(
    shootout: Path, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(shootout)
    result = invoke("report", "shootout", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    # the headline is tuned, so not the seed table's setting: neither titled so nor given published ranks
    assert "Fair shoot-out" in result.stdout and "Accuracy and loss by epoch" in result.stdout
    assert "Seed table" not in result.stdout and "Tuned: groups on final val_acc" in result.stdout
    out = tmp_path / "out"
    assert _png(out / "optimization_history.png")
    # 2 search trials per optimizer: the learning curves are drawn once (on the page), the search's
    # structure not at all, said in one line
    assert not {"curves.png", "param_importances.png", "parallel_coordinate.png"} & {
        f.name for f in out.iterdir()
    }
    few = "6 completed search trials (2 per optimizer) are too few for parameter importances"
    assert squash(few) in squash(result.stdout)
    study = _study(shootout)
    tuned = {trial_optimizer(t): t for t in study.get_trials() if phase(t) == TUNED}
    shoot = _rows(out / "shootout.csv")
    assert [r["optimizer"] for r in shoot] == ["sgd", "momentum", "adam"]
    for row in shoot:
        assert float(row["tuned.lr"]) == pytest.approx(tuned[row["optimizer"]].user_attrs["config"]["lr"])
        assert row["tuned_group"] in {"1", "2", "3"} and row["default_group"] in {"1", "2", "3"}
    # the untuned defaults are the seed table's setting: their groups stand beside the published ranks
    assert [r["published_rank"] for r in shoot] == ["4", "3", "1"]
    client = MlflowClient(f"sqlite:///{shootout / 'mlflow.db'}")
    seeds = client.search_runs(
        [client.get_experiment_by_name("shootout").experiment_id],
        f"tags.`{PARENT_TAG}` = '{tuned['adam'].user_attrs[RUN_ATTR]}'",
    )
    at_2 = [
        h.value for r in seeds for h in client.get_metric_history(r.info.run_id, "val_acc") if h.step == 2
    ]
    table = {r["optimizer"]: r for r in _rows(out / "epochs.csv")}
    assert float(table["adam"]["val_acc_2"]) == pytest.approx(np.mean(at_2))
    assert (table["adam"]["phase"], table["adam"]["split"], table["adam"]["seeds"]) == (TUNED, "test", "3")
    assert "published_rank" not in table["adam"] and not (out / "seed_table.csv").exists()
    # the time: a mean over every run each optimizer's completed trials trained (search trials, 3 seeds per
    # retrain), less the first run of each worker (2 for the search, 2 for the retrains), which also paid the
    # worker's warm-up
    first: dict[str, int] = {}
    for t in sorted(study.get_trials(), key=lambda t: t.datetime_start):
        first.setdefault(t.user_attrs[WORKER_ATTR], t.number)
    assert len(first) == 4
    experiment = client.get_experiment_by_name("shootout").experiment_id
    for name in ("sgd", "momentum", "adam"):
        done = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if trial_optimizer(t) == name]
        kept = [
            seconds
            for t in done
            for seconds in _trained_seconds(client, experiment, t.user_attrs[RUN_ATTR])[
                t.number in first.values() :
            ]
        ]
        assert int(table[name]["timed_runs"]) == len(kept) >= 4, name
        assert float(table[name]["total_seconds"]) == pytest.approx(np.mean(kept)), name
    # the interval of the final accuracy, recomputed by scipy from the seeds' values read back from MLflow
    low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(at_2), scale=scipy_stats.sem(at_2))
    adam = next(r for r in _rows(out / "intervals_tuned.csv") if r["optimizer"] == "adam")
    assert (float(adam["final_acc_ci_low"]), float(adam["final_acc_ci_high"])) == pytest.approx((low, high))
    assert {r["optimizer"] for r in _rows(out / "tunability.csv")} == {"sgd", "momentum", "adam"}
    assert len(_rows(out / "pairs_tuned.csv")) == 3
    markdown = (out / "report.md").read_text()
    assert (
        "| optimizer" in markdown
        and "![optimization_history](optimization_history.png)" in markdown
        and "## Conclusions" in markdown
    )
    page = (out / "report.html").read_text()
    assert "Plotly.newPlot" in page and "<img" not in page and "<script src" not in page
    assert "Learning curves" in page
    assert client.get_run(study.user_attrs[PARENT_ATTR]).info.status == "FINISHED"  # ended with its sweep
    logged = {a.path for a in client.list_artifacts(study.user_attrs[PARENT_ATTR], "report")}
    expected = {"report.md", "report.html", "shootout.csv", "epochs.csv", "intervals_tuned.csv"}
    assert {f"report/{name}" for name in expected} <= logged


@pytest.fixture(scope="module")
def two_workloads(finished_sweep: Path, tmp_path_factory: pytest.TempPathFactory, write_idx_dataset) -> Path:
    """A copy of the shared sweep's folder with a second, smaller shoot-out beside it, on KMNIST files:
    momentum and Adam, one search trial each, then default and tuned on 3 seeds, run in this process."""
    shootout = tmp_path_factory.mktemp("two-workloads") / "both"
    shutil.copytree(finished_sweep, shootout)
    write_idx_dataset(shootout / "kmnist", "kmnist", n_train=256, n_test=64, seed=1)
    overrides = [*TINY[1:], "data.name=kmnist", f"data.dir={shootout / 'kmnist'}", "study.name=shootout_k"]
    overrides += ["study.n_trials=1", "study.retrain_seeds=3", "search.optimizer=[momentum, adam]"]
    sweep = load_sweep(CONF / "shootout.yaml", overrides)
    url = f"sqlite:///{shootout / 'optuna.db'}"
    created = create(sweep, url, f"sqlite:///{shootout / 'mlflow.db'}")
    run_worker(sweep.study.name, url)
    assert queue_retrains(created, sweep) == 4
    run_worker(sweep.study.name, url)
    return shootout


def _trained_seconds(client: MlflowClient, experiment: str, trial_run: str) -> list[float]:
    """The training seconds of the runs a trial trained, in the order they started: its seeds' runs, or its
    own run when it trained one seed."""
    runs = client.search_runs([experiment], f"tags.`{PARENT_TAG}` = '{trial_run}'") or [
        client.get_run(trial_run)
    ]
    return [r.data.metrics["total_seconds"] for r in sorted(runs, key=lambda r: r.info.start_time)]


def test_several_sweeps_are_compared_as_workloads_by_a_performance_profile(
    two_workloads: Path, monkeypatch
) -> None:
    monkeypatch.chdir(two_workloads)
    result = invoke("report", "shootout", "shootout_k", "--out", "both")
    assert result.exit_code == 0, result.output
    assert "Performance profile" in result.stdout and "Workloads" in result.stdout
    out = two_workloads / "both"
    workloads = {r["workload"]: r for r in _rows(out / "workloads.csv")}
    assert {n: r["dataset"] for n, r in workloads.items()} == {"shootout": "mnist", "shootout_k": "kmnist"}
    for name, row in workloads.items():  # each workload's own target, stated, as its own report has it
        assert row["target_acc"] == _rows(out / name / "shootout.csv")[0]["target_acc"]
        assert (out / name / "report.html").is_file()
    profile = {r["optimizer"]: r for r in _rows(out / "profile.csv")}
    assert set(profile) == {"sgd", "momentum", "adam"}
    kept = [n for n, r in workloads.items() if r["in_profile"] == "True"]
    for row in profile.values():  # ρ(τ): the share of those workloads within τ of the fastest
        ratios = [float(row[f"ratio_{n}"]) if row.get(f"ratio_{n}") else math.inf for n in kept]
        for tau in (1, 1.5, 2, 4):
            expected = sum(r <= tau for r in ratios) / len(kept) if kept else math.nan
            assert float(row[f"rho_{tau:g}"]) == pytest.approx(expected, nan_ok=True)
    page = (out / "report.html").read_text()
    assert "Performance profile" in page and "shootout_k/report.html" in page
    client = MlflowClient(f"sqlite:///{two_workloads / 'mlflow.db'}")
    for name in ("shootout", "shootout_k"):
        parent = _study(two_workloads, name).user_attrs[PARENT_ATTR]
        logged = {a.path for a in client.list_artifacts(parent, "report/workloads")}
        assert {"report/workloads/report.html", "report/workloads/profile.csv"} <= logged


def test_retrains_are_queued_once(shootout: Path) -> None:
    assert queue_retrains(_study(shootout), SHRUNK) == 0


def _in_process_sweep(tmp_path: Path, data: Path, spec: Path, *overrides: str) -> tuple[optuna.Study, str]:
    sweep = load_sweep(spec, [*TINY, f"data.dir={data}", *overrides])
    url, uri = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    create(sweep, url, uri)
    run_worker(sweep.study.name, url)
    return _study(tmp_path, sweep.study.name), uri


def test_the_seed_table_config_reports_in_the_seed_shape(tmp_path: Path, tiny_data: Path) -> None:
    study, _ = _in_process_sweep(tmp_path, tiny_data, CONF / "seed_table.yaml")
    assert sorted(trial_optimizer(t) for t in study.get_trials()) == sorted(SEED_ORDER)
    result = invoke("report", "seed_table", "--out", "table")
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "table" / "seed_table.csv")
    assert [r["optimizer"] for r in rows] == SEED_ORDER
    assert [float(r["published_val_acc_10"]) for r in rows] == [PUBLISHED_ACC_10[n] for n in SEED_ORDER]
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, 7))
    assert {"val_acc_1", "val_loss_1", "val_acc_2", "val_loss_2", "total_seconds"} <= set(rows[0])
    assert not (tmp_path / "table" / "shootout.csv").exists()


def test_a_two_objective_sweep_gets_a_pareto_front(tmp_path: Path, tiny_data: Path) -> None:
    overrides = (
        "study.time_objective=true",
        "study.pruner=none",
        "study.n_trials=3",
        "search.optimizer=[sgd, momentum]",
    )
    _in_process_sweep(tmp_path, tiny_data, CONF / "shootout.yaml", *overrides, "study.retrain_seeds=0")
    result = invoke("report", "shootout", "--out", "out")
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "out" / "pareto_front.png")
    assert not (tmp_path / "out" / "optimization_history.png").exists()


def test_report_of_an_unknown_or_unfinished_study_is_refused(tmp_path: Path, tiny_data: Path) -> None:
    result = invoke("report", "nope")
    assert result.exit_code == 2 and "nope" in result.stderr
    sweep = load_sweep(CONF / "seed_table.yaml", [*TINY, f"data.dir={tiny_data}"])
    create(sweep, f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = invoke("report", "seed_table")
    assert result.exit_code == 2 and "no completed trial" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_report_where_no_sweep_ran_creates_nothing(tmp_path: Path) -> None:
    result = invoke("report", "nosuch")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no study 'nosuch':") and "does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _entry(acc: list[list[float]], seconds: list[list[float]], name: str = "adam") -> Entry:
    curves = {"val_acc": np.array(acc), "epoch_seconds": np.array(seconds)}
    curves |= {"val_loss": 1 - curves["val_acc"], "train_loss": 1 - curves["val_acc"]}
    return Entry(name, TUNED, 0, {"optimizer": name, "batch_size": 64}, curves)


def test_per_seed_values_are_nan_where_a_seed_never_got_there() -> None:
    nan = math.nan
    entry = _entry([[0.5, 0.8, 0.9], [0.6, 0.7, nan]], [[2.0, 2.0, 2.0], [3.0, 3.0, nan]])
    np.testing.assert_equal(entry.seconds_to_each(0.8), [4.0, nan])  # the second seed never gets there
    np.testing.assert_equal(entry.seconds_to_each(0.5), [2.0, 3.0])
    np.testing.assert_equal(entry.seconds_to_each(0.95), [nan, nan])
    np.testing.assert_equal(entry.column("val_acc", 3), [0.9, nan])  # the seed that stopped early: NaN
    np.testing.assert_equal(entry.column("val_acc", 4), [nan, nan])


def test_seed_table_columns_follow_the_epochs_run() -> None:
    sweep = load_sweep(CONF / "seed_table.yaml", ["trainer.max_epochs=7"])
    entries = {
        n: _entry([[0.1 * i + 0.01 * e for e in range(7)]], [[1.0] * 7], n) for i, n in enumerate(SEED_ORDER)
    }
    results = Results(sweep, entries)
    table = epoch_table(results, weigh(results))
    assert table.title == "Seed table" and "published rank" in table.display.columns
    assert [c for c in table.display.columns if c.startswith("acc @")] == ["acc @1", "acc @5", "acc @7"]
    assert "published acc @10" not in table.display.columns  # Fashion-MNIST: ranks only
    assert list(table.numbers["rank"]) == ["6", "5", "4", "3", "2", "1"]  # one seed each: by value
    assert target_accuracy(Results(sweep, entries)) == 0.53  # 95 % of the best final accuracy, 0.56


def test_the_time_column_is_a_mean_over_the_optimizers_runs_and_says_what_it_includes() -> None:
    sweep = load_sweep(CONF / "quickstart.yaml", ["search.optimizer=[momentum, adam]"])
    best = {n: _entry([[0.8, 0.9]], [[4.0, 5.5]], n) for n in ("momentum", "adam")}  # 9.5 s: a first trial
    seconds = {"momentum": (9.5, 2.2, 2.3), "adam": (2.2, 2.4, 2.3)}
    table = epoch_table(results := Results(sweep, best, run_seconds=seconds), weigh(results))
    assert list(table.display["time"]) == ["0:04.7", "0:02.3"]  # not 0:09.5 for both best trials
    assert list(table.numbers["total_seconds"]) == pytest.approx([14.0 / 3, 2.3])
    assert list(table.numbers["timed_runs"]) == [3, 3]
    note = next(n for n in table.notes if n.startswith("time:"))
    assert "mean training time (m:ss) of one run over each optimizer's completed trials" in note
    assert "(3 runs each)" in note
    assert "except each worker's first run, which also paid the worker's warm-up" in note


def test_the_shootout_keeps_an_optimizer_whose_retrain_failed() -> None:
    sweep = load_sweep(CONF / "shootout.yaml", ["search.optimizer=[sgd, momentum]", "study.retrain_seeds=3"])
    slow, fast = (
        _entry([[0.5, 0.7], [0.6, 0.8], [0.55, 0.7]], [[2.0] * 2] * 3, "sgd"),
        _entry([[0.8, 0.9]] * 3, [[1.0] * 2] * 3),
    )
    results = Results(
        sweep, {"sgd": slow, "momentum": fast}, {"sgd": slow, "momentum": slow}, {"momentum": fast}
    )
    table = shootout_table(results, weigh(results, target=0.75))
    assert list(table.display["optimizer"]) == ["sgd", "momentum"]
    sgd, momentum = (row for _, row in table.display.iterrows())
    assert sgd["tuned acc"] == "—" and sgd["tuned hyperparameters"] == "retrain failed"
    assert sgd["default s to 0.75"] == "4.0 (1/3)" and momentum["tuned s to 0.75"] == "1.0"
    assert momentum["tuned acc"] == "0.9000 [0.9000, 0.9000]"
    assert (sgd["default group"], momentum["default group"]) == ("1", "1")  # the same defaults: one group
    assert momentum["tuned group"] == "—"  # alone in its phase: nothing to compare


def test_retrain_seeds_need_a_single_objective() -> None:
    from sweeps.config.files import ConfigError

    with pytest.raises(ConfigError, match="study.retrain_seeds"):
        load_sweep(CONF / "shootout.yaml", ["study.time_objective=true", "study.pruner=none"])
