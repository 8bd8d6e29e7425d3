"""Trial checkpoints: every epoch's end saves the whole training state, so that a trial re-run after its
worker was lost resumes where it stopped and ends with the curve an uninterrupted run would have drawn.

What is saved is Lightning's own checkpoint (``Trainer.save_checkpoint``: weights, optimizer and scheduler
states, the loops' epoch and step, each callback's state, among them the epoch rows already written) plus
every random state the next epoch draws from: torch's, CUDA's, numpy's and Python's global generators and
every ``torch.Generator`` the module or the data module holds (the data order's, a per-trial dropout
generator's). ``Trainer.fit(ckpt_path=...)`` restores the first part; the random states are set again when
training starts, after anything that set up the run has drawn from them. A pack's trials each save their own
file, in the format of the same trial trained alone (its weights and optimizer state cut from the pack's:
:meth:`models.pack.PackModule.alone`), and a pack resumes from its trials' files joined; so each trial of a
lost pack resumes, re-packed or alone.

A callback of our own rather than Lightning's ``ModelCheckpoint``: that one keeps the top-k files of a
monitored metric in a directory; a trial needs its latest state under a key that outlives the worker, in a
store that is either a folder or the tracking server, and removed once the trial is over.

Where the store is: beside the study (``<folder of the SQLite file>/checkpoints/<study>/``) when the study is
a local SQLite file, else among the artifacts of the sweep's parent run on the tracking server
(``checkpoints/...``), which every machine of the sweep reaches. The layout is the same in both:
``trial-<n>/seed-<s>/epoch-<e>.ckpt``, where ``trial-<n>`` is the trial's key (see :func:`trial_key`). The
newest epoch is written before the previous one is deleted, so a worker killed mid-upload leaves the
previous epoch readable.
"""

from __future__ import annotations

import logging
import pickle
import random
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import lightning as L
import numpy as np
import optuna
import torch
from lightning.pytorch.callbacks import Callback
from optuna.trial import FrozenTrial, TrialState

from sweeps.compat import checkpoint_state
from sweeps.engine.study import best_search
from sweeps.names import CHECKPOINT_ATTR, SEARCH, phase
from sweeps.tracking.artifacts import ArtifactStore
from sweeps.tracking.uris import SQLITE

if TYPE_CHECKING:
    from sweeps.engine.workload import Workload

_logger = logging.getLogger(__name__)
_EPOCH = re.compile(r"^epoch-(\d+)\.ckpt$")
FORMAT = 2
"""What a checkpoint's ``sweeps.format`` says of its layout (2: one trial's file, packs join them); a file of
another layout (an older version's) is passed over, and the run starts afresh instead of failing."""


class Store(Protocol):
    """Where checkpoints live: files under ``trial-<n>/seed-<s>/`` keys."""

    def put(self, key: str, file: Path) -> None:
        """Store ``file`` under ``key/<file name>``."""

    def files(self, key: str) -> list[str]:
        """The names of the files under ``key``."""

    def fetch(self, key: str, name: str, into: Path) -> Path:
        """A local copy of ``key/name`` in the folder ``into``."""

    def remove(self, key: str, name: str | None = None) -> None:
        """Delete ``key/name``, or everything under ``key``."""

    def trials(self) -> list[str]:
        """The trial keys that hold anything."""


@dataclass(frozen=True)
class FolderStore:
    """A local folder; a file is written beside its final name and renamed, so a reader never sees half."""

    root: Path

    def put(self, key: str, file: Path) -> None:
        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{file.name}.partial"
        shutil.copyfile(file, partial)
        partial.replace(folder / file.name)

    def files(self, key: str) -> list[str]:
        folder = self.root / key
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def fetch(self, key: str, name: str, into: Path) -> Path:
        return self.root / key / name

    def remove(self, key: str, name: str | None = None) -> None:
        target = self.root / key if name is None else self.root / key / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    def trials(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []


def store_for(storage_url: str, study: str, tracking_uri: str, parent_run_id: str) -> Store:
    """A sweep's checkpoint store: a folder beside a SQLite study (its workers share the machine), else the
    parent run's artifacts on the tracking server (which every machine of the sweep reaches)."""
    if storage_url.startswith(SQLITE):
        return FolderStore(Path(storage_url.removeprefix(SQLITE)).parent / "checkpoints" / study)
    return ArtifactStore(tracking_uri, parent_run_id)


def trial_key(trial: optuna.Trial) -> str:
    """The key of a trial's checkpoints, kept in its user attrs: Optuna's heartbeat retry copies them to the
    trial that re-runs a lost one, under a new number, so the re-run finds what the lost one saved."""
    key = trial.user_attrs.get(CHECKPOINT_ATTR)
    if key is None:
        key = f"trial-{trial.number}"
        trial.set_user_attr(CHECKPOINT_ATTR, key)
    return key


def _epochs(store: Store, key: str) -> list[tuple[int, str]]:
    """(epoch, file name) of the checkpoints under ``key``, newest first."""
    found = ((_EPOCH.match(name), name) for name in store.files(key))
    return sorted(((int(m.group(1)), name) for m, name in found if m), reverse=True)


@dataclass(frozen=True)
class Checkpointing:
    """One training run's checkpoints: ``key`` in ``store``."""

    store: Store
    key: str

    def saved_epoch(self) -> int:
        """The newest epoch saved (0: none)."""
        saved = _epochs(self.store, self.key)
        return saved[0][0] if saved else 0

    def latest(self, scratch: Path) -> dict[str, Any] | None:
        """The newest readable checkpoint, or ``None`` to start afresh. A file that is not a whole
        ``torch.save`` archive (cut off by a killed upload) is passed over for the one before. A file holding
        anything but tensors and plain data is refused and the run starts afresh: the store (an MLflow server
        without authentication) is writable by others, and unpickling runs code."""
        for epoch, name in _epochs(self.store, self.key):
            path = self.store.fetch(self.key, name, scratch)
            if not zipfile.is_zipfile(path):
                _logger.warning("%s: checkpoint %s is unreadable; trying an older one", self.key, name)
                continue
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                reason = str(exc).split("WeightsUnpickler error: ")[-1].split(". ")[0]
                _logger.error(
                    "%s: refused checkpoint %s: it holds more than tensors and plain data (%s); the run"
                    " starts afresh",
                    self.key,
                    name,
                    reason,
                )
                return None
            if loaded.get("sweeps.format") != FORMAT:
                _logger.warning(
                    "%s: checkpoint %s was written by another version of sweeps; the run starts afresh",
                    self.key,
                    name,
                )
                return None
            _logger.info("%s resumes from its checkpoint of epoch %d", self.key, epoch)
            return loaded
        return None


def resumed(targets: list[Checkpointing], workload: Workload, scratch: Path) -> Path | None:
    """The checkpoint a fit resumes from, joined from its members' newest (all of one epoch), or ``None``
    to start afresh."""
    saved = [target.latest(scratch) for target in targets]
    if any(checkpoint is None for checkpoint in saved):
        return None
    if len({checkpoint["epoch"] for checkpoint in saved}) > 1:
        _logger.warning(
            "%s: saved at different epochs; the pack starts afresh", ", ".join(t.key for t in targets)
        )
        return None
    callbacks = {
        key: {**state, "members": [c["callbacks"][key]["members"][0] for c in saved]}
        if "members" in state
        else state
        for key, state in saved[0]["callbacks"].items()
    }
    path = scratch / "resumed.ckpt"
    torch.save({**workload.joined(saved), "callbacks": callbacks}, path)
    return path


class Checkpointer(Callback):
    """Saves each member's state at the end of every training epoch (after its validation and its row),
    under the member's own key; on a resumed fit, sets the saved random states again as training starts.
    A callback's state that holds ``members`` (one entry each) is split among their files."""

    def __init__(self, targets: list[Checkpointing], scratch: Path, workload: Workload) -> None:
        self.targets, self.scratch, self.workload = targets, scratch, workload
        self._generators: list[dict[str, torch.Generator]] = []
        self._saved_random: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._generators = self.workload.generators(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._saved_random is not None:
            _set_random_states(self._saved_random, self._generators)
            keys = ", ".join(target.key for target in self.targets)
            _logger.info("%s resumed at epoch %d", keys, trainer.current_epoch + 1)
            self._saved_random = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        checkpoint = checkpoint_state(trainer)
        for member, target in enumerate(self.targets):
            alone = self.workload.alone(checkpoint, member)
            if alone is None:
                continue
            callbacks = {
                key: {**state, "members": [state["members"][member]]} if "members" in state else state
                for key, state in checkpoint["callbacks"].items()
            }
            path = self.scratch / f"epoch-{epoch:04d}.ckpt"
            torch.save({**alone, "callbacks": callbacks, "sweeps.format": FORMAT}, path)
            target.store.put(target.key, path)
            path.unlink()
            for _, name in _epochs(target.store, target.key)[1:]:
                target.store.remove(target.key, name)

    def state_dict(self) -> dict[str, Any]:
        return {
            "random": _random_states(),
            "members": [{name: g.get_state() for name, g in owned.items()} for owned in self._generators],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved_random = state_dict


def _random_states() -> dict[str, Any]:
    """numpy's key array as a tensor: a checkpoint loads as tensors and plain data only
    (``weights_only=True``), and a numpy array is neither."""
    name, keys, *rest = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (name, torch.from_numpy(keys.copy()), *rest),
        "python": random.getstate(),
    }


def _set_random_states(saved: dict[str, Any], owned: list[dict[str, torch.Generator]]) -> None:
    states = saved["random"]
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    random.setstate(states["python"])
    for generators_of, states_of in zip(owned, saved["members"], strict=True):
        for name, state in states_of.items():
            if name in generators_of:
                generators_of[name].set_state(state)


def keeps(trial: FrozenTrial, best: int | None) -> bool:
    """Whether a key whose latest trial is ``trial`` keeps its checkpoints: while it runs or waits (a lost
    trial's re-run waits with its key), and once complete if it is a retrain or the best search trial."""
    if trial.state in (TrialState.RUNNING, TrialState.WAITING):
        return True
    return trial.state == TrialState.COMPLETE and (phase(trial) != SEARCH or trial.number == best)


def sweep_up(study: optuna.Study, store: Store) -> list[str]:
    """Delete the checkpoints of finished trials except the best search trial's and the retrains'; returns
    the keys deleted. The trials are read before the store is listed, so a key saved meanwhile is kept."""
    trials = study.get_trials(deepcopy=False)
    leader = best_search(study, trials)
    best = leader.number if leader else None
    # per checkpoint key, its latest trial: a lost trial's re-run, once there is one
    latest = {t.user_attrs[CHECKPOINT_ATTR]: t for t in trials if CHECKPOINT_ATTR in t.user_attrs}
    gone = [key for key in store.trials() if key in latest and not keeps(latest[key], best)]
    for key in gone:
        store.remove(key)
    return gone
