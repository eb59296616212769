"""A small MLP trained on scikit-learn's digits, written to ONNX by hand, and its eval dataset.

Real labelled data that ships with a package: accuracy tests need no download. The model is
input [batch, 64] (pixels / 16) -> MatMul/Add/Relu -> MatMul/Add -> logits [batch, 10].
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # as tests/builders.py: loads in every onnxruntime the project supports


@dataclass(frozen=True)
class DigitsMLP:
    """Trained weights (per layer: [in, out] matrix, bias) and the held-out split."""

    weights: tuple[tuple[np.ndarray, np.ndarray], ...]
    test_inputs: np.ndarray  # float32 [n, 64], scaled to [0, 1]
    test_labels: np.ndarray  # int64 [n]


@functools.lru_cache(maxsize=4)
def train_digits_mlp(seed: int = 0, hidden: int = 32) -> DigitsMLP:
    """Fit a one-hidden-layer MLPClassifier on 75% of digits; cached per process (~1 s)."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=150, random_state=seed)
    with warnings.catch_warnings():
        # A few hundred epochs are plenty for ~97% here; full convergence is not the point.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    layers = tuple(
        (w.astype(np.float32), b.astype(np.float32))
        for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)
    )
    return DigitsMLP(layers, x_test, y_test.astype(np.int64))


def build_digits_model(path: Path | str, seed: int = 0, corrupt_layer: int | None = None) -> Path:
    """Write the trained MLP as ONNX; `corrupt_layer` replaces that layer's weight with noise."""
    trained = train_digits_mlp(seed)
    rng = np.random.default_rng(1234)
    nodes, inits = [], []
    x = "input"
    last = len(trained.weights) - 1
    for i, (weight, bias) in enumerate(trained.weights):
        if i == corrupt_layer:
            # Same scale, no structure: what a pass that scrambles a weight would produce.
            weight = rng.standard_normal(weight.shape).astype(np.float32) * weight.std()
        inits.append(numpy_helper.from_array(weight, f"fc{i}.weight"))
        inits.append(numpy_helper.from_array(bias, f"fc{i}.bias"))
        out = "logits" if i == last else f"fc{i}.out"
        nodes.append(
            helper.make_node("MatMul", [x, f"fc{i}.weight"], [f"fc{i}.mm"], f"fc{i}/MatMul")
        )
        nodes.append(helper.make_node("Add", [f"fc{i}.mm", f"fc{i}.bias"], [out], f"fc{i}/Add"))
        x = out
        if i != last:
            nodes.append(helper.make_node("Relu", [out], [f"fc{i}.act"], f"fc{i}/Relu"))
            x = f"fc{i}.act"
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelpress-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_digits_dataset(path: Path | str, seed: int = 0, limit: int | None = None) -> Path:
    """The held-out split as an eval .npz: "input" float32 [n, 64] and int64 "labels" [n]."""
    trained = train_digits_mlp(seed)
    count = len(trained.test_labels) if limit is None else limit
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, input=trained.test_inputs[:count], labels=trained.test_labels[:count])
    return path
