"""One folder holds everything the tool writes in the working directory by default: the study, the MLflow
store and its artifacts, the checkpoints, the logs and the reports; ``$SWEEPS_DIR`` or ``sweeps --dir`` moves
it, and a URL given explicitly (or exported, as ``MLFLOW_TRACKING_URI``) is used as given."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sweeps.engine.checkpoints import FolderStore, store_for
from sweeps.engine.servers import Unreachable, check_storage
from sweeps.engine.storage.rdb import open_storage
from sweeps.engine.storage.urls import storage_url
from sweeps.tracking.uris import TRACKING_ENV, artifact_location, tracking_uri
from sweeps.workdir import DEFAULT_FOLDER, FOLDER_ENV, LOGS, REPORTS, RUNS, STUDIES
from tests.sweeps.helpers import REPO, invoke, squash


def test_every_default_path_is_in_one_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FOLDER_ENV)
    out = tmp_path.resolve() / DEFAULT_FOLDER
    url, uri = storage_url(), tracking_uri()
    assert (url, uri) == (f"sqlite:///{out / STUDIES}", f"sqlite:///{out / RUNS}")
    assert artifact_location(uri) == (out / "mlartifacts").as_uri()
    assert store_for(url, "s", uri, "parent") == FolderStore(out / "checkpoints" / "s")
    assert [p.name for p in tmp_path.iterdir()] == [DEFAULT_FOLDER]  # the folder only: SQLite makes the files


def test_the_folder_moves_with_its_variable_and_an_exported_tracking_uri_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FOLDER_ENV, str(tmp_path / "elsewhere"))
    assert storage_url() == f"sqlite:///{tmp_path / 'elsewhere' / STUDIES}"
    monkeypatch.setenv(TRACKING_ENV, "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000"
    assert tracking_uri("sqlite:///flag.db") == f"sqlite:///{tmp_path.resolve() / 'flag.db'}"


def test_sweeps_dir_names_the_folder_for_every_command(tmp_path: Path) -> None:
    result = invoke("--dir", "mine", "report", "nosuch")
    assert result.exit_code == 2
    assert str(tmp_path.resolve() / "mine" / STUDIES) in squash(result.stderr)
    assert not (tmp_path / "mine").exists()  # a report of nothing creates nothing
    assert invoke("--dir", "mine", "status", "nosuch").exit_code == 2
    assert not (tmp_path / "mine").exists()


def test_a_tools_files_go_to_the_folder_unless_out_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FOLDER_ENV)
    args = ["trajectories", "--steps", "3", "--surfaces", "saddle", "--optimizers", "sgd", "--no-gif"]
    assert invoke(*args).exit_code == 0
    assert (tmp_path / DEFAULT_FOLDER / "trajectories" / "trajectories.png").is_file()
    assert invoke(*args, "--out", "here").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DEFAULT_FOLDER, "here"])


def test_the_folder_is_ignored_by_git() -> None:
    for path in (STUDIES, f"{LOGS}/s/worker-0.log", f"{REPORTS}/s/report.md"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{DEFAULT_FOLDER}/{path}"], cwd=REPO)
        assert ignored.returncode == 0, path


def test_a_study_may_go_in_the_folder_before_it_exists_but_not_in_a_mistyped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FOLDER_ENV)
    check_storage(storage_url())  # the tool's folder is made when the study is opened
    assert not (tmp_path / DEFAULT_FOLDER).exists()
    open_storage(storage_url(), heartbeat=False)
    assert (tmp_path / DEFAULT_FOLDER / STUDIES).is_file()
    with pytest.raises(Unreachable, match="folder that does not exist"):
        check_storage(storage_url("sqlite:///typo/optuna.db"))
