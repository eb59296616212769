"""Low-rank factorization: a 2-D Gemm/MatMul weight W becomes the product of two thinner ones."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import iter_graphs, param_count
from app.compression.passes.base import PassOutcome, PassWork, ReshapingPass, register_pass
from app.compression.passes.channel_graph import find_weights
from app.compression.passes.configs import FactorizeLowRankConfig


def _rank(singular: np.ndarray, config: FactorizeLowRankConfig) -> int:
    if config.rank_ratio is not None:
        return max(1, round(config.rank_ratio * len(singular)))
    energy = np.cumsum(singular.astype(np.float64) ** 2)
    target = (config.energy or 0.9) * energy[-1]
    # The tolerance keeps energy=1.0 from asking for more than the full rank.
    return int(min(np.searchsorted(energy, target * (1 - 1e-9)) + 1, len(singular)))


def _rewrite(
    graph: GraphProto, node: NodeProto, first: np.ndarray, second: np.ndarray, base: str
) -> None:
    """Replace `node` by node(A, first) -> node(., second) with the original's other inputs."""
    graph.initializer.extend(
        [
            numpy_helper.from_array(first, f"{base}.lr_a"),
            numpy_helper.from_array(second, f"{base}.lr_b"),
        ]
    )
    middle = f"{base}.lr_mid"
    if node.op_type == "MatMul":
        head = helper.make_node("MatMul", [node.input[0], f"{base}.lr_a"], [middle], f"{base}/lr_a")
        tail = helper.make_node(
            "MatMul", [middle, f"{base}.lr_b"], list(node.output), f"{base}/lr_b"
        )
    else:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        # alpha is folded into `first`; beta and the bias stay on the second product.
        head = helper.make_node(
            "Gemm",
            [node.input[0], f"{base}.lr_a"],
            [middle],
            f"{base}/lr_a",
            transA=attrs.get("transA", 0),
        )
        tail = helper.make_node(
            "Gemm",
            [middle, f"{base}.lr_b", *node.input[2:]],
            list(node.output),
            f"{base}/lr_b",
            beta=attrs.get("beta", 1.0),
        )
    position = list(graph.node).index(node)
    graph.node.remove(node)
    graph.node.insert(position, tail)
    graph.node.insert(position, head)


@register_pass
class FactorizeLowRankPass(ReshapingPass[FactorizeLowRankConfig]):
    """Truncated SVD of large 2-D weights where the two factors hold fewer parameters."""

    def transform(
        self, model: ModelProto, config: FactorizeLowRankConfig, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        refs, skipped = find_weights(model, ["MatMul", "Gemm"])
        uses: dict[str, int] = {}
        for graph in iter_graphs(model.graph):
            for n in graph.node:
                for name in n.input:
                    uses[name] = uses.get(name, 0) + 1
        layers: list[dict[str, Any]] = []
        params_before = param_count(model)
        for ref in refs:
            node, tensor = ref.node, ref.tensor
            shape = list(tensor.dims)
            if len(shape) != 2:
                skipped.append(f"{ref.label}: weight is {len(shape)}-D, not 2-D")
                continue
            if tensor.name in (i.name for i in ref.graph.input) or uses[tensor.name] > 1:
                skipped.append(f"{ref.label}: weight '{tensor.name}' is shared or a graph input")
                continue
            if shape[0] * shape[1] < config.min_params:
                skipped.append(f"{ref.label}: {shape[0] * shape[1]} params < min_params")
                continue
            weight = numpy_helper.to_array(tensor).astype(np.float64)
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Gemm":
                weight = (weight.T if attrs.get("transB", 0) else weight) * attrs.get("alpha", 1.0)
            u, s, vt = np.linalg.svd(weight, full_matrices=False)
            rank = _rank(s, config)
            k, n = weight.shape
            if rank * (k + n) >= k * n:
                skipped.append(f"{ref.label}: rank {rank} of {k}x{n} would not shrink it")
                continue
            root = np.sqrt(s[:rank])
            first = (u[:, :rank] * root).astype(np.float32)
            second = (root[:, None] * vt[:rank]).astype(np.float32)
            ref.graph.initializer.remove(tensor)
            base = node.name or tensor.name
            _rewrite(ref.owner, node, first, second, base)
            kept = float(np.sum(s[:rank] ** 2) / np.sum(s**2)) if s.any() else 1.0
            layers.append(
                {
                    "node": ref.label,
                    "shape": [k, n],
                    "rank": rank,
                    "full_rank": len(s),
                    "kept_energy": round(kept, 6),
                    "params_before": k * n,
                    "params_after": rank * (k + n),
                    "factors": [f"{base}.lr_a", f"{base}.lr_b"],
                }
            )
        if not layers:
            raise PassError(
                "nothing_to_factorize",
                "no 2-D Gemm/MatMul weight shrinks by factorization ("
                + ("; ".join(skipped[:6]) or "the model has no Gemm/MatMul weights")
                + ").",
            )
        params_after = param_count(model)
        return model, PassOutcome(
            summary=f"Factorized {len(layers)} layer(s); parameters {params_before:,} -> "
            f"{params_after:,}.",
            details={
                "criterion": {"energy": config.energy}
                if config.rank_ratio is None
                else {"rank_ratio": config.rank_ratio},
                "params_before": params_before,
                "params_after": params_after,
                "layers": layers,
                "skipped": skipped,
            },
        )
