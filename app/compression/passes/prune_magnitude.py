"""Unstructured magnitude pruning: zero the smallest weights of Conv/Gemm/MatMul layers."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import ModelProto, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import param_count
from app.compression.passes.base import PassOutcome, PassWork, WeightPass, register_pass
from app.compression.passes.channel_graph import find_weights
from app.compression.passes.configs import PruneMagnitudeConfig


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the `count` smallest values: exact count, whatever the ties."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(magnitudes, count - 1)[:count]


def _zero_smallest(flat: list[np.ndarray], config: PruneMagnitudeConfig) -> None:
    """Zero the smallest values in place: per tensor, or under one global threshold."""
    if config.scope == "per_layer":
        for values in flat:
            values[_smallest(np.abs(values), int(config.sparsity * values.size))] = 0.0
        return
    joined = np.concatenate([np.abs(v) for v in flat])
    cut = np.zeros(joined.size, dtype=bool)
    cut[_smallest(joined, int(config.sparsity * joined.size))] = True
    offsets = np.cumsum([0, *(v.size for v in flat)])
    for values, start, stop in zip(flat, offsets[:-1], offsets[1:], strict=True):
        values[cut[start:stop]] = 0.0


@register_pass
class PruneMagnitudePass(WeightPass[PruneMagnitudeConfig]):
    """Zeroes the smallest-magnitude weights; the file keeps its size but compresses well."""

    def transform(
        self, model: ModelProto, config: PruneMagnitudeConfig, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
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
        _zero_smallest(flat, config)

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
        return model, PassOutcome(
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
                "(zstd) or clustered; speedups need a sparse runtime",
            ],
        )
