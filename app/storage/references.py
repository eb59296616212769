"""Which stored objects rows still point at: the one query every table with a storage_key shares.

The leftover sweep asks it of each such table before it removes an unreferenced object.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session


def referenced_keys(
    session: Session, column: InstrumentedAttribute[str], keys: Collection[str]
) -> set[str]:
    """Which of `keys` some row of any tenant stores its file under (`column`: its storage_key)."""
    return set(session.scalars(select(column).where(column.in_(list(keys)))))
