"""Small models shaped like real-world exports that trip up plain ONNX Runtime tooling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.builders_exports import constant_node, he_weight, save_export


def _save(model: onnx.ModelProto, path: Path | str) -> Path:
    return save_export(model, path, "modelpress-tests-messy")


def build_constant_weights_net(path: Path | str, seed: int = 0) -> Path:
    """Conv -> Relu -> pool -> MatMul/Add -> Relu -> Gemm with every weight a Constant node.

    Input "image" [batch, 3, 16, 16] -> "logits" [batch, 10], as exporters that skip constant
    folding write it (the quantizers then refuse: "Expected ... to be an initializer").
    """
    rng = np.random.default_rng(seed)
    nodes = [
        constant_node("conv.weight", he_weight(rng, (16, 3, 3, 3))),
        constant_node("conv.bias", np.full(16, 0.05, np.float32)),
        constant_node("fc1.weight", he_weight(rng, (16, 64))),
        constant_node("fc1.bias", np.full(64, 0.01, np.float32)),
        constant_node("fc2.weight", he_weight(rng, (10, 64), 0.5)),
        constant_node("fc2.bias", np.zeros(10, np.float32)),
        helper.make_node(
            "Conv", ["image", "conv.weight", "conv.bias"], ["c"], "conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"], "relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("MatMul", ["f", "fc1.weight"], ["m1"], "fc1/MatMul"),
        helper.make_node("Add", ["m1", "fc1.bias"], ["a1"], "fc1/Add"),
        helper.make_node("Relu", ["a1"], ["h1"], "fc1/Relu"),
        helper.make_node("Gemm", ["h1", "fc2.weight", "fc2.bias"], ["logits"], "fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_weights",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def build_opset11_cnn(path: Path | str, seed: int = 0) -> Path:
    """Opset-11 Conv-BN-Relu x2 -> pool -> Gemm, with opset-11 Squeeze/Unsqueeze attributes.

    Input "image" [batch, 3, 16, 16] -> "logits" [batch, 10]. Per-channel QuantizeLinear/
    DequantizeLinear needs opset 13, so quantizing per channel means upgrading first.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(he_weight(rng, (16, 3, 3, 3)), "conv1.weight"),
        numpy_helper.from_array(he_weight(rng, (32, 16, 3, 3)), "conv2.weight"),
        numpy_helper.from_array(he_weight(rng, (10, 32), 0.5), "fc.weight"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias"),
    ]
    for name, channels in (("bn1", 16), ("bn2", 32)):
        inits += [
            numpy_helper.from_array(rng.uniform(0.5, 1.5, channels).astype("f4"), f"{name}.scale"),
            numpy_helper.from_array(rng.normal(0, 0.1, channels).astype("f4"), f"{name}.bias"),
            numpy_helper.from_array(rng.normal(0, 0.1, channels).astype("f4"), f"{name}.mean"),
            numpy_helper.from_array(rng.uniform(0.5, 2, channels).astype("f4"), f"{name}.var"),
        ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight"], ["c1"], "conv1", **conv),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
            ["b1"],
            "bn1",
        ),
        helper.make_node("Relu", ["b1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight"], ["c2"], "conv2", **conv),
        helper.make_node(
            "BatchNormalization",
            ["c2", "bn2.scale", "bn2.bias", "bn2.mean", "bn2.var"],
            ["b2"],
            "bn2",
        ),
        helper.make_node("Relu", ["b2"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], "pool"),
        # Squeeze with an `axes` attribute: the opset-11 form that opset 13 moved to an input.
        helper.make_node("Squeeze", ["p"], ["s"], "squeeze", axes=[2, 3]),
        helper.make_node("Gemm", ["s", "fc.weight", "fc.bias"], ["logits"], "fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "opset11_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)


def _branch(name: str, rng: np.random.Generator, width: int) -> onnx.GraphProto:
    # A branch reads "h" from the outer scope and owns its weight as a subgraph initializer.
    weight = numpy_helper.from_array(he_weight(rng, (width, width)), f"{name}.weight")
    bias = numpy_helper.from_array(np.full(width, 0.02, np.float32), f"{name}.bias")
    nodes = [
        helper.make_node("MatMul", ["h", weight.name], [f"{name}.mm"], f"{name}/MatMul"),
        helper.make_node("Add", [f"{name}.mm", bias.name], [f"{name}.out"], f"{name}/Add"),
    ]
    out = helper.make_tensor_value_info(f"{name}.out", TensorProto.FLOAT, ["batch", width])
    return helper.make_graph(nodes, name, [], [out], [weight, bias])


def build_if_subgraph_mlp(path: Path | str, width: int = 64, seed: int = 0) -> Path:
    """MatMul -> Relu -> If(sum > 0: MatMul branch A, else: MatMul branch B) -> MatMul.

    Input "input" [batch, width] -> "logits" [batch, width]; each branch's weight lives
    inside its subgraph, as control-flow exports (e.g. torch.cond / scripted modules) write it.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(he_weight(rng, (width, width)), "fc_in.weight"),
        numpy_helper.from_array(he_weight(rng, (width, width)), "fc_out.weight"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "fc_in.weight"], ["m"], "fc_in/MatMul"),
        helper.make_node("Relu", ["m"], ["h"], "fc_in/Relu"),
        helper.make_node("ReduceSum", ["input"], ["total"], "gate/ReduceSum", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["cond"], "gate/Greater"),
        helper.make_node(
            "If",
            ["cond"],
            ["branch"],
            "gate/If",
            then_branch=_branch("then", rng, width),
            else_branch=_branch("else", rng, width),
        ),
        helper.make_node("MatMul", ["branch", "fc_out.weight"], ["logits"], "fc_out/MatMul"),
    ]
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    graph = helper.make_graph(
        nodes,
        "if_subgraph_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", width])],
        inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def build_fp16_overflow_mlp(path: Path | str, width: int = 64, seed: int = 0) -> Path:
    """MatMul -> Relu -> MatMul (values ~1e5) -> per-head LayerNormalization -> MatMul.

    Input "input" [batch, width] -> "logits" [batch, 16]. The normalization (over 4 heads of
    width / 4, as QK-norm does) brings the large MatMul back to O(1) in float32; in float16 the
    MatMul's output is inf, and even onnxruntime's CPU kernels (which compute most float16 ops
    in float32) turn it into nan because Reshape and LayerNormalization run in float16.
    """
    rng = np.random.default_rng(seed)
    heads = 4
    inits = [
        numpy_helper.from_array(he_weight(rng, (width, width)), "fc1.weight"),
        # Weights stay within float16 (|w| < 4e4); their products do not (~1e5).
        numpy_helper.from_array(he_weight(rng, (width, width), 5e4), "fc2.weight"),
        numpy_helper.from_array(np.array([-1, heads, width // heads], np.int64), "heads.shape"),
        numpy_helper.from_array(np.array([-1, width], np.int64), "flat.shape"),
        numpy_helper.from_array(np.ones(width // heads, np.float32), "norm.scale"),
        numpy_helper.from_array(np.zeros(width // heads, np.float32), "norm.bias"),
        numpy_helper.from_array(he_weight(rng, (width, 16)), "fc3.weight"),
    ]
    nodes = [
        helper.make_node("MatMul", ["input", "fc1.weight"], ["m1"], "fc1/MatMul"),
        helper.make_node("Relu", ["m1"], ["h1"], "fc1/Relu"),
        helper.make_node("MatMul", ["h1", "fc2.weight"], ["m2"], "fc2/MatMul"),
        helper.make_node("Reshape", ["m2", "heads.shape"], ["split"], "heads/Reshape"),
        helper.make_node(
            "LayerNormalization", ["split", "norm.scale", "norm.bias"], ["n"], "norm", axis=-1
        ),
        helper.make_node("Reshape", ["n", "flat.shape"], ["merged"], "merge/Reshape"),
        helper.make_node("MatMul", ["merged", "fc3.weight"], ["logits"], "fc3/MatMul"),
    ]
    graph = helper.make_graph(
        nodes,
        "fp16_overflow_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 16])],
        inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
