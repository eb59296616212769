"""All SQL on the idempotency_keys table; `tenant_id` is keyword-only, as in every repository."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import new_id
from app.idempotency.tables import IdempotencyKeyTable


def insert_if_absent(
    session: Session,
    *,
    tenant_id: str,
    key: str,
    fingerprint: str,
    method_path: str,
    now: datetime,
) -> bool:
    """Reserve the key (INSERT ... ON CONFLICT DO NOTHING); False if some row already holds it."""
    on_postgres = session.get_bind().dialect.name == "postgresql"
    insert = postgresql.insert if on_postgres else sqlite.insert
    statement = (
        insert(IdempotencyKeyTable)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            key=key,
            request_fingerprint=fingerprint,
            method_path=method_path,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
        # RETURNING rather than rowcount, which the driver may leave at -1.
        .returning(IdempotencyKeyTable.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def get(session: Session, key: str, *, tenant_id: str) -> IdempotencyKeyTable | None:
    owned = IdempotencyKeyTable.tenant_id == tenant_id
    query = select(IdempotencyKeyTable).where(IdempotencyKeyTable.key == key, owned)
    return session.scalar(query.execution_options(populate_existing=True))


def complete(
    session: Session,
    key: str,
    *,
    tenant_id: str,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    now: datetime,
) -> None:
    """Record the first response on the reserved row (flushed with the request's own work)."""
    session.execute(
        update(IdempotencyKeyTable)
        .where(IdempotencyKeyTable.tenant_id == tenant_id, IdempotencyKeyTable.key == key)
        .values(response_status=status, response_body=body, response_headers=headers,
                completed_at=now)
    )  # fmt: skip


def release(session: Session, key: str, *, tenant_id: str) -> None:
    """Drop a reservation whose request failed, so a retry runs again."""
    session.execute(
        delete(IdempotencyKeyTable).where(
            IdempotencyKeyTable.tenant_id == tenant_id,
            IdempotencyKeyTable.key == key,
            IdempotencyKeyTable.completed_at.is_(None),
        )
    )


def delete_stale(session: Session, key: str, *, tenant_id: str, in_flight_before: datetime) -> None:
    """Drop this key's row if it was left in flight by a request that never finished."""
    session.execute(
        delete(IdempotencyKeyTable).where(
            IdempotencyKeyTable.tenant_id == tenant_id,
            IdempotencyKeyTable.key == key,
            IdempotencyKeyTable.completed_at.is_(None),
            IdempotencyKeyTable.created_at < in_flight_before,
        )
    )


def delete_expired(session: Session, *, before: datetime) -> int:
    """Remove every tenant's rows older than the retention (the lazy sweep on insert)."""
    result = session.execute(
        delete(IdempotencyKeyTable).where(IdempotencyKeyTable.created_at < before)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
