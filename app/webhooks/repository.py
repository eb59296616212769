"""All SQL on the webhook tables. An attempt is claimed with a conditional update, so a
duplicate message, or a second sweeper, finds nothing to do."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db import utcnow
from app.webhooks.tables import (
    EventStatus,
    WebhookAttemptTable,
    WebhookEventTable,
    WebhookSecretTable,
)


def get_secret(session: Session, *, tenant_id: str) -> WebhookSecretTable | None:
    return session.get(WebhookSecretTable, tenant_id, populate_existing=True)


def add_secret_if_absent(session: Session, key: str, *, tenant_id: str) -> None:
    """Store a first key for the tenant unless one exists (two first reads at once keep one)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(WebhookSecretTable)
        .values(tenant_id=tenant_id, key=key, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )


def rotate_secret(
    session: Session, new_key: str, previous_until: datetime, *, tenant_id: str
) -> bool:
    """Make `new_key` the key; the one it replaces keeps signing until `previous_until`."""
    result = session.execute(
        update(WebhookSecretTable)
        .where(WebhookSecretTable.tenant_id == tenant_id)
        .values(previous_key=WebhookSecretTable.key, key=new_key, previous_until=previous_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def event_exists(session: Session, job_id: str, event: str) -> bool:
    query = select(WebhookEventTable.id).where(
        WebhookEventTable.job_id == job_id, WebhookEventTable.event == event
    )
    return session.scalar(query) is not None


def add_event(session: Session, event: WebhookEventTable) -> WebhookEventTable:
    session.add(event)
    session.flush()
    return event


def add_attempt(session: Session, attempt: WebhookAttemptTable) -> None:
    session.add(attempt)
    session.flush()


def mark_dispatched(session: Session, event_id: str, at: datetime) -> None:
    session.execute(
        update(WebhookEventTable)
        .where(WebhookEventTable.id == event_id, WebhookEventTable.status == EventStatus.PENDING)
        .values(dispatched_at=at)
        .execution_options(synchronize_session=False)
    )


def claim(
    session: Session, event_id: str, due_by: datetime, lease_until: datetime
) -> WebhookEventTable | None:
    """Take the event's next attempt if it is pending and due by `due_by`; the event (with its
    attempt number counted) or None."""
    result = session.execute(
        update(WebhookEventTable)
        .where(
            WebhookEventTable.id == event_id,
            WebhookEventTable.status == EventStatus.PENDING,
            WebhookEventTable.next_attempt_at <= due_by,
        )
        .values(
            status=EventStatus.SENDING,
            attempts=WebhookEventTable.attempts + 1,
            lease_until=lease_until,
        )
        .returning(WebhookEventTable.id)
        .execution_options(synchronize_session=False)
    )
    if result.scalar() is None:
        return None
    return session.get(WebhookEventTable, event_id, populate_existing=True)


def end_attempt(session: Session, event_id: str, number: int, **values: Any) -> bool:
    """Record where attempt `number` left the event; False if it is no longer that attempt's
    (its lease ran out and the sweep took it back)."""
    result = session.execute(
        update(WebhookEventTable)
        .where(
            WebhookEventTable.id == event_id,
            WebhookEventTable.status == EventStatus.SENDING,
            WebhookEventTable.attempts == number,
        )
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_expired_leases(
    session: Session, now: datetime, limit: int = 100
) -> list[WebhookEventTable]:
    """Events whose attempt was claimed by a worker that never reported back."""
    query = (
        select(WebhookEventTable)
        .where(
            WebhookEventTable.status == EventStatus.SENDING,
            WebhookEventTable.lease_until < now,
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_lost_for_resend(
    session: Session, now: datetime, created_before: datetime, resend_before: datetime
) -> list[str]:
    """Ids of pending events whose due attempt has no message on its way: never sent (the
    outbox, older than `created_before`), or due since before `resend_before` and not taken
    (the message was lost). Each is marked sent now, so of several sweepers one sends it."""
    result = session.execute(
        update(WebhookEventTable)
        .where(
            WebhookEventTable.status == EventStatus.PENDING,
            WebhookEventTable.next_attempt_at <= now,
            or_(
                WebhookEventTable.dispatched_at.is_(None)
                & (WebhookEventTable.created_at < created_before),
                WebhookEventTable.dispatched_at < resend_before,
            ),
        )
        .values(dispatched_at=now)
        .returning(WebhookEventTable.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


def list_events(session: Session, job_id: str) -> list[WebhookEventTable]:
    query = (
        select(WebhookEventTable)
        .where(WebhookEventTable.job_id == job_id)
        .order_by(WebhookEventTable.created_at, WebhookEventTable.id)
    )
    return list(session.scalars(query))


def list_attempts(session: Session, event_ids: list[str]) -> list[WebhookAttemptTable]:
    query = (
        select(WebhookAttemptTable)
        .where(WebhookAttemptTable.event_id.in_(event_ids))
        .order_by(WebhookAttemptTable.event_id, WebhookAttemptTable.number)
    )
    return list(session.scalars(query))


def count_attempts_by_outcome(session: Session) -> dict[str, int]:
    """Delivery attempts of every tenant by outcome, all time: the operator's metrics."""
    rows = session.execute(
        select(WebhookAttemptTable.outcome, func.count()).group_by(WebhookAttemptTable.outcome)
    )
    return {outcome: count for outcome, count in rows.tuples()}


def count_events_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(WebhookEventTable.status, func.count()).group_by(WebhookEventTable.status)
    )
    return {status: count for status, count in rows.tuples()}
