"""Waiting for a job: long-poll until it is finished, riding out a busy or restarting server."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from modelpress_sdk import ApiError, Client, Job, RetryEvent, RetryPolicy

from app.cli.output import progress_line, to_dict


def patient_policy(client: Client, retry_for_s: float, interval: float) -> RetryPolicy:
    """The client's retries, stretched to last retry_for_s and said on stderr."""
    return dataclasses.replace(
        client.retry,
        max_retries=sys.maxsize,
        retry_for_s=retry_for_s,
        backoff_s=max(0.5, interval),
        on_retry=_say_retrying,
    )


def _say_retrying(event: RetryEvent) -> None:
    print(
        f"server not answering ({event.reason}); retrying in {event.delay_s:.1f} s",
        file=sys.stderr,
    )


@contextmanager
def giving_up_after(retry_for_s: float) -> Iterator[None]:
    """Say so when the patient retries ran out, then let the error through."""
    try:
        yield
    except (ApiError, httpx.TransportError) as exc:
        if RetryPolicy().is_retryable(exc):
            print(f"giving up after {retry_for_s:.0f} s of failed polls", file=sys.stderr)
        raise


def fetch_job_patiently(client: Client, job_id: str, retry_for_s: float, interval: float) -> Job:
    """GET the job, retrying overload answers and lost connections for up to retry_for_s."""
    with giving_up_after(retry_for_s):
        return client.get_job(job_id, retry=patient_policy(client, retry_for_s, interval))


class ProgressLine:
    """The job's progress bar on stderr: redrawn in place on a terminal, one line per change
    in logs and CI (no carriage returns)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    def draw(self, job: Job) -> None:
        line = progress_line(to_dict(job))
        if self.tty:
            # Pad so a shorter line fully overwrites a longer previous one.
            sys.stderr.write("\r" + line.ljust(len(self.last)))
            sys.stderr.flush()
        elif line != self.last:
            print(line, file=sys.stderr, flush=True)
        self.last = line

    def finish(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


def wait_for_job(client: Client, job: Job, interval: float, retry_for_s: float) -> Job:
    """Long-poll until the job is terminal, drawing a progress line on stderr."""
    bar = ProgressLine()
    try:
        with giving_up_after(retry_for_s):
            return job.wait(
                poll=interval,
                raise_on_failure=False,
                on_update=bar.draw,
                retry=patient_policy(client, retry_for_s, interval),
            )
    finally:
        bar.finish()
