"""Content-addressed objects: one stored object per distinct file, freed with its last row.

A file is stored under `objects/sha256/<hex>.<suffix>`; the suffix is the packaging (onnx, zip,
npz), so a listing tells what each object is. Storing and freeing follow one protocol:

- store: upload the object if absent (outside any lock: a big upload must not hold one), then,
  in the transaction that adds the row, take the object's lock, upload again if a remover took
  the object meanwhile, and add the row; the lock holds until that row is committed.
- free: after the transaction that removed a row commits, a short transaction of its own takes
  the lock, counts the rows still naming the object, and deletes it only at zero.

So "the same bytes are uploaded while their last row is deleted" ends with either the object
kept (the remover counted the new row) or stored again (the uploader found it gone).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from app.db import call_after_commit, call_after_rollback, session_scope
from app.storage.base import Storage
from app.storage.references import lock_object, reference_count, try_lock_object

log = logging.getLogger(__name__)

CONTENT_PREFIX = "objects/sha256/"


def content_key(sha256: str, suffix: str) -> str:
    """Where the file whose SHA-256 is `sha256` is stored."""
    return f"{CONTENT_PREFIX}{sha256}.{suffix}"


def store_object(
    session: Session, storage: Storage, key: str, path: Path, *, staged_key: str | None = None
) -> None:
    """Make the object under `key` hold the file at `path`, for a row this transaction adds.

    `staged_key`: the same bytes already in storage (a direct upload), moved instead of
    uploaded again; it is gone afterwards either way.
    """
    if storage.exists(key):
        if staged_key:
            storage.delete(staged_key)
    elif staged_key:
        storage.move(staged_key, key)
    else:
        storage.put_file(key, path)
    lock_object(session, key)
    if not storage.exists(key):  # freed between our upload and our lock: store it again
        storage.put_file(key, path)
    # If the row never commits, the object goes unless another row names it.
    call_after_rollback(session, lambda: free_object(storage, key))


def release_after_commit(session: Session, storage: Storage, key: str) -> None:
    """The row naming `key` was removed in this transaction: free the object once it commits."""
    call_after_commit(session, lambda: free_object(storage, key))


def free_object(storage: Storage, key: str) -> bool:
    """Delete the object under `key` if no row names it; whether it was deleted.

    A lock held elsewhere means a transaction is storing a row for it (or freeing it already):
    that one decides, and the leftover sweep takes what is still unreferenced later.
    """
    with session_scope() as session:
        if not try_lock_object(session, key):
            log.info("object %s is being stored or freed elsewhere; left to that", key)
            return False
        if reference_count(session, key):
            return False
        storage.delete(key)  # under the lock: no upload can count on it meanwhile
        return True
