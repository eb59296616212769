"""A webhook receiver in the test process: a real HTTP server on 127.0.0.1 that records every
POST and answers each path with the statuses a test scripts; and an independent signature check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


def signature_matches(key: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks' check, written from the specification: any `v1,` entry matches."""
    secret = base64.b64decode(key.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    entries = headers["webhook-signature"].split(" ")
    return any(
        hmac.compare_digest(entry.removeprefix("v1,"), expected)
        for entry in entries
        if entry.startswith("v1,")
    )


@dataclass
class Receiver:
    # path -> statuses answered in turn (the last one repeats); 200 for a path not scripted.
    script: dict[str, list[int]] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                seen = sum(r.path == self.path for r in receiver.received)
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                time.sleep(receiver.delay_s.get(self.path, 0.0))
                statuses = receiver.script.get(self.path, [200])
                self.send_response(statuses[min(seen, len(statuses) - 1)])
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def wait_for(
        self, what: Callable[[], bool], timeout_s: float = 60.0, why: str = "deliveries"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not what():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {why} after {timeout_s} s: {self.received}")
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
