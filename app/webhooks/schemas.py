"""Response shapes of the webhooks API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.schemas import WebhookEventType
from app.webhooks.tables import AttemptOutcome, EventStatus


class WebhookSecret(BaseModel):
    key: str = Field(
        description="The signing key, `whsec_` + base64: verify `webhook-signature` with the "
        "base64-decoded bytes after the prefix."
    )
    previous_key_expires_at: datetime | None = Field(
        default=None,
        description="After a rotation, deliveries are signed with the previous key too until "
        "then (two space-separated `v1,` signatures).",
    )


class WebhookAttempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="1 for the first attempt.")
    at: datetime = Field(validation_alias="created_at", description="When it started.")
    outcome: AttemptOutcome = Field(
        description="succeeded: 2xx; failed: 5xx, 408, 429, timeout or no connection (tried "
        "again); rejected: another answer (not tried again); refused: an address this server "
        "does not deliver to; lost: the worker vanished during the attempt (tried again)."
    )
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    error: str | None = Field(description="What went wrong, when no 2xx came back.")
    duration_ms: float


class WebhookDelivery(BaseModel):
    """One event of a job and every attempt to deliver it."""

    id: str = Field(description="The `webhook-id` of every attempt of this event.")
    event: WebhookEventType
    url: str
    status: EventStatus = Field(
        description="pending (next attempt at next_attempt_at), sending, succeeded, or failed "
        "(given up)."
    )
    created_at: datetime = Field(description="When the event happened.")
    next_attempt_at: datetime | None = Field(description="Null once succeeded or given up.")
    finished_at: datetime | None
    attempts: list[WebhookAttempt]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDelivery]
