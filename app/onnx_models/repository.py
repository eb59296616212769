"""All SQL on the models table.

`tenant_id` is keyword-only, as in every repository, so it can never be swapped with an id.
Lookups without it (by job, by storage key) serve the worker and file bookkeeping, never a client.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.pagination import Page, PageRequest, paginate
from app.storage.references import referenced_keys


def add(session: Session, model: ModelTable) -> ModelTable:
    session.add(model)
    session.flush()
    return model


def get(session: Session, model_id: str, *, tenant_id: str) -> ModelTable | None:
    query = select(ModelTable).where(ModelTable.id == model_id, ModelTable.tenant_id == tenant_id)
    return session.scalar(query)


def get_by_job(session: Session, job_id: str) -> ModelTable | None:
    """The model a job produced, whatever its tenant: the worker knows the job, not a client."""
    return session.scalar(select(ModelTable).where(ModelTable.job_id == job_id))


def list_page(
    session: Session, page: PageRequest, *, tenant_id: str, parent_id: str | None = None
) -> Page[ModelTable]:
    query = select(ModelTable).where(ModelTable.tenant_id == tenant_id)
    if parent_id is not None:
        query = query.where(ModelTable.parent_id == parent_id)
    return paginate(session, query, ModelTable, page)


def count_for_tenant(session: Session, *, tenant_id: str) -> int:
    query = select(func.count()).select_from(ModelTable).where(ModelTable.tenant_id == tenant_id)
    return int(session.scalar(query) or 0)


def referenced_storage_keys(session: Session, keys: Collection[str]) -> set[str]:
    return referenced_keys(session, ModelTable.storage_key, keys)


def list_created_before(session: Session, cutoff: datetime, limit: int = 500) -> list[ModelTable]:
    """Models of any tenant created before `cutoff`: what retention deletes."""
    query = select(ModelTable).where(ModelTable.created_at < cutoff).limit(limit)
    return list(session.scalars(query))


def delete(session: Session, model: ModelTable) -> None:
    session.delete(model)
    session.flush()
