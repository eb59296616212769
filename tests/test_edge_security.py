"""The API's edge on a real uvicorn with API keys on: what a client without a valid key, or with a
hostile or broken body, gets back, and what it costs the server."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest
from onnx import TensorProto, helper

from tests.memory_probe import peak_rss_growth_mb
from tests.stack import LiveStack

MiB = 1024 * 1024
BODY_BYTES = 200 * MiB


def _post_chunked(stack: LiveStack, path: str, headers: dict[str, str]) -> tuple[bytes, float]:
    """POST a 200 MB chunked body as fast as the server takes it: the start of the server's
    answer, and the seconds the whole exchange took."""
    started = time.monotonic()
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
    piece = f"{MiB:x}\r\n".encode() + b"x" * MiB + b"\r\n"
    with socket.create_connection(("127.0.0.1", stack.port), timeout=60) as sock:
        sock.sendall(head.encode())
        # The server may answer and hang up before the body is through: that is a fine answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(BODY_BYTES // MiB):
                sock.sendall(piece)
            sock.sendall(b"0\r\n\r\n")
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
    return answer, time.monotonic() - started


@pytest.mark.parametrize(
    ("path", "authorization", "status"),
    [
        ("/v1/jobs", None, b"401"),
        ("/v1/benchmarks", None, b"401"),
        ("/v1/jobs", "Bearer not-a-key", b"413"),
    ],
    ids=["jobs-no-key", "benchmarks-no-key", "jobs-wrong-key"],
)
def test_a_huge_multipart_body_without_a_valid_key_is_not_buffered(
    live_stack: LiveStack, path: str, authorization: str | None, status: bytes
) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    if authorization:
        headers["Authorization"] = authorization

    (answer, seconds), growth_mb = peak_rss_growth_mb(
        live_stack.procs["api"].pid, lambda: _post_chunked(live_stack, path, headers)
    )

    assert growth_mb < 50, f"the API grew by {growth_mb:.0f} MB on a 200 MB body"
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
    assert b"application/problem+json" in answer
    assert seconds < 30
    assert live_stack.client().get("/healthz").status_code == 200


def test_a_chunked_json_body_over_the_limit_is_413(live_stack: LiveStack) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"model_id": "m", "preset": "'
        for _ in range(2):
            yield b"x" * MiB
        yield b'"}'

    with live_stack.client() as client:
        response = client.post(
            "/v1/jobs", content=body(), headers={"Content-Type": "application/json"}
        )

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_presets_and_limits_need_a_key(live_stack: LiveStack) -> None:
    for path in ("/v1/presets", "/v1/limits"):
        for key in ("", "not-a-key"):
            with live_stack.client(api_key=key) as client:
                response = client.get(path)
            assert response.status_code == 401, (path, key)
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        with live_stack.client() as client:
            assert client.get(path).status_code == 200


def test_metrics_are_not_shown_to_tenants(live_stack: LiveStack) -> None:
    # No metrics token is configured on this stack: job counts of all tenants stay private.
    for key in ("", live_stack.api_key):
        with live_stack.client(api_key=key) as client:
            response = client.get("/metrics")
        assert response.status_code == 401
        assert "MODELPRESS_METRICS_TOKEN" in response.json()["detail"]
        assert "modelpress_jobs" not in response.text


def test_malformed_json_says_where_it_broke(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        response = client.post(
            "/v1/jobs",
            content=b'{"model_id": "m",\n "preset": fp16}',
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "invalid_json"
    assert (problem["line"], problem["column"]) == (2, 12)
    assert "line 2, column 12" in problem["detail"]
    assert "field" not in problem


@pytest.mark.parametrize("path", ["/v1/models", "/v1/datasets"])
def test_an_upload_that_is_not_multipart_is_415_whatever_its_size(
    live_stack: LiveStack, path: str
) -> None:
    with live_stack.client() as client:
        response = client.post(
            path, content=b"{" + b" " * (2 * MiB) + b"}", headers={"Content-Type": "text/plain"}
        )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.fixture(scope="module")
def image_model_id(live_stack: LiveStack) -> str:
    """A model whose input has three symbolic dims: [n, 3, h, w]."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "image",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with live_stack.client() as client:
        response = client.post(
            "/v1/models", files={"file": ("image.onnx", model.SerializeToString())}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("shape", "field"),
    [
        ([10**30, 3, 8, 8], "input_shapes.input.0"),
        ([1, 3, 0, 8], "input_shapes.input.2"),
        ([-1, 3, 8, 8], "input_shapes.input.0"),
        ([1, 3, 2**20 + 1, 8], "input_shapes.input.2"),
        ([1024, 3, 1024, 1024], "input_shapes"),
        ([1] * 17, "input_shapes.input"),
    ],
    ids=["10e30", "zero", "negative", "dim-too-large", "too-many-elements", "rank-17"],
)
def test_input_shapes_out_of_bounds_are_422_naming_the_field(
    live_stack: LiveStack, image_model_id: str, shape: list[int], field: str
) -> None:
    model_id = image_model_id
    requests = [
        ("/v1/jobs", {"model_id": model_id, "preset": "fp16", "input_shapes": {"input": shape}}),
        ("/v1/benchmarks", {"model_id": model_id, "input_shapes": {"input": shape}}),
    ]
    with live_stack.client() as client:
        jobs_before = client.get("/v1/jobs").json()["items"]
        for path, body in requests:
            response = client.post(path, json=body)

            assert response.status_code == 422, (path, response.text)
            assert response.json()["code"] == "invalid_request"
            assert response.json()["field"] == field
        assert client.get("/v1/jobs").json()["items"] == jobs_before
