"""Small ONNX models built with onnx.helper, written to a path, for tests across the repo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# Pinned so that files written by the builders load in every onnxruntime the project supports.
IR_VERSION = 8


def _save(model: onnx.ModelProto, path: Path | str) -> Path:
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _weight(rng: np.random.Generator, name: str, shape: Sequence[int]) -> TensorProto:
    # He-style scaling keeps activations O(1) through the stack, like a trained net.
    fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
    data = rng.standard_normal(shape).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in))
    return numpy_helper.from_array(data, name)


def build_mlp(
    path: Path | str, sizes: Sequence[int] = (256, 1024, 1024, 256), seed: int = 0
) -> Path:
    """MatMul+Add(+Relu) MLP: input "input" [batch, sizes[0]] -> output "logits"."""
    if len(sizes) < 2:
        raise ValueError("an MLP needs at least an input and an output size")
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "input"
    layers = len(sizes) - 1
    for i in range(layers):
        w, b = f"fc{i}.weight", f"fc{i}.bias"
        inits.append(_weight(rng, w, (sizes[i], sizes[i + 1])))
        inits.append(numpy_helper.from_array(np.zeros(sizes[i + 1], np.float32) + 0.01, b))
        last = i == layers - 1
        mm, add = f"fc{i}.mm", "logits" if last else f"fc{i}.out"
        nodes.append(helper.make_node("MatMul", [x, w], [mm], name=f"fc{i}/MatMul"))
        nodes.append(helper.make_node("Add", [mm, b], [add], name=f"fc{i}/Add"))
        x = add
        if not last:
            nodes.append(helper.make_node("Relu", [add], [f"fc{i}.act"], name=f"fc{i}/Relu"))
            x = f"fc{i}.act"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelpress-tests"
    )
    return _save(model, path)


def build_conv_net(path: Path | str, seed: int = 0, classes: int = 10) -> Path:
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm on [batch, 3, 32, 32] images."""
    rng = np.random.default_rng(seed)
    # Gemm with transB=1 keeps the weight as [out, in], as PyTorch's exporter does.
    fc = rng.standard_normal((classes, 32)).astype(np.float32) * np.float32(0.25)
    inits = [
        _weight(rng, "conv1.weight", (16, 3, 3, 3)),
        numpy_helper.from_array(np.zeros(16, np.float32), "conv1.bias"),
        _weight(rng, "conv2.weight", (32, 16, 3, 3)),
        numpy_helper.from_array(np.zeros(32, np.float32), "conv2.bias"),
        numpy_helper.from_array(fc, "fc.weight"),
        numpy_helper.from_array(np.zeros(classes, np.float32) + 0.1, "fc.bias"),
    ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], "conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"], "conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"], "pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], "flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelpress-tests"
    )
    return _save(model, path)
