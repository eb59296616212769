"""All SQL on the uploads table; `tenant_id` is keyword-only, as in every repository."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.uploads.tables import UploadTable


def add(session: Session, upload: UploadTable) -> UploadTable:
    session.add(upload)
    session.flush()
    return upload


def get(
    session: Session, upload_id: str, *, tenant_id: str, for_update: bool = False
) -> UploadTable | None:
    query = select(UploadTable).where(
        UploadTable.id == upload_id, UploadTable.tenant_id == tenant_id
    )
    # Locked when it is about to be used: two registrations of one upload queue up.
    return session.scalar(query.with_for_update() if for_update else query)


def get_any_tenant(session: Session, upload_id: str) -> UploadTable | None:
    """The upload a PUT with a token targets: the token, not a key, says who may write it."""
    return session.get(UploadTable, upload_id)


def list_expired(session: Session, now: datetime, limit: int = 500) -> list[UploadTable]:
    """Uploads past their expiry, used or not: their rows and staged objects can go."""
    query = select(UploadTable).where(UploadTable.expires_at < now).limit(limit)
    return list(session.scalars(query))


def live_staging_keys(session: Session, keys: list[str]) -> set[str]:
    """Which of `keys` an upload row still stages its bytes under."""
    query = select(UploadTable.staging_key).where(UploadTable.staging_key.in_(keys))
    return set(session.scalars(query))


def delete(session: Session, upload: UploadTable) -> None:
    session.delete(upload)
    session.flush()
