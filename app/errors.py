"""Typed API errors and the one handler that turns every error into problem+json.

Every ProblemError subclass is named `...Problem`: the name says it becomes an HTTP answer, and
never clashes with the compression library's own `...Error` exceptions it is raised from.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.storage.base import StorageError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """An error a client can act on: an HTTP status, a stable `code` and a human detail."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        # Response headers that are not part of the body, e.g. RateLimit-* on a 429.
        self.headers: dict[str, str] = {}


class UnauthorizedProblem(ProblemError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class NotFoundProblem(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class InvalidModelProblem(ProblemError):
    status, code, title = 422, "invalid_model", "Not a valid ONNX model"


class UnsafeArchiveProblem(ProblemError):
    status, code, title = 422, "unsafe_archive", "Unsafe archive"


class ModelTooLargeProblem(ProblemError):
    status, code, title = 413, "model_too_large", "Upload too large"


class InvalidDatasetProblem(ProblemError):
    status, code, title = 422, "invalid_dataset", "Not a usable dataset"


class DatasetTooLargeProblem(ProblemError):
    status, code, title = 413, "dataset_too_large", "Upload too large"


class DatasetMismatchProblem(ProblemError):
    status, code, title = 422, "dataset_mismatch", "Dataset does not fit the model"


class InvalidRecipeProblem(ProblemError):
    status, code, title = 422, "invalid_recipe", "Invalid recipe"


class InvalidRequestProblem(ProblemError):
    status, code, title = 422, "invalid_request", "Invalid request"


class ConflictProblem(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class ModelInUseProblem(ProblemError):
    status, code, title = 409, "model_in_use", "Model in use"


class DatasetInUseProblem(ProblemError):
    status, code, title = 409, "dataset_in_use", "Dataset in use"


class JobNotFinishedProblem(ProblemError):
    status, code, title = 409, "job_not_finished", "Job not finished"


class UploadAlreadyUsedProblem(ProblemError):
    status, code, title = 409, "upload_already_used", "Upload already used"


class UploadIncompleteProblem(ProblemError):
    status, code, title = 422, "upload_incomplete", "Upload incomplete"


class QuotaExceededProblem(ProblemError):
    status, code, title = 409, "quota_exceeded", "Quota exceeded"


class TooManyActiveJobsProblem(ProblemError):
    status, code, title = 429, "too_many_active_jobs", "Too many active jobs"


class RateLimitedProblem(ProblemError):
    status, code, title = 429, "rate_limited", "Too many submissions"


class BrokerUnavailableProblem(ProblemError):
    status, code, title = 503, "broker_unavailable", "Job queue unavailable"


class ServiceUnavailableProblem(ProblemError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class ServiceBusyProblem(ProblemError):
    """Every slot of a bounded resource stayed taken; `retry_after_s` goes into Retry-After."""

    status, code, title = 503, "service_busy", "Service busy"


class StorageFullProblem(ProblemError):
    status, code, title = 507, "storage_full", "Insufficient storage"


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is a full disk or an exhausted quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def storage_full() -> StorageFullProblem:
    """The problem a full disk becomes: the request kept nothing and may be retried later."""
    return StorageFullProblem(
        "the server's disk is full: nothing from this request was kept; retry later",
        retry_after_s=60,
    )


def _field_path(loc: Any) -> str:
    """Dotted path of a validation error, without FastAPI's leading 'body'/'query'."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts)


def problem_response(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://modelpress.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    408: ("request_timeout", "Request timeout"),
    413: ("request_too_large", "Request too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def response_for(exc: ProblemError) -> JSONResponse:
    """The problem+json answer of a typed error, with its WWW-Authenticate or Retry-After."""
    response = problem_response(exc.status, exc.code, exc.title, exc.detail, **exc.extra)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if "retry_after_s" in exc.extra:
        response.headers["Retry-After"] = str(exc.extra["retry_after_s"])
    response.headers.update(exc.headers)
    return response


def _json_syntax_problem(error: dict[str, Any], document: Any) -> JSONResponse:
    """Where a request body stopped being JSON: line, column and what the parser expected."""
    position = error["loc"][-1] if isinstance(error["loc"][-1], int) else 0
    text = document if isinstance(document, str) else ""
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    reason = (error.get("ctx") or {}).get("error", "invalid JSON")
    return problem_response(
        400, "invalid_json", "Invalid JSON",
        f"the body is not valid JSON: {reason} at line {line}, column {column}",
        line=line, column=column, position=position,
    )  # fmt: skip


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; after this no request answers a bare 500 or an HTML error."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        if raw and raw[0].get("type") == "json_invalid":
            return _json_syntax_problem(raw[0], exc.body)
        errors = [
            {
                "loc": _field_path(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type"),
            }
            for err in raw
        ]
        first = errors[0] if errors else {"loc": "", "msg": "invalid request"}
        field = first["loc"]
        detail = f"{field}: {first['msg']}" if field else str(first["msg"])
        # A recipe is validated by the passes' own configs: its errors get their own code.
        if field == "recipe" or field.startswith("recipe."):
            return problem_response(
                422, InvalidRecipeProblem.code, InvalidRecipeProblem.title,
                detail, field=field, errors=errors,
            )  # fmt: skip
        return problem_response(
            422, "invalid_request", "Invalid request", detail, field=field, errors=errors,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        response = problem_response(exc.status_code, code, title, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which Postgres text cannot hold: the input's fault, not ours.
        log.info("database refused a value: %s", exc.orig)
        return problem_response(
            422,
            "invalid_request",
            "Invalid request",
            "a value holds characters that cannot be stored",
        )

    @app.exception_handler(PoolTimeoutError)
    async def _busy(_: Request, exc: PoolTimeoutError) -> JSONResponse:
        log.warning("database connection pool exhausted: %s", exc)
        response = problem_response(
            503, "service_busy", "Service busy", "Too many requests at once; retry shortly."
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.orig)
        return problem_response(
            503, "database_unavailable", "Database unavailable", "The database is unreachable."
        )

    @app.exception_handler(OSError)
    async def _disk_full(request: Request, exc: OSError) -> JSONResponse:
        if not is_disk_full(exc):
            raise exc  # anything else is unexpected: the 500 handler logs it
        log.error("disk full serving %s %s: %s", request.method, request.url.path, exc)
        return response_for(storage_full())

    @app.exception_handler(StorageError)
    async def _storage_down(request: Request, exc: StorageError) -> JSONResponse:
        if is_disk_full(exc):
            log.error("disk full serving %s %s: %s", request.method, request.url.path, exc)
            return response_for(storage_full())
        log.warning("storage error: %s", exc)
        return problem_response(
            503, "storage_unavailable", "Storage unavailable", "The model store did not answer."
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(
            500, "internal_error", "Internal error", "An unexpected error occurred; it was logged."
        )


class IdempotencyKeyReusedProblem(ProblemError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class IdempotencyKeyInUseProblem(ProblemError):
    status, code, title = 409, "idempotency_key_in_use", "Idempotency key in use"


class InvalidWebhookProblem(ProblemError):
    status, code, title = 422, "invalid_webhook", "Invalid webhook URL"


class WebhookUrlNotAllowedProblem(ProblemError):
    status, code, title = 422, "webhook_url_not_allowed", "Webhook address not allowed"
