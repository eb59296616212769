"""Direct uploads: the client PUTs its file straight to storage, then registers it as a model.

On S3 the client gets a presigned PUT (or presigned parts of a multipart upload above
`upload_part_bytes`); on local storage a URL of the API itself whose random token, stored only
as its hash, authorises that one upload. The bytes are staged under `uploads/<id>/` until
POST /v1/models registers them, with the same checks as a multipart upload.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from app.db import new_id, utcnow
from app.errors import (
    InvalidModelProblem,
    InvalidRequestProblem,
    ModelTooLargeProblem,
    NotFoundProblem,
    UnauthorizedProblem,
    UploadAlreadyUsedProblem,
    UploadIncompleteProblem,
)
from app.onnx_models import service as models_service
from app.onnx_models.tables import ModelTable
from app.settings import Settings
from app.storage import Storage
from app.storage.base import CHUNK_SIZE, StorageError
from app.uploads import repository
from app.uploads.multipart import ReceivedFile, UnsupportedMediaTypeProblem, Upload, upload_tmp_dir
from app.uploads.schemas import (
    UploadComplete,
    UploadCompleted,
    UploadCreate,
    UploadOut,
    UploadPartOut,
    UploadRegistration,
)
from app.uploads.tables import UploadStatus, UploadTable

log = logging.getLogger(__name__)

OCTET_STREAM = "application/octet-stream"
MODEL_EXTENSIONS = (".onnx", ".zip")
MAX_PARTS = 10_000  # S3's limit on the parts of one upload


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _part_sizes(size_bytes: int, part_bytes: int) -> list[int]:
    part_bytes = max(part_bytes, math.ceil(size_bytes / MAX_PARTS))
    count = math.ceil(size_bytes / part_bytes)
    return [min(part_bytes, size_bytes - index * part_bytes) for index in range(count)]


def begin(
    session: Session,
    storage: Storage,
    settings: Settings,
    request: UploadCreate,
    *,
    tenant_id: str,
    base_url: str,
) -> UploadOut:
    """Start a direct upload: where to PUT the file, and until when."""
    extension = Path(request.filename).suffix.lower()
    if extension not in MODEL_EXTENSIONS:
        raise UnsupportedMediaTypeProblem("filename: upload an .onnx file or a .zip archive")
    if request.size_bytes > settings.max_upload_bytes:
        raise ModelTooLargeProblem(
            f"the upload exceeds the limit of {settings.max_upload_bytes} bytes",
            limit_bytes=settings.max_upload_bytes,
        )
    upload_id = new_id()
    expires_s = int(settings.upload_expiry_s)
    row = UploadTable(
        id=upload_id, tenant_id=tenant_id, filename=Path(request.filename).name[:255],
        size_bytes=request.size_bytes, staging_key=f"uploads/{upload_id}/model{extension}",
        expires_at=utcnow() + timedelta(seconds=expires_s),
        status=UploadStatus.PENDING.value, completed=False,
    )  # fmt: skip
    url = storage.presign_put(row.staging_key, expires_s, content_type=OCTET_STREAM)
    parts: list[UploadPartOut] = []
    if url is None:
        token = secrets.token_urlsafe(32)
        row.token_sha256 = token_sha256(token)
        url = f"{base_url.rstrip('/')}/v1/uploads/{upload_id}/content?token={token}"
    elif request.size_bytes > settings.upload_part_bytes:
        row.multipart_id = storage.begin_multipart(row.staging_key)
        sizes = _part_sizes(request.size_bytes, settings.upload_part_bytes)
        row.part_bytes = sizes[0]
        url = None
        parts = [
            UploadPartOut(
                part_number=number,
                url=storage.presign_part(row.staging_key, row.multipart_id, number, expires_s),
                size_bytes=size,
            )
            for number, size in enumerate(sizes, start=1)
        ]
    repository.add(session, row)
    return UploadOut(
        upload_id=upload_id, url=url, parts=parts, expires_at=row.expires_at,
        headers={"Content-Type": OCTET_STREAM} if not parts else {},
        max_bytes=settings.max_upload_bytes,
    )  # fmt: skip


def _pending(session: Session, upload_id: str, *, tenant_id: str) -> UploadTable:
    """The caller's unexpired upload, locked; used ones are a conflict."""
    row = repository.get(session, upload_id, tenant_id=tenant_id, for_update=True)
    if row is None or row.expires_at <= utcnow():
        raise NotFoundProblem(f"no upload with id {upload_id!r} (or it expired)")
    if row.status != UploadStatus.PENDING:
        raise UploadAlreadyUsedProblem(f"upload {upload_id!r} was already registered or refused")
    return row


def authorize_content(session: Session, upload_id: str, token: str) -> UploadTable:
    """The upload a PUT to the API targets, if its token is right and the upload still open."""
    row = repository.get_any_tenant(session, upload_id)
    if row is None or row.token_sha256 is None or row.expires_at <= utcnow():
        raise NotFoundProblem(f"no upload with id {upload_id!r} (or it expired)")
    if not secrets.compare_digest(token_sha256(token), row.token_sha256):
        raise UnauthorizedProblem("the upload URL's token is wrong: use the URL as it was given")
    if row.status != UploadStatus.PENDING:
        raise UploadAlreadyUsedProblem(f"upload {upload_id!r} was already registered or refused")
    return row


def store_content(storage: Storage, row: UploadTable, path: Path) -> None:
    """Stage the bytes a PUT to the API received (a repeated PUT replaces them)."""
    storage.put_file(row.staging_key, path)


def complete(
    session: Session, storage: Storage, upload_id: str, request: UploadComplete, *, tenant_id: str
) -> UploadCompleted:
    """Join the parts of a multipart upload into its staged object."""
    row = _pending(session, upload_id, tenant_id=tenant_id)
    if row.multipart_id is None:
        raise InvalidRequestProblem("this upload is a single PUT: there are no parts to complete")
    if not row.completed:
        etags = sorted((part.part_number, part.etag) for part in request.parts)
        try:
            storage.complete_multipart(row.staging_key, row.multipart_id, etags)
        except ValueError as exc:
            raise InvalidRequestProblem(f"parts: {exc}") from exc
        row.completed = True
        session.flush()
    return UploadCompleted(upload_id=row.id, size_bytes=storage.size(row.staging_key))


def _fetch_staged(storage: Storage, row: UploadTable, settings: Settings) -> ReceivedFile:
    """The staged bytes in a temp file, hashed and size-capped on the way like a multipart
    upload; the caller removes the file."""
    fd, tmp = tempfile.mkstemp(dir=upload_tmp_dir(settings), prefix="upload-", suffix=".part")
    path, digest, size = Path(tmp), hashlib.sha256(), 0
    try:
        with open(fd, "wb") as out, storage.open(row.staging_key) as source:
            while chunk := source.read(CHUNK_SIZE):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise ModelTooLargeProblem(
                        f"the upload exceeds the limit of {settings.max_upload_bytes} bytes",
                        limit_bytes=settings.max_upload_bytes,
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ReceivedFile(
        path=path, filename=row.filename, size_bytes=size, sha256=digest.hexdigest()
    )


def register_model(
    session: Session,
    storage: Storage,
    settings: Settings,
    request: UploadRegistration,
    *,
    tenant_id: str,
) -> ModelTable:
    """Check and record an upload's staged file as a model, exactly as a multipart upload."""
    row = _pending(session, request.upload_id, tenant_id=tenant_id)
    if (row.multipart_id is not None and not row.completed) or not storage.exists(row.staging_key):
        raise UploadIncompleteProblem(
            "the file was not uploaded yet: PUT it (and complete its parts) first"
        )
    received = _fetch_staged(storage, row, settings)
    try:
        if received.size_bytes == 0:
            raise InvalidModelProblem("the uploaded file is empty")
        upload = Upload(file=received, name=request.name, staged_key=row.staging_key)
        model = models_service.create_from_upload(session, storage, upload, tenant_id=tenant_id)
    finally:
        received.path.unlink(missing_ok=True)
    row.status, row.model_id = UploadStatus.USED.value, model.id
    session.flush()
    return model


def discard(session: Session, storage: Storage, upload_id: str, *, tenant_id: str) -> None:
    """After a refused registration: the upload is spent and its staged bytes deleted."""
    row = repository.get(session, upload_id, tenant_id=tenant_id, for_update=True)
    if row is None or row.status != UploadStatus.PENDING:
        return
    row.status = UploadStatus.FAILED.value
    session.flush()
    _delete_staged(storage, row)


def _delete_staged(storage: Storage, row: UploadTable) -> None:
    try:
        if row.multipart_id is not None and not row.completed:
            storage.abort_multipart(row.staging_key, row.multipart_id)
        storage.delete(row.staging_key)
    except StorageError:
        log.warning("could not delete staged upload %s; the sweep will", row.id, exc_info=True)


def remove_expired(session: Session, storage: Storage, now: datetime) -> int:
    """Delete expired uploads: their rows, staged objects and unfinished parts."""
    removed = 0
    for row in repository.list_expired(session, now):
        _delete_staged(storage, row)
        repository.delete(session, row)
        removed += 1
    return removed
