"""``sweeps ui``: refusals in-process; real servers on a finished sweep, stopped by Ctrl-C; the MLflow UI read
by headless Chromium, which leaves a screenshot in ``test-artifacts/`` (and the test's ``tmp_path``)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from sweeps.engine.storage.rdb import open_storage
from sweeps.workdir import LOGS
from tests.sweeps.helpers import REPO, Store, free_ports, invoke, squash, sweeps_process

STUDY = "shootout"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium")
READY_S = 240  # two servers starting on two busy cores


@dataclass(frozen=True)
class Finished:
    """A finished sweep, reported: its Optuna storage, MLflow experiment and parent run."""

    storage: str
    experiment_id: str
    study_id: int
    parent_run: str


@pytest.fixture(scope="module")
def finished(finished_sweep: Path) -> Finished:
    """The shared finished sweep (``finished_sweep``), reported."""
    storage = f"sqlite:///{finished_sweep / 'optuna.db'}"
    attrs = optuna.load_study(study_name=STUDY, storage=storage).user_attrs
    study_id = open_storage(storage, heartbeat=False).get_study_id_from_name(STUDY)
    return Finished(storage, attrs["sweeps.experiment_id"], study_id, attrs["sweeps.parent_run_id"])


@contextmanager
def _serving(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """``python -m sweeps ui ARGS`` once it has printed its URLs; its output lines so far (and later) in the
    list. Interrupted on leaving if still running."""
    proc = sweeps_process("ui", *args, cwd=cwd, env={"PYTHONUNBUFFERED": "1"})
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + READY_S
        while not any("Ctrl-C" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no URLs after {READY_S} s: {''.join(lines)}"
            time.sleep(0.2)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        reader.join(10)
        proc.stdout.close()


def _url(lines: list[str], name: str) -> str:
    (line,) = [line for line in lines if line.startswith(f"{name}: ")]
    return line.removeprefix(f"{name}: ").strip()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc (children of children included)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_an_unknown_study_is_refused_naming_the_studies_there(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="held", storage=storage)
    result = invoke("ui", "missing", "--storage", storage)
    assert result.exit_code == 2
    assert "no study 'missing'" in result.stderr and "held" in result.stderr


def test_no_mlflow_store_here_is_refused_instead_of_creating_an_empty_one(tmp_path: Path) -> None:
    result = invoke("ui")
    assert result.exit_code == 2
    assert squash(f"no MLflow store at sqlite:///{tmp_path / 'mlflow.db'}") in squash(result.stderr)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_taken_port_is_refused_before_anything_starts(store: Store, tmp_path: Path) -> None:
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("ui", "--tracking-uri", store.uri, "--port", str(port))
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not Path(LOGS).exists()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="held", storage=storage)
    same = invoke(
        "ui", "--tracking-uri", store.uri, "--storage", storage, "--optuna", "--optuna-port", "5000"
    )
    assert same.exit_code == 2 and "ports must differ" in same.stderr


def test_a_tracking_server_is_printed_not_started_with_its_password_masked() -> None:
    result = invoke("ui", "--tracking-uri", "http://me:hunter2@mlflow.example:5000")
    assert result.exit_code == 0, result.output
    assert "http://me:***@mlflow.example:5000" in result.stdout and "hunter2" not in result.output
    assert not Path(LOGS).exists()


@pytest.mark.slow
def test_ui_serves_the_sweep_and_its_study_and_ctrl_c_stops_both(finished: Finished, tmp_path: Path) -> None:
    mlflow_port, optuna_port = free_ports(2)
    args = ["--storage", finished.storage, "--port", str(mlflow_port)]
    args += ["--optuna", "--optuna-port", str(optuna_port)]
    with _serving(STUDY, *args, cwd=tmp_path) as (proc, lines):
        mlflow_url = f"http://127.0.0.1:{mlflow_port}"
        runs = f"{mlflow_url}/#/experiments/{finished.experiment_id}/runs"
        page = f"{runs}?workflowType=machine_learning&viewStateShareKey={finished.parent_run}"  # its view
        assert _url(lines, "MLflow UI") == page
        dashboard = f"http://127.0.0.1:{optuna_port}"
        assert _url(lines, "Optuna dashboard") == f"{dashboard}/dashboard/studies/{finished.study_id}"
        assert _get(f"{mlflow_url}/health") == b"OK"
        studies = json.loads(_get(f"{dashboard}/api/studies"))["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY]
        children = _descendants(proc.pid)
        assert len(children) >= 3  # mlflow server, its uvicorn, the dashboard
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert "stopped" in "".join(lines)
    assert not [pid for pid in children if _alive(pid)]
    with pytest.raises(OSError):
        _get(f"{mlflow_url}/health")
    assert (tmp_path / LOGS / "ui" / "mlflow.log").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found on PATH (apt-get install chromium)")
def test_the_mlflow_ui_lists_the_parent_run_and_its_trials_and_shows_the_report(
    finished: Finished, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    (port,) = free_ports(1)
    shots = [tmp_path / "mlflow-ui-runs.png", tmp_path / "mlflow-ui-report.png"]
    with (
        _serving(STUDY, "--storage", finished.storage, "--port", str(port), cwd=tmp_path) as (_, lines),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        try:
            page.goto(_url(lines, "MLflow UI"))
            cells = page.locator("[role=gridcell]")  # the runs table's, not the breadcrumb's link
            parent = cells.filter(has=page.get_by_role("link", name=STUDY, exact=True))
            parent.wait_for(timeout=90_000)
            assert "workflowType=machine_learning" in page.url  # the model-training view, not GenAI's
            headers = page.locator("[role=columnheader]")
            # the study's metric shown without opening "Columns" (by default MLflow shows no metric)
            headers.filter(has_text=re.compile(r"^\s*best_val_acc\s*$")).first.wait_for(timeout=30_000)
            parent.get_by_role("button").click()  # the trials are nested under their sweep's run
            for trial in ("t0 ", "t1 "):  # named by what they trained: "t0 sgd lr=… bs=64"
                cells.get_by_role("link", name=re.compile(f"^{trial}")).first.wait_for(timeout=30_000)
            page.screenshot(path=shots[0])
            base = _url(lines, "MLflow UI").split("/#/")[0]
            page.goto(
                f"{base}/#/experiments/{finished.experiment_id}/runs/{finished.parent_run}"
                "/artifacts/report/report.html?workflowType=machine_learning"
            )
            report = page.frame_locator("iframe.mlflow-html-iframe")  # MLflow's sandboxed HTML view
            report.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            report.get_by_role("heading", name="Learning curves").wait_for(timeout=10_000)
        finally:
            page.screenshot(path=shots[1] if shots[0].exists() else shots[0])
            browser.close()
            ARTIFACTS.mkdir(exist_ok=True)
            for shot in shots:
                if shot.exists():
                    shutil.copy(shot, ARTIFACTS / shot.name)
    assert all(shot.stat().st_size > 10_000 for shot in shots)
