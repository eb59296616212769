"""Property-based fuzzing of the HTTP API from its own OpenAPI schema: no input gives a 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.stack import LiveStack

FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same examples in every CI run: a failure reproduces
    database=None,
)


def test_no_request_gets_a_server_error(live_stack: LiveStack) -> None:
    schema = schemathesis.openapi.from_url(f"{live_stack.url}/openapi.json")
    headers = {"Authorization": f"Bearer {live_stack.api_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []

    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")

    assert len(operations) >= 15
    assert not failures, "\n\n".join(failures)
    assert live_stack.client().get("/healthz").status_code == 200
