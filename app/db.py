"""Engine, session factory and the declarative base shared by every table."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, DateTime, String, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from app.settings import get_settings

log = logging.getLogger(__name__)

JSONType = JSON().with_variant(JSONB(), "postgresql")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp written in UTC and read back timezone-aware, on SQLite as on Postgres."""

    # SQLite keeps no offset: the text it stores is the UTC wall time, so every value is moved
    # to UTC before it is written (naive ones are taken as UTC) and is read back as UTC.
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime}


class IdMixin:
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # No pool: a SQLite connection is a file handle, and a pool only adds a queue to wait in.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, poolclass=NullPool
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets the API read while the worker writes; foreign keys are off by default.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # pre_ping drops connections that died with a database restart instead of failing a request.
    # Sized for the 40 threads that serve sync endpoints; a short wait, then a 503 (pool_timeout).
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30, pool_timeout=10)


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


AFTER_COMMIT_KEY = "after_commit"
AFTER_ROLLBACK_KEY = "after_rollback"
DUE_KEY = "due_after_commit"


def call_after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run callback once the transaction commits (enqueue a task, delete a released object)."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


def call_after_rollback(session: Session, callback: Callable[[], object]) -> None:
    """Run callback if the transaction rolls back (remove an object stored for a lost row)."""
    session.info.setdefault(AFTER_ROLLBACK_KEY, []).append(callback)


def _run_callbacks(session: Session, run_key: str, drop_key: str | None = None) -> None:
    if drop_key is not None:
        session.info.pop(drop_key, None)
    for callback in session.info.pop(run_key, []):
        try:
            callback()
        except Exception:
            # The transaction has already ended; a failing side effect must not undo or hide it.
            log.exception("post-transaction callback failed")


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Due now, run once the transaction has ended (below): its connection is back in the pool
    # by then, so a callback that opens a session of its own (the enqueue records when it sent
    # the task) never holds two connections, and a burst of submits cannot drain the pool.
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction that decides is still open
    session.info.pop(AFTER_ROLLBACK_KEY, None)
    session.info.setdefault(DUE_KEY, []).extend(session.info.pop(AFTER_COMMIT_KEY, []))


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    _run_callbacks(session, DUE_KEY)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # only the outermost transaction counts
        _run_callbacks(session, AFTER_ROLLBACK_KEY, AFTER_COMMIT_KEY)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success (also on an early return), roll back on any error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
