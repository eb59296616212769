"""Rows for repository and service tests, built with defaults a test can override."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.jobs import repository as jobs_repository
from app.jobs.tables import JobTable
from app.onnx_models import repository as models_repository
from app.onnx_models.tables import ModelTable


def add_model(session: Session, **overrides: Any) -> ModelTable:
    values: dict[str, Any] = {
        "name": "mlp",
        "sha256": "0" * 64,
        "size_bytes": 1024,
        "storage_key": "models/test/model.onnx",
        "format": "onnx",
        "ir_version": 8,
        "opset": 17,
        "producer": "tests",
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", 16]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 4]}],
        "op_counts": {"MatMul": 2},
        "param_count": 100,
    }
    values.update(overrides)
    return models_repository.add(session, ModelTable(**values))


def add_job(session: Session, model: ModelTable, **overrides: Any) -> JobTable:
    values: dict[str, Any] = {
        "model_id": model.id,
        "status": "queued",
        "progress": 0.0,
        "recipe": {"passes": [{"type": "quantize_dynamic"}]},
        "benchmark_options": {"runs": 5, "warmup": 1, "threads": 1},
        "attempts": 0,
    }
    values.update(overrides)
    return jobs_repository.add(session, JobTable(**values))
