"""Webhook events as an outbox: recorded in the transaction that changes the job's status, sent
to the webhooks queue after the commit, and sent again by the workers' sweep when a message
never left or was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from app.db import call_after_commit, session_scope, utcnow
from app.jobs import queue, transitions
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.lifecycle import TERMINAL_STATES, JobStatus
from app.jobs.schemas import WebhookEventType
from app.settings import Settings
from app.webhooks import repository
from app.webhooks.tables import WebhookEventTable

log = logging.getLogger(__name__)


def install() -> None:
    """Record webhook events on job transitions in this process (API and workers call it)."""
    transitions.add_listener(record_event)


def event_of(before: JobStatus, after: JobStatus) -> WebhookEventType | None:
    """The event a transition is: start (queued to running) or completed (to an end state)."""
    if after in TERMINAL_STATES:
        return WebhookEventType.COMPLETED
    if before == JobStatus.QUEUED and after == JobStatus.RUNNING:
        return WebhookEventType.START
    return None


def record_event(session: Session, job_id: str, before: JobStatus, after: JobStatus) -> None:
    """The transition listener: store the event with the job as it is now, if it has a webhook
    that wants it; a start after a requeue is not a new start."""
    event = event_of(before, after)
    if event is None:
        return
    # A session of its own on the same connection (same transaction): it sees the new status
    # and leaves the objects of the caller's session as they were.
    with Session(bind=session.connection()) as reader:
        job = jobs_repository.get_for_worker(reader, job_id)
        if job is None or not job.webhook or event not in (job.webhook_events_filter or []):
            return
        if repository.event_exists(reader, job_id, event):
            return
        payload = jobs_service.to_out(job).model_dump_json()
        tenant_id, url = job.tenant_id, job.webhook
    recorded = repository.add_event(
        session,
        WebhookEventTable(
            tenant_id=tenant_id, job_id=job_id, event=event.value, url=url, payload=payload,
            next_attempt_at=utcnow(),
        ),
    )  # fmt: skip
    event_id = recorded.id
    call_after_commit(session, lambda: dispatch(event_id))


def dispatch(event_id: str, countdown: float | None = None) -> bool:
    """Send an attempt of the event to the webhooks queue; False (the sweep sends it later) if
    the broker could not be reached."""
    try:
        queue.send_webhook(event_id, countdown)
    except queue.BrokerError as exc:
        log.warning("could not send webhook event %s (%s); the sweep sends it later", event_id, exc)
        return False
    if countdown is None:
        with session_scope() as session:
            repository.mark_dispatched(session, event_id, utcnow())
    return True


def resend_unsent(settings: Settings) -> int:
    """Send the events whose due attempt has no message on its way (never sent, or lost)."""
    now = utcnow()
    with session_scope() as session:
        event_ids = repository.mark_lost_for_resend(
            session,
            now,
            created_before=now - timedelta(seconds=settings.reaper_interval_s),
            resend_before=now - timedelta(seconds=settings.webhook_resend_after_s),
        )
    return queue.resend_each(event_ids, queue.send_webhook, "webhook event")
