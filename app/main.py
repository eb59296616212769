"""The FastAPI application: routers, error handlers, the web form."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from app import health, limits
from app.benchmarks.router import router as benchmarks_router
from app.datasets.router import router as datasets_router
from app.deps import get_tenant_id
from app.errors import install_error_handlers
from app.jobs.router import router as jobs_router
from app.limits import RequestGate
from app.observability.logging import configure_logging
from app.observability.requests import RequestObservation
from app.onnx_models.router import router as models_router
from app.openapi import install_docs, operation_id
from app.settings import get_settings
from app.tenants.tables import DEFAULT_TENANT
from app.uploads.router import content_router as upload_content_router
from app.uploads.router import router as uploads_router
from app.web.router import mount_static
from app.web.router import router as web_router
from app.webhooks import outbox as webhooks_outbox
from app.webhooks.router import router as webhooks_router


class ModelPressApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's error middleware too, so even a 500 carries its X-Request-ID and
        # is logged and timed like any other request.
        return RequestObservation(super().build_middleware_stack())


def create_app() -> FastAPI:
    configure_logging()
    settings = get_settings()
    settings.check_safe_to_serve()
    if not settings.auth_enabled:
        logging.getLogger("app").warning(
            "API keys are OFF: every request acts as the built-in tenant %r. "
            "Fine for a local embedded server; never expose it to a network.",
            DEFAULT_TENANT,
        )
    if settings.is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = ModelPressApp(
        title="ModelPress",
        version="0.1.0",
        description="Compression as a service for ONNX models: upload, compress, benchmark.",
        generate_unique_id_function=operation_id,
        docs_url=None,  # install_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    install_error_handlers(app)
    webhooks_outbox.install()  # job transitions made here (cancel) record webhook events too
    app.add_middleware(RequestGate)
    app.include_router(health.router)
    # Every /v1 endpoint needs a key (when keys are on), whether or not it reads the tenant.
    v1_routers = (
        limits.router, models_router, datasets_router, jobs_router, benchmarks_router,
        webhooks_router, uploads_router,
    )  # fmt: skip
    for v1_router in v1_routers:
        app.include_router(v1_router, dependencies=[Depends(get_tenant_id)])
    # The one /v1 endpoint without a key: the token in its URL authorises it.
    app.include_router(upload_content_router)
    app.include_router(web_router)
    mount_static(app)
    install_docs(app)
    return app


app = create_app()
