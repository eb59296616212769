"""The OpenAPI document as a client generator reads it, and /docs without internet."""

from __future__ import annotations

import re
from typing import Any

from app.errors import PROBLEM_JSON
from app.openapi import Problem

PROBLEM_REF = "#/components/schemas/Problem"


def _operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def test_operation_ids_are_readable_and_unique(api: Any) -> None:
    operations = _operations(api.get("/openapi.json").json())
    ids = [operation["operationId"] for operation in operations.values()]

    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+([A-Z][a-z0-9]*)*", op_id) for op_id in ids), ids
    assert operations["POST", "/v1/jobs"]["operationId"] == "createJob"
    assert operations["GET", "/v1/jobs/{job_id}"]["operationId"] == "getJob"
    assert operations["GET", "/v1/jobs/{job_id}/report"]["operationId"] == "getJobReport"
    assert operations["POST", "/v1/models"]["operationId"] == "uploadModel"
    assert operations["GET", "/v1/limits"]["operationId"] == "getLimits"


def test_errors_are_documented_as_problems(api: Any) -> None:
    schema = api.get("/openapi.json").json()
    operations = _operations(schema)

    create_job = operations["POST", "/v1/jobs"]["responses"]
    for status in ("401", "404", "413", "422", "429", "503"):
        assert create_job[status]["content"] == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    assert {"409", "413", "415", "507"} <= set(operations["POST", "/v1/models"]["responses"])
    assert "409" in operations["DELETE", "/v1/models/{model_id}"]["responses"]
    # No error answer is left documented as FastAPI's own validation error.
    for operation in operations.values():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM_JSON], (operation, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    required = set(schema["components"]["schemas"]["Problem"]["required"])
    assert required == {"type", "title", "status", "detail", "code"}


def test_the_problem_schema_fits_what_the_server_sends(api: Any) -> None:
    not_found = api.get("/v1/jobs/nope")
    invalid = api.post("/v1/jobs", json={"model_id": "m", "preset": "fp16", "bogus": 1})

    for response in (not_found, invalid):
        assert response.headers["content-type"] == PROBLEM_JSON
        problem = Problem.model_validate(response.json())
        assert problem.status == response.status_code
    assert Problem.model_validate(invalid.json()).errors


def test_job_requests_have_examples(api: Any) -> None:
    operation = _operations(api.get("/openapi.json").json())["POST", "/v1/jobs"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]

    assert {"preset", "recipe", "auto"} <= set(examples)
    assert examples["auto"]["value"]["objective"]["optimize"] == "latency"
    assert "schema" in operation["requestBody"]["content"]["application/json"]


def test_docs_load_only_local_assets(api: Any) -> None:
    for page in ("/docs", "/redoc"):
        html = api.get(page)
        assert html.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)

        assert urls, html.text
        assert "http://" not in html.text and "https://" not in html.text
        assert not [url for url in urls if "//" in url], urls  # no CDN, no other host
        for url in urls:
            assert api.get(url).status_code == 200, url
