"""The SDK's types against the server's own OpenAPI schema: every field the SDK reads exists
there, with a type it can hold and a required-ness it can rely on, down through every nested
model ($ref) the schema points to; every value an enum of the schema lists, the SDK's enum names."""

from __future__ import annotations

import inspect
import types
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from modelpress_sdk import (
    Dataset,
    Job,
    JobReport,
    JobStatus,
    Metrics,
    Model,
    ModelMetrics,
    Preset,
    UploadTicket,
    Verdict,
)
from pydantic import BaseModel

from app.compression.measure import metrics as server

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
    openapi: dict[str, Any],
    sdk_type: type[BaseModel],
    schema: dict[str, Any],
    checked: set[type[BaseModel]] | None = None,
) -> list[str]:
    """What in sdk_type the schema does not back: missing fields, types, required-ness.

    Nested models are checked against the schemas their fields point to; `checked` collects
    every SDK model the check went through."""
    if checked is not None:
        checked.add(sdk_type)
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
        problems += type_problems(openapi, field.annotation, properties[key], where, checked)
    return problems


def type_problems(
    openapi: dict[str, Any],
    ann: Any,
    schema: dict[str, Any],
    where: str,
    checked: set[type[BaseModel]] | None = None,
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
        fits = [arm_problems(openapi, arm, branch, where, checked) for arm in arms]
        if all(fits):
            problems += fits[0]
    return problems


def arm_problems(
    openapi: dict[str, Any],
    ann: Any,
    schema: dict[str, Any],
    where: str,
    checked: set[type[BaseModel]] | None = None,
) -> list[str]:
    origin, args = get_origin(ann), get_args(ann)
    kind = schema.get("type")
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        if kind != "object" and "properties" not in schema:
            return [f"{where}: {ann.__name__} against {kind}"]
        return model_problems(openapi, ann, schema, checked)
    if (inspect.isclass(ann) and issubclass(ann, Enum)) or origin is Literal:
        # The SDK's enums take values they do not list (a newer server's), but every value
        # this server's schema names must be one of theirs, or it would read as unknown.
        listed = {m.value for m in ann} if origin is not Literal else set(args)
        name = getattr(ann, "__name__", "Literal")
        if kind != "string":
            return [f"{where}: {name} against {kind}"]
        missing = [v for v in schema.get("enum", []) if v not in listed]
        return [f"{where}: {name} lacks {missing}"] if missing else []
    if origin is list:
        if kind != "array":
            return [f"{where}: list against {kind}"]
        return type_problems(openapi, args[0], schema.get("items", {}), f"{where}[]", checked)
    if origin is dict:
        if kind != "object" and "properties" not in schema:
            return [f"{where}: dict against {kind}"]
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and args:
            return type_problems(openapi, args[1], values, f"{where}{{}}", checked)
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


def sdk_models_within(sdk_type: type[BaseModel]) -> set[type[BaseModel]]:
    """sdk_type and every model its fields hold, however deep (lists, dicts, unions)."""
    found: set[type[BaseModel]] = set()
    pending: list[Any] = [sdk_type]
    while pending:
        ann = pending.pop()
        if inspect.isclass(ann) and issubclass(ann, BaseModel):
            if ann not in found:
                found.add(ann)
                pending += [field.annotation for field in ann.model_fields.values()]
        else:
            pending += get_args(ann)
    return found


def test_the_check_goes_through_every_nested_model(openapi: dict[str, Any]) -> None:
    checked: set[type[BaseModel]] = set()
    for sdk_type in (Job, JobReport, Preset):
        model_problems(openapi, sdk_type, answer_schema(openapi, sdk_type) or {}, checked)

    within = set().union(*(sdk_models_within(t) for t in (Job, JobReport, Preset)))
    assert {m.__name__ for m in within - checked} == set()
    assert {"Metrics", "ModelMetrics", "LatencyStats", "Fidelity", "Accuracy", "MetricChange",
            "Host", "QuantizationError", "Recipe", "BenchmarkOptions", "Candidate"} <= {
        m.__name__ for m in checked
    }  # fmt: skip


def test_the_check_finds_problems_in_nested_models_and_enums(openapi: dict[str, Any]) -> None:
    class WrongLatency(BaseModel):
        p50: str  # a number in the schema

    class WrongSide(BaseModel):
        latency_ms: WrongLatency

    class WrongMetrics(BaseModel):
        compressed: WrongSide
        fidelity: dict[str, Any]  # nullable in the schema

    class FewStatuses(StrEnum):
        QUEUED = "queued"

    class WrongJob(BaseModel):
        status: FewStatuses
        verdict: Literal["verified"] | None = None
        metrics: WrongMetrics | ModelMetrics | None = None

    problems = model_problems(openapi, WrongJob, answer_schema(openapi, Job) or {})

    assert problems == [
        "WrongJob.status: FewStatuses lacks ['running', 'succeeded', 'failed', 'canceled']",
        "WrongJob.verdict: Literal lacks ['rejected', 'unverified']",
        "WrongLatency.p50: str against number ",
        "WrongMetrics.fidelity: required by the SDK, optional in the schema",
        "WrongMetrics.fidelity: the schema allows null, the SDK does not",
    ]


def server_block(size_bytes: int, p50: float) -> server.ModelMetrics:
    latency = server.LatencyStats(p50=p50, p90=p50, p99=p50, mean=p50, std=0.0, cv=0.0)
    return server.ModelMetrics(
        size_bytes=size_bytes, param_count=10, latency_ms=latency, runs=5, load_ms=1.0
    )


def job_answer(metrics: BaseModel | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": "j1", "kind": "compress", "status": "succeeded", "created_at": "2026-01-01T00:00:00Z",
        "recipe": {"passes": [{"type": "quantize_dynamic"}]},
        "benchmark": {"runs": 5, "warmup": 1, "threads": 1, "provider": "cpu",
                      "graph_optimization_level": "all", "batch_sizes": []},
        "metrics": metrics.model_dump(mode="json") if metrics else None, **fields,
    }  # fmt: skip


def test_a_jobs_metrics_read_as_the_servers_metrics() -> None:
    host = server.Host(cpu="x86", cores=1, onnxruntime="1.20", provider="CPUExecutionProvider")
    fidelity = server.Fidelity(
        max_abs_error=0.01, mean_abs_error=0.001, cosine_similarity=0.999, samples=8,
        inputs="synthetic",
    )  # fmt: skip
    pair = server.Metrics(
        original=server_block(4000, 2.0), compressed=server_block(1000, 1.0),
        compression_ratio=4.0, speedup_ratio=2.0, pruning_rate=0.0, sparsity=0.0,
        fidelity=fidelity, host=host,
    )  # fmt: skip

    job = Job.model_validate(job_answer(pair, verdict="unverified"))

    assert isinstance(job.metrics, Metrics) and job.comparison is job.metrics
    assert job.metrics.compression_ratio == 4.0
    assert job.metrics.compressed.latency_ms.p50 == 1.0
    assert job.metrics.fidelity is not None and job.metrics.fidelity.inputs == "synthetic"
    assert job.metrics.accuracy is None and job.metrics.host.cores == 1
    assert job.status is JobStatus.SUCCEEDED and job.done and job.verdict is Verdict.UNVERIFIED
    assert job.recipe.passes == [{"type": "quantize_dynamic"}] and job.benchmark.runs == 5

    alone = Job.model_validate(job_answer(server_block(4000, 2.0), kind="benchmark"))
    assert isinstance(alone.metrics, ModelMetrics) and alone.comparison is None
    assert alone.metrics.latency_ms.p50 == 2.0


def test_statuses_verdicts_and_fields_a_newer_server_adds_still_parse() -> None:
    block = server_block(4000, 2.0).model_dump(mode="json")
    block["latency_ms"]["p999"] = 3.0

    job = Job.model_validate(
        {**job_answer(None), "status": "paused", "verdict": "provisional", "metrics": block}
    )

    assert job.status == "paused" and str(job.status) == "paused" and not job.done
    assert job.status not in set(JobStatus) and JobStatus("paused") is job.status
    assert f"{job.verdict}" == "provisional" and job.verdict not in set(Verdict)
    assert isinstance(job.metrics, ModelMetrics)
    assert job.metrics.latency_ms.model_extra == {"p999": 3.0}
