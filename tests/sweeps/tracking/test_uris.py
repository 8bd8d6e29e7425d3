"""Passwords never leave the URL they came in: masking covers every form, and a process's logs and
tracebacks are masked once ``mask_output`` ran."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sweeps.tracking.uris import has_secret, is_masked, mask


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:hunter2@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql://:hunter2@db/x", "postgresql://:***@db/x"),
        ("http://u:p@ss:w0rd@host:5000/", "http://u:***@host:5000/"),
        (
            "postgresql://u@db/x?password=hunter2&sslmode=require",
            "postgresql://u@db/x?password=***&sslmode=require",
        ),
        ("https://h/api?access_token=abc123", "https://h/api?access_token=***"),
        ("https://h/api?x=1&Token=abc123#f", "https://h/api?x=1&Token=***#f"),
        ("failed: connect to http://a:b@c:1/ (refused)", "failed: connect to http://a:***@c:1/ (refused)"),
    ],
)
def test_every_form_of_secret_is_masked(url: str, masked: str) -> None:
    assert mask(url) == masked
    assert has_secret(url) and not has_secret(masked)
    assert is_masked(masked) and not is_masked(url)


@pytest.mark.parametrize(
    "url",
    ["sqlite:////abs/optuna.db", "http://127.0.0.1:5000", "postgresql+psycopg://u@db:5432/x?sslmode=require"],
)
def test_urls_without_a_secret_are_left_alone(url: str) -> None:
    assert mask(url) == url and not has_secret(url) and not is_masked(url)


def test_logs_and_tracebacks_of_a_process_are_masked() -> None:
    program = """
import logging
from sweeps.tracking.uris import mask_output
mask_output()
log = logging.getLogger("any.library")
log.warning("connecting to %s", "postgresql://u:hunter2@db/x")
try:
    raise ConnectionError("no route to http://u:hunter2@mlflow:5000")
except ConnectionError:
    log.exception("lost")
raise RuntimeError("gave up on postgresql://u:hunter2@db/x")
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert "hunter2" not in done.stdout + done.stderr
    assert done.stderr.count("u:***@") == 3
