"""Errors of the compression library that callers act on by `code`."""

from __future__ import annotations


class PassError(Exception):
    """A pass could not apply to this model; `code` is stable and lands in the job's error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
