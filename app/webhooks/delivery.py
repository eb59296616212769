"""One delivery attempt of a webhook event: claim it, POST the signed job, record what came of
it and schedule the next attempt with a doubling wait.

The claim is committed before the POST (a duplicate message then finds the event taken) and
the outcome in a second transaction; no session stays open while the receiver answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import SplitResult, unquote, urlunsplit

import httpx

from app.db import call_after_commit, session_scope, utcnow
from app.observability.logging import bind_job_context, get_logger
from app.settings import Settings, get_settings
from app.webhooks import outbox, repository, service, signing
from app.webhooks.addresses import AddressPolicy, AddressRefused, IPAddress, parse, resolve_allowed
from app.webhooks.tables import AttemptOutcome, EventStatus, WebhookAttemptTable

events = get_logger(__name__)  # one structured line per attempt

USER_AGENT = "ModelPress-Webhooks/1"
# Answers worth another attempt besides 5xx: the receiver is busy, not refusing.
RETRIED_STATUSES = frozenset({408, 429})
# Time a claimed attempt may take beyond the request timeout before the sweep takes it back.
LEASE_MARGIN = timedelta(seconds=60)
# A message may run a moment before the attempt it carries is due (clock rounding).
EARLY_TOLERANCE = timedelta(seconds=1)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Claimed:
    event_id: str
    tenant_id: str
    job_id: str
    event: str
    url: str
    payload: str
    number: int
    keys: list[str]


@dataclass(frozen=True)
class AttemptResult:
    outcome: AttemptOutcome
    status_code: int | None
    error: str | None
    duration_ms: float


def backoff_s(number: int, settings: Settings) -> float:
    """Wait after failed attempt `number` (1-based): the base, doubled each time, capped."""
    return min(
        settings.webhook_retry_backoff_s * 2 ** (number - 1), settings.webhook_retry_max_backoff_s
    )


def deliver(event_id: str, settings: Settings | None = None) -> AttemptResult | None:
    """Make the event's due attempt; None when there is none to make (done, not yet due, or
    taken by another message)."""
    settings = settings or get_settings()
    claimed = _claim(event_id, settings)
    if claimed is None:
        return None
    bind_job_context(job_id=claimed.job_id, tenant_id=claimed.tenant_id)
    started = utcnow()
    result = post(claimed, settings)
    _record(claimed, result, started, settings)
    return result


def _claim(event_id: str, settings: Settings) -> Claimed | None:
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.webhook_timeout_s) + LEASE_MARGIN
    with session_scope() as session:
        event = repository.claim(session, event_id, now + EARLY_TOLERANCE, lease_until)
        if event is None:
            return None
        return Claimed(
            event_id=event.id, tenant_id=event.tenant_id, job_id=event.job_id, event=event.event,
            url=event.url, payload=event.payload, number=event.attempts,
            keys=service.signing_keys(session, tenant_id=event.tenant_id),
        )  # fmt: skip


def _pinned(parts: SplitResult, address: IPAddress) -> str:
    """The URL with its host replaced by the checked address (the Host header keeps the name)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


def post(claimed: Claimed, settings: Settings) -> AttemptResult:
    """POST the event once: to an address checked against the deployment's policy."""
    start = time.monotonic()

    def result(outcome: AttemptOutcome, status: int | None, error: str | None) -> AttemptResult:
        took = (time.monotonic() - start) * 1000
        return AttemptResult(outcome, status, error and error[:MAX_ERROR_CHARS], round(took, 1))

    parts = parse(claimed.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve_allowed(host, port, AddressPolicy.from_settings(settings))
    except AddressRefused as exc:
        return result(AttemptOutcome.REFUSED, None, f"address not allowed: {exc}")
    except OSError as exc:
        return result(AttemptOutcome.FAILED, None, f"could not resolve {host}: {exc}")
    body = claimed.payload.encode()
    headers = signing.headers(claimed.keys, claimed.event_id, int(time.time()), body)
    headers |= {"host": parts.netloc.rpartition("@")[2], "user-agent": USER_AGENT}
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    # The certificate is checked against the name, while the connection goes to the address.
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        # trust_env=False: no proxy from the environment, the checked address is what we reach.
        with (
            httpx.Client(
                timeout=settings.webhook_timeout_s,
                trust_env=False,
                follow_redirects=False,
                auth=auth,
            ) as client,
            client.stream(
                "POST",
                _pinned(parts, addresses[0]),
                content=body,
                headers=headers,
                extensions=extensions,
            ) as response,
        ):
            code = response.status_code
            # Only the start of an error answer is kept: a receiver's body is never read whole.
            head = b"" if 200 <= code < 300 else next(response.iter_bytes(200), b"")
    except httpx.TimeoutException:
        return result(AttemptOutcome.FAILED, None, f"no answer in {settings.webhook_timeout_s:g} s")
    except httpx.HTTPError as exc:
        return result(AttemptOutcome.FAILED, None, f"{type(exc).__name__}: {exc}")
    if 200 <= code < 300:
        return result(AttemptOutcome.SUCCEEDED, code, None)
    error = f"HTTP {code}: {head[:200].decode(errors='replace')}"
    if code >= 500 or code in RETRIED_STATUSES:
        return result(AttemptOutcome.FAILED, code, error)
    return result(AttemptOutcome.REJECTED, code, error)


def _record(claimed: Claimed, result: AttemptResult, started: datetime, settings: Settings) -> None:
    retry_in: float | None = None
    now = utcnow()
    with session_scope() as session:
        repository.add_attempt(
            session,
            WebhookAttemptTable(
                event_id=claimed.event_id, number=claimed.number, outcome=result.outcome.value,
                status_code=result.status_code, error=result.error,
                duration_ms=result.duration_ms, created_at=started,
            ),
        )  # fmt: skip
        if result.outcome == AttemptOutcome.SUCCEEDED:
            values = {"status": EventStatus.SUCCEEDED.value, "finished_at": now}
        elif (
            result.outcome == AttemptOutcome.FAILED
            and claimed.number < settings.webhook_max_attempts
        ):
            retry_in = backoff_s(claimed.number, settings)
            due = now + timedelta(seconds=retry_in)
            values = {
                "status": EventStatus.PENDING.value,
                "next_attempt_at": due,
                "dispatched_at": due,
            }
        else:
            values = {"status": EventStatus.FAILED.value, "finished_at": now}
        ended = repository.end_attempt(session, claimed.event_id, claimed.number, **values)
        if ended and retry_in is not None:
            event_id, countdown = claimed.event_id, retry_in
            call_after_commit(session, lambda: outbox.dispatch(event_id, countdown))
    log_line = events.info if result.outcome == AttemptOutcome.SUCCEEDED else events.warning
    log_line(
        "webhook_attempt",
        event_id=claimed.event_id, job_id=claimed.job_id, webhook_event=claimed.event,
        attempt=claimed.number, outcome=result.outcome.value, status_code=result.status_code,
        error=result.error, duration_ms=result.duration_ms, retry_in_s=retry_in,
    )  # fmt: skip


def recover_lost_attempts(settings: Settings) -> int:
    """Attempts whose worker vanished (lease over): recorded as lost, then tried again or given
    up like a failed one."""
    now = utcnow()
    recovered = 0
    with session_scope() as session:
        for event in repository.list_expired_leases(session, now):
            last = event.attempts >= settings.webhook_max_attempts
            ended = repository.end_attempt(
                session, event.id, event.attempts,
                status=(EventStatus.FAILED if last else EventStatus.PENDING).value,
                next_attempt_at=now, dispatched_at=None, finished_at=now if last else None,
            )  # fmt: skip
            if ended:
                repository.add_attempt(
                    session,
                    WebhookAttemptTable(
                        event_id=event.id, number=event.attempts, outcome=AttemptOutcome.LOST.value,
                        error="the worker making this attempt vanished", duration_ms=0.0,
                    ),
                )  # fmt: skip
                recovered += 1
    return recovered


def sweep(settings: Settings | None = None) -> int:
    """Take back lost attempts and send events with no message on its way; safe from every
    worker at once. Returns how many events were sent."""
    settings = settings or get_settings()
    recover_lost_attempts(settings)
    return outbox.resend_unsent(settings)
