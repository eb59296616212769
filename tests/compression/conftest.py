"""Models shared by the compression tests, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import build_conv_net, build_mlp


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_path(models_dir: Path) -> Path:
    return build_mlp(models_dir / "mlp.onnx")


@pytest.fixture(scope="session")
def conv_path(models_dir: Path) -> Path:
    return build_conv_net(models_dir / "conv.onnx")
