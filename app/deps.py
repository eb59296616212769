"""FastAPI dependencies shared by every router: the unit of work, the tenant, storage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from app.db import session_scope
from app.onnx_models.tables import DEFAULT_TENANT
from app.settings import Settings, get_settings
from app.storage import Storage, get_storage


def get_session() -> Iterator[Session]:
    """The request's transaction: committed when the handler returns, rolled back if it raises."""
    with session_scope() as session:
        yield session


def get_tenant_id() -> str:
    """The caller's tenant; a single built-in tenant until API keys exist."""
    return DEFAULT_TENANT


# scope="function" closes the unit of work before the response is sent, so a client that
# reads the Location of a new job right away always finds it committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
TenantDep = Annotated[str, Depends(get_tenant_id)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
