"""Benchmarks and flops on exports: a batch dim stored as -1, constant control inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from app.compression.graph.analysis import graph_inputs, load_proto
from app.compression.graph.inputs import constant_inputs
from app.compression.measure.benchmark import MeasureOptions, benchmark_pair, benchmark_single
from app.compression.measure.fidelity import evaluation_samples
from app.compression.measure.flops import count_flops
from app.compression.passes.base import PASS_REGISTRY, PassContext
from app.compression.passes.configs import QuantizeDynamicConfig
from tests.builders_exports import build_minus_one_batch_classifier
from tests.builders_recurrent import (
    SILERO_HIDDEN,
    SILERO_RATE,
    build_silero_like_vad,
    silero_like_feed,
)

FAST = {"runs": 3, "warmup": 1, "threads": 1, "time_budget_s": 2.0, "measure_memory": False}
# conv1 8x16x16 outputs x 27, conv2 (stride 2) 16x8x8 x 72, fc 16 -> 4
CLASSIFIER_MACS = 8 * 16 * 16 * 27 + 16 * 8 * 8 * 72 + 16 * 4


def fast(**overrides: Any) -> MeasureOptions:
    return MeasureOptions(**{**FAST, **overrides})


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The -1 batch classifier and its int8-dynamic output."""
    folder = tmp_path_factory.mktemp("minus-one")
    source = build_minus_one_batch_classifier(folder / "cls.onnx")
    output = folder / "cls-int8.onnx"
    PASS_REGISTRY["quantize_dynamic"]().run(source, QuantizeDynamicConfig(), output, PassContext())
    return source, output


def test_flops_of_a_minus_one_batch_model(classifier: tuple[Path, Path]) -> None:
    source, _ = classifier

    flops = count_flops(source, {"x": [1, 3, 16, 16]})
    batched = count_flops(source, {"x": [4, 3, 16, 16]})

    assert flops["total_macs"] == CLASSIFIER_MACS
    assert batched["total_macs"] == 4 * CLASSIFIER_MACS


def test_benchmark_of_a_minus_one_batch_model_and_its_int8_output(
    classifier: tuple[Path, Path],
) -> None:
    source, output = classifier

    metrics = benchmark_pair(
        source, output, fast(input_shapes={"x": [1, 3, 16, 16]}, batch_sizes=[4])
    ).metrics

    assert metrics.original.flops == CLASSIFIER_MACS
    assert metrics.original.batch_size == 1  # the -1 dim is a batch axis
    assert metrics.compressed.throughput_by_batch is not None
    assert set(metrics.compressed.throughput_by_batch) == {"4"}
    assert metrics.fidelity is not None and metrics.fidelity.cosine_similarity > 0.99


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_silero_like_vad(tmp_path_factory.mktemp("vad") / "vad.onnx")


def test_benchmark_feeds_use_input_values(vad: Path) -> None:
    block = benchmark_single(vad, fast(input_values={"sr": SILERO_RATE}, batch_sizes=[4]))

    assert block.latency_ms.p50 > 0 and block.flops is not None
    assert block.warnings is not None
    assert any("batch_sizes ignored" in w for w in block.warnings)  # no batch axis on sr


def test_evaluation_feeds_take_const_arrays_and_input_values(vad: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feeds = [silero_like_feed(rng) for _ in range(4)]
    rows = np.concatenate([f["input"] for f in feeds])
    state = np.zeros((2, 1, SILERO_HIDDEN), np.float32)
    with_rate, without_rate = tmp_path / "eval.npz", tmp_path / "eval-no-sr.npz"
    np.savez(with_rate, input=rows, **{"const:state": state, "const:sr": np.array(SILERO_RATE)})
    np.savez(without_rate, input=rows, **{"const:state": state})
    specs = graph_inputs(load_proto(vad))

    from_file, _, _ = evaluation_samples(specs, {}, with_rate, synthetic=0, seed=0)
    from_json, _, _ = evaluation_samples(
        specs, {}, without_rate, synthetic=0, seed=0,
        constants=constant_inputs(specs, {"sr": SILERO_RATE}),
    )  # fmt: skip
    block = benchmark_single(
        vad, fast(eval_dataset_path=without_rate, input_values={"sr": SILERO_RATE})
    )

    session = ort.InferenceSession(str(vad))
    for samples in (from_file, from_json):
        assert len(samples) == 4
        assert all(int(s["sr"]) == SILERO_RATE for s in samples)
        # The 16 kHz branch, exactly as a caller feeding the rate by hand gets it.
        np.testing.assert_allclose(
            session.run(["output"], samples[2])[0], session.run(["output"], feeds[2])[0]
        )
    assert block.latency_ms.p50 > 0
