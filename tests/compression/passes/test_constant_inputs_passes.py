"""A silero-vad-shaped model (If on a scalar `sr`, a state without sample axis, Conv and LSTM
inside the branch) quantized with its control inputs given as constants: in the dataset as
`const:` arrays, or as the job's input_values without any dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from app.compression.graph.analysis import count_ops
from app.compression.passes.base import PASS_REGISTRY, PassConfig, PassContext
from app.compression.passes.configs import QuantizeDynamicConfig, QuantizeStaticConfig
from tests.builders_recurrent import (
    SILERO_HIDDEN,
    SILERO_RATE,
    build_silero_like_vad,
    silero_like_feed,
)

QUANTIZED_OPS = {"DequantizeLinear", "MatMulInteger", "DynamicQuantizeLSTM", "ConvInteger"}


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_silero_like_vad(tmp_path_factory.mktemp("vad") / "vad.onnx")


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio rows per sample; the state and the rate once, as constants."""
    rng = np.random.default_rng(1)
    rows = np.concatenate([silero_like_feed(rng)["input"] for _ in range(16)])
    path = tmp_path_factory.mktemp("data") / "cal.npz"
    np.savez(
        path,
        input=rows,
        **{
            "const:state": np.zeros((2, 1, SILERO_HIDDEN), np.float32),
            "const:sr": np.array(SILERO_RATE),
        },
    )
    return path


def _outputs(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([np.ravel(v) for v in session.run(None, feed)])


@pytest.mark.parametrize(
    "config", [QuantizeDynamicConfig(), QuantizeStaticConfig()], ids=["dynamic", "static"]
)
@pytest.mark.parametrize("source", ["dataset", "input_values"])
def test_quantizing_with_constant_control_inputs(
    vad: Path, calibration: Path, tmp_path: Path, config: PassConfig, source: str
) -> None:
    context = (
        PassContext(calibration_path=calibration)
        if source == "dataset"
        else PassContext(input_values={"sr": SILERO_RATE})
    )
    output = tmp_path / "int8.onnx"

    report = PASS_REGISTRY[config.type]().run(vad, config, output, context)

    assert QUANTIZED_OPS & set(count_ops(onnx.load(str(output)))), report
    rng = np.random.default_rng(7)
    for _ in range(4):
        feed = silero_like_feed(rng)
        original, quantized = _outputs(vad, feed), _outputs(output, feed)
        other_branch = _outputs(vad, {**feed, "sr": np.array(8000)})
        # Close to the original on the 16 kHz branch, which the other rate would not be.
        error = np.linalg.norm(quantized - original) / np.linalg.norm(original)
        assert error < 0.05
        assert np.linalg.norm(other_branch - original) / np.linalg.norm(original) > 4 * error
