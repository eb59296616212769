"""Small ONNX models built with onnx.helper, written to a path, for tests across the repo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _batch_norm(
    rng: np.random.Generator, name: str, x: str, y: str, channels: int
) -> tuple[onnx.NodeProto, list[TensorProto]]:
    # Statistics away from identity, as after training, so pruning has something to respect.
    params = {
        "scale": rng.uniform(0.5, 1.5, channels),
        "bias": rng.normal(0.0, 0.1, channels),
        "mean": rng.normal(0.0, 0.1, channels),
        "var": rng.uniform(0.5, 1.5, channels),
    }
    inits = [
        numpy_helper.from_array(v.astype(np.float32), f"{name}.{k}") for k, v in params.items()
    ]
    node = helper.make_node(
        "BatchNormalization", [x, *(t.name for t in inits)], [y], name, epsilon=1e-5
    )
    return node, inits


def build_cnn_residual(path: Path | str, seed: int = 0, classes: int = 10) -> Path:
    """Conv-BN-Relu stem, a residual block (Add), a strided Conv, GAP, Flatten, Gemm classifier."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []

    def conv_bn(name: str, x: str, c_in: int, c_out: int, relu: bool, stride: int = 1) -> str:
        inits.append(_weight(rng, f"{name}.weight", (c_out, c_in, 3, 3)))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight"],
                [f"{name}.conv"],
                f"{name}/Conv",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[stride, stride],
            )
        )
        bn, params = _batch_norm(
            rng, f"{name}/BatchNormalization", f"{name}.conv", f"{name}.bn", c_out
        )
        nodes.append(bn)
        inits.extend(params)
        if not relu:
            return f"{name}.bn"
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.relu"], f"{name}/Relu"))
        return f"{name}.relu"

    stem = conv_bn("stem", "image", 3, 16, relu=True)
    branch = conv_bn("block1", stem, 16, 16, relu=True)
    branch = conv_bn("block2", branch, 16, 16, relu=False)
    nodes.append(helper.make_node("Add", [branch, stem], ["res.add"], "res/Add"))
    nodes.append(helper.make_node("Relu", ["res.add"], ["res.relu"], "res/Relu"))
    down = conv_bn("down", "res.relu", 16, 32, relu=True, stride=2)
    fc = rng.standard_normal((classes, 32)).astype(np.float32) * np.float32(0.25)
    inits += [
        numpy_helper.from_array(fc, "fc.weight"),
        numpy_helper.from_array(np.zeros(classes, np.float32) + 0.1, "fc.bias"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [down], ["pool"], "pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], "flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn_residual",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelpress-tests"
    )
    return _save(model, path)


def _low_rank_weight(rng: np.random.Generator, name: str, rows: int, cols: int) -> TensorProto:
    # Trained transformer weights have fast-decaying singular values; random ones do not.
    u, _ = np.linalg.qr(rng.standard_normal((rows, rows)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, cols)))
    k = min(rows, cols)
    spectrum = np.exp(-np.arange(k) / 8.0)
    spectrum *= np.sqrt(2.0 * cols / np.sum(spectrum**2))  # He-like output scale
    data = (u[:, :k] * spectrum) @ v[:, :k].T
    return numpy_helper.from_array(data.astype(np.float32), name)


def build_transformer_block(
    path: Path | str, seed: int = 0, d_model: int = 64, seq: int = 16, heads: int = 4
) -> Path:
    """Pre-LN block: multi-head MatMul self-attention (Softmax) and a GELU FFN, residuals around."""
    if d_model % heads:
        raise ValueError("d_model must be a multiple of heads")
    rng = np.random.default_rng(seed)
    d_head, d_ff = d_model // heads, 4 * d_model
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = [
        numpy_helper.from_array(np.array([0, 0, heads, d_head], np.int64), "heads_shape"),
        numpy_helper.from_array(np.array([0, 0, d_model], np.int64), "model_shape"),
        numpy_helper.from_array(np.array(1.0 / np.sqrt(d_head), np.float32), "attn.scale"),
        numpy_helper.from_array(np.array(np.sqrt(2.0), np.float32), "gelu.sqrt2"),
        numpy_helper.from_array(np.array(1.0, np.float32), "gelu.one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "gelu.half"),
    ]

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        name = output.replace(".", "/")
        nodes.append(helper.make_node(op, inputs, [output], name, **attrs))
        return output

    def layer_norm(name: str, x: str) -> str:
        inits.append(
            numpy_helper.from_array(rng.uniform(0.8, 1.2, d_model).astype("f4"), f"{name}.g")
        )
        inits.append(
            numpy_helper.from_array(rng.normal(0, 0.05, d_model).astype("f4"), f"{name}.b")
        )
        return node("LayerNormalization", [x, f"{name}.g", f"{name}.b"], f"{name}.out", axis=-1)

    def linear(name: str, x: str, d_in: int, d_out: int) -> str:
        inits.append(_low_rank_weight(rng, f"{name}.weight", d_in, d_out))
        inits.append(
            numpy_helper.from_array(rng.normal(0, 0.02, d_out).astype("f4"), f"{name}.bias")
        )
        mm = node("MatMul", [x, f"{name}.weight"], f"{name}.mm")
        return node("Add", [mm, f"{name}.bias"], f"{name}.out")

    h = layer_norm("ln1", "input")
    q, k, v = (linear(f"attn.{n}", h, d_model, d_model) for n in "qkv")
    q = node(
        "Transpose", [node("Reshape", [q, "heads_shape"], "q.heads")], "q.t", perm=[0, 2, 1, 3]
    )
    k = node(
        "Transpose", [node("Reshape", [k, "heads_shape"], "k.heads")], "k.t", perm=[0, 2, 3, 1]
    )
    v = node(
        "Transpose", [node("Reshape", [v, "heads_shape"], "v.heads")], "v.t", perm=[0, 2, 1, 3]
    )
    scores = node("Mul", [node("MatMul", [q, k], "attn.qk"), "attn.scale"], "attn.scores")
    probs = node("Softmax", [scores], "attn.probs", axis=-1)
    ctx = node("Transpose", [node("MatMul", [probs, v], "attn.ctx")], "ctx.t", perm=[0, 2, 1, 3])
    ctx = node("Reshape", [ctx, "model_shape"], "ctx.merged")
    x1 = node("Add", ["input", linear("attn.o", ctx, d_model, d_model)], "res1")
    # GELU spelled with Erf (no Gelu op before opset 20), as exporters do at opset 17.
    up = linear("ffn.up", layer_norm("ln2", x1), d_model, d_ff)
    erf = node("Erf", [node("Div", [up, "gelu.sqrt2"], "gelu.div")], "gelu.erf")
    gate = node("Mul", [up, node("Add", [erf, "gelu.one"], "gelu.add")], "gelu.mul")
    act = node("Mul", [gate, "gelu.half"], "gelu.out")
    node("Add", [x1, linear("ffn.down", act, d_ff, d_model)], "output")
    io: list[str | int] = ["batch", seq, d_model]
    graph = helper.make_graph(
        nodes,
        "transformer_block",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, io)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, io)],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelpress-tests"
    )
    return _save(model, path)


def run_model(path: Path | str, feed: np.ndarray) -> np.ndarray:
    """First output of the model on `feed` (fed to its only input), on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: feed})[0])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def count_macs(path: Path | str, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of the Conv/Gemm/MatMul nodes for one input of input_shape."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, input_shape, strict=True):
        dim.dim_value = size
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.value_info, *graph.output]
    }
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    macs = 0
    for node in graph.node:
        out = int(np.prod(shapes[node.output[0]]))
        if node.op_type == "Conv":
            macs += out * int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "MatMul":
            macs += out * shapes[node.input[0]][-1]
        elif node.op_type == "Gemm":
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            macs += out * shapes[node.input[0]][0 if trans_a else 1]
    return macs
