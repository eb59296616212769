"""Every preset on the -1-batch classifier and on the silero-like model (its rate given as an
input value), as the sandbox child runs them: each succeeds, or fails with a specific code."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compression.passes.base import PassContext
from app.compression.passes.recipes import PRESETS, expand_preset
from app.pipeline.sandbox_handlers import handle
from app.pipeline.sandbox_protocol import PassRequest, SandboxFailure
from tests.builders_exports import build_minus_one_batch_classifier
from tests.builders_recurrent import SILERO_RATE, build_silero_like_vad

# The codes a user can act on; internal_error is never one of them.
SPECIFIC = {
    "nothing_to_quantize",
    "nothing_to_prune",
    "nothing_to_convert",
    "nothing_to_cluster",
    "already_quantized",
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, PassContext]]:
    folder = tmp_path_factory.mktemp("exports")
    return {
        "minus_one": (build_minus_one_batch_classifier(folder / "cls.onnx"), PassContext()),
        "vad": (
            build_silero_like_vad(folder / "vad.onnx"),
            PassContext(input_values={"sr": SILERO_RATE}),
        ),
    }


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("model", ["minus_one", "vad"])
def test_preset_succeeds_or_fails_with_a_specific_code(
    sources: dict[str, tuple[Path, PassContext]], tmp_path: Path, preset: str, model: str
) -> None:
    current, context = sources[model]

    for index, config in enumerate(expand_preset(preset).configs()):
        output = tmp_path / f"step-{index}.onnx"
        request = PassRequest(
            config=config, input=current, output=output, context=context, check_samples=4
        )
        result = handle(request.model_dump_json().encode())
        if isinstance(result, SandboxFailure):
            assert result.code in SPECIFIC, result.message
            return
        assert output.exists()
        current = output
