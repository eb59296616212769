"""Remove what crashes leave behind, once it has been untouched for a grace period.

A process killed mid-work runs no cleanup: an API killed mid-upload leaves its spooled
`upload-*.part` file (and `unpacked-*` folder of a zip), a killed worker its job's work folders
(`job-*`, `bench-*`, `modelpress-child-*`, ONNX Runtime's `pre.quant.*` and `ort.quant.*`,
`mp-rss-*`), a crash between storing a file and committing its row an object that no row
names, and a crash mid-upload to S3 an unfinished multipart upload. Direct uploads that expired
go with what they staged, and with `retention_days` set old rows go too (`retention.py`). The
reaper of every worker runs `sweep_leftovers` every `leftover_sweep_interval_s`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from app.datasets import repository as datasets_repository
from app.db import session_scope, utcnow
from app.onnx_models import repository as models_repository
from app.pipeline.retention import RetentionReport, sweep_retention
from app.settings import Settings
from app.storage import Storage, StoredObject
from app.storage.objects import free_object
from app.uploads import repository as uploads_repository
from app.uploads import service as uploads_service
from app.uploads.multipart import upload_tmp_dir

log = logging.getLogger(__name__)

# What our processes (and the libraries they call) create in a temp folder.
TEMP_LEFTOVERS = (
    "upload-*.part",
    "unpacked-*",
    "job-*",
    "bench-*",
    "modelpress-child-*",
    "pre.quant.*",
    "ort.quant.*",
    "mp-rss-*",
)
# The key prefixes of stored files; every stored file belongs to a model or a dataset row
# (`objects/`: content-addressed, shared; the others: keys of one row each, from before), or
# is staged for a direct upload (`uploads/`).
STORED_PREFIXES = ("objects/", "models/", "outputs/", "datasets/")
STAGING_PREFIX = "uploads/"
# Celery kills a task this long after its soft limit: no work runs longer than the limit plus it.
HARD_LIMIT_MARGIN_S = 60


@dataclass
class SweepReport:
    temp_entries: int = 0
    stored_objects: int = 0
    multipart_uploads: int = 0
    expired_uploads: int = 0
    retention: RetentionReport = field(default_factory=RetentionReport)


def temp_folders(settings: Settings) -> list[Path]:
    """Where this host's processes put temp files: the temp dir and the upload spool."""
    return sorted({Path(tempfile.gettempdir()).resolve(), upload_tmp_dir(settings).resolve()})


def sweep_leftovers(
    settings: Settings, storage: Storage, folders: Iterable[Path] | None = None
) -> SweepReport:
    """One sweep of temp folders and storage; each step on its own, so one failing (storage
    down) leaves the others to do their part."""
    now = utcnow()
    grace = timedelta(seconds=settings.leftover_grace_s)
    # A work folder may sit untouched while one long pass runs: never before the job's limit.
    work_grace = max(grace, timedelta(seconds=settings.job_time_limit_s + HARD_LIMIT_MARGIN_S))
    report = SweepReport()
    for folder in temp_folders(settings) if folders is None else folders:
        report.temp_entries += sweep_temp_folder(folder, now - work_grace)
    try:
        with session_scope() as session:
            report.expired_uploads = uploads_service.remove_expired(session, storage, now)
        report.stored_objects = sweep_unreferenced_objects(storage, now - grace)
        report.stored_objects += sweep_unstaged_uploads(storage, now - grace)
        # A direct upload in parts may go on until it expires; never abort one before that.
        upload_grace = max(grace, timedelta(seconds=settings.upload_expiry_s))
        report.multipart_uploads = storage.abort_stale_multipart(now - upload_grace)
    except Exception:
        log.warning("the leftover sweep of storage failed; trying again later", exc_info=True)
    try:
        report.retention = sweep_retention(settings, storage, now)
    except Exception:
        log.warning("the retention sweep failed; trying again later", exc_info=True)
    if report.temp_entries or report.stored_objects or report.multipart_uploads:
        log.info("removed leftovers: %s", report)
    return report


def sweep_temp_folder(folder: Path, older_than: datetime) -> int:
    """Remove our leftovers in `folder` that nothing has touched since `older_than`."""
    removed = 0
    me = os.getuid()
    for pattern in TEMP_LEFTOVERS:
        for entry in folder.glob(pattern):
            try:
                stat = entry.lstat()
                # On a shared /tmp, only what this user made; never follow a link.
                if stat.st_uid != me or entry.is_symlink():
                    continue
                if _last_touched(entry) >= older_than.timestamp():
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except FileNotFoundError:  # its owner removed it meanwhile
                continue
            except OSError:
                log.warning("could not remove leftover %s", entry, exc_info=True)
    return removed


def _last_touched(entry: Path) -> float:
    """The newest modification time in a file or folder tree: a folder whose files are still
    being written is in use even when the folder itself has not changed for a while."""
    newest = entry.lstat().st_mtime
    if entry.is_dir():
        for dirpath, dirnames, filenames in os.walk(entry):
            for name in dirnames + filenames:
                try:
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def sweep_unreferenced_objects(storage: Storage, older_than: datetime) -> int:
    """Delete stored files that no model or dataset row names and that are older than
    `older_than` (a file is stored a moment before its row is committed)."""
    removed = 0
    for prefix in STORED_PREFIXES:
        old = (o for o in storage.list_objects(prefix) if o.modified < older_than)
        for batch in _batches(old, 500):
            keys = {o.key for o in batch}
            with session_scope() as session:
                keys -= models_repository.referenced_storage_keys(session, keys)
                keys -= datasets_repository.referenced_storage_keys(session, keys)
            for key in sorted(keys):
                # Counted again under the object's lock: the same bytes may be being stored.
                if free_object(storage, key):
                    log.warning("removed stored file %s: no row refers to it", key)
                    removed += 1
    return removed


def sweep_unstaged_uploads(storage: Storage, older_than: datetime) -> int:
    """Delete staged direct uploads whose upload row is gone (an expired one's row and object
    go together; this takes what a crash between the two left)."""
    removed = 0
    old = (o for o in storage.list_objects(STAGING_PREFIX) if o.modified < older_than)
    for batch in _batches(old, 500):
        keys = {o.key for o in batch}
        with session_scope() as session:
            keys -= uploads_repository.live_staging_keys(session, sorted(keys))
        for key in sorted(keys):
            storage.delete(key)
            removed += 1
    return removed


def _batches(objects: Iterator[StoredObject], size: int) -> Iterator[list[StoredObject]]:
    while batch := list(islice(objects, size)):
        yield batch
