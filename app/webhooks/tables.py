"""Webhook tables: each tenant's signing keys, the events to deliver (an outbox written with the
job's status change) and every delivery attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, UTCDateTime, utcnow


class EventStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # an attempt is claimed and under way (until lease_until)
    SUCCEEDED = "succeeded"  # a 2xx was answered: never sent again
    FAILED = "failed"  # given up: attempts exhausted, or an answer that says stop


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"  # 2xx
    FAILED = "failed"  # 5xx, 408, 429, timeout or no connection: tried again
    REJECTED = "rejected"  # another answer (3xx, 4xx): the receiver will not take it
    REFUSED = "refused"  # the address is not one this deployment delivers to
    LOST = "lost"  # the worker making the attempt vanished: tried again


class WebhookSecretTable(Base):
    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    # The key before the last rotation: it signs too until previous_until.
    previous_key: Mapped[str | None] = mapped_column(String(128))
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEventTable(IdMixin, Base):
    """One event of a job to deliver; its id is the `webhook-id` of every attempt."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("job_id", "event", name="uq_webhook_events_job_event"),)

    tenant_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(16))  # a WebhookEventType
    url: Mapped[str] = mapped_column(String(2048))
    # The body of every attempt: the job as it was when the event happened.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True, default=EventStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the message for the next attempt was last sent to the broker (NULL: never, the
    # outbox); the sweep sends it again when it seems lost.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttemptTable(IdMixin, Base):
    """One POST of an event (created_at: when it started)."""

    __tablename__ = "webhook_attempts"

    event_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16), index=True)  # an AttemptOutcome
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[float] = mapped_column(Float)
