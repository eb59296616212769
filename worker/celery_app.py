"""The Celery application the worker runs (`celery -A worker.celery_app worker`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from app.jobs.queue import celery_config
from app.pipeline.reaper import start_background_reaper
from app.settings import get_settings
from worker.broker import REDIS_TRANSPORT

log = logging.getLogger(__name__)

# Celery configures its own loggers; ours report job-level events at INFO.
logging.getLogger("app").setLevel(logging.INFO)

celery_app = Celery("modelpress", include=["worker.tasks"])
celery_app.conf.update(celery_config(get_settings()))
if celery_app.conf.broker_url.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with the fix that keeps the worker alive when Redis goes away
    # while it holds a task (see worker.broker).
    celery_app.conf.broker_transport = REDIS_TRANSPORT
app = celery_app


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    # Every worker sweeps for lost jobs and unsent ones (the outbox); the sweeps are idempotent.
    start_background_reaper()
