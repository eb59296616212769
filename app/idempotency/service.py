"""Reserve an Idempotency-Key, keep the first response under it, replay it to retries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import IdempotencyKeyInUseProblem, IdempotencyKeyReusedProblem
from app.idempotency import repository

RETENTION = timedelta(hours=24)
# A key still in flight after this long belongs to a request that died with its process.
IN_FLIGHT_TIMEOUT = timedelta(minutes=10)
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _sha256_of_json(document: Any) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def json_fingerprint(body: bytes) -> str:
    """The sha256 of the body as canonical JSON (key order and spacing do not count)."""
    try:
        document = json.loads(body)
    except ValueError:
        return hashlib.sha256(body).hexdigest()
    return _sha256_of_json(document)


def upload_fingerprint(*, file_sha256: str, filename: str, fields: dict[str, str | None]) -> str:
    """An upload's fingerprint: the file's sha256 (taken as it streamed in) and the form fields."""
    return _sha256_of_json({"file_sha256": file_sha256, "filename": filename, "fields": fields})


def reserve(
    session: Session, key: str, *, tenant_id: str, fingerprint: str, method_path: str
) -> StoredResponse | None:
    """Hold `key` for this request (None), or the first request's answer to replay.

    Commits on its own, unlike other services: a concurrent request with the same key must see
    the reservation while this request is still running.
    """
    for _ in range(3):  # the holder may release the key between our INSERT and our read
        now = utcnow()
        repository.delete_expired(session, before=now - RETENTION)
        repository.delete_stale(
            session, key, tenant_id=tenant_id, in_flight_before=now - IN_FLIGHT_TIMEOUT
        )
        won = repository.insert_if_absent(
            session,
            tenant_id=tenant_id,
            key=key,
            fingerprint=fingerprint,
            method_path=method_path,
            now=now,
        )
        session.commit()
        if won:
            return None
        held = repository.get(session, key, tenant_id=tenant_id)
        session.commit()
        if held is None:
            continue
        if held.request_fingerprint != fingerprint or held.method_path != method_path:
            raise IdempotencyKeyReusedProblem(
                "this Idempotency-Key was already used with another request body or endpoint;"
                " use a new key for a new request"
            )
        if held.completed_at is None or held.response_status is None:
            raise IdempotencyKeyInUseProblem(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        return StoredResponse(
            held.response_status, held.response_body or {}, held.response_headers or {}
        )
    raise IdempotencyKeyInUseProblem(
        "this Idempotency-Key is changing hands; retry shortly", retry_after_s=RETRY_AFTER_S
    )


def complete(session: Session, key: str, *, tenant_id: str, response: StoredResponse) -> None:
    """Keep the first response under the key; it commits with the request's own work."""
    repository.complete(
        session,
        key,
        tenant_id=tenant_id,
        status=response.status,
        body=response.body,
        headers=response.headers,
        now=utcnow(),
    )


def release(session: Session, key: str, *, tenant_id: str) -> None:
    """Free a key whose request failed, so that a retry runs the request again."""
    repository.release(session, key, tenant_id=tenant_id)
