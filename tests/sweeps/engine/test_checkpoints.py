"""Trial checkpoints: a run stopped after some epochs resumes from its newest checkpoint and ends with the
curves of an uninterrupted run; the stores (a folder, MLflow artifacts); which trials keep theirs."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import optuna
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from sweeps.config.train import load
from sweeps.engine.checkpoints import FORMAT, Checkpointing, FolderStore, store_for, sweep_up
from sweeps.engine.training import Run, fit, train
from sweeps.engine.workload import build_pack
from sweeps.tracking.artifacts import ArtifactStore
from tests.sweeps.helpers import TRAIN_YAML, tiny

CURVES = ("train_loss", "val_loss", "val_acc")


class Killed(RuntimeError):
    """The worker went away."""


class StopAfter(Callback):
    """A worker killed as the epoch after ``epochs`` starts, its checkpoints saved."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epochs:
            raise Killed


def curves(result) -> list[tuple[float, ...]]:
    return [tuple(row[k] for k in ("epoch", *CURVES)) for row in result.history]


def flat(result) -> list[float]:
    return [value for row in curves(result) for value in row]


@pytest.mark.parametrize("overrides", [[], ["scheduler.name=cosine", "scheduler.warmup_epochs=1"]])
def test_a_stopped_run_resumes_at_its_saved_epoch_with_the_uninterrupted_curves(
    overrides, tiny_data, store, tmp_path
):
    cfg = load(TRAIN_YAML, tiny(tiny_data, "trainer.max_epochs=4", "trainer.seed=3", *overrides))
    whole = train(cfg, store.uri)
    saved = Checkpointing(FolderStore(tmp_path / "checkpoints"), "trial-0/seed-3")

    with pytest.raises(Killed):
        train(cfg, store.uri, checkpoints=saved, callbacks=[StopAfter(2)])
    assert FolderStore(tmp_path / "checkpoints").files("trial-0/seed-3") == ["epoch-0002.ckpt"]
    resumed = train(cfg, store.uri, checkpoints=saved)

    assert curves(resumed) == curves(whole)
    history = store.history(resumed.run_id, "val_loss")
    assert [step for step, _ in history] == [1, 2, 3, 4]  # the restored epochs are written to the new run
    assert resumed.best_val_acc == whole.best_val_acc
    assert saved.store.files(saved.key) == ["epoch-0004.ckpt"]  # only the newest epoch is kept

    again = train(cfg, store.uri, checkpoints=saved)  # a seed finished before its trial's worker was lost
    assert curves(again) == curves(whole)
    assert [step for step, _ in store.history(again.run_id, "val_loss")] == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_stopped_packs_trials_resume_from_their_own_checkpoints_packed_or_alone(tiny_data, store, tmp_path):
    """Each member of a pack saves under its own key as the same trial alone would: the pack resumes from
    them with the uninterrupted pack's curves, and a member resumes alone from its own."""
    cfgs = [
        load(
            TRAIN_YAML, tiny(tiny_data, "trainer.max_epochs=3", f"trainer.seed={seed}", f"optimizer.lr={lr}")
        )
        for seed, lr in ((3, 1e-4), (4, 3e-4))
    ]
    build = partial(build_pack, cfgs)
    whole = fit([Run(cfg) for cfg in cfgs], build, store.uri)
    folder = FolderStore(tmp_path / "checkpoints")
    runs = [
        Run(c, checkpoints=Checkpointing(folder, f"trial-{k}/seed-{c.trainer.seed}"))
        for k, c in enumerate(cfgs)
    ]

    stopped = fit(runs, build, store.uri, callbacks=[StopAfter(2)])
    assert all(isinstance(result, Killed) for result in stopped)
    assert [folder.files(run.checkpoints.key) for run in runs] == [["epoch-0002.ckpt"]] * 2
    shutil.copytree(folder.root, tmp_path / "copy")
    packed = fit(runs, build, store.uri)
    own = Checkpointing(FolderStore(tmp_path / "copy"), runs[1].checkpoints.key)
    alone = train(cfgs[1], store.uri, checkpoints=own)

    for resumed, uninterrupted in zip(packed, whole, strict=True):
        assert flat(resumed) == pytest.approx(flat(uninterrupted), rel=1e-6)
        assert [step for step, _ in store.history(resumed.run_id, "val_loss")] == [1, 2, 3]
    assert curves(alone)[:2] == curves(whole[1])[:2]  # restored, as the pack saved them
    assert flat(alone) == pytest.approx(flat(whole[1]), rel=1e-4)  # a member trains as it would alone
    assert [step for step, _ in store.history(alone.run_id, "val_loss")] == [1, 2, 3]


def test_an_unreadable_newest_checkpoint_gives_way_to_the_one_before(tmp_path):
    folder = FolderStore(tmp_path / "store")
    for epoch, body in ((1, None), (2, b"cut off by a killed upload")):
        file = tmp_path / f"epoch-{epoch:04d}.ckpt"
        if body is None:
            torch.save({"epoch": epoch, "sweeps.format": FORMAT}, file)
        else:
            file.write_bytes(body)
        folder.put("trial-3/seed-0", file)

    latest = Checkpointing(folder, "trial-3/seed-0").latest(tmp_path)

    assert latest == {"epoch": 1, "sweeps.format": FORMAT}
    assert Checkpointing(folder, "trial-4/seed-0").latest(tmp_path) is None


def test_an_older_versions_checkpoint_is_passed_over_and_the_run_starts_afresh(tmp_path, caplog):
    folder = FolderStore(tmp_path / "store")
    file = tmp_path / "epoch-0002.ckpt"
    torch.save({"epoch": 2, "state_dict": {}, "callbacks": {}}, file)  # no format: written before packs saved
    folder.put("trial-3/seed-0", file)

    with caplog.at_level("WARNING", logger="sweeps.engine.checkpoints"):
        assert Checkpointing(folder, "trial-3/seed-0").latest(tmp_path) is None
    assert "written by another version of sweeps; the run starts afresh" in caplog.text


class Payload:
    """What an attacker uploads as a checkpoint: unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_tampered_checkpoint_is_refused_unrun_and_the_run_starts_afresh(tiny_data, store, tmp_path, caplog):
    cfg = load(TRAIN_YAML, tiny(tiny_data, "trainer.max_epochs=2", "trainer.seed=3"))
    marker = tmp_path / "payload-ran"
    tampered = tmp_path / "epoch-9999.ckpt"
    torch.save({"epoch": 9999, "state_dict": {}, "callbacks": Payload(marker)}, tampered)
    saved = Checkpointing(FolderStore(tmp_path / "checkpoints"), "trial-0/seed-3")
    saved.store.put(saved.key, tampered)

    with caplog.at_level("ERROR", logger="sweeps.engine.checkpoints"):
        resumed = train(cfg, store.uri, checkpoints=saved)

    assert not marker.exists()
    refused = [
        r.getMessage() for r in caplog.records if "refused checkpoint epoch-9999.ckpt" in r.getMessage()
    ]
    assert len(refused) == 1 and "starts afresh" in refused[0] and "GLOBAL getattr" in refused[0]
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert curves(resumed) == curves(train(cfg, store.uri))


def exercise(store, tmp_path: Path) -> None:
    file = tmp_path / "epoch-0001.ckpt"
    file.write_bytes(b"state")
    store.put("trial-0/seed-0", file)
    store.put("trial-1/seed-0", file)
    assert store.files("trial-0/seed-0") == ["epoch-0001.ckpt"]
    assert store.fetch("trial-0/seed-0", "epoch-0001.ckpt", tmp_path / "fetched").read_bytes() == b"state"
    assert store.trials() == ["trial-0", "trial-1"]
    store.remove("trial-0/seed-0", "epoch-0001.ckpt")
    assert store.files("trial-0/seed-0") == []
    store.remove("trial-1")
    assert "trial-1" not in store.trials()


def test_a_folder_store_beside_a_sqlite_study(tmp_path):
    store = store_for(f"sqlite:///{tmp_path}/optuna.db", "s1", "sqlite:///unused.db", "run")

    assert store == FolderStore(tmp_path / "checkpoints" / "s1")
    exercise(store, tmp_path)


def test_an_artifact_store_on_the_parent_run_otherwise(tmp_path, store):
    run = store.client.create_run(store.client.create_experiment("e")).info.run_id
    artifacts = store_for("postgresql+psycopg://db/sweeps", "s1", store.uri, run)

    assert artifacts == ArtifactStore(store.uri, run)
    exercise(artifacts, tmp_path)


def _trial(number: int, state: TrialState, value: float | None = None, **attrs: object):
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"optimizer": "adam"},
        distributions={"optimizer": CategoricalDistribution(["adam"])},
        user_attrs={"sweeps.checkpoint": f"trial-{attrs.pop('key', number)}", **attrs},
    )


def test_only_running_waiting_the_best_and_retrains_keep_their_checkpoints(tmp_path):
    study = optuna.create_study(direction="maximize")
    for trial in (
        _trial(0, TrialState.COMPLETE, 0.9),  # the best
        _trial(1, TrialState.COMPLETE, 0.5),
        _trial(2, TrialState.PRUNED),
        _trial(3, TrialState.FAIL),  # lost, and re-run by trial 5 (same key) ...
        _trial(4, TrialState.RUNNING),
        _trial(5, TrialState.WAITING, key=3),  # ... which waits
        _trial(6, TrialState.FAIL),  # lost for good (retries spent) or interrupted
        _trial(7, TrialState.COMPLETE, 0.95, **{"sweeps.phase": "tuned"}),  # a retrain beats every search
    ):
        study.add_trial(trial)
    folder = FolderStore(tmp_path / "store")
    file = tmp_path / "epoch-0001.ckpt"
    file.write_bytes(b"state")
    for n in range(9):  # trial-5 and trial-8: keys no trial holds (as one that started after the read)
        folder.put(f"trial-{n}/seed-0", file)

    assert sorted(sweep_up(study, folder)) == ["trial-1", "trial-2", "trial-6"]
    assert folder.trials() == ["trial-0", "trial-3", "trial-4", "trial-5", "trial-7", "trial-8"]
