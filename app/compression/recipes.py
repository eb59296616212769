"""Recipes (ordered pass lists) and presets, validated with the passes' own configs."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# Importing the pass modules registers them; none of them imports onnxruntime at import time.
import app.compression.convert_fp16
import app.compression.quantize_dynamic  # noqa: F401
from app.compression.base import PASS_REGISTRY, PassConfig

_pass_configs = tuple(cls.config_cls for cls in PASS_REGISTRY.values())
AnyPassConfig = Annotated[Union[_pass_configs], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


class Recipe(BaseModel):
    """An ordered list of passes that runs as one job."""

    model_config = ConfigDict(extra="forbid")

    passes: list[AnyPassConfig] = Field(min_length=1, max_length=16)

    def configs(self) -> list[PassConfig]:
        return list(self.passes)

    def fingerprint(self) -> str:
        """Stable hash of the fully defaulted recipe: same recipe, same output key."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


PRESETS: dict[str, dict[str, Any]] = {
    "int8-dynamic": {
        "description": "INT8 dynamic quantization of MatMul/Gemm weights: the CPU default for "
        "transformers and MLPs.",
        "recipe": {"passes": [{"type": "quantize_dynamic"}]},
    },
    "fp16": {
        "description": "Float16 weights and activations, inputs and outputs kept float32.",
        "recipe": {"passes": [{"type": "convert_fp16"}]},
    },
}

recipe_adapter: TypeAdapter[Recipe] = TypeAdapter(Recipe)


def expand_preset(name: str) -> Recipe:
    """The recipe a preset stands for; KeyError for an unknown preset."""
    return Recipe.model_validate(PRESETS[name]["recipe"])
