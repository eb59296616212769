"""Export-shaped models (tests/builders_exports.py, builders_recurrent.py), built once, with the
data a user would give."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from app.compression.passes.base import PassContext
from tests.builders_exports import (
    build_constant_weight_cnn,
    build_embedding_encoder,
    build_paddle_detector,
    build_transposed_weight_mlp,
)
from tests.builders_recurrent import build_crnn_lstm, build_silero_like_vad, silero_like_feed


@dataclass
class ExportShape:
    """A model, the context a job would run its passes with, and a feed to check outputs on."""

    path: Path
    feed: dict[str, np.ndarray]
    context: PassContext = field(default_factory=PassContext)


def _dataset(folder: Path, name: str, arrays: dict[str, np.ndarray]) -> Path:
    path = folder / f"{name}.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="session")
def export_shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportShape]:
    folder = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(7)
    # Text-line crops and page images have open widths/heights that synthetic data (every open
    # dim 1) cannot fill, so these come with a calibration dataset, as a user would give one.
    lines = _dataset(folder, "lines", {"image": rng.random((4, 1, 32, 64), np.float32)})
    pages = _dataset(folder, "pages", {"x": rng.random((4, 3, 32, 32), np.float32)})
    return {
        "crnn": ExportShape(
            build_crnn_lstm(folder / "crnn.onnx"),
            {"image": rng.random((2, 1, 32, 48), np.float32)},
            PassContext(calibration_path=lines),
        ),
        "vad": ExportShape(
            build_silero_like_vad(folder / "vad.onnx"), silero_like_feed(rng, batch=2)
        ),
        "paddle": ExportShape(
            build_paddle_detector(folder / "paddle.onnx"),
            {"x": rng.random((1, 3, 32, 48), np.float32)},
            PassContext(calibration_path=pages),
        ),
        "encoder": ExportShape(
            build_embedding_encoder(folder / "encoder.onnx"),
            {"input_ids": rng.integers(0, 2000, (2, 12)).astype(np.int64)},
        ),
        "transposed": ExportShape(
            build_transposed_weight_mlp(folder / "transposed.onnx"),
            {"input": rng.standard_normal((3, 64)).astype(np.float32)},
        ),
        "constant": ExportShape(
            build_constant_weight_cnn(folder / "constant.onnx"),
            {"image": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)},
        ),
    }
