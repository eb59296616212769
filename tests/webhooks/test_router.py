"""The webhooks API in-process: job fields, URL checks, the secret, and the deliveries list."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.webhooks.tables import WebhookEventTable
from tests.conftest import issue_key
from tests.factories import add_model

HOOK = "https://hooks.example.com/modelpress"


@pytest.fixture
def model_id(db_session: Session) -> str:
    return add_model(db_session).id


def test_a_job_echoes_its_webhook_and_filter(api: Any, model_id: str) -> None:
    both = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16", "webhook": HOOK})
    one = api.post(
        "/v1/jobs",
        json={"model_id": model_id, "preset": "fp16", "webhook": HOOK,
              "webhook_events_filter": ["completed"]},
    )  # fmt: skip
    none = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"})

    assert both.status_code == one.status_code == none.status_code == 202
    assert both.json()["webhook"] == HOOK
    assert both.json()["webhook_events_filter"] == ["start", "completed"]
    assert one.json()["webhook_events_filter"] == ["completed"]
    assert api.get(f"/v1/jobs/{one.json()['id']}").json()["webhook_events_filter"] == ["completed"]
    assert none.json()["webhook"] is None and none.json()["webhook_events_filter"] is None


def test_a_benchmark_takes_a_webhook_too(api: Any, model_id: str) -> None:
    answer = api.post(
        "/v1/benchmarks",
        json={"model_id": model_id, "webhook": HOOK, "webhook_events_filter": ["start"]},
    )

    assert answer.status_code == 202, answer.text
    assert answer.json()["webhook"] == HOOK
    assert answer.json()["webhook_events_filter"] == ["start"]


@pytest.mark.parametrize(
    ("webhook", "code"),
    [
        ("ftp://hooks.example.com/x", "invalid_webhook"),
        ("hooks.example.com/x", "invalid_webhook"),
        # Production settings (Postgres) allow neither loopback nor private addresses.
        ("http://127.0.0.1:8080/hook", "webhook_url_not_allowed"),
        ("http://localhost/hook", "webhook_url_not_allowed"),
        ("http://10.0.0.7/hook", "webhook_url_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "webhook_url_not_allowed"),
    ],
)
def test_a_webhook_that_cannot_be_delivered_is_refused(
    api: Any, model_id: str, webhook: str, code: str
) -> None:
    answer = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16", "webhook": webhook})

    assert answer.status_code == 422
    assert answer.json()["code"] == code
    assert answer.json()["field"] == "webhook"


def test_an_unknown_event_in_the_filter_is_refused(api: Any, model_id: str) -> None:
    answer = api.post(
        "/v1/jobs",
        json={"model_id": model_id, "preset": "fp16", "webhook": HOOK,
              "webhook_events_filter": ["finished"]},
    )  # fmt: skip

    assert answer.status_code == 422
    assert answer.json()["field"] == "webhook_events_filter.0"


def test_the_secret_is_made_once_and_rotation_replaces_it(api: Any, db_session: Session) -> None:
    first = api.get("/v1/webhooks/default/secret").json()
    again = api.get("/v1/webhooks/default/secret").json()
    other = {"Authorization": f"Bearer {issue_key(db_session, 'hooks-other')}"}
    theirs = api.get("/v1/webhooks/default/secret", headers=other).json()

    assert first["key"].startswith("whsec_")
    assert again == first and first["previous_key_expires_at"] is None
    assert theirs["key"] != first["key"]

    rotated = api.post("/v1/webhooks/default/secret/rotate")

    assert rotated.status_code == 200
    assert rotated.json()["key"] not in (first["key"], theirs["key"])
    assert rotated.json()["previous_key_expires_at"] is not None
    assert api.get("/v1/webhooks/default/secret").json()["key"] == rotated.json()["key"]
    assert api.get("/v1/webhooks/default/secret", headers=other).json() == theirs


def test_canceling_records_the_completed_event_with_the_job_as_body(
    api: Any, db_session: Session, model_id: str
) -> None:
    job = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16", "webhook": HOOK})
    job_id = job.json()["id"]

    canceled = api.post(f"/v1/jobs/{job_id}/cancel").json()
    deliveries = api.get(f"/v1/jobs/{job_id}/webhook-deliveries")

    assert deliveries.status_code == 200
    [event] = deliveries.json()["items"]
    assert event["event"] == "completed" and event["url"] == HOOK
    assert event["status"] == "pending" and event["attempts"] == []
    stored = db_session.scalar(select(WebhookEventTable).where(WebhookEventTable.job_id == job_id))
    assert stored is not None
    assert api.get(f"/v1/jobs/{job_id}").json() == canceled
    assert json.loads(stored.payload) == canceled


def test_a_job_without_a_webhook_records_no_event(api: Any, model_id: str) -> None:
    job_id = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"}).json()["id"]
    api.post(f"/v1/jobs/{job_id}/cancel")

    assert api.get(f"/v1/jobs/{job_id}/webhook-deliveries").json() == {"items": []}


def test_deliveries_of_another_tenants_job_are_not_found(
    api: Any, db_session: Session, model_id: str
) -> None:
    job_id = api.post(
        "/v1/jobs", json={"model_id": model_id, "preset": "fp16", "webhook": HOOK}
    ).json()["id"]
    other = {"Authorization": f"Bearer {issue_key(db_session, 'hooks-other')}"}

    assert api.get(f"/v1/jobs/{job_id}/webhook-deliveries", headers=other).status_code == 404
    assert api.get("/v1/jobs/no-such-job/webhook-deliveries").json()["code"] == "not_found"
