"""Unstructured magnitude pruning: zero the smallest weights of Conv/Gemm/MatMul layers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from app.compression.passes.base import (
    CompressionPass,
    PassConfig,
    PassContext,
    PassError,
    PassReport,
    register_pass,
)

if TYPE_CHECKING:
    import numpy as np

WeightOp = Literal["MatMul", "Gemm", "Conv", "ConvTranspose", "Gather"]


class PruneMagnitudeConfig(PassConfig):
    """Settings of magnitude pruning."""

    type: Literal["prune_magnitude"] = Field(
        default="prune_magnitude", description="Pass discriminator."
    )
    sparsity: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Share of the selected weights set to zero (biases are never pruned).",
    )
    scope: Literal["global", "per_layer"] = Field(
        default="per_layer",
        description="per_layer: every tensor reaches the sparsity; global: one magnitude "
        "threshold over all selected tensors, so layers with many small weights lose more.",
    )
    op_types: list[WeightOp] = Field(
        default=["MatMul", "Gemm", "Conv"],
        min_length=1,
        description="Ops whose weight initializer is pruned (Gather: its embedding table).",
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[WeightOp]) -> list[WeightOp]:
        return list(dict.fromkeys(value))


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the `count` smallest values: exact count, whatever the ties."""
    import numpy as np

    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(magnitudes, count - 1)[:count]


@register_pass
class PruneMagnitudePass(CompressionPass[PruneMagnitudeConfig]):
    """Zeroes the smallest-magnitude weights; the file keeps its size but compresses well."""

    type = "prune_magnitude"
    config_cls = PruneMagnitudeConfig

    def run(
        self,
        input_path: Path,
        config: PruneMagnitudeConfig,
        output_path: Path,
        context: PassContext | None = None,
    ) -> PassReport:
        import numpy as np
        from onnx import numpy_helper

        from app.compression.graph.analysis import param_count
        from app.compression.graph.model_io import load_model, save_model
        from app.compression.passes.channel_graph import find_weights

        model, big = load_model(input_path)
        refs, skipped = find_weights(model, list(config.op_types))
        # A weight shared by several nodes is pruned once.
        tensors = list({id(r.tensor): r.tensor for r in refs}.values())
        if not tensors:
            raise PassError(
                "nothing_to_prune",
                f"the model has no float32 {'/'.join(config.op_types)} weight initializer to "
                f"prune{': ' + '; '.join(skipped[:5]) if skipped else ''}.",
            )
        arrays = [numpy_helper.to_array(t) for t in tensors]
        zeros_before = sum(int(np.count_nonzero(a == 0)) for a in arrays)
        flat = [a.ravel().copy() for a in arrays]
        if config.scope == "per_layer":
            for values in flat:
                values[_smallest(np.abs(values), int(config.sparsity * values.size))] = 0.0
        else:
            joined = np.concatenate([np.abs(v) for v in flat])
            cut = np.zeros(joined.size, dtype=bool)
            cut[_smallest(joined, int(config.sparsity * joined.size))] = True
            offsets = np.cumsum([0, *(v.size for v in flat)])
            for values, start, stop in zip(flat, offsets[:-1], offsets[1:], strict=True):
                values[cut[start:stop]] = 0.0

        rows: list[dict[str, Any]] = []
        for tensor, array, values in zip(tensors, arrays, flat, strict=True):
            zeros = int(np.count_nonzero(values == 0))
            rows.append(
                {
                    "tensor": tensor.name,
                    "shape": list(array.shape),
                    "params": int(values.size),
                    "zeros": zeros,
                    "sparsity": round(zeros / max(values.size, 1), 6),
                }
            )
            tensor.CopyFrom(numpy_helper.from_array(values.reshape(array.shape), tensor.name))
        selected = sum(r["params"] for r in rows)
        zeros_after = sum(r["zeros"] for r in rows)
        total = param_count(model)
        pruned = zeros_after - zeros_before
        save_model(model, output_path, big)
        return PassReport(
            type=self.type,
            summary=f"Zeroed {pruned:,} of {total:,} parameters ({pruned / total:.1%}); "
            f"sparsity of the {len(rows)} pruned tensor(s) {zeros_after / selected:.1%}.",
            details={
                "scope": config.scope,
                "target_sparsity": config.sparsity,
                "achieved_sparsity": round(zeros_after / selected, 6),
                "pruned_params": pruned,
                "total_params": total,
                "pruning_rate": round(pruned / total, 6),
                "tensors": rows,
                "skipped": skipped,
            },
            warnings=[
                "zeros are stored densely: the file keeps its size until it is entropy-coded "
                "(zstd) or clustered; speedups need a sparse runtime"
            ],
        )
