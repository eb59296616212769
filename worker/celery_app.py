"""The Celery application the worker runs (`celery -A worker.celery_app worker`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from app.jobs.queue import celery_config
from app.settings import get_settings

log = logging.getLogger(__name__)

celery_app = Celery("modelpress", include=["worker.tasks"])
celery_app.conf.update(celery_config(get_settings()))
app = celery_app


@worker_ready.connect
def _send_outbox(**_: Any) -> None:
    # Jobs recorded while the broker was down are sent as soon as a worker is up.
    from app.jobs.service import sweep_outbox

    try:
        sent = sweep_outbox(min_age_s=0)
        if sent:
            log.info("sent %d job(s) that were waiting in the outbox", sent)
    except Exception:
        log.exception("outbox sweep failed")
