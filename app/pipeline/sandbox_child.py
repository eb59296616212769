"""Child-process entry: set the limits, then run one pass or one benchmark, answer in a file.

`python -m app.pipeline.sandbox_child REQUEST.json RESULT.json MEMORY_LIMIT_MB` (0: no limit).
The request and the result are the models of app.pipeline.sandbox_protocol. The parent (the
worker) reads the exit status: a signal means a crash, exit code 3 means memory ran out.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

EXIT_OUT_OF_MEMORY = 3


def _limit_memory(limit_mb: int) -> None:
    if limit_mb > 0:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(request_path: str, result_path: str, memory_limit_mb: int) -> int:
    """Run the request under the limit; the result file holds a result or a coded failure."""
    _limit_memory(memory_limit_mb)
    try:
        # The work loads onnx and onnxruntime: imported only now, under the limit just set.
        from app.pipeline.sandbox_handlers import handle

        result = handle(Path(request_path).read_bytes())
    except MemoryError:
        return EXIT_OUT_OF_MEMORY
    Path(result_path).write_text(result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
