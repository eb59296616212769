"""The OpenAPI document and /docs: readable operation ids, problem+json errors, offline assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM_JSON

# Swagger UI 5 and Redoc as files inside a wheel: /docs works on a machine without internet.
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_ASSETS_URL = "/docs-assets"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class FieldError(BaseModel):
    """One failed check of a request field."""

    model_config = ConfigDict(extra="allow")

    loc: str = Field(description="Dotted path of the field, e.g. `recipe.0.kind`.")
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """Every error answer (RFC 9457 problem details); `code` is stable, branch on it."""

    # Some problems carry more members, e.g. `retry_after_s`, or `line` and `column` of bad JSON.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://modelpress.dev/problems/not_found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "model 'm_123' not found",
                    "code": "not_found",
                }
            ]
        },
    )

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str = Field(description="What went wrong with this request, for a human.")
    code: str = Field(description="Stable machine-readable code, e.g. `rate_limited`.")
    field: str | None = Field(default=None, description="The request field at fault, if one.")
    errors: list[FieldError] | None = Field(default=None, description="Every failed field check.")


_DESCRIPTIONS = {
    401: "No valid API key (`unauthorized`).",
    404: "No such resource for this tenant (`not_found`).",
    409: "Conflicts with the current state (`model_in_use`, `quota_exceeded`, "
    "`idempotency_key_in_use`, ...).",
    413: "The body is over the limit (`request_too_large`, `model_too_large`, ...).",
    415: "The upload is not `multipart/form-data` (`unsupported_media_type`).",
    422: "The request is well-formed but invalid (`invalid_request`, `invalid_recipe`, "
    "`idempotency_key_reused`, ...).",
    429: "Too many submissions (`rate_limited`) or active jobs (`too_many_active_jobs`); "
    "see Retry-After and the RateLimit-* headers.",
    503: "A dependency is down or busy (`database_unavailable`, `service_busy`, ...); retry.",
    507: "The server's disk is full (`storage_full`); nothing was kept, retry later.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: each status documented as a problem+json answer."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def operation_id(route: APIRoute) -> str:
    """`createJob` from the endpoint `create_job`: ids that generated clients use as names."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _as_problems(operation: dict[str, Any], *, is_api: bool) -> None:
    """Every error answer of an operation as problem+json, plus those any /v1 call can get."""
    responses = operation.setdefault("responses", {})
    if is_api:
        for status in (401, 503):
            responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            # FastAPI's own 422 (HTTPValidationError) is replaced too: our handler answers it.
            if int(status) in _DESCRIPTIONS:
                response["description"] = _DESCRIPTIONS[int(status)]
            response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}


def build_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, with every error documented as a `Problem`."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(components["Problem"].pop("$defs", {}))
    for path, methods in schema.get("paths", {}).items():
        for operation in methods.values():
            # /metrics is keyed too: by the operator's metrics token.
            _as_problems(operation, is_api=path.startswith("/v1/") or path == "/metrics")
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


def install_docs(app: FastAPI) -> None:
    """The schema with problems, and /docs and /redoc served with local assets only."""
    app.openapi = lambda: build_schema(app)  # type: ignore[method-assign]
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            # The validator badge would fetch from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def request_examples(examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`openapi_extra=` of a route: named examples of its JSON body, shown in /docs."""
    return {"requestBody": {"content": {"application/json": {"examples": examples}}}}


JOB_EXAMPLES = request_examples(
    {
        "preset": {
            "summary": "A preset",
            "value": {"model_id": "m_0123456789abcdef", "preset": "int8-dynamic"},
        },
        "recipe": {
            "summary": "A recipe of your own, checked on real data",
            "value": {
                "model_id": "m_0123456789abcdef",
                "recipe": {
                    "passes": [
                        {"type": "prune_magnitude", "sparsity": 0.5},
                        {"type": "cluster_weights", "clusters": 16},
                    ]
                },
                "eval_dataset_id": "d_0123456789abcdef",
            },
        },
        "auto": {
            "summary": "Let the service search, within an accuracy budget",
            "value": {
                "model_id": "m_0123456789abcdef",
                "preset": "auto",
                "objective": {"optimize": "latency", "max_accuracy_drop": 0.01},
                "calibration_dataset_id": "d_0123456789abcdef",
                "eval_dataset_id": "d_0123456789abcdef",
            },
        },
        "webhook": {
            "summary": "A preset, and a signed POST of the job when it ends",
            "value": {
                "model_id": "m_0123456789abcdef",
                "preset": "int8-dynamic",
                "webhook": "https://ci.example.com/hooks/modelpress",
                "webhook_events_filter": ["completed"],
            },
        },
    }
)
BENCHMARK_EXAMPLES = request_examples(
    {
        "compare": {
            "summary": "A compressed model against its original",
            "value": {"model_id": "m_compressed", "baseline_model_id": "m_original"},
        }
    }
)
