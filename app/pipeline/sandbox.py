"""Run native-code work (passes, benchmarks) in a child process with memory and time limits.

A segfault, an out-of-memory kill or a hang then fails that one job with a clear code, and the
worker process itself keeps serving the next job.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.pipeline.frame import StageError
from app.pipeline.sandbox_child import EXIT_OUT_OF_MEMORY

log = logging.getLogger(__name__)


def run_in_child(
    kind: str, request: dict[str, Any], *, memory_limit_mb: int | None, timeout_s: float
) -> dict[str, Any]:
    """The child's result; StageError with worker_crashed, out_of_memory or timeout otherwise."""
    with tempfile.TemporaryDirectory(prefix="modelpress-child-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(
            json.dumps({**request, "kind": kind, "memory_limit_mb": memory_limit_mb})
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.pipeline.sandbox_child",
                str(request_path),
                str(result_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise StageError(
                "timeout", f"the {kind} ran past its limit of {timeout_s:.0f} s"
            ) from None
        except BaseException:
            # The task itself is being stopped (soft time limit, shutdown): never orphan the child.
            proc.kill()
            proc.communicate()
            raise
        tail = output.decode(errors="replace")[-2000:]
        if proc.returncode != 0:
            raise _crash_error(kind, proc.returncode, tail, memory_limit_mb)
        if not result_path.exists():
            raise StageError("worker_crashed", f"the {kind} exited without a result: {tail}")
        result: dict[str, Any] = json.loads(result_path.read_text())
    if "error" in result:
        raise StageError(result["error"]["code"], result["error"]["message"])
    return dict(result["ok"])


def _crash_error(kind: str, returncode: int, tail: str, memory_limit_mb: int | None) -> StageError:
    if returncode == EXIT_OUT_OF_MEMORY or returncode == -signal.SIGKILL:
        # SIGKILL we did not send is the kernel's OOM killer.
        return StageError(
            "out_of_memory", f"the {kind} ran out of memory (limit {memory_limit_mb} MiB)"
        )
    if returncode < 0:
        name = signal.Signals(-returncode).name
        log.warning("%s child died with %s: %s", kind, name, tail)
        return StageError("worker_crashed", f"the {kind} crashed ({name}) in native code")
    log.warning("%s child exited with %d: %s", kind, returncode, tail)
    return StageError("worker_crashed", f"the {kind} exited with status {returncode}")
