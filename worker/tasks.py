"""Thin Celery tasks: they receive ids and call into app/."""

from __future__ import annotations

from typing import Any

from app.jobs.queue import BENCHMARK_TASK, RUN_JOB_TASK
from app.pipeline.benchmark import run_benchmark
from app.pipeline.compress import run_compress
from app.pipeline.frame import TransientJobError
from worker.celery_app import celery_app

MAX_RETRIES = 3


def _retrying(task: Any, stage: Any, job_id: str) -> None:
    final_attempt = task.request.retries >= MAX_RETRIES
    try:
        stage(job_id, final_attempt=final_attempt)
    except TransientJobError as exc:
        raise task.retry(exc=exc, countdown=2 ** (task.request.retries + 1)) from exc


@celery_app.task(name=RUN_JOB_TASK, bind=True, max_retries=MAX_RETRIES)
def run_job(self: Any, job_id: str) -> None:
    """The compress stage: run the recipe's passes, then queue the benchmark."""
    _retrying(self, run_compress, job_id)


@celery_app.task(name=BENCHMARK_TASK, bind=True, max_retries=MAX_RETRIES)
def benchmark_job(self: Any, job_id: str) -> None:
    """The benchmark stage: time and evaluate, then finish the job."""
    _retrying(self, run_benchmark, job_id)
