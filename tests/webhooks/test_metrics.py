"""Webhook deliveries in /metrics: counted from the database, whichever worker made them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.observability.metrics import render_metrics
from app.settings import get_settings
from app.webhooks import repository
from app.webhooks.tables import WebhookAttemptTable, WebhookEventTable
from tests.factories import add_job, add_model


def test_metrics_count_attempts_by_outcome_and_events_by_status(db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session))
    event = repository.add_event(
        db_session,
        WebhookEventTable(
            tenant_id=job.tenant_id, job_id=job.id, event="completed",
            url="https://hooks.example.com/", payload="{}", status="succeeded",
        ),
    )  # fmt: skip
    for number, outcome in enumerate(["failed", "failed", "succeeded"], start=1):
        repository.add_attempt(
            db_session,
            WebhookAttemptTable(event_id=event.id, number=number, outcome=outcome, duration_ms=5.0),
        )

    text = render_metrics(db_session, get_settings()).decode()

    assert 'modelpress_webhook_deliveries_total{outcome="failed"} 2.0' in text
    assert 'modelpress_webhook_deliveries_total{outcome="succeeded"} 1.0' in text
    assert "# TYPE modelpress_webhook_deliveries_total counter" in text
    assert 'modelpress_webhook_events{status="succeeded"} 1.0' in text
    queue = get_settings().webhook_queue_name
    assert f'modelpress_queue_depth{{queue="{queue}"}}' in text
