"""Liveness, readiness (database, broker, storage) and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.db import get_engine
from app.deps import SessionDep, UnitOfWorkRoute, require_metrics_token
from app.jobs.queue import producer
from app.observability.metrics import render_metrics
from app.settings import Settings, get_settings
from app.storage import get_storage

log = logging.getLogger(__name__)

router = APIRouter(tags=["service"], route_class=UnitOfWorkRoute)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


def _check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker() -> None:
    with producer().connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@router.get("/readyz")
def readyz() -> JSONResponse:
    """Database, broker and storage reachable: 200; otherwise 503 naming what is down."""
    checks: dict[str, Any] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", lambda: get_storage().ping()),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"down: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_metrics_token)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(session: SessionDep, settings: Annotated[Settings, Depends(get_settings)]) -> Response:
    """Request latency, job counts, durations, failures and queue depth, for Prometheus."""
    return Response(render_metrics(session, settings), media_type=CONTENT_TYPE_LATEST)
