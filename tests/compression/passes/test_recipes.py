"""Recipe validation against the passes' configs, and presets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.compression.passes.convert_fp16 import ConvertFp16Config
from app.compression.passes.quantize_dynamic import QuantizeDynamicConfig
from app.compression.passes.recipes import PRESETS, Recipe, expand_preset


def _locs(payload: dict) -> list[tuple]:
    with pytest.raises(ValidationError) as err:
        Recipe.model_validate(payload)
    return [tuple(e["loc"]) for e in err.value.errors()]


def test_unknown_pass_type() -> None:
    assert _locs({"passes": [{"type": "prune_magic"}]}) == [("passes", 0)]


@pytest.mark.parametrize(
    ("bad", "loc"),
    [
        ({"weight_type": "int4"}, ("weight_type",)),
        ({"op_types": ["MatMul", ""]}, ("op_types", 1)),
        ({"op_types": []}, ("op_types",)),
        ({"per_channel": "maybe"}, ("per_channel",)),
        ({"nodes_to_exclude": "fc0"}, ("nodes_to_exclude",)),
        ({"surprise": 1}, ("surprise",)),
    ],
)
def test_bad_quantize_values(bad: dict, loc: tuple) -> None:
    payload = {"passes": [{"type": "convert_fp16"}, {"type": "quantize_dynamic", **bad}]}
    assert ("passes", 1, "quantize_dynamic", *loc) in _locs(payload)


def test_bad_fp16_value() -> None:
    payload = {"passes": [{"type": "convert_fp16", "op_block_list": "TopK"}]}
    assert ("passes", 0, "convert_fp16", "op_block_list") in _locs(payload)


def test_empty_recipe() -> None:
    assert _locs({"passes": []}) == [("passes",)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_expands(name: str) -> None:
    recipe = expand_preset(name)
    assert recipe.passes and PRESETS[name]["description"]
    assert recipe.fingerprint() == Recipe.model_validate(recipe.model_dump()).fingerprint()


def test_unknown_preset() -> None:
    with pytest.raises(KeyError):
        expand_preset("int3")


def test_op_types_deduplicated_and_fields_documented() -> None:
    config = QuantizeDynamicConfig(op_types=[" MatMul", "MatMul", "Gemm"])
    assert config.op_types == ["MatMul", "Gemm"]
    for cls in (QuantizeDynamicConfig, ConvertFp16Config):
        assert all(f.description for f in cls.model_fields.values())


def test_importing_recipes_loads_no_onnx_or_onnxruntime() -> None:
    code = (
        "import sys, app.compression.passes.recipes; "
        "sys.exit(bool({'onnx', 'onnxruntime'} & set(sys.modules)))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
