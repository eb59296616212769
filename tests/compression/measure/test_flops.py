"""count_flops against MACs worked out by hand on small graphs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.graph.analysis import weight_bytes
from app.compression.measure.flops import count_flops


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[tuple[str, int, list[int | str]]],
    inits: dict[str, np.ndarray],
    extra_opsets: Sequence[str] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, 1) for d in extra_opsets)]
    return helper.make_model(graph, opset_imports=opsets)


def _zeros(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


def test_conv_grouped_conv_and_conv_transpose() -> None:
    conv = helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4)
    grouped = helper.make_node(
        "Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2], group=2
    )
    deconv = helper.make_node(
        "ConvTranspose", ["c2", "w3"], ["y"], kernel_shape=[2, 2], strides=[2, 2]
    )
    model = _model(
        [conv, grouped, deconv],
        [("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        {"w1": _zeros(4, 3, 3, 3), "w2": _zeros(4, 2, 3, 3), "w3": _zeros(4, 3, 2, 2)},
    )
    result = count_flops(model, {"x": [1, 3, 8, 8]})
    # Conv: out [1, 4, 8, 8] = 256 values x (3 x 3 x 3) = 6912
    # grouped: out [1, 4, 4, 4] = 64 values x (2 x 3 x 3) = 1152
    # ConvTranspose: in [1, 4, 4, 4] = 64 values, each into 3 x 2 x 2 outputs = 768
    assert result["by_op_type"] == {"Conv": 6912 + 1152, "ConvTranspose": 768}
    assert result["total_macs"] == 6912 + 1152 + 768
    # batch 2 doubles everything; default_dim fills the symbolic batch dim
    assert count_flops(model, None, default_dim=2)["total_macs"] == 2 * (6912 + 1152 + 768)


def test_gemm_transposed_and_batched_matmul() -> None:
    gemm = helper.make_node("Gemm", ["a", "b"], ["g"], transB=1)
    matmul = helper.make_node("MatMul", ["x", "w"], ["y"])
    model = _model(
        [gemm, matmul],
        [("a", TensorProto.FLOAT, [2, 5]), ("x", TensorProto.FLOAT, [2, 3, 4, 5])],
        {"b": _zeros(3, 5), "w": _zeros(5, 6)},
    )
    result = count_flops(model, None)
    # Gemm: M=2, K=5, N=3 -> 30; MatMul: out [2, 3, 4, 6] = 144 values x K=5 -> 720
    assert result["by_op_type"] == {"Gemm": 30, "MatMul": 720}


def _attention(embed: int = 16, heads: int = 4) -> onnx.ModelProto:
    """Single-head-group self-attention: QKV projections, split heads, scores, weighted sum."""
    head = embed // heads
    nodes = []
    for name in "qkv":
        nodes.append(helper.make_node("MatMul", ["x", f"w{name}"], [f"{name}_proj"]))
        nodes.append(helper.make_node("Reshape", [f"{name}_proj", "split"], [f"{name}_heads"]))
    nodes += [
        helper.make_node("Transpose", ["q_heads"], ["q"], perm=[0, 2, 1, 3]),  # [B, H, S, D]
        helper.make_node("Transpose", ["k_heads"], ["kt"], perm=[0, 2, 3, 1]),  # [B, H, D, S]
        helper.make_node("Transpose", ["v_heads"], ["v"], perm=[0, 2, 1, 3]),  # [B, H, S, D]
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),  # [B, H, S, S]
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "v"], ["y"]),  # [B, H, S, D]
    ]
    inits = {f"w{n}": _zeros(embed, embed) for n in "qkv"}
    inits["split"] = np.array([0, 0, heads, head], np.int64)  # 0 copies the input's dim
    return _model(nodes, [("x", TensorProto.FLOAT, ["batch", "seq", embed])], inits)


def test_attention_matmuls_follow_the_given_shapes() -> None:
    model = _attention()
    # B=2, S=7, E=16, H=4, D=4: projections 3 x (2 x 7 x 16 x 16) = 10752;
    # scores [2, 4, 7, 7] x D=4 = 1568; weighted sum [2, 4, 7, 4] x S=7 = 1568
    assert count_flops(model, {"x": [2, 7, 16]})["by_op_type"] == {"MatMul": 10752 + 1568 + 1568}
    # B=1, S=3: projections 3 x 768 = 2304; scores 4 x 3 x 3 x 4 = 144; sum 4 x 3 x 4 x 3 = 144
    assert count_flops(model, {"x": [1, 3, 16]})["total_macs"] == 2304 + 144 + 144


def test_integer_and_qlinear_ops() -> None:
    u8 = TensorProto.UINT8
    scalar = {"s": np.array(0.1, np.float32), "z": np.array(0, np.uint8)}
    nodes = [
        helper.make_node("MatMulInteger", ["a", "wi"], ["mi"]),
        helper.make_node("QLinearMatMul", ["a", "s", "z", "wq", "s", "zi", "s", "z"], ["mq"]),
        helper.make_node(
            "QLinearConv", ["img", "s", "z", "wc", "s", "zi", "s", "z"], ["cq"], pads=[1] * 4
        ),
        helper.make_node("Cast", ["cq"], ["y"], to=TensorProto.FLOAT),
    ]
    inits = {
        **scalar,
        "zi": np.array(0, np.int8),
        "wi": _zeros(8, 3, dtype=np.int8),
        "wq": _zeros(8, 3, dtype=np.int8),
        "wc": _zeros(4, 3, 3, 3, dtype=np.int8),
    }
    model = _model(nodes, [("a", u8, [2, 8]), ("img", u8, [1, 3, 8, 8])], inits)
    # MatMulInteger / QLinearMatMul: [2, 8] x [8, 3] = 48 each; QLinearConv as the Conv above
    assert count_flops(model, None)["by_op_type"] == {
        "MatMulInteger": 48,
        "QLinearConv": 6912,
        "QLinearMatMul": 48,
    }


def test_matmul_nbits_chain_through_contrib_shapes() -> None:
    def nbits(a: str, out: str, k: int, n: int) -> onnx.NodeProto:
        inputs = [a, f"{out}_Q4", f"{out}_scales"]
        attrs = {"K": k, "N": n, "bits": 4, "block_size": 16}
        return helper.make_node("MatMulNBits", inputs, [out], domain="com.microsoft", **attrs)

    inits = {
        "h_Q4": _zeros(16, 2, 8, dtype=np.uint8),
        "h_scales": _zeros(32),
        "y_Q4": _zeros(8, 1, 8, dtype=np.uint8),
        "y_scales": _zeros(8),
    }
    nodes = [
        nbits("x", "h", 32, 16),
        helper.make_node("Relu", ["h"], ["r"]),
        nbits("r", "y", 16, 8),
    ]
    model = _model(nodes, [("x", TensorProto.FLOAT, ["batch", 32])], inits, ["com.microsoft"])
    # [3, 32] x [32, 16] = 1536; then onnx cannot infer MatMulNBits: [3, 16] x [16, 8] = 384
    assert count_flops(model, {"x": [3, 32]}) == {
        "by_op_type": {"MatMulNBits": 1536 + 384},
        "unresolved": [],
        "weights_share": pytest.approx(weight_bytes(model) / model.ByteSize()),
        "total_macs": 1920,
    }


def test_unknown_shapes_leave_the_total_out() -> None:
    nodes = [
        helper.make_node("MysteryOp", ["x"], ["h"], domain="example.custom"),
        helper.make_node("MatMul", ["h", "w"], ["y"]),
    ]
    model = _model(
        nodes, [("x", TensorProto.FLOAT, [1, 4])], {"w": _zeros(4, 2)}, ["example.custom"]
    )
    result = count_flops(model, None)
    assert "total_macs" not in result and len(result["unresolved"]) == 1


def test_weights_share_of_a_file(tmp_path: Path) -> None:
    weight = np.ones((256, 256), np.float32)
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [("x", TensorProto.FLOAT, [1, 256])],
        {"w": weight},
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    result = count_flops(path, None)
    assert result["total_macs"] == 256 * 256
    # 262144 weight bytes in a file only the graph's few hundred bytes larger
    assert result["weights_share"] == pytest.approx(weight.nbytes / path.stat().st_size)
    assert 0.99 < result["weights_share"] < 1.0
