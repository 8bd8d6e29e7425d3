"""Telling a trial's end: a trial already finished in the storage is no error."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from optuna.trial import TrialState

from sweeps.engine.tell import tell
from tests.sweeps.engine.test_worker import sqlite_study


def test_a_tell_that_finds_its_trial_finished_keeps_what_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its own write committed before the connection dropped (the storage retried it), or another worker
    failed the trial while the database was away: neither is an error, the second is logged."""
    study = sqlite_study(tmp_path)
    with pytest.warns(UserWarning, match="Heartbeat"):
        mine, lost = study.ask(), study.ask()
    study.tell(mine, 0.5)
    study._storage.set_trial_state_values(lost._trial_id, TrialState.FAIL)
    with caplog.at_level(logging.WARNING, logger="sweeps.engine.tell"):
        assert tell(study, mine, 0.5, None).state == TrialState.COMPLETE
        assert "another worker" not in caplog.text
        assert tell(study, lost, 0.7, None).state == TrialState.FAIL
    assert "trial 1 was failed by another worker while the database was away" in caplog.text
    assert [t.value for t in study.trials] == [0.5, None]
