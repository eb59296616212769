"""`modelpress serve` as an operator runs it: how it stops, and where it refuses to listen."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.cli.serve import unsafe_bind_reason
from tests.cli.serving import CLI, embedded_env, serve, stop_with_sigterm
from tests.conftest import free_port
from tests.stack import ROOT


def test_sigterm_stops_serve_and_every_process_under_it(tmp_path: Path) -> None:
    proc = serve(tmp_path / "data", free_port())

    left_running = stop_with_sigterm(proc)

    assert left_running == [], [p.cmdline() for p in left_running]
    assert proc.returncode == 0


def test_serve_refuses_a_public_address_without_api_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    result = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT, env=embedded_env(data_dir), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr
    assert "--insecure-no-auth" in result.stderr
    assert not data_dir.exists()  # refused before anything was set up


@pytest.mark.parametrize(
    ("host", "auth_enabled", "allow_no_auth", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("::1", False, False, False),
        ("0.0.0.0", False, False, True),
        ("::", False, False, True),
        ("192.168.1.20", False, False, True),
        ("myhost.example", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_which_addresses_need_api_keys(
    host: str, auth_enabled: bool, allow_no_auth: bool, refused: bool
) -> None:
    reason = unsafe_bind_reason(host, auth_enabled=auth_enabled, allow_no_auth=allow_no_auth)

    assert (reason is not None) == refused
