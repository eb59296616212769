"""Which stored objects rows still point at, and the lock that orders storing and removing one.

Rows name their file by `storage_key`. Files are stored content-addressed (`objects.py`): two rows
with the same bytes share one object, so an object is a reference-counted thing whose count is
the number of model and dataset rows naming it. Old keys (`models/<id>/...`, `outputs/...`,
`datasets/<id>/...`) are counted the same way: one row each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy import func, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.datasets.tables import DatasetTable
from app.onnx_models.tables import ModelTable


def referenced_keys(
    session: Session, column: InstrumentedAttribute[str], keys: Collection[str]
) -> set[str]:
    """Which of `keys` some row of any tenant stores its file under (`column`: its storage_key)."""
    return set(session.scalars(select(column).where(column.in_(list(keys)))))


def reference_count(session: Session, key: str) -> int:
    """Rows of any tenant, models and datasets, whose file is the object under `key`."""
    count = 0
    for column in (ModelTable.storage_key, DatasetTable.storage_key):
        count += int(session.scalar(select(func.count()).where(column == key)) or 0)
    return count


def _lock_id(key: str) -> int:
    """A signed 64-bit number for the key (a collision only serializes two unrelated keys)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


# The lock is a Postgres advisory transaction lock keyed by the object key rather than a row
# lock on a refcount row: it needs no row to exist first (no insert race between two first
# uploads of the same bytes), nothing can drift out of step with the rows that really refer to
# the object, and old keys need no backfill. It is released by the commit or rollback that ends
# the reference, which is exactly when a waiting remover may look at the count again.
# SQLite has one writer at a time: a write that changes nothing takes that lock the same way.


def lock_object(session: Session, key: str) -> None:
    """Hold the object's lock until this transaction ends (wait for it if taken)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_lock_id(key))))
    else:
        session.execute(text("UPDATE models SET id = id WHERE 1 = 0"))


def try_lock_object(session: Session, key: str) -> bool:
    """Take the object's lock if free; False when another transaction holds it (SQLite waits
    for its one writer instead, up to its busy timeout)."""
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_lock_id(key)))))
    lock_object(session, key)
    return True
