"""Passwords never leave the URL they came in: masking covers every form; output and logs are masked while
``masked_output`` lasts (and put back afterwards), and an error that ends ``sweeps`` is printed masked."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from sweeps.masking import has_secret, is_masked, mask, masked_output


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


def test_output_and_logs_are_masked_while_it_lasts_and_put_back_afterwards(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    before = sys.stdout, sys.stderr, logging.getLogRecordFactory()
    log = logging.getLogger("any.library")
    with masked_output():
        print("connecting to postgresql://u:hunter2@db/x")
        try:
            raise ConnectionError("no route to http://u:hunter2@mlflow:5000")
        except ConnectionError:
            log.exception("lost %s", "postgresql://u:hunter2@db/x")

    assert (sys.stdout, sys.stderr, logging.getLogRecordFactory()) == before
    assert capsys.readouterr().out == "connecting to postgresql://u:***@db/x\n"
    [record] = caplog.records
    assert record.getMessage() == "lost postgresql://u:***@db/x"
    assert "http://u:***@mlflow:5000" in record.exc_text and "hunter2" not in record.exc_text


def test_an_error_no_command_handled_is_printed_masked() -> None:
    program = """
from sweeps import cli
def gives_up():
    raise RuntimeError("gave up on postgresql://u:hunter2@db/x")
cli.app = gives_up
cli.main()
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert "hunter2" not in done.stdout + done.stderr
    assert "RuntimeError: gave up on postgresql://u:***@db/x" in done.stderr
