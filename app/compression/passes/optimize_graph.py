"""Offline graph optimization (constant folding, fusions) with onnxruntime's CPU optimizer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
from onnx import ModelProto, TensorProto

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import (
    count_ops,
    iter_graphs,
    iter_weight_tensors,
    load_proto,
    weight_bytes,
)
from app.compression.graph.prepare import prepare_model
from app.compression.passes.base import CompressionPass, PassOutcome, PassWork, register_pass
from app.compression.passes.configs import OptimizeGraphConfig

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _domain_ops(model: ModelProto) -> dict[str, int]:
    """Nodes per `domain::op_type` outside the default ONNX domain."""
    counts = Counter(
        f"{n.domain}::{n.op_type}"
        for g in iter_graphs(model.graph)
        for n in g.node
        if n.domain not in _DEFAULT_DOMAINS
    )
    return dict(sorted(counts.items()))


def _uses_float16(model: ModelProto) -> bool:
    return any(t.data_type == TensorProto.FLOAT16 for t in iter_weight_tensors(model))


def _drop_unused_domains(path: Path) -> list[str]:
    """Remove opset imports no node uses; returns the dropped domains."""
    # ORT's writer imports every domain it knows (nchwc, aten, ...), used or not; strict
    # consumers of the file should not have to know them.
    model = load_proto(path)
    used = {n.domain for g in iter_graphs(model.graph) for n in g.node} | set(_DEFAULT_DOMAINS)
    used |= {f.domain for f in model.functions}
    kept = [o for o in model.opset_import if o.domain in used]
    dropped = sorted(o.domain for o in model.opset_import if o.domain not in used)
    if dropped:
        model.ClearField("opset_import")
        model.opset_import.extend(kept)
        # Only the protobuf is rewritten: external data, if any, is referenced as it was.
        onnx.save_model(model, str(path))
    return dropped


def _optimize(source: Path, output_path: Path, level: str, big: bool) -> None:
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if level == "basic"
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    )
    options.optimized_model_filepath = str(output_path)
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # "removing unused initializer" chatter is not news
    if big:
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", f"{output_path.name}.data"
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    try:
        # CPU only: the fused ops it writes are the ones every CPU build of onnxruntime has.
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's Fail/InvalidGraph/NotImplemented all mean "cannot load"
        raise PassError(
            "invalid_model", f"onnxruntime cannot load the model to optimize it: {exc}"
        ) from exc


@register_pass
class OptimizeGraphPass(CompressionPass[OptimizeGraphConfig]):
    """Fold constants and fuse ops ahead of time, so every later load starts optimized."""

    loads_as = "optimized"
    keeps_external_data = False

    def transform_files(self, work: PassWork, config: OptimizeGraphConfig) -> PassOutcome:
        warnings: list[str] = []
        before_proto = load_proto(work.input_path)
        before = count_ops(before_proto)
        weights_before = weight_bytes(before_proto)
        big = model_io.writes_external_data(work.input_path, before_proto, keep_external=False)
        float16 = _uses_float16(before_proto)
        del before_proto

        with work.scratch_dir(".opt-") as tmp:
            # Weights listed as graph inputs are overridable, so ORT would neither fold nor
            # fuse them: normalize first, and only then pay for a staged copy.
            model, prep = prepare_model(onnx.load(str(work.input_path)))
            source = work.input_path
            if prep.notes:
                source = Path(tmp) / "model.onnx"
                onnx.save_model(
                    model, str(source), save_as_external_data=big, location="model.data"
                )
            del model
            _optimize(source, work.output_path, config.level, big)
        _drop_unused_domains(work.output_path)

        after_proto = load_proto(work.output_path)
        after = count_ops(after_proto)
        contrib = _domain_ops(after_proto)
        nodes_before, nodes_after = sum(before.values()), sum(after.values())
        if contrib:
            warnings.append(
                f"the output uses onnxruntime contrib ops ({', '.join(contrib)}): it runs in "
                "onnxruntime (any provider with those kernels), not in other ONNX runtimes"
            )
        if float16 and after.get("Cast", 0) > before.get("Cast", 0):
            warnings.append(
                f"{after['Cast'] - before.get('Cast', 0)} Cast node(s) were added to run float16 "
                "ops in float32 on CPU: optimize before convert_fp16 when targeting GPUs"
            )
        changed = before != after or bool(contrib)
        if changed:
            summary = f"Optimized at level {config.level}: {nodes_before} -> {nodes_after} node(s)."
        else:
            summary = f"No change at level {config.level}: the graph was already optimized."
            warnings.append("no node was folded, removed or fused")
        return PassOutcome(
            summary=summary,
            details={
                "level": config.level,
                "nodes_before": nodes_before,
                "nodes_after": nodes_after,
                "op_counts_before": before,
                "op_counts_after": after,
                "contrib_ops": contrib,
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weight_bytes(after_proto),
                "prepared": prep.notes,
            },
            warnings=warnings,
        )

    def load_hint(self, work: PassWork) -> str:
        # Seen with float16 If/Loop models: the Casts ORT adds for CPU clash across branches.
        if _uses_float16(load_proto(work.input_path)):
            return "; run optimize_graph before convert_fp16"
        return ""
