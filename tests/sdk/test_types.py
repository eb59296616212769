"""The SDK's types against the server's own OpenAPI schema: every field the SDK reads exists
there, with a type it can hold and a required-ness it can rely on."""

from __future__ import annotations

import inspect
import types
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import pytest
from modelpress_sdk import Dataset, Job, JobReport, Model, Preset, UploadTicket
from pydantic import BaseModel

# Where each top-level SDK type is answered: (path, method, status, JSON pointer inside).
ANSWERS: dict[type[BaseModel], tuple[str, str, str, tuple[str, ...]]] = {
    Model: ("/v1/models/{model_id}", "get", "200", ()),
    Dataset: ("/v1/datasets/{dataset_id}", "get", "200", ()),
    Job: ("/v1/jobs/{job_id}", "get", "200", ()),
    JobReport: ("/v1/jobs/{job_id}/report", "get", "200", ()),
    Preset: ("/v1/presets", "get", "200", ("properties", "items", "items")),
    UploadTicket: ("/v1/uploads", "post", "201", ()),
}


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    from app.main import app

    return app.openapi()


def answer_schema(openapi: dict[str, Any], sdk_type: type[BaseModel]) -> dict[str, Any] | None:
    path, method, status, pointer = ANSWERS[sdk_type]
    operation = openapi["paths"].get(path, {}).get(method)
    if operation is None:
        return None
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    for key in pointer:
        schema = resolve(openapi, schema)[key]
    return resolve(openapi, schema)


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def model_problems(
    openapi: dict[str, Any], sdk_type: type[BaseModel], schema: dict[str, Any]
) -> list[str]:
    """What in sdk_type the schema does not back: missing fields, types, required-ness."""
    problems: list[str] = []
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    for name, field in sdk_type.model_fields.items():
        key = field.alias or name
        where = f"{sdk_type.__name__}.{key}"
        if key not in properties:
            problems.append(f"{where}: not in the schema")
            continue
        if field.is_required() and key not in required:
            problems.append(f"{where}: required by the SDK, optional in the schema")
        problems += type_problems(openapi, field.annotation, properties[key], where)
    return problems


def type_problems(
    openapi: dict[str, Any], ann: Any, schema: dict[str, Any], where: str
) -> list[str]:
    """Whether every value the schema allows fits the annotation."""
    schema = resolve(openapi, schema)
    if ann is Any:
        return []
    arms = list(get_args(ann)) if get_origin(ann) in (Union, types.UnionType) else [ann]
    sdk_nullable = type(None) in arms
    arms = [arm for arm in arms if arm is not type(None)]
    branches = [resolve(openapi, b) for b in schema.get("anyOf") or schema.get("oneOf") or [schema]]
    problems = []
    for branch in branches:
        if branch.get("type") == "null":
            if not sdk_nullable:
                problems.append(f"{where}: the schema allows null, the SDK does not")
            continue
        # Each non-null branch must fit at least one arm of the SDK's type.
        fits = [arm_problems(openapi, arm, branch, where) for arm in arms]
        if all(fits):
            problems += fits[0]
    return problems


def arm_problems(
    openapi: dict[str, Any], ann: Any, schema: dict[str, Any], where: str
) -> list[str]:
    origin, args = get_origin(ann), get_args(ann)
    kind = schema.get("type")
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        if kind != "object" and "properties" not in schema:
            return [f"{where}: {ann.__name__} against {kind}"]
        return model_problems(openapi, ann, schema)
    if origin is list:
        if kind != "array":
            return [f"{where}: list against {kind}"]
        return type_problems(openapi, args[0], schema.get("items", {}), f"{where}[]")
    if origin is dict:
        if kind != "object" and "properties" not in schema:
            return [f"{where}: dict against {kind}"]
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and args:
            return type_problems(openapi, args[1], values, f"{where}{{}}")
        return []
    expected = {
        str: ({"string"}, None),
        datetime: ({"string"}, "date-time"),
        int: ({"integer"}, None),
        float: ({"number", "integer"}, None),
        bool: ({"boolean"}, None),
    }.get(ann)
    if expected is None:
        return [f"{where}: the check does not know {ann!r}"]
    kinds, fmt = expected
    if kind not in kinds or (fmt is not None and schema.get("format") != fmt):
        return [
            f"{where}: {getattr(ann, '__name__', ann)} against {kind} {schema.get('format', '')}"
        ]
    return []


@pytest.mark.parametrize("sdk_type", list(ANSWERS), ids=lambda t: t.__name__)
def test_sdk_types_match_the_servers_schema(
    openapi: dict[str, Any], sdk_type: type[BaseModel]
) -> None:
    schema = answer_schema(openapi, sdk_type)
    if schema is None and sdk_type is UploadTicket:
        pytest.skip("this server has no POST /v1/uploads (direct uploads) to check against")
    assert schema is not None, f"no answer schema for {sdk_type.__name__}"

    assert model_problems(openapi, sdk_type, schema) == []


def test_the_check_finds_a_wrong_type_a_missing_field_and_a_lost_null(
    openapi: dict[str, Any],
) -> None:
    class WrongJob(BaseModel):
        id: int  # a string in the schema
        nickname: str  # not in the schema
        output_model_id: str  # nullable in the schema
        started_at: datetime | None = None  # fine

    problems = model_problems(openapi, WrongJob, answer_schema(openapi, Job) or {})

    assert problems == [
        "WrongJob.id: int against string ",
        "WrongJob.nickname: not in the schema",
        "WrongJob.output_model_id: the schema allows null, the SDK does not",
    ]


def test_answers_with_fields_the_sdk_does_not_know_still_parse() -> None:
    spec = {"name": "x", "dtype": "float32", "shape": ["batch", 3], "layout": "NCHW"}

    model = Model.model_validate({
        "id": "m1", "name": "m", "sha256": "0" * 64, "size_bytes": 1, "format": "onnx",
        "packaging": "onnx", "ir_version": 9, "opset": 17, "inputs": [spec], "outputs": [spec],
        "param_count": 1, "created_at": "2026-01-01T00:00:00Z", "tier": "gold",
    })  # fmt: skip

    assert model.inputs[0].shape == ["batch", 3]
    assert model.model_extra == {"tier": "gold"} and model.inputs[0].model_extra == {
        "layout": "NCHW"
    }
