"""Ctrl-C in the CLI: held while the server may be creating something, so its id can be shown."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any


class Interrupted(Exception):
    """The user pressed Ctrl-C; the message says what exists on the server now (exit 130)."""


class HeldInterrupt:
    """Inside the block a first Ctrl-C is only noted (`pending`); a second one stops at once.

    The caller looks at `pending` at its next safe point, when it knows what the server holds.
    Signals can only be caught on the main thread; elsewhere the block changes nothing.
    """

    def __init__(self, notice: str) -> None:
        self.notice = notice
        self.pending = False
        self.forced = False  # the second Ctrl-C: raised wherever the program was
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> HeldInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._note)
            self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            # None means a handler set outside Python: Python's own is the closest to restore.
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            self._installed = False

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.pending:
            self.forced = True
            raise KeyboardInterrupt
        self.pending = True
        print(f"\n{self.notice}", file=sys.stderr, flush=True)

    def raise_if_pending(self) -> None:
        """Stop here if Ctrl-C was pressed (called between two chunks of an upload)."""
        if self.pending:
            raise KeyboardInterrupt
