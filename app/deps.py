"""What every router shares: the unit of work, the tenant, storage, paging, the Location."""

from __future__ import annotations

import functools
import inspect
import secrets
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db import session_scope
from app.errors import UnauthorizedProblem
from app.observability.logging import note_request_field
from app.pagination import PageRequest
from app.settings import Settings, get_settings
from app.storage import Storage, get_storage
from app.tenants import service as tenants_service
from app.tenants.tables import DEFAULT_TENANT

BodyT = TypeVar("BodyT")


def get_session() -> Iterator[Session]:
    """The request's transaction: committed when the handler returns, rolled back if it raises."""
    with session_scope() as session:
        yield session


def _ending_its_transaction(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """A sync endpoint that commits (or rolls back) the request's session before it returns."""

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        sessions = [value for value in kwargs.values() if isinstance(value, Session)]
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            for session in sessions:
                session.rollback()
            raise
        for session in sessions:
            session.commit()
        return result

    return run


class UnitOfWorkRoute(APIRoute):
    """A route whose sync endpoint ends the request's transaction in the thread that did the work.

    A sync endpoint and the teardown of the session dependency run in two separate turns on the
    thread pool. A connection held between them waits for a free thread, and when every thread
    waits for a connection from an empty pool, nothing moves until the pool's timeout: a burst of
    submissions would answer 503s. Committed here, the connection is back in the pool when the
    endpoint's turn ends; the dependency's own commit then has nothing left to do.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _ending_its_transaction(endpoint)
        super().__init__(path, endpoint, **kwargs)


# auto_error=False: a missing key is answered by our own 401 problem, not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, description="An API key from `modelpress admin create-key`.")


def get_tenant_id(
    session: Annotated[Session, Depends(get_session, scope="function")],
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's tenant: from its API key, or the built-in tenant when auth is off."""
    if not settings.auth_enabled:
        note_request_field("tenant_id", DEFAULT_TENANT)
        return DEFAULT_TENANT
    secret = credentials.credentials if credentials else None
    tenant_id = tenants_service.tenant_for_key(session, secret)
    # Ends the lookup's read-only transaction: its pool connection goes back while an upload
    # streams in, and the handler's own work starts a fresh one.
    session.commit()
    note_request_field("tenant_id", tenant_id)
    return tenant_id


def require_metrics_token(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """GET /metrics counts every tenant's jobs: only the operator's metrics token may read it.

    Without a token configured it is open only where API keys are off (the embedded default).
    """
    token = settings.metrics_token
    if not token:
        if settings.auth_enabled:
            raise UnauthorizedProblem(
                "/metrics needs MODELPRESS_METRICS_TOKEN set on the server, sent as a Bearer token"
            )
        return
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise UnauthorizedProblem("send the metrics token as 'Authorization: Bearer <token>'")


# scope="function" closes the unit of work before the response is sent, so a client that
# reads the Location of a new job right away always finds it committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
TenantDep = Annotated[str, Depends(get_tenant_id)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# The `limit` and `cursor` query parameters of every list endpoint; declare it before the filters
# so the documented parameters keep that order.
PageQuery = Annotated[PageRequest, Query()]


def located(response: Response, path: str, body: BodyT) -> BodyT:
    """`body`, answered with `path` as its Location: where the new resource can be read."""
    response.headers["Location"] = path
    return body
