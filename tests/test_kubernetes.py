"""The Kubernetes example (docker/kubernetes.yaml), checked without a cluster: valid against Kubernetes' own
schema, matching the compose stack it runs against, the image it runs, and the ``sweeps worker`` command line
it calls; a pod's environment names its trials' runs as the scheduler does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from sweeps.cli import app
from sweeps.engine.placement import placement
from sweeps.names import EXIT_PREEMPTED

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "docker" / "kubernetes.yaml"


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.fixture(scope="module")
def worker(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]


def test_the_job_is_valid_against_the_kubernetes_schema(job: dict[str, Any]) -> None:
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_an_indexed_job_runs_one_worker_per_gpu_and_reruns_a_preempted_index(
    job: dict[str, Any], worker: dict[str, Any]
) -> None:
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"]
    assert worker["resources"]["limits"] == {"nvidia.com/gpu": 1}
    ignored = [rule for rule in spec["podFailurePolicy"]["rules"] if rule["action"] == "Ignore"]
    assert [EXIT_PREEMPTED] in [rule.get("onExitCodes", {}).get("values") for rule in ignored]
    assert {"type": "DisruptionTarget"} in [c for rule in ignored for c in rule.get("onPodConditions", [])]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 300  # an epoch's time after SIGTERM


def test_the_worker_runs_the_composed_image_against_the_stacks_database_and_tracking_server(
    worker: dict[str, Any], compose: dict[str, Any]
) -> None:
    assert worker["image"] == compose["worker"]["image"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["SWEEPS_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "sweeps-storage", "key": "url"}
    mlflow_port = compose["mlflow"]["ports"][0].rsplit(":", 1)[1]
    assert re.fullmatch(rf"http://[\w.-]+:{mlflow_port}", env["MLFLOW_TRACKING_URI"]["value"])
    secret = re.search(r"--from-literal=url='([^']+)'", MANIFEST.read_text())
    assert secret is not None
    database = compose["postgres"]["environment"]
    user = re.fullmatch(r"\$\{POSTGRES_USER:-(\w+)\}", database["POSTGRES_USER"])
    assert user is not None
    url = rf"postgresql\+psycopg://{user.group(1)}:PASSWORD@[\w.]+:5432/{database['POSTGRES_DB']}"
    assert re.fullmatch(url, secret.group(1))
    assert not [e for e in worker["env"] if "value" in e and "@" in e["value"]]  # no password in the file


def test_the_worker_command_line_is_one_the_cli_takes(worker: dict[str, Any]) -> None:
    command = typer.main.get_command(app)
    name, *args = [a.replace("$(WORKER_INDEX)", "3") for a in worker["args"]]
    context = command.commands[name].make_context(name, args)
    assert context.params["study_name"] == "sweep" and context.params["index"] == 3


def test_a_pods_environment_names_its_trials_runs(worker: dict[str, Any]) -> None:
    declared = {e["name"] for e in worker["env"]}
    assert {"JOB_NAME", "NODE_NAME"} <= declared
    pod = {"JOB_COMPLETION_INDEX": "3", "JOB_NAME": "sweeps-workers", "NODE_NAME": "gpu-node-7"}
    assert placement(pod) == {
        "launcher": "kubernetes",
        "job_id": "sweeps-workers",
        "task_id": "3",
        "node": "gpu-node-7",
    }
