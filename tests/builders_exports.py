"""Small models shaped like the real exports users upload (detectors, text encoders, classifiers).

They are built the way exporters write them: `-1` or unnamed dims, Constant-node weights,
opsets 11-13 and Transpose'd weights. Recurrent ones (OCR, VAD) are in builders_recurrent.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.builders import IR_VERSION


def save_export(model: onnx.ModelProto, path: Path | str, producer: str) -> Path:
    """Check the model in full and write it to path."""
    model.ir_version = IR_VERSION
    model.producer_name = producer
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def he_weight(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    """A weight scaled like a trained layer's (He init): activations stay O(1)."""
    fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in) * scale).astype(np.float32)


def constant_node(name: str, array: np.ndarray) -> onnx.NodeProto:
    """A Constant node holding array, as exporters that skip constant folding write weights."""
    return helper.make_node(
        "Constant", [], [name], name=f"{name}/Constant", value=numpy_helper.from_array(array)
    )


def _conv_bn_act(
    rng: np.random.Generator,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x: str,
    name: str,
    channels: tuple[int, int],
    stride: int,
    hardswish: bool,
) -> str:
    # Paddle2onnx writes HardSwish at opset 11 as HardSigmoid(alpha=1/6, beta=0.5) * x.
    cin, cout = channels
    inits.append(numpy_helper.from_array(he_weight(rng, (cout, cin, 3, 3)), f"{name}.weights"))
    stats = {
        "scale": rng.uniform(0.5, 1.5, cout),
        "offset": rng.normal(0, 0.1, cout),
        "mean": rng.normal(0, 0.1, cout),
        "variance": rng.uniform(0.5, 2.0, cout),
    }
    inits += [
        numpy_helper.from_array(v.astype(np.float32), f"{name}.bn.{k}") for k, v in stats.items()
    ]
    nodes += [
        helper.make_node(
            "Conv",
            [x, f"{name}.weights"],
            [f"{name}.conv"],
            f"{name}/conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[stride, stride],
        ),
        helper.make_node(
            "BatchNormalization",
            [f"{name}.conv", *(f"{name}.bn.{k}" for k in stats)],
            [f"{name}.bn"],
            f"{name}/bn",
            epsilon=1e-5,
        ),
    ]
    if hardswish:
        nodes += [
            helper.make_node(
                "HardSigmoid",
                [f"{name}.bn"],
                [f"{name}.gate"],
                f"{name}/hsig",
                alpha=1 / 6,
                beta=0.5,
            ),
            helper.make_node(
                "Mul", [f"{name}.bn", f"{name}.gate"], [f"{name}.out"], f"{name}/hswish"
            ),
        ]
    else:
        nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.out"], f"{name}/relu"))
    return f"{name}.out"


def build_paddle_detector(path: Path | str, seed: int = 0) -> Path:
    """PaddleOCR-detector-like (DBNet): Conv+BN+HardSwish/Relu backbone, FPN with Resize
    upsampling, Add and Concat, a head, opset 11.

    Input "x" [-1, 3, ?, ?] (height and width unnamed, multiples of 8) -> "maps" [-1, 1, ?, ?].
    ORT's symbolic shape inference cannot prove that an upsampled level matches the level it
    is added to, so quant_pre_process fails with "Incomplete symbolic shape inference".
    """
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [
        numpy_helper.from_array(np.array([], np.float32), "resize.roi"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "resize.x2"),
    ]
    c1 = _conv_bn_act(rng, nodes, inits, "x", "backbone.s1", (3, 16), 2, True)
    c2 = _conv_bn_act(rng, nodes, inits, c1, "backbone.s2", (16, 24), 2, False)
    c3 = _conv_bn_act(rng, nodes, inits, c2, "backbone.s3", (24, 24), 2, True)
    upsample = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}
    nodes += [
        helper.make_node("Resize", [c3, "resize.roi", "resize.x2"], ["up3"], "fpn/up3", **upsample),
        helper.make_node("Add", ["up3", c2], ["p2"], "fpn/add"),
        helper.make_node(
            "Resize", ["p2", "resize.roi", "resize.x2"], ["up2"], "fpn/up2", **upsample
        ),
        helper.make_node("Concat", ["up2", c1], ["fused"], "fpn/concat", axis=1),
    ]
    head = _conv_bn_act(rng, nodes, inits, "fused", "head.conv", (40, 16), 1, False)
    inits.append(numpy_helper.from_array(he_weight(rng, (1, 16, 1, 1)), "head.out.weights"))
    nodes += [
        helper.make_node("Conv", [head, "head.out.weights"], ["head.logits"], "head/out"),
        helper.make_node(
            "Resize", ["head.logits", "resize.roi", "resize.x2"], ["head.up"], "head/up", **upsample
        ),
        helper.make_node("Sigmoid", ["head.up"], ["maps"], "head/sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle_detector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, None, None])],
        [helper.make_tensor_value_info("maps", TensorProto.FLOAT, [-1, 1, None, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    return save_export(model, path, "modelpress-tests-paddle")


def _layer_norm(
    nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x: str, name: str, width: int
) -> str:
    # Exporters below opset 17 decompose LayerNorm into ReduceMean/Sub/Pow/Sqrt/Div.
    inits += [
        numpy_helper.from_array(np.ones(width, np.float32), f"{name}.weight"),
        numpy_helper.from_array(np.zeros(width, np.float32), f"{name}.bias"),
    ]
    nodes += [
        helper.make_node("ReduceMean", [x], [f"{name}.mean"], f"{name}/mean", axes=[-1]),
        helper.make_node("Sub", [x, f"{name}.mean"], [f"{name}.centered"], f"{name}/sub"),
        helper.make_node("Pow", [f"{name}.centered", "ln.two"], [f"{name}.sq"], f"{name}/pow"),
        helper.make_node("ReduceMean", [f"{name}.sq"], [f"{name}.var"], f"{name}/var", axes=[-1]),
        helper.make_node("Add", [f"{name}.var", "ln.eps"], [f"{name}.vare"], f"{name}/eps"),
        helper.make_node("Sqrt", [f"{name}.vare"], [f"{name}.std"], f"{name}/sqrt"),
        helper.make_node("Div", [f"{name}.centered", f"{name}.std"], [f"{name}.n"], f"{name}/div"),
        helper.make_node("Mul", [f"{name}.n", f"{name}.weight"], [f"{name}.s"], f"{name}/mul"),
        helper.make_node("Add", [f"{name}.s", f"{name}.bias"], [f"{name}.out"], f"{name}/add"),
    ]
    return f"{name}.out"


def build_embedding_encoder(
    path: Path | str, vocab: int = 2000, width: int = 64, heads: int = 4, seed: int = 0
) -> Path:
    """MiniLM-like: word + position embeddings (Gather on [vocab, width] tables), LayerNorm,
    one self-attention block and a feed-forward block, opset 13.

    Input "input_ids" int64 [batch, sequence] -> "hidden" [batch, sequence, width]. The word
    embedding table holds most of the weights, as in small sentence encoders.
    """
    rng = np.random.default_rng(seed)
    head_dim = width // heads
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (vocab, width)).astype(np.float32), "emb.word"),
        numpy_helper.from_array(rng.normal(0, 0.05, (128, width)).astype(np.float32), "emb.pos"),
        numpy_helper.from_array(np.array(2.0, np.float32), "ln.two"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "ln.eps"),
        numpy_helper.from_array(np.array(1, np.int64), "seq.axis"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([0, 0, heads, head_dim], np.int64), "heads.shape"),
        numpy_helper.from_array(np.array([0, 0, width], np.int64), "merge.shape"),
        numpy_helper.from_array(np.array(np.sqrt(head_dim), np.float32), "attn.scale"),
    ]
    for name, shape in (
        ("attn.q", (width, width)),
        ("attn.k", (width, width)),
        ("attn.v", (width, width)),
        ("attn.out", (width, width)),
        ("ffn.up", (width, 4 * width)),
        ("ffn.down", (4 * width, width)),
    ):
        inits += [
            numpy_helper.from_array(he_weight(rng, shape, 0.5), f"{name}.weight"),
            numpy_helper.from_array(np.full(shape[1], 0.01, np.float32), f"{name}.bias"),
        ]
    nodes = [
        helper.make_node("Gather", ["emb.word", "input_ids"], ["words"], "emb/word", axis=0),
        helper.make_node("Shape", ["input_ids"], ["ids.shape"], "emb/shape"),
        helper.make_node("Gather", ["ids.shape", "seq.axis"], ["seq.len"], "emb/seq_len", axis=0),
        helper.make_node("Range", ["zero", "seq.len", "one"], ["positions"], "emb/range"),
        helper.make_node("Gather", ["emb.pos", "positions"], ["pos"], "emb/position", axis=0),
        helper.make_node("Add", ["words", "pos"], ["embedded"], "emb/add"),
    ]
    x = _layer_norm(nodes, inits, "embedded", "emb.ln", width)

    def linear(source: str, name: str) -> str:
        nodes.append(
            helper.make_node("MatMul", [source, f"{name}.weight"], [f"{name}.mm"], f"{name}/MatMul")
        )
        nodes.append(
            helper.make_node("Add", [f"{name}.mm", f"{name}.bias"], [f"{name}.y"], f"{name}/Add")
        )
        return f"{name}.y"

    def split_heads(source: str, name: str, perm: list[int]) -> str:
        nodes.append(
            helper.make_node("Reshape", [source, "heads.shape"], [f"{name}.h"], f"{name}/heads")
        )
        nodes.append(
            helper.make_node("Transpose", [f"{name}.h"], [f"{name}.t"], f"{name}/T", perm=perm)
        )
        return f"{name}.t"

    q = split_heads(linear(x, "attn.q"), "attn.q", [0, 2, 1, 3])
    k = split_heads(linear(x, "attn.k"), "attn.k", [0, 2, 3, 1])
    v = split_heads(linear(x, "attn.v"), "attn.v", [0, 2, 1, 3])
    nodes += [
        helper.make_node("MatMul", [q, k], ["scores"], "attn/scores"),
        helper.make_node("Div", ["scores", "attn.scale"], ["scaled"], "attn/scale"),
        helper.make_node("Softmax", ["scaled"], ["probs"], "attn/softmax", axis=-1),
        helper.make_node("MatMul", ["probs", v], ["context"], "attn/context"),
        helper.make_node(
            "Transpose", ["context"], ["context.t"], "attn/merge_T", perm=[0, 2, 1, 3]
        ),
        helper.make_node("Reshape", ["context.t", "merge.shape"], ["merged"], "attn/merge"),
    ]
    nodes.append(
        helper.make_node("Add", [linear("merged", "attn.out"), x], ["res1"], "attn/residual")
    )
    x = _layer_norm(nodes, inits, "res1", "attn.ln", width)
    up = linear(x, "ffn.up")
    nodes.append(helper.make_node("Relu", [up], ["ffn.act"], "ffn/Relu"))
    nodes.append(
        helper.make_node("Add", [linear("ffn.act", "ffn.down"), x], ["res2"], "ffn/residual")
    )
    out = _layer_norm(nodes, inits, "res2", "ffn.ln", width)
    nodes.append(helper.make_node("Identity", [out], ["hidden"], "output"))
    graph = helper.make_graph(
        nodes,
        "embedding_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "sequence", width])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return save_export(model, path, "modelpress-tests-encoder")


def build_transposed_weight_mlp(path: Path | str, width: int = 64, seed: int = 0) -> Path:
    """MatMul(x, Transpose(W)) -> Add -> Relu -> MatMul(., Transpose(Constant W2)), opset 13.

    Input "input" [batch, width] -> "logits" [batch, 32]. Exporters write Linear layers this
    way when they skip constant folding: the MatMul's weight input is a Transpose output.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(he_weight(rng, (2 * width, width)), "fc1.weight"),
        numpy_helper.from_array(np.full(2 * width, 0.01, np.float32), "fc1.bias"),
    ]
    nodes = [
        helper.make_node(
            "Transpose", ["fc1.weight"], ["fc1.weight_t"], "fc1/Transpose", perm=[1, 0]
        ),
        helper.make_node("MatMul", ["input", "fc1.weight_t"], ["fc1.mm"], "fc1/MatMul"),
        helper.make_node("Add", ["fc1.mm", "fc1.bias"], ["fc1.y"], "fc1/Add"),
        helper.make_node("Relu", ["fc1.y"], ["fc1.act"], "fc1/Relu"),
        constant_node("fc2.weight", he_weight(rng, (32, 2 * width))),
        helper.make_node(
            "Transpose", ["fc2.weight"], ["fc2.weight_t"], "fc2/Transpose", perm=[1, 0]
        ),
        helper.make_node("MatMul", ["fc1.act", "fc2.weight_t"], ["logits"], "fc2/MatMul"),
    ]
    graph = helper.make_graph(
        nodes,
        "transposed_weight_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 32])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return save_export(model, path, "modelpress-tests-transposed")


def build_constant_weight_cnn(path: Path | str, seed: int = 0) -> Path:
    """Conv -> Relu -> Conv -> Relu -> pool -> MatMul -> Relu -> Gemm, opset 11, where every
    weight is a Constant node and the dims fit 4-bit blocks of 32.

    Input "image" [batch, 3, 16, 16] -> "logits" [batch, 10].
    """
    rng = np.random.default_rng(seed)
    nodes = [
        constant_node("conv1.weight", he_weight(rng, (32, 3, 3, 3))),
        constant_node("conv1.bias", np.full(32, 0.01, np.float32)),
        constant_node("conv2.weight", he_weight(rng, (32, 32, 3, 3))),
        constant_node("fc1.weight", he_weight(rng, (32, 64))),
        constant_node("fc1.bias", np.full(64, 0.01, np.float32)),
        constant_node("fc2.weight", he_weight(rng, (10, 64), 0.5)),
        constant_node("fc2.bias", np.zeros(10, np.float32)),
        helper.make_node(
            "Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], "conv1", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "conv2.weight"], ["c2"], "conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("MatMul", ["f", "fc1.weight"], ["m1"], "fc1/MatMul"),
        helper.make_node("Add", ["m1", "fc1.bias"], ["a1"], "fc1/Add"),
        helper.make_node("Relu", ["a1"], ["h1"], "fc1/Relu"),
        helper.make_node("Gemm", ["h1", "fc2.weight", "fc2.bias"], ["logits"], "fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_weight_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    return save_export(model, path, "modelpress-tests-constant")


def build_minus_one_batch_classifier(path: Path | str, seed: int = 0, classes: int = 4) -> Path:
    """A PaddleOCR-classifier-shaped CNN whose open dims are stored as -1, not named.

    Input "x" [-1, 3, -1, -1] -> Conv/Relu x2 -> GlobalAveragePool -> Reshape [-1, 16] ->
    MatMul/Add -> Softmax "probs" [-1, classes]; value_info carries -1 dims too, as Paddle2ONNX
    writes them.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(he_weight(rng, (8, 3, 3, 3)), "conv1.w"),
        numpy_helper.from_array(np.full(8, 0.05, np.float32), "conv1.b"),
        numpy_helper.from_array(he_weight(rng, (16, 8, 3, 3)), "conv2.w"),
        numpy_helper.from_array(np.full(16, 0.05, np.float32), "conv2.b"),
        numpy_helper.from_array(np.array([-1, 16], np.int64), "flat.shape"),
        numpy_helper.from_array(he_weight(rng, (16, classes), 2.0), "fc.w"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], "conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node(
            "Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], "conv2", pads=[1] * 4, strides=[2, 2]
        ),
        helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"], "pool"),
        helper.make_node("Reshape", ["pooled", "flat.shape"], ["flat"], "flatten"),
        helper.make_node("MatMul", ["flat", "fc.w"], ["mm"], "fc/MatMul"),
        helper.make_node("Add", ["mm", "fc.b"], ["logits"], "fc/Add"),
        helper.make_node("Softmax", ["logits"], ["probs"], "softmax", axis=1),
    ]
    float_ = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "minus_one_batch",
        [helper.make_tensor_value_info("x", float_, [-1, 3, -1, -1])],
        [helper.make_tensor_value_info("probs", float_, [-1, classes])],
        initializer=inits,
        value_info=[
            helper.make_tensor_value_info("r1", float_, [-1, 8, -1, -1]),
            helper.make_tensor_value_info("flat", float_, [-1, 16]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    return save_export(model, path, "modelpress-tests-exports")
