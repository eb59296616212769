"""A scripted stand-in for the API, for answers the real one cannot be made to give on cue.

The CLI runs as its own process and speaks HTTP to it: only the server's timing and errors
(a 503 now, a slow answer there, a dropped connection) are scripted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering


Script = Callable[[str, str], Reply]  # (method, path) -> the reply

# Whole answers as the real API gives them (the SDK checks their shape).
MODEL = {
    "id": "m1", "name": "m", "sha256": "0" * 64, "size_bytes": 22, "format": "onnx",
    "packaging": "onnx", "ir_version": 9, "opset": 17, "producer": None,
    "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 4]}],
    "outputs": [{"name": "output", "dtype": "float32", "shape": ["batch", 2]}],
    "op_counts": {"Gemm": 1}, "param_count": 10, "transport_size_bytes": None,
    "parent_id": None, "job_id": None, "created_at": "2026-01-01T00:00:00Z",
}  # fmt: skip
JOB = {
    "id": "j1", "kind": "compress", "model_id": "m1", "status": "queued", "attempts": 0,
    "progress": 0.0, "stage": None, "preset": "int8-dynamic", "recipe": {"passes": []},
    "input_shapes": None, "benchmark": {"runs": 5}, "error": None,
    "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
    "output_model_id": None, "metrics": None,
}  # fmt: skip


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubApi:
    url: str
    requests: list[tuple[str, str]]
    calls: list[Call]  # the same requests with their headers and bodies


@contextmanager
def stub_api(script: Script) -> Iterator[StubApi]:
    """Serve `script` on a free local port for the duration of the block."""
    seen: list[tuple[str, str]] = []
    calls: list[Call] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self._read_chunked()
            calls.append(Call(self.command, self.path, dict(self.headers.items()), body))
            seen.append((self.command, self.path))
            reply = script(self.command, self.path)
            time.sleep(reply.delay_s)
            if reply.drop:
                self.close_connection = True
                return
            if isinstance(reply.body, bytes):
                payload, content_type = reply.body, "application/octet-stream"
            else:
                payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                content_type = "application/json"
            self.send_response(reply.status)
            for name, value in {"Content-Type": content_type, **reply.headers}.items():
                self.send_header(name, value)
            if reply.status != 304:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _read_chunked(self) -> bytes:
            body = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return body

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StubApi(f"http://127.0.0.1:{server.server_address[1]}", seen, calls)
    finally:
        server.shutdown()
        server.server_close()
