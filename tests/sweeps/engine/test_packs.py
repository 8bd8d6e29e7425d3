"""Packed sweeps: a worker trains trials of one shape as one stacked model, and each trial still ends as it
would alone: its curves, its pruning, its divergence, once in Optuna and once in MLflow."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweeps.config.sweep import load_sweep
from sweeps.engine.objective import Started
from sweeps.engine.packs import alone_because, shape_of
from sweeps.engine.space import preset_config
from sweeps.engine.study import open_sweep
from sweeps.engine.worker import run_worker
from sweeps.names import SEARCH
from tests.sweeps.engine.test_samplers import _sweep, learnable  # noqa: F401 (a fixture)
from tests.sweeps.helpers import CONF

WORKLOAD = Path(__file__).resolve().parents[2] / "workload" / "conf"

pytestmark = pytest.mark.slow

GRID = ["study.sampler=grid", "search.optimizer=sgd", "search.lr=[1.0e-9, 0.03, 0.1, 1.0e+30]"]
"""Four trials of one shape: one that does not learn (pruned below 0.3 accuracy after its first epoch), two
that learn, one that diverges."""


def _packed_sweep(tmp: Path, data: Path, pack: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setattr(
        "sweeps.engine.study.pruner_for", lambda sweep: optuna.pruners.ThresholdPruner(lower=0.3)
    )
    tmp.mkdir()
    url, tracking = _sweep(tmp, data, "study.pruner=median", *GRID)
    run_worker("sweep", url, pack=pack)
    return url, tracking


def _ends(url: str, tracking: str) -> dict[float, tuple[TrialState, str, str, list[float]]]:
    """Per learning rate: the trial's state, its run's status and outcome, and its val_loss per epoch."""
    study, _ = open_sweep("sweep", url)
    client = MlflowClient(tracking)
    ends = {}
    for trial in study.get_trials(deepcopy=False):
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        curve = [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")]
        ends[trial.params["sgd.lr"]] = (trial.state, run.info.status, run.data.tags["sweeps.outcome"], curve)
    runs = client.search_runs([study.user_attrs["sweeps.experiment_id"]], "tags.`sweeps.trial` != ''")
    assert sorted(int(r.data.tags["sweeps.trial"]) for r in runs) == [0, 1, 2, 3]  # one run per trial
    return ends


def test_a_pack_ends_each_trial_as_it_would_end_alone(
    tmp_path: Path,
    learnable: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="sweeps.engine.packs"):
        packed = _ends(*_packed_sweep(tmp_path / "packed", learnable, 4, monkeypatch))
    alone = _ends(*_packed_sweep(tmp_path / "alone", learnable, 1, monkeypatch))

    assert "pack of 4 trials (0, 1, 2, 3): sgd, batch 64, 2 epochs" in caplog.text
    assert packed[1.0e-9][:3] == (TrialState.PRUNED, "KILLED", "pruned") and len(packed[1.0e-9][3]) == 1
    assert packed[1.0e30][:3] == (TrialState.FAIL, "FAILED", "diverged")
    for lr in (0.03, 0.1):
        assert packed[lr][:3] == (TrialState.COMPLETE, "FINISHED", "finished") and len(packed[lr][3]) == 2
    for lr, (state, status, outcome, curve) in packed.items():
        assert (state, status, outcome) == alone[lr][:3]
        assert curve == pytest.approx(alone[lr][3], rel=1e-4), lr


@pytest.mark.parametrize(
    ("dropout", "said"),
    [
        (0.0, "pack of 2 trials (0, 1)"),
        (0.5, "tests.workload.net:MLP uses torch's nn.Dropout, which cannot be packed"),
    ],
)
def test_a_users_network_is_packed_unless_its_dropout_draws_from_the_global_generator(
    tmp_path: Path,
    learnable: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    dropout: float,
    said: str,
) -> None:
    network = ["model.target=tests.workload.net:MLP", f"model.kwargs={{features: 784, dropout: {dropout}}}"]
    url, _ = _sweep(
        tmp_path, learnable, "study.pruner=none", "study.n_trials=2", "search.optimizer=adam", *network
    )
    with caplog.at_level(logging.INFO, logger="sweeps.engine.packs"):
        run_worker("sweep", url, pack=2)
    study, _ = open_sweep("sweep", url)
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.COMPLETE] * 2
    assert said in caplog.text


@pytest.mark.parametrize(
    ("spec", "overrides", "reason"),
    [
        (CONF / "sweep.yaml", [], None),
        (CONF / "sweep.yaml", ["study.repeats=2"], "study.repeats > 1"),
        (CONF / "sweep.yaml", ["scheduler.name=cosine"], "schedules are not packed"),
        (
            CONF / "sweep.yaml",
            ["search.optimizer=[sgd, tests.workload.optim:SignSGD]"],
            "no packed update rule",
        ),
        (CONF / "sweep.yaml", ["model.target=tests.workload.net:AutoEncoder"], "LightningModule"),
        (WORKLOAD / "shootout.yaml", [], "data.target"),
    ],
)
def test_a_trial_that_cannot_be_packed_says_why(spec: Path, overrides: list[str], reason: str | None) -> None:
    sweep = load_sweep(spec, overrides)
    cfg = preset_config(sweep, sweep.search.optimizers[-1])
    said = alone_because(Started(cfg, SEARCH, MlflowClient("sqlite://"), "run"), sweep)
    assert said is None if reason is None else reason in said


def test_pack_mates_share_all_but_hyperparameters_seed_and_initialisation() -> None:
    sweep = load_sweep(CONF / "sweep.yaml", [])
    changed = sweep.model_copy(update={"trainer": sweep.trainer.model_copy(update={"seed": 7})})
    changed = changed.model_copy(
        update={"optimizer": changed.optimizer.model_copy(update={"preset": "keras"})}
    )
    assert shape_of(changed) == shape_of(sweep)
    wider = sweep.model_copy(update={"data": sweep.data.model_copy(update={"batch_size": 128})})
    assert shape_of(wider) != shape_of(sweep)
