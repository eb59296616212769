"""The tenant lock serializes writers on one tenant until they commit, on Postgres and SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.migrate import upgrade_head
from app.tenants.repository import lock_for_update

HOLD_S = 1.0


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("database_url"))
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_head(url)
    return url


@contextmanager
def _held(sessions: sessionmaker, tenant_id: str) -> Iterator[list[float]]:
    """A transaction in another thread that takes the lock and commits HOLD_S later; yields
    once the lock is held, and gives the time of the commit."""
    locked, committed_at = threading.Event(), []

    def hold() -> None:
        with sessions() as session:
            lock_for_update(session, tenant_id=tenant_id)
            locked.set()
            time.sleep(HOLD_S)
            committed_at.append(time.monotonic())
            session.commit()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    yield committed_at
    holder.join()


def _lock_time(sessions: sessionmaker, tenant_id: str) -> float:
    with sessions() as session:
        lock_for_update(session, tenant_id=tenant_id)
        locked_at = time.monotonic()
        session.rollback()
    return locked_at


def test_a_second_writer_on_a_tenant_waits_for_the_first_to_commit(database: str) -> None:
    engine = make_engine(database)
    sessions = sessionmaker(bind=engine)
    with _held(sessions, "no-such-row") as committed_at:  # the default tenant has no row
        locked_at = _lock_time(sessions, "no-such-row")
    engine.dispose()

    assert locked_at >= committed_at[0]


def test_writers_on_other_tenants_do_not_wait_on_postgres(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = sessionmaker(bind=engine)
    with _held(sessions, "tenant-a") as committed_at:
        locked_at = _lock_time(sessions, "tenant-b")
    engine.dispose()

    assert locked_at < committed_at[0]
