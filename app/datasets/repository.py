"""All SQL on the datasets table."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.tables import DatasetTable
from app.pagination import Page, paginate


def add(session: Session, dataset: DatasetTable) -> DatasetTable:
    session.add(dataset)
    session.flush()
    return dataset


def get(session: Session, tenant_id: str, dataset_id: str) -> DatasetTable | None:
    return session.scalar(
        select(DatasetTable).where(
            DatasetTable.id == dataset_id, DatasetTable.tenant_id == tenant_id
        )
    )


def list_page(
    session: Session, tenant_id: str, *, limit: int, cursor: str | None
) -> Page[DatasetTable]:
    query = select(DatasetTable).where(DatasetTable.tenant_id == tenant_id)
    return paginate(session, query, DatasetTable, limit, cursor)


def delete(session: Session, dataset: DatasetTable) -> None:
    session.delete(dataset)
    session.flush()
