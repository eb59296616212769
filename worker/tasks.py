"""Thin Celery tasks: they receive ids and call into app/."""

from __future__ import annotations

from typing import Any

from app.jobs import runner
from app.jobs.queue import RUN_JOB_TASK
from worker.celery_app import celery_app

MAX_RETRIES = 3


@celery_app.task(name=RUN_JOB_TASK, bind=True, max_retries=MAX_RETRIES)
def run_job(self: Any, job_id: str) -> None:
    """Run one compression job to a terminal state; transient failures retry with backoff."""
    final_attempt = self.request.retries >= MAX_RETRIES
    try:
        runner.run_job(job_id, final_attempt=final_attempt)
    except runner.TransientJobError as exc:
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
