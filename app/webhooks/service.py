"""Webhook secrets and the deliveries a job has had; services flush, the caller commits."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs import service as jobs_service
from app.webhooks import repository, signing
from app.webhooks.schemas import WebhookAttempt, WebhookDelivery, WebhookDeliveryList, WebhookSecret
from app.webhooks.tables import EventStatus, WebhookAttemptTable, WebhookSecretTable

# How long the key a rotation replaced still signs deliveries, next to the new one.
PREVIOUS_KEY_LIFETIME = timedelta(hours=24)


def _secret_row(session: Session, *, tenant_id: str) -> WebhookSecretTable:
    """The tenant's keys, created on first use."""
    found = repository.get_secret(session, tenant_id=tenant_id)
    if found is None:
        repository.add_secret_if_absent(session, signing.new_key(), tenant_id=tenant_id)
        found = repository.get_secret(session, tenant_id=tenant_id)
    assert found is not None  # inserted just now, or by a concurrent first read
    return found


def _to_out(row: WebhookSecretTable, now: datetime) -> WebhookSecret:
    active = row.previous_key is not None and row.previous_until and row.previous_until > now
    return WebhookSecret(
        key=row.key, previous_key_expires_at=row.previous_until if active else None
    )


def get_secret(session: Session, *, tenant_id: str) -> WebhookSecret:
    """The tenant's signing key (made on the first read)."""
    return _to_out(_secret_row(session, tenant_id=tenant_id), utcnow())


def rotate_secret(session: Session, *, tenant_id: str) -> WebhookSecret:
    """A new signing key; the old one signs too for PREVIOUS_KEY_LIFETIME."""
    _secret_row(session, tenant_id=tenant_id)
    now = utcnow()
    repository.rotate_secret(
        session, signing.new_key(), now + PREVIOUS_KEY_LIFETIME, tenant_id=tenant_id
    )
    return _to_out(_secret_row(session, tenant_id=tenant_id), now)


def signing_keys(session: Session, *, tenant_id: str) -> list[str]:
    """The keys a delivery is signed with now: the key, and the previous one while it lasts."""
    row = _secret_row(session, tenant_id=tenant_id)
    keys = [row.key]
    if row.previous_key and row.previous_until and row.previous_until > utcnow():
        keys.append(row.previous_key)
    return keys


def list_deliveries(session: Session, job_id: str, *, tenant_id: str) -> WebhookDeliveryList:
    """Every event of the job with its attempts; NotFoundProblem for another tenant's job."""
    job = jobs_service.get(session, job_id, tenant_id=tenant_id)
    events = repository.list_events(session, job.id)
    attempts: dict[str, list[WebhookAttemptTable]] = defaultdict(list)
    for attempt in repository.list_attempts(session, [event.id for event in events]):
        attempts[attempt.event_id].append(attempt)
    return WebhookDeliveryList(
        items=[
            WebhookDelivery(
                id=event.id,
                event=event.event,
                url=event.url,
                status=event.status,
                created_at=event.created_at,
                next_attempt_at=(
                    event.next_attempt_at if event.status == EventStatus.PENDING else None
                ),
                finished_at=event.finished_at,
                attempts=[WebhookAttempt.model_validate(a) for a in attempts[event.id]],
            )
            for event in events
        ]
    )
