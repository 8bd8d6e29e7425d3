"""The MLflow record of one training run: the params and config before the fit, each epoch's row as it ends,
and the outcome after, all through :class:`FitRecord`. Lightning's MLflow logger creates the run, but the
trainer gets no logger: what a module logs is read once per epoch and written here with step = the epoch,
so a user's LightningModule logging per step cannot mix steps and epochs in one run's curves."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from mlflow.entities import Metric, RunTag

from sweeps.environ import scoped_environ
from sweeps.names import DEVICE_TAG, OUTCOME_TAG, REASON_TAG
from sweeps.tracking.environment import environment_tags
from sweeps.tracking.runs import flat_params
from sweeps.tracking.uris import artifact_location


class FitRecord:
    """One training run in MLflow: a new run in ``experiment``, or the run ``run_id`` created beforehand (a
    sweep's trial or seed run)."""

    def __init__(
        self,
        experiment: str,
        run_name: str | None,
        uri: str,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
        asynchronous: bool = False,
    ) -> None:
        from lightning.pytorch.loggers import MLFlowLogger

        run_tags = environment_tags() | dict(tags or {})
        self.logger = MLFlowLogger(
            experiment_name=experiment,
            run_name=run_name,
            tracking_uri=uri,
            tags=run_tags,
            artifact_location=artifact_location(uri),
            run_id=run_id,
        )
        self.client, self.run_id = self.logger.experiment, self.logger.run_id
        self.asynchronous = asynchronous
        self._pending: list[Any] = []
        if run_id is not None:  # the logger tags only the runs it creates
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in run_tags.items()])

    def start(self, params: Mapping[str, Any], config: dict, device: str) -> None:
        """The run's params (the contract's), the device it trains on, and its resolved config as
        ``config.yaml``."""
        self.logger.log_hyperparams(flat_params(params))
        self.client.log_batch(self.run_id, tags=[RunTag(DEVICE_TAG, device)])
        self.client.log_dict(self.run_id, config, "config.yaml")

    def log_epoch(self, metrics: Mapping[str, float], epoch: int) -> None:
        """One epoch's metrics, in one write, at step = the 1-based ``epoch``; queued on MLflow's background
        writer when the record is asynchronous (a pack's: its members' writes do not hold up its training)."""
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, epoch) for k, v in metrics.items()]
        written = self.client.log_batch(self.run_id, metrics=batch, synchronous=not self.asynchronous)
        if written is not None:
            self._pending.append(written)

    def flush(self) -> None:
        """Wait for the queued epoch writes: a run is ended only once its curves are stored (their errors are
        raised here)."""
        while self._pending:
            self._pending.pop(0).wait()

    def ended(self, outcome: str, status: str, reason: str) -> None:
        """A fit that ended with an exception: its outcome and reason as tags, and its MLflow status."""
        self.flush()
        self.client.log_batch(self.run_id, tags=[RunTag(OUTCOME_TAG, outcome), RunTag(REASON_TAG, reason)])
        self.client.set_terminated(self.run_id, status)

    def finished(self, finals: Mapping[str, float], epochs: int, diverged: str | None) -> None:
        """A fit that ran to its end (or stopped diverged): final metrics at step = the epochs done and the
        outcome in one write, since each MLflow write to SQLite is a transaction of its own; the run ends
        ``FINISHED``, or ``FAILED`` when diverged."""
        self.flush()
        now = int(time.time() * 1000)
        tags = {OUTCOME_TAG: "diverged", REASON_TAG: diverged} if diverged else {OUTCOME_TAG: "finished"}
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, v, now, epochs) for k, v in finals.items() if math.isfinite(v)],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.set_terminated(self.run_id, "FAILED" if diverged else "FINISHED")


def kept_tracking_env() -> AbstractContextManager[None]:
    """Lightning's MLflow logger exports its URI to ``MLFLOW_TRACKING_URI``; the next run must not see it."""
    return scoped_environ(kept=["MLFLOW_TRACKING_URI"])
