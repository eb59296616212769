"""Small recurrent models shaped like real exports (OCR, VAD): LSTM nodes, and weights inside
`If` branches, built the way exporters write them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.builders_exports import constant_node, he_weight, save_export

SILERO_RATE = 16000  # the `sr` value whose If branch holds the Conv and LSTM weights
SILERO_HIDDEN = 32  # state [2, batch, SILERO_HIDDEN]; silero-vad's own is 128
SILERO_CHUNK = 64  # samples per input row


def _lstm_weights(
    rng: np.random.Generator, prefix: str, directions: int, inputs: int, hidden: int
) -> list[onnx.TensorProto]:
    # ONNX LSTM keeps gates i, o, f, c stacked: W [dirs, 4H, in], R [dirs, 4H, H], B [dirs, 8H].
    scale = 1.0 / np.sqrt(hidden)
    shapes = {
        "W": (directions, 4 * hidden, inputs),
        "R": (directions, 4 * hidden, hidden),
        "B": (directions, 8 * hidden),
    }
    return [
        numpy_helper.from_array(
            rng.uniform(-scale, scale, shape).astype(np.float32), f"{prefix}.{part}"
        )
        for part, shape in shapes.items()
    ]


def build_crnn_lstm(path: Path | str, classes: int = 40, hidden: int = 48, seed: int = 0) -> Path:
    """ddddocr-style CRNN: 2x (Conv -> Relu -> MaxPool) -> columns -> bidirectional LSTM -> Gemm.

    Input "image" [-1, 1, 32, "width"] (width >= 8; -1 is how the exporter wrote the batch) ->
    "logits" [time * batch, classes] with time = width / 4. The LSTM holds most of the weights,
    as in the real model.
    """
    rng = np.random.default_rng(seed)
    features = 32 * 8  # channels x height after two 2x2 pools of a 32-pixel-high image
    inits = [
        numpy_helper.from_array(he_weight(rng, (16, 1, 3, 3)), "cnn.conv1.weight"),
        numpy_helper.from_array(np.full(16, 0.01, np.float32), "cnn.conv1.bias"),
        numpy_helper.from_array(he_weight(rng, (32, 16, 3, 3)), "cnn.conv2.weight"),
        numpy_helper.from_array(np.full(32, 0.01, np.float32), "cnn.conv2.bias"),
        *_lstm_weights(rng, "rnn", 2, features, hidden),
        numpy_helper.from_array(he_weight(rng, (classes, 2 * hidden)), "fc.weight"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias"),
    ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        helper.make_node(
            "Conv", ["image", "cnn.conv1.weight", "cnn.conv1.bias"], ["c1"], "cnn/conv1", **conv
        ),
        helper.make_node("Relu", ["c1"], ["r1"], "cnn/relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "cnn/pool1", **pool),
        helper.make_node(
            "Conv", ["p1", "cnn.conv2.weight", "cnn.conv2.bias"], ["c2"], "cnn/conv2", **conv
        ),
        helper.make_node("Relu", ["c2"], ["r2"], "cnn/relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], "cnn/pool2", **pool),
        # [B, C, H, T] -> [T, B, C, H] -> [T, B, C*H]: one feature vector per image column.
        helper.make_node("Transpose", ["p2"], ["cols"], "seq/Transpose", perm=[3, 0, 1, 2]),
        constant_node("seq.shape", np.array([0, 0, -1], np.int64)),
        helper.make_node("Reshape", ["cols", "seq.shape"], ["seq"], "seq/Reshape"),
        helper.make_node(
            "LSTM",
            ["seq", "rnn.W", "rnn.R", "rnn.B"],
            ["rnn.Y"],
            "rnn/LSTM",
            hidden_size=hidden,
            direction="bidirectional",
        ),
        # Y [T, 2, B, H] -> [T, B, 2, H] -> [T * B, 2H]
        helper.make_node("Transpose", ["rnn.Y"], ["rnn.t"], "rnn/Transpose", perm=[0, 2, 1, 3]),
        constant_node("flat.shape", np.array([-1, 2 * hidden], np.int64)),
        helper.make_node("Reshape", ["rnn.t", "flat.shape"], ["flat"], "fc/Reshape"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], "fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "crnn_lstm",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [-1, 1, 32, "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["steps", classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    return save_export(model, path, "modelpress-tests-crnn")


def _silero_branch(
    name: str, rng: np.random.Generator, kernel: int, stride: int, channels: int
) -> onnx.GraphProto:
    """Conv1d -> Relu -> LSTM (initial state from `state`) -> Linear -> Sigmoid, by closure.

    Reads the outer scope's "input" [batch, SILERO_CHUNK] and "state" [2, batch, hidden];
    writes "<name>.out" [batch, 1] and "<name>.state" [2, batch, hidden]. The Conv weight is a
    Constant node and the LSTM's weights are initializers of the branch, as exporters do.
    """
    hidden = SILERO_HIDDEN
    p = f"{name}."
    lstm_w = (rng.standard_normal((1, 4 * hidden, channels)) * 0.3).astype(np.float32)
    lstm_r = (rng.standard_normal((1, 4 * hidden, hidden)) * 0.3).astype(np.float32)
    lstm_b = (rng.standard_normal((1, 8 * hidden)) * 0.1).astype(np.float32)
    inits = [
        numpy_helper.from_array(lstm_w, p + "lstm.W"),
        numpy_helper.from_array(lstm_r, p + "lstm.R"),
        numpy_helper.from_array(lstm_b, p + "lstm.B"),
        numpy_helper.from_array(he_weight(rng, (hidden, 1), 2.0), p + "head.w"),
        numpy_helper.from_array(np.array([1], np.int64), p + "axis1"),
        numpy_helper.from_array(np.array([0], np.int64), p + "axis0"),
    ]
    conv_w = he_weight(rng, (channels, 1, kernel))
    nodes = [
        constant_node(p + "conv.w", conv_w),
        helper.make_node("Unsqueeze", ["input", p + "axis1"], [p + "x3"], p + "unsqueeze"),
        helper.make_node(
            "Conv", [p + "x3", p + "conv.w"], [p + "conv"], p + "conv", strides=[stride]
        ),
        helper.make_node("Relu", [p + "conv"], [p + "feat"], p + "relu"),
        helper.make_node("Transpose", [p + "feat"], [p + "seq"], p + "to_seq", perm=[2, 0, 1]),
        helper.make_node("Split", ["state"], [p + "h0", p + "c0"], p + "split_state", axis=0),
        helper.make_node(
            "LSTM",
            [p + "seq", p + "lstm.W", p + "lstm.R", p + "lstm.B", "", p + "h0", p + "c0"],
            [p + "y", p + "yh", p + "yc"],
            p + "lstm",
            hidden_size=hidden,
        ),
        helper.make_node("Squeeze", [p + "yh", p + "axis0"], [p + "last"], p + "squeeze"),
        helper.make_node("MatMul", [p + "last", p + "head.w"], [p + "logit"], p + "head"),
        helper.make_node("Sigmoid", [p + "logit"], [p + "out"], p + "sigmoid"),
        helper.make_node("Concat", [p + "yh", p + "yc"], [p + "state"], p + "new_state", axis=0),
    ]
    return helper.make_graph(
        nodes,
        name,
        [],
        [
            helper.make_tensor_value_info(p + "out", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info(
                p + "state", TensorProto.FLOAT, [2, "batch", SILERO_HIDDEN]
            ),
        ],
        initializer=inits,
    )


def build_silero_like_vad(path: Path | str, seed: int = 0) -> Path:
    """silero-vad's shape: If(sr == 16000) picks the branch that holds the Conv and LSTM weights.

    Inputs: "input" [-1, SILERO_CHUNK] float, "state" [2, -1, SILERO_HIDDEN] float (no sample
    axis: the RNN state), "sr" int64 scalar. Outputs "output" [-1, 1] and "stateN". The other
    branch (any other rate) has its own, different Conv and LSTM.
    """
    rng = np.random.default_rng(seed)
    then_branch = _silero_branch("rate16k", rng, kernel=8, stride=4, channels=16)
    else_branch = _silero_branch("rate8k", rng, kernel=4, stride=2, channels=16)
    nodes = [
        constant_node("rate16k", np.array(SILERO_RATE)),
        helper.make_node("Equal", ["sr", "rate16k"], ["is16k"], "is16k"),
        helper.make_node(
            "If",
            ["is16k"],
            ["output", "stateN"],
            "by_rate",
            then_branch=then_branch,
            else_branch=else_branch,
        ),
    ]
    float_ = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "silero_like",
        [
            helper.make_tensor_value_info("input", float_, [-1, SILERO_CHUNK]),
            helper.make_tensor_value_info("state", float_, [2, -1, SILERO_HIDDEN]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [
            helper.make_tensor_value_info("output", float_, [-1, 1]),
            helper.make_tensor_value_info("stateN", float_, [2, -1, SILERO_HIDDEN]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return save_export(model, path, "modelpress-tests-exports")


def silero_like_feed(
    rng: np.random.Generator, batch: int = 1, rate: int = SILERO_RATE
) -> dict[str, np.ndarray]:
    """A feed for build_silero_like_vad: audio-like input, a zero state and the rate."""
    t = np.linspace(0, 1, SILERO_CHUNK, dtype=np.float32)
    audio = np.sin(2 * np.pi * rng.uniform(2, 12, (batch, 1)) * t) + 0.1 * rng.standard_normal(
        (batch, SILERO_CHUNK)
    )
    return {
        "input": audio.astype(np.float32),
        "state": np.zeros((2, batch, SILERO_HIDDEN), np.float32),
        "sr": np.array(rate, np.int64),
    }
