"""All SQL on the models table."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.pagination import Page, paginate


def add(session: Session, model: ModelTable) -> ModelTable:
    session.add(model)
    session.flush()
    return model


def get(session: Session, tenant_id: str, model_id: str) -> ModelTable | None:
    return session.scalar(
        select(ModelTable).where(ModelTable.id == model_id, ModelTable.tenant_id == tenant_id)
    )


def get_by_job(session: Session, job_id: str) -> ModelTable | None:
    return session.scalar(select(ModelTable).where(ModelTable.job_id == job_id))


def list_page(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    cursor: str | None,
    parent_id: str | None = None,
) -> Page[ModelTable]:
    query = select(ModelTable).where(ModelTable.tenant_id == tenant_id)
    if parent_id is not None:
        query = query.where(ModelTable.parent_id == parent_id)
    return paginate(session, query, ModelTable, limit, cursor)


def count_for_tenant(session: Session, tenant_id: str) -> int:
    query = select(func.count()).select_from(ModelTable).where(ModelTable.tenant_id == tenant_id)
    return int(session.scalar(query) or 0)


def count_with_storage_key(session: Session, storage_key: str) -> int:
    return len(
        session.scalars(select(ModelTable.id).where(ModelTable.storage_key == storage_key)).all()
    )


def delete(session: Session, model: ModelTable) -> None:
    session.delete(model)
    session.flush()
