"""All SQL on the datasets table; `tenant_id` is keyword-only, as in every repository."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.tables import DatasetTable
from app.pagination import Page, PageRequest, paginate
from app.storage.references import referenced_keys


def add(session: Session, dataset: DatasetTable) -> DatasetTable:
    session.add(dataset)
    session.flush()
    return dataset


def get(session: Session, dataset_id: str, *, tenant_id: str) -> DatasetTable | None:
    owned = DatasetTable.tenant_id == tenant_id
    return session.scalar(select(DatasetTable).where(DatasetTable.id == dataset_id, owned))


def list_page(session: Session, page: PageRequest, *, tenant_id: str) -> Page[DatasetTable]:
    query = select(DatasetTable).where(DatasetTable.tenant_id == tenant_id)
    return paginate(session, query, DatasetTable, page)


def referenced_storage_keys(session: Session, keys: Collection[str]) -> set[str]:
    return referenced_keys(session, DatasetTable.storage_key, keys)


def list_created_before(session: Session, cutoff: datetime, limit: int = 500) -> list[DatasetTable]:
    """Datasets of any tenant created before `cutoff`: what retention deletes."""
    query = select(DatasetTable).where(DatasetTable.created_at < cutoff).limit(limit)
    return list(session.scalars(query))


def delete(session: Session, dataset: DatasetTable) -> None:
    session.delete(dataset)
    session.flush()
