"""A job that stops without succeeding: its sandbox child is killed, its output removed."""

from __future__ import annotations

import logging

from app.db import session_scope
from app.jobs import repository
from app.jobs.lifecycle import OUTPUT_KINDS, JobStatus
from app.onnx_models import service as models_service
from app.storage import Storage

log = logging.getLogger(__name__)


def stop_requested(job_id: str) -> bool:
    """Polled while a sandbox child runs: true once the job no longer runs here (canceled, or
    ended or requeued by the reaper); false while the database cannot say, so that a blip
    never kills the work."""
    try:
        with session_scope() as session:
            job = repository.get_for_worker(session, job_id)
            return job is None or job.status != JobStatus.RUNNING
    except Exception:
        log.warning("could not read the status of job %s; its work goes on", job_id, exc_info=True)
        return False


def drop_output_if_unsuccessful(job_id: str, storage: Storage) -> None:
    """After a stage, or the reaper failing a lost job: a compress job that ended failed or
    canceled keeps no output model."""
    try:
        with session_scope() as session:
            job = repository.get_for_worker(session, job_id)
            if job is None or job.kind not in OUTPUT_KINDS:
                return
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
                return
            # The object goes once this transaction commits.
            if models_service.remove_output_of(session, storage, job_id):
                log.info("job %s ended %s: its output was removed", job_id, job.status)
    except Exception:
        # The job has ended either way: a failure here must not turn into a task retry.
        log.warning("could not remove the output of ended job %s", job_id, exc_info=True)
