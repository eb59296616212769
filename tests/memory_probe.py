"""Peak resident memory of a server process around one request, read from /proc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def peak_rss_growth_mb(pid: int, action: Callable[[], T]) -> tuple[T, float]:
    """Run `action`; what it returned, and the most process `pid` grew above its RSS before."""
    status = Path(f"/proc/{pid}/status")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    before = _status_kb(status, "VmHWM")
    result = action()
    return result, (_status_kb(status, "VmHWM") - before) / 1024


def _status_kb(status: Path, field: str) -> int:
    line = next(x for x in status.read_text().splitlines() if x.startswith(f"{field}:"))
    return int(line.split()[1])
