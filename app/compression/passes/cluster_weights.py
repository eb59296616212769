"""Weight sharing: k-means each weight into a small codebook, stored as uint8 indices + Gather."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import GraphProto, ModelProto, TensorProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import model_size_bytes, weight_bytes
from app.compression.passes.base import PassOutcome, PassWork, WeightPass, register_pass
from app.compression.passes.channel_graph import find_weights
from app.compression.passes.configs import ClusterWeightsConfig

LLOYD_ITERATIONS = 25
# A tensor this sparse (e.g. after prune_magnitude) keeps exact zeros in a cluster of their own.
ZERO_CLUSTER_SHARE = 0.01


def kmeans_1d(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted codebook, index per value): Lloyd's k-means from centroids spread min..max."""
    distinct = np.unique(values)
    if len(distinct) <= k:  # already shared: keep the values exactly
        return distinct, np.searchsorted(distinct, values)
    values = values.astype(np.float64)
    centroids = np.linspace(values.min(), values.max(), k)
    for _ in range(LLOYD_ITERATIONS):
        # In 1-D the nearest centroid is found by bisecting the midpoints between centroids.
        index = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)
        counts = np.bincount(index, minlength=k)
        sums = np.bincount(index, weights=values, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = updated
    return centroids, np.searchsorted((centroids[1:] + centroids[:-1]) / 2, values)


def _cluster(array: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(float32 codebook, uint8 indices shaped like array), exact zeros kept exact."""
    flat = array.ravel()
    zero = flat == 0
    if zero.mean() >= ZERO_CLUSTER_SHARE and not zero.all():
        codebook, index = kmeans_1d(flat[~zero], k - 1)
        indices = np.zeros(flat.size, dtype=np.int64)
        indices[~zero] = index + 1
        codebook = np.concatenate([[0.0], codebook])
    else:
        codebook, indices = kmeans_1d(flat, k)
    return codebook.astype(np.float32), indices.astype(np.uint8).reshape(array.shape)


def _replace(
    graph: GraphProto, tensor: TensorProto, codebook: np.ndarray, indices: np.ndarray
) -> None:
    """Swap the initializer for codebook + indices and nodes computing it under its old name."""
    name = tensor.name
    graph.initializer.remove(tensor)
    graph.initializer.extend(
        [
            numpy_helper.from_array(codebook, f"{name}_codebook"),
            numpy_helper.from_array(indices, f"{name}_indices"),
        ]
    )
    # Old exporters list initializers as graph inputs too; a computed value must not be one.
    for value in [v for v in graph.input if v.name == name]:
        graph.input.remove(value)
    # Gather takes only int32/int64 indices; onnxruntime folds Cast+Gather to a constant at load.
    nodes = [
        helper.make_node(
            "Cast",
            [f"{name}_indices"],
            [f"{name}_idx"],
            f"{name}/cluster_cast",
            to=TensorProto.INT32,
        ),
        helper.make_node(
            "Gather", [f"{name}_codebook", f"{name}_idx"], [name], f"{name}/cluster_gather", axis=0
        ),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)


@register_pass
class ClusterWeightsPass(WeightPass[ClusterWeightsConfig]):
    """At most `clusters` distinct values per weight, stored as 1-byte indices: ~4x smaller."""

    def transform(
        self, model: ModelProto, config: ClusterWeightsConfig, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        weights_before = weight_bytes(model)
        refs, skipped = find_weights(model, list(config.op_types))
        rows: list[dict[str, Any]] = []
        done: set[int] = set()
        for ref in refs:
            tensor = ref.tensor
            if id(tensor) in done:
                continue  # shared by several nodes: cluster it once
            done.add(id(tensor))
            size = int(np.prod(tensor.dims))
            if size < config.min_params:
                skipped.append(f"{ref.label}: {size} params < min_params")
                continue
            array = numpy_helper.to_array(tensor)
            codebook, indices = _cluster(array, config.clusters)
            shared = codebook[indices]
            error = float(np.linalg.norm(shared - array) / (np.linalg.norm(array) or 1.0))
            rows.append(
                {
                    "tensor": tensor.name,
                    "shape": list(array.shape),
                    "unique_before": len(np.unique(array)),
                    "unique_after": len(np.unique(shared)),
                    "bytes_before": int(array.nbytes),
                    "bytes_after": int(indices.nbytes + codebook.nbytes),
                    "relative_error": round(error, 6),
                }
            )
            _replace(ref.graph, tensor, codebook, indices)
        if not rows:
            raise PassError(
                "nothing_to_cluster",
                f"no float32 {'/'.join(config.op_types)} weight of at least {config.min_params} "
                f"elements to cluster ({'; '.join(skipped[:6]) or 'no such weights'}).",
            )
        return model, PassOutcome(
            # finish() adds the file sizes, known once the model is written.
            summary=f"Clustered {len(rows)} tensor(s) to at most {config.clusters} values",
            details={
                "clusters": config.clusters,
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weight_bytes(model),
                "tensors": rows,
                "skipped": skipped,
            },
            warnings=[
                "clustered weights are computed by Cast+Gather at load time, so later passes "
                "that need weight initializers (quantization) no longer see them",
            ],
        )

    def finish(self, work: PassWork, outcome: PassOutcome) -> PassOutcome:
        before = model_size_bytes(work.input_path)
        after = model_size_bytes(work.output_path)
        outcome.summary += f"; file {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB."
        outcome.details.update(size_bytes_before=before, size_bytes_after=after)
        return outcome
