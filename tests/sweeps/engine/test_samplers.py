"""Every sampler and every pruner in a real sweep: a worker trains each trial on tiny learnable data, Optuna
records it, MLflow holds its run; a pruned trial's run ends KILLED at the epoch it was cut."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine.study import create, open_sweep
from sweeps.engine.worker import run_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def learnable(tmp_path_factory: pytest.TempPathFactory, write_idx: object) -> Path:
    """A tiny MNIST whose label is written in the image (a bright block at a place per class, plus noise):
    a good learning rate reaches high accuracy in an epoch, a tiny one stays at chance."""
    folder = tmp_path_factory.mktemp("learnable")
    generator = torch.Generator().manual_seed(0)
    for n, (images, labels) in (
        (200, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
        (100, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
    ):
        y = torch.arange(n) % 10
        x = torch.randint(0, 60, (n, 28, 28), generator=generator)
        for k in range(10):
            row, col = divmod(k, 4)
            x[y == k, 2 + 7 * row : 8 + 7 * row, 1 + 7 * col : 7 + 7 * col] = 255
        write_idx(folder / images, x.to(torch.uint8))  # type: ignore[operator]
        write_idx(folder / labels, y.to(torch.uint8))  # type: ignore[operator]
    return folder


def _sweep(tmp: Path, data: Path, *overrides: str) -> tuple[str, str]:
    spec = tmp / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "data": {"name": "mnist", "dir": str(data), "download": False, "holdout_size": 50},
                "trainer": {"max_epochs": 2, "accelerator": "cpu"},
                "study": {"name": "sweep"},
                "search": {"optimizer": ["sgd", "momentum"], "lr": {"low": 1.0e-3, "high": 0.3, "log": True}},
            }
        )
    )
    sweep = load_sweep(spec, overrides)
    url, tracking = f"sqlite:///{tmp / 'optuna.db'}", f"sqlite:///{tmp / 'mlflow.db'}"
    create(sweep, url, tracking)
    return url, tracking


@pytest.mark.parametrize(
    "overrides",
    [
        ["study.sampler=tpe", "study.n_trials=3"],
        ["study.sampler=random", "study.n_trials=3"],
        ["study.sampler=cmaes", "study.n_trials=3", "search.optimizer=adam"],
        ["study.sampler=qmc", "study.n_trials=3", "search.optimizer=momentum"],
        ["study.sampler=grid", "search.optimizer=[sgd,adam]", "search.lr=[0.01,0.1]"],
    ],
    ids=["tpe", "random", "cmaes", "qmc", "grid"],
)
def test_every_sampler_runs_a_real_sweep(tmp_path: Path, learnable: Path, overrides: list[str]) -> None:
    url, tracking = _sweep(tmp_path, learnable, "study.pruner=none", *overrides)
    study, sweep = open_sweep("sweep", url)
    expected = sweep.study.n_trials
    assert run_worker("sweep", url) == expected

    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * expected
    runs = MlflowClient(tracking).search_runs(
        [study.user_attrs["sweeps.experiment_id"]], "tags.`sweeps.trial` != ''"
    )
    assert sorted(int(r.data.tags["sweeps.trial"]) for r in runs) == [t.number for t in trials]
    assert {r.info.status for r in runs} == {"FINISHED"}
    if sweep.study.sampler == "grid":  # each configuration once
        assert len({tuple(sorted(t.params.items())) for t in trials}) == expected == 4


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_every_pruner_prunes_a_real_trial(tmp_path: Path, learnable: Path, pruner: str) -> None:
    """Learning rates from good to hopeless: the hopeless ones trail every good curve and are cut."""
    url, tracking = _sweep(
        tmp_path,
        learnable,
        f"study.pruner={pruner}",
        "study.sampler=random",
        "study.n_trials=7",
        "search.optimizer=adam",
        "search.lr={low: 1.0e-9, high: 0.01, log: true}",
    )
    study, _ = open_sweep("sweep", url)
    run_worker("sweep", url)

    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    assert pruned, [(t.state, t.params) for t in study.get_trials(deepcopy=False)]
    client = MlflowClient(tracking)
    for trial in pruned:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED"
        assert run.data.tags["sweeps.trial_state"] == "PRUNED"
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert epochs == list(range(1, len(epochs) + 1))
        assert run.data.tags["sweeps.reason"].startswith(f"pruned after epoch {len(epochs)}:")
