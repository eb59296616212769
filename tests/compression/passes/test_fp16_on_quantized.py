"""float16 on a model that already holds Q/DQ or integer nodes: the quantized islands stay
float32 and the rest converts, or the pass refuses with already_quantized; never a model that
onnxruntime cannot load."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from app.compression.errors import PassError
from app.compression.graph.analysis import count_ops
from app.compression.passes.base import PASS_REGISTRY, PassConfig, PassContext
from app.compression.passes.configs import (
    ConvertFp16Config,
    QuantizeDynamicConfig,
    QuantizeStaticConfig,
)
from tests.builders import build_cnn_residual


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cnn_residual(tmp_path_factory.mktemp("cnn") / "cnn.onnx")


def _run(source: Path, config: PassConfig, output: Path) -> Path:
    PASS_REGISTRY[config.type]().run(source, config, output, PassContext())
    return output


def _outputs(path: Path, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: image})[0])


def _image() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)


def test_fp16_of_a_fully_int8_static_model_is_already_quantized(cnn: Path, tmp_path: Path) -> None:
    quantized = _run(cnn, QuantizeStaticConfig(), tmp_path / "int8.onnx")

    with pytest.raises(PassError) as caught:
        _run(quantized, ConvertFp16Config(), tmp_path / "fp16.onnx")

    assert caught.value.code == "already_quantized"
    assert "stay float32" in caught.value.message
    assert not (tmp_path / "fp16.onnx").exists()


def test_fp16_of_a_partly_int8_static_model_keeps_the_qdq_islands_float32(
    cnn: Path, tmp_path: Path
) -> None:
    quantized = _run(cnn, QuantizeStaticConfig(op_types=["Conv"]), tmp_path / "int8.onnx")

    converted = _run(quantized, ConvertFp16Config(), tmp_path / "fp16.onnx")

    model = onnx.load(str(converted))
    before, after = count_ops(onnx.load(str(quantized))), count_ops(model)
    assert after["QuantizeLinear"] == before["QuantizeLinear"] > 0
    assert after["DequantizeLinear"] == before["DequantizeLinear"]
    types = Counter(t.data_type for t in model.graph.initializer)
    assert types[TensorProto.FLOAT16] > 0  # the Gemm that int8 left in float
    scales = [t for t in model.graph.initializer if t.name.endswith("_scale")]
    assert scales and all(t.data_type == TensorProto.FLOAT for t in scales)
    image = _image()
    reference, half = _outputs(quantized, image), _outputs(converted, image)
    assert np.linalg.norm(half - reference) / np.linalg.norm(reference) < 0.01


def test_fp16_of_an_int8_dynamic_cnn_converts_what_int8_left_in_float(
    cnn: Path, tmp_path: Path
) -> None:
    quantized = _run(cnn, QuantizeDynamicConfig(), tmp_path / "int8.onnx")

    converted = _run(quantized, ConvertFp16Config(), tmp_path / "fp16.onnx")

    ops = count_ops(onnx.load(str(converted)))
    assert ops["DynamicQuantizeLinear"] >= 1 and ops["MatMulInteger"] >= 1
    image = _image()
    reference, half = _outputs(quantized, image), _outputs(converted, image)
    assert np.linalg.norm(half - reference) / np.linalg.norm(reference) < 0.01
