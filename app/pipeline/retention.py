"""Retention: with `retention_days` set, old models, datasets and ended jobs are deleted.

The leftover sweep runs it. Nothing a queued or running job reads or writes is touched: not its
input, baseline or output model, nor its datasets. A deleted job takes its output model along;
each stored file goes once its last row does (content-addressed objects are shared).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.datasets import repository as datasets_repository
from app.datasets import service as datasets_service
from app.db import session_scope
from app.jobs import repository as jobs_repository
from app.jobs.lifecycle import ACTIVE_STATES
from app.onnx_models import repository as models_repository
from app.onnx_models import service as models_service
from app.onnx_models.tables import ModelTable
from app.settings import Settings
from app.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class RetentionReport:
    jobs: int = 0
    models: int = 0
    datasets: int = 0


def _model_in_use(session: Session, model: ModelTable) -> bool:
    """Read by an active job, or the output of one still running."""
    if jobs_repository.count_active_for_model(session, model.id):
        return True
    if model.job_id is None:
        return False
    job = jobs_repository.get_for_worker(session, model.job_id)
    return job is not None and job.status in {s.value for s in ACTIVE_STATES}


def sweep_retention(settings: Settings, storage: Storage, now: datetime) -> RetentionReport:
    """Delete what is older than the retention period; nothing when it is 0 (off)."""
    report = RetentionReport()
    if not settings.retention_days:
        return report
    cutoff = now - timedelta(days=settings.retention_days)
    with session_scope() as session:
        for job in jobs_repository.list_finished_before(session, cutoff):
            for child in [*jobs_repository.list_children(session, job.id), job]:
                output = models_repository.get_by_job(session, child.id)
                if output is not None and not _model_in_use(session, output):
                    models_service.remove(session, storage, output)
                    report.models += 1
            jobs_repository.delete(session, job)  # its candidates go with it (cascade)
            report.jobs += 1
    with session_scope() as session:
        for model in models_repository.list_created_before(session, cutoff):
            if not _model_in_use(session, model):
                models_service.remove(session, storage, model)
                report.models += 1
        for dataset in datasets_repository.list_created_before(session, cutoff):
            if not jobs_repository.count_active_for_dataset(session, dataset.id):
                datasets_service.remove(session, storage, dataset)
                report.datasets += 1
    if report.jobs or report.models or report.datasets:
        log.info("retention removed %s", report)
    return report
