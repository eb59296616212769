"""The host fingerprint carries the CPU features that decide int8 and fp16 speed."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from app.compression.measure.latency import cpu_features, host_info
from app.compression.measure.metrics import Host

KNOWN = {
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "amx_fp16", "f16c", "avx512_fp16", "avx512_bf16", "asimddp", "asimdhp",
}  # fmt: skip


def test_features_are_the_speed_relevant_flags_of_this_cpu() -> None:
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    features = cpu_features()

    assert set(features) <= KNOWN and list(features) == sorted(features)
    if " avx2" in flags:
        assert "avx2" in features
    if " avx512_vnni" in flags or " avx512vnni" in flags:
        assert "avx512_vnni" in features


def test_host_info_records_them(mlp_path: Path) -> None:
    session = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])

    host = host_info([session], threads=1)

    assert host.features == list(cpu_features())
    # Fingerprints stored before features existed still read.
    old = Host.model_validate({k: v for k, v in host.model_dump().items() if k != "features"})
    assert old.features is None
