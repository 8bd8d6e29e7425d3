"""Servers that do not answer at start are named in one line, at once, with what to check."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from sweeps.engine.servers import Unreachable, check_storage, check_tracking


def refused(check: object, url: str) -> str:
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        check(url)  # type: ignore[operator]
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    return message


def test_an_unreachable_study_database() -> None:
    message = refused(check_storage, "postgresql+psycopg://u:hunter2@127.0.0.1:1/x")
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in message and "refused" in message
    assert "--storage" in message


@pytest.mark.postgres
def test_a_database_that_does_not_exist() -> None:
    message = refused(check_storage, "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database")
    assert 'database "no_such_database" does not exist' in message


@pytest.mark.postgres
def test_a_reachable_database_passes_and_gets_no_schema() -> None:
    import psycopg

    check_storage("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with psycopg.connect("host=127.0.0.1 dbname=test user=postgres") as db:
        tables = db.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'no_table_made_by_a_check'")
        assert tables.fetchone() == (0,)


def test_a_missing_driver_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    message = refused(check_storage, "postgresql+psycopg://u:hunter2@db:5432/x")
    assert 'pip install "optimizer-sweeps[postgres]"' in message


def test_an_unreachable_mlflow_server() -> None:
    message = refused(check_tracking, "http://u:hunter2@127.0.0.1:1")
    assert "http://u:***@127.0.0.1:1" in message and "--tracking-uri" in message


@pytest.mark.parametrize("check", [check_storage, check_tracking])
def test_an_embedded_store_in_a_missing_folder(check: object, tmp_path: Path) -> None:
    message = refused(check, f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}")
    assert str(tmp_path / "nowhere") in message
    assert not (tmp_path / "nowhere").exists()
