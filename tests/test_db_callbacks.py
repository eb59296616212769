"""Work registered to run after a commit: it runs once, after the commit, and never while the
transaction's own connection is still checked out."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.db import call_after_commit, call_after_rollback, make_engine


def test_an_after_commit_callback_can_use_the_pool_the_transaction_used(database_url: str) -> None:
    # A pool of exactly one connection: a callback that needed a second one while the first was
    # still checked out would wait out the timeout and fail.
    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=1)
    seen: list[int] = []

    def callback() -> None:
        with Session(engine) as other:
            seen.append(int(other.execute(text("SELECT 1")).scalar_one()))

    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        call_after_commit(session, callback)
        session.commit()

    assert seen == [1]
    engine.dispose()


def test_after_commit_runs_once_and_a_rollback_runs_only_the_rollback_work(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    ran: list[str] = []
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        call_after_commit(session, lambda: ran.append("commit"))
        call_after_rollback(session, lambda: ran.append("rollback"))
        session.commit()
        session.execute(text("SELECT 1"))
        session.commit()  # a second transaction has nothing due
        session.execute(text("SELECT 1"))
        call_after_commit(session, lambda: ran.append("commit-2"))
        call_after_rollback(session, lambda: ran.append("rollback-2"))
        session.rollback()

    assert ran == ["commit", "rollback-2"]
    engine.dispose()


def test_a_savepoint_ending_keeps_the_outer_transactions_rollback_work(database_url: str) -> None:
    engine = make_engine(database_url)
    ran: list[str] = []
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        call_after_rollback(session, lambda: ran.append("rollback"))
        with session.begin_nested():
            session.execute(text("SELECT 1"))
        session.rollback()

    assert ran == ["rollback"]
    engine.dispose()
