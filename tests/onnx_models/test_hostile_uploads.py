"""Hostile model files, built here: each is refused cleanly and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.storage import LocalStorage

OPSET = [helper.make_opsetid("", 17)]


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None) -> bytes:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, inits or [])
    return helper.make_model(graph, opset_imports=OPSET).SerializeToString()


def _value(name: str, shape: list | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def cycle() -> bytes:
    return _model(
        [helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])],
        [_value("x", [1])],
        [_value("b", [1])],
    )


def _external_weight(location: str) -> bytes:
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    return _model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [_value("x", [4])],
        [_value("y", [4])],
        [weight],
    )


def absurd_tensor() -> bytes:
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[100_000] * 3)
    weight.raw_data = b"\0" * 16  # declares 4e15 bytes, holds 16
    return _model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [_value("x", [1])],
        [_value("y", [100_000] * 3)],
        [weight],
    )


def checker_failure() -> bytes:
    return _model(
        [helper.make_node("NoSuchOp", ["x"], ["y"])], [_value("x", [1])], [_value("y", [1])]
    )


HOSTILE: dict[str, Callable[[], bytes]] = {
    "graph-with-a-cycle": cycle,
    "external-data-escapes-with-dotdot": lambda: _external_weight("../../etc/passwd"),
    "external-data-absolute-path": lambda: _external_weight("/etc/passwd"),
    "external-data-missing": lambda: _external_weight("weights.bin"),
    "absurd-declared-tensor-size": absurd_tensor,
    "unknown-operator": checker_failure,
    "model-without-graph": lambda: onnx.ModelProto(ir_version=8).SerializeToString(),
}


@pytest.mark.parametrize("build", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_models_are_refused_and_leave_nothing(
    api: Any, api_storage: LocalStorage, db_session: Session, build: Callable[[], bytes]
) -> None:
    response = api.post("/v1/models", files={"file": ("model.onnx", build())})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_model"
    assert [p for p in api_storage.root.rglob("*") if p.is_file()] == []
    assert db_session.scalar(select(func.count()).select_from(ModelTable)) == 0
    assert api.get("/healthz").status_code == 200
