"""One logging setup for every process: structlog over the standard library, JSON or console.

The API, the Celery worker and `modelpress serve` call `configure_logging`; everything logged
through `logging` (ours, Celery's, uvicorn's) goes through the same renderer, with the request
id, tenant, job id and stage of the current context added to each line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Any, Literal

import structlog
from structlog.types import EventDict, Processor

from app.settings import get_settings

LogFormat = Literal["json", "console"]

# Fields learned while a request is handled (the tenant, in a dependency that runs in another
# thread's copy of the context): a dict shared by reference, so every later line sees them.
_request_fields: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "modelpress_request_fields", default=None
)
_OUR_HANDLER = "modelpress"
_configured = False


def _add_request_fields(_: Any, __: str, event_dict: EventDict) -> EventDict:
    fields = _request_fields.get()
    if fields:
        for key, value in fields.items():
            event_dict.setdefault(key, value)
    return event_dict


def _drop_color_message(_: Any, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event_dict


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    _add_request_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_color_message,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderer(log_format: LogFormat) -> Processor:
    if log_format == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def configure_logging(
    default_format: LogFormat = "json", *, stream: IO[str] | None = None, force: bool = False
) -> None:
    """Route all logging through structlog; MODELPRESS_LOG_FORMAT overrides `default_format`.

    A second call is a no-op unless `force`, so `modelpress serve`'s choice survives the app
    factory running in the same process.
    """
    global _configured
    if _configured and not force:
        return
    settings = get_settings()
    log_format: LogFormat = settings.log_format or default_format
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_OUR_HANDLER)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    # Only our own earlier handler is replaced: a test runner's capture handler stays.
    for old in [h for h in root.handlers if h.get_name() == _OUR_HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # uvicorn's command line gives its loggers handlers of their own: send them through ours,
    # and leave the per-request line to our middleware (it knows the route and request id).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> Any:
    """A structlog logger: `log.info("event", key=value)` becomes one structured line."""
    return structlog.stdlib.get_logger(name)


@contextmanager
def request_context(request_id: str) -> Iterator[MutableMapping[str, Any]]:
    """Bind the request id for the request's lines; yields the dict later fields are added to."""
    fields: dict[str, Any] = {}
    token = _request_fields.set(fields)
    try:
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            yield fields
    finally:
        _request_fields.reset(token)


def note_request_field(key: str, value: Any) -> None:
    """Add a field (the tenant) to the current request's lines, from any thread serving it."""
    fields = _request_fields.get()
    if fields is not None:
        fields[key] = value


def bind_job_context(**fields: Any) -> None:
    """Bind job fields (job_id, tenant_id, kind, stage) to this task's lines."""
    structlog.contextvars.bind_contextvars(**fields)


def clear_job_context() -> None:
    """Forget the last task's fields before the worker takes the next one."""
    structlog.contextvars.clear_contextvars()
