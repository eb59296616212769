"""How repeatable is `speedup_ratio`? Benchmark the same pair twice and print the spread.

Builds the test MLP (256-1024-1024-256, ~6 MB), quantizes it with the int8-dynamic pass, then
runs the benchmark engine REPEATS times on the same pair. Usage:

    .venv/bin/python bench/speedup_spread.py [--runs 200] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.compression.measure.benchmark import MeasureOptions, benchmark_pair
from app.compression.passes.quantize_dynamic import QuantizeDynamicConfig, QuantizeDynamicPass
from tests.builders import build_mlp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        original = build_mlp(Path(tmp) / "mlp.onnx")
        compressed = Path(tmp) / "mlp-int8.onnx"
        QuantizeDynamicPass().run(original, QuantizeDynamicConfig(), compressed)
        options = MeasureOptions(
            input_shapes={"input": [args.batch, 256]},
            runs=args.runs, warmup=args.warmup, threads=args.threads, time_budget_s=120,
        )  # fmt: skip
        ratios = []
        for i in range(args.repeats):
            metrics = benchmark_pair(original, compressed, options).metrics
            ratios.append(metrics.speedup_ratio)
            a, b = metrics.original.latency_ms, metrics.compressed.latency_ms
            print(
                f"run {i + 1}: original p50 {a.p50:.4f} ms (cv {a.cv:.3f}), "
                f"int8 p50 {b.p50:.4f} ms (cv {b.cv:.3f}), speedup {ratios[-1]:.3f}x, "
                f"compression {metrics.compression_ratio:.2f}x"
            )
    spread = (max(ratios) - min(ratios)) / min(ratios)
    print(f"speedup ratios: {', '.join(f'{r:.3f}' for r in ratios)}; spread {spread:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
