"""Checking an uploaded model outside the API process, a bounded number at a time.

Parsing an untrusted protobuf (and running the ONNX checker on it) takes a few times the file's
size in memory, and a crafted file can take far more or crash the parser. So the API hands the
file to the same sandbox child that runs passes, under its own memory and time limits, and at
most `max_concurrent_validations` of them run at once in one API process.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

from app.errors import InvalidModelProblem, ServiceBusyProblem
from app.pipeline.frame import StageError
from app.pipeline.sandbox import run_in_child
from app.pipeline.sandbox_protocol import ValidateModelRequest, ValidateModelResult
from app.settings import Settings

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 5


@lru_cache
def validation_slots(count: int) -> threading.BoundedSemaphore:
    """This process's validation slots: one semaphore per configured count."""
    return threading.BoundedSemaphore(count)


def validate_model_file(path: Path, settings: Settings) -> ValidateModelResult:
    """The model's facts and analysis, read by a sandbox child; InvalidModelProblem if it is
    not usable, ServiceBusyProblem if no slot frees up within `validation_wait_s`."""
    slots = validation_slots(settings.max_concurrent_validations)
    if not slots.acquire(timeout=settings.validation_wait_s):
        raise ServiceBusyProblem(
            f"{settings.max_concurrent_validations} uploads are being checked already; "
            "retry shortly",
            retry_after_s=BUSY_RETRY_AFTER_S,
        )
    try:
        result = run_in_child(
            ValidateModelRequest(model=path),
            memory_limit_mb=settings.validation_memory_limit_mb,
            timeout_s=settings.validation_time_limit_s,
        )
    except StageError as exc:
        raise _as_problem(exc, settings) from exc
    finally:
        slots.release()
    return result


def _as_problem(error: StageError, settings: Settings) -> InvalidModelProblem:
    """Every way the check can fail is the file's doing: say which limit it ran into."""
    if error.code == "out_of_memory":
        detail = (
            f"checking the model needed more than {settings.validation_memory_limit_mb} MiB "
            "of memory, this server's limit for an upload"
        )
    elif error.code == "timeout":
        detail = (
            f"checking the model took longer than {settings.validation_time_limit_s:g} s, "
            "this server's limit for an upload"
        )
    elif error.code == "invalid_model":
        detail = error.message
    else:
        # A crash of the parser (or anything unforeseen) on this file: logged for the operator.
        log.warning("model check failed with %s: %s", error.code, error.message)
        detail = "the ONNX parser could not read the model (it crashed on this file)"
    return InvalidModelProblem(detail)
