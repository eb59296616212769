"""Every preset on the test models: size, speed and fidelity, measured as a job measures them.

    .venv/bin/python bench/presets.py [--runs 100] [--threads 1] [--models mlp,cnn,...]

Runs each preset's passes in-process on models built in code (the MLP, the residual CNN, the
transformer block, and export-shaped ones: a CRNN with a bidirectional LSTM, a text encoder
with an embedding table), then the benchmark engine (interleaved timing, synthetic inputs).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.compression.errors import PassError
from app.compression.measure.benchmark import MeasureOptions, benchmark_pair
from app.compression.passes.base import PASS_REGISTRY, PassContext
from app.compression.passes.recipes import PRESETS, expand_preset
from tests.builders import build_cnn_residual, build_mlp, build_transformer_block
from tests.builders_exports import build_crnn_lstm, build_embedding_encoder

MODELS = {
    "mlp": build_mlp,
    "cnn": build_cnn_residual,
    "transformer": build_transformer_block,
    "crnn": build_crnn_lstm,
    "encoder": build_embedding_encoder,
}
# Open dims synthetic data should not leave at 1: a 32x128 text line, 64 tokens.
INPUT_SHAPES: dict[str, dict[str, list[int]]] = {
    "crnn": {"image": [1, 1, 32, 128]},
    "encoder": {"input_ids": [1, 64]},
}


def run_preset(preset: str, source: Path, workdir: Path, context: PassContext) -> Path:
    current = source
    for index, config in enumerate(expand_preset(preset).configs()):
        output = workdir / f"{source.stem}-{preset}-{index}.onnx"
        PASS_REGISTRY[config.type]().run(current, config, output, context)
        current = output
    return current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}"
    )
    args = parser.parse_args()
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}")
    logging.disable(logging.WARNING)  # onnxruntime's quantizers are chatty
    print("| preset | model | compression | speedup (p50) | cosine | p50 original -> compressed |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sources = {name: MODELS[name](workdir / f"{name}.onnx") for name in chosen}
        for preset in PRESETS:
            for name, source in sources.items():
                shapes = INPUT_SHAPES.get(name)
                options = MeasureOptions(
                    runs=args.runs,
                    warmup=10,
                    threads=args.threads,
                    time_budget_s=60,
                    measure_memory=False,
                    input_shapes=shapes,
                )
                try:
                    output = run_preset(preset, source, workdir, PassContext(input_shapes=shapes))
                except PassError as exc:
                    print(f"| {preset} | {name} | not applicable: {exc.code} | | | |")
                    continue
                m = benchmark_pair(source, output, options).metrics
                a, b = m.original.latency_ms.p50, m.compressed.latency_ms.p50
                cosine = f"{m.fidelity.cosine_similarity:.4f}" if m.fidelity else "n/a"
                print(
                    f"| {preset} | {name} | {m.compression_ratio:.2f}x | "
                    f"{m.speedup_ratio:.2f}x | {cosine} | {a:.3f} -> {b:.3f} ms |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
