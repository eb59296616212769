"""Keyset pagination over (created_at, id), newest first, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, or_
from sqlalchemy.orm import Session

from app.errors import InvalidRequestProblem

T = TypeVar("T")
ListT = TypeVar("ListT", bound=BaseModel)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageRequest(BaseModel):
    """The page a client asked for: at most `limit` rows, after `cursor` when given."""

    model_config = ConfigDict(frozen=True)

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=512)


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None

    def to_list(self, list_type: type[ListT], to_out: Callable[[T], Any]) -> ListT:
        """The page as an API list: each row through `to_out`, and the next page's cursor."""
        return list_type(items=[to_out(row) for row in self.items], next_cursor=self.next_cursor)


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidRequestProblem("cursor: not a cursor this API returned") from exc


def paginate(session: Session, query: Select[Any], table: Any, page: PageRequest) -> Page[Any]:
    """Run `query` (already filtered) one page at a time, newest first."""
    if page.cursor:
        created, row_id = decode_cursor(page.cursor)
        query = query.where(
            or_(table.created_at < created, (table.created_at == created) & (table.id < row_id))
        )
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(page.limit + 1)
    rows = list(session.scalars(query))
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return Page(items=rows, next_cursor=next_cursor)
