"""Recipes (ordered pass lists) and presets, validated with the passes' own configs."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from app.compression.passes import configs  # noqa: F401  # importing it registers the configs
from app.compression.passes.base import PASS_CONFIGS, PassConfig

# Extra pass modules (comma-separated), such as the fault-injecting passes of the test suite.
# The variable is read here rather than from Settings: this library knows nothing of the service.
for _module in filter(None, os.environ.get("MODELPRESS_EXTRA_PASS_MODULES", "").split(",")):
    importlib.import_module(_module.strip())

_pass_configs = tuple(PASS_CONFIGS.values())
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
        "description": "INT8 dynamic quantization of MatMul/Gemm and LSTM weights: the CPU "
        "default for transformers, MLPs and recurrent (CRNN, VAD) models.",
        "recipe": {"passes": [{"type": "quantize_dynamic"}]},
    },
    "int8-static": {
        "description": "INT8 static QDQ, per-channel weights, activations calibrated on "
        "calibration_dataset_id (else synthetic data): the CPU choice for CNNs.",
        "recipe": {"passes": [{"type": "quantize_static"}]},
    },
    "int4-weight-only": {
        "description": "4-bit block-wise weights for MatMuls (MatMulNBits), activations "
        "unchanged: large language-model style weights, ~6x smaller.",
        "recipe": {"passes": [{"type": "quantize_weight_only", "bits": 4, "block_size": 32}]},
    },
    "fp16": {
        "description": "Float16 weights and activations, inputs and outputs kept float32.",
        "recipe": {"passes": [{"type": "convert_fp16"}]},
    },
    "prune-unstructured-50": {
        "description": "Zero the 50% smallest weights of each layer: sparse, same shapes; "
        "pays off with zstd transport or sparse kernels.",
        "recipe": {"passes": [{"type": "prune_magnitude", "sparsity": 0.5}]},
    },
    "prune-channels-30": {
        "description": "Remove 30% of the channels / hidden units (L1 ranking): really fewer "
        "parameters and FLOPs; check the accuracy delta.",
        "recipe": {"passes": [{"type": "prune_channels", "ratio": 0.3}]},
    },
    "deep-compression": {
        "description": "Prune 50%, share weights among 16 clusters, then serve zstd-coded "
        "(download?encoding=zstd): the smallest transport size.",
        "recipe": {
            "passes": [
                {"type": "prune_magnitude", "sparsity": 0.5},
                {"type": "cluster_weights", "clusters": 16},
            ]
        },
    },
}

recipe_adapter: TypeAdapter[Recipe] = TypeAdapter(Recipe)


def expand_preset(name: str) -> Recipe:
    """The recipe a preset stands for; KeyError for an unknown preset."""
    return Recipe.model_validate(PRESETS[name]["recipe"])
