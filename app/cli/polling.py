"""Waiting for a job: poll until it is finished, riding out a busy or restarting server."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from app.cli.client import TERMINAL_STATUSES, ApiError, Client
from app.cli.output import progress_line

# Answers that mean "not now" rather than "no": overload, rate limit, a proxy without a backend.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0  # a Retry-After is honoured up to this, so a typo cannot park the CLI
DEFAULT_RETRY_FOR_S = 300.0


def fetch_job_patiently(
    client: Client, job_id: str, retry_for_s: float, interval: float
) -> dict[str, Any]:
    """GET the job, retrying overload answers and lost connections for up to retry_for_s."""
    deadline: float | None = None
    backoff = max(0.5, interval)
    while True:
        error: Exception
        try:
            return client.get_job(job_id)
        except ApiError as exc:
            if exc.status not in RETRYABLE_STATUSES:
                raise
            error, why, asked = exc, f"HTTP {exc.status} {exc.code}", exc.retry_after_s
        except httpx.TransportError as exc:
            error, why, asked = exc, f"{type(exc).__name__} {exc}".strip(), None
        now = time.monotonic()
        deadline = now + retry_for_s if deadline is None else deadline
        if now >= deadline:
            print(f"giving up after {retry_for_s:.0f} s of failed polls", file=sys.stderr)
            raise error
        pause = backoff if asked is None else min(asked, MAX_RETRY_AFTER_S)
        pause = max(0.1, min(pause, deadline - now))
        print(f"server not answering ({why}); retrying in {pause:.1f} s", file=sys.stderr)
        time.sleep(pause)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


def wait_for_job(
    client: Client, job: dict[str, Any], interval: float, retry_for_s: float = DEFAULT_RETRY_FOR_S
) -> dict[str, Any]:
    """Poll until the job is terminal, drawing a progress line on stderr."""
    tty = sys.stderr.isatty()
    last = ""
    while True:
        line = progress_line(job)
        if tty:
            # Pad so a shorter line fully overwrites a longer previous one.
            sys.stderr.write("\r" + line.ljust(len(last)))
            sys.stderr.flush()
        elif line != last:
            # Logs and CI: one line per change, no carriage returns.
            print(line, file=sys.stderr, flush=True)
        last = line
        if job.get("status") in TERMINAL_STATUSES:
            if tty:
                sys.stderr.write("\n")
            return job
        time.sleep(max(0.1, interval))
        job = fetch_job_patiently(client, str(job["id"]), retry_for_s, interval)
