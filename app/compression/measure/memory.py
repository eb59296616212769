"""Peak resident memory of loading and running one model, measured in a child process.

A fresh interpreter per model keeps one model's allocations (and the ORT arena they leave
behind) out of another's number. It runs as `python -m app.compression.measure.memory SPEC_JSON`:
a subprocess rather than multiprocessing, because a Celery prefork worker is daemonic and
may not start multiprocessing children.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, Field

from app.compression.measure.latency import session_options

_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `app` package
_MIB = 1024.0 * 1024.0


class MemoryMeasurementError(RuntimeError):
    """The child process failed or timed out; the message carries its last error line."""


class MemoryProbe(BaseModel):
    """What the child loads and runs (its command-line argument, as JSON)."""

    model: Path = Field(description="The model file.")
    feed: Path = Field(description="An .npz with one array per model input.")
    threads: int = Field(description="Intra-op threads.")
    providers: list[str] = Field(description="Execution providers, in order of preference.")
    graph_optimization_level: str = Field(description="A key of latency.OPT_LEVELS.")
    runs: int = Field(ge=1, description="Runs after the load.")


class PeakMemory(BaseModel):
    """What the child measured (its last line of output, as JSON). MB here are MiB."""

    peak_rss_mb: float = Field(description="Peak resident memory of loading and running.")
    rss_before_load_mb: float | None = Field(
        default=None, description="Resident memory before the load; None without procfs."
    )
    method: str = Field(description="How the peak was read: VmHWM or ru_maxrss.")


def measure_peak_rss(
    model_path: Path,
    feed: dict[str, np.ndarray],
    *,
    threads: int,
    providers: list[str],
    graph_optimization_level: str,
    runs: int = 3,
    timeout_s: float = 600.0,
) -> PeakMemory:
    """Peak memory of a child that loads the model and runs it `runs` times on `feed`."""
    with tempfile.TemporaryDirectory(prefix="mp-rss-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        np.savez(feed_path, **feed)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds
        probe = MemoryProbe(
            model=Path(model_path).resolve(),
            feed=feed_path,
            threads=threads,
            providers=providers,
            graph_optimization_level=graph_optimization_level,
            runs=max(1, runs),
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "app.compression.measure.memory", probe.model_dump_json()],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MemoryMeasurementError(f"timed out after {timeout_s:.0f} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        errors = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise MemoryMeasurementError(errors[-1])
    return PeakMemory.model_validate_json(lines[-1])


def _status_mib(key: str) -> float | None:
    """A Vm* line of /proc/self/status (kB) in MiB; None where there is no procfs."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    # Linux >= 4.0: writing 5 resets VmHWM to the current RSS, dropping the start-up peak.
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _child(probe: MemoryProbe) -> PeakMemory:
    with np.load(probe.feed, allow_pickle=False) as npz:
        feed = {name: npz[name] for name in npz.files}
    before = _status_mib("VmRSS")
    reset = _reset_peak()
    options = session_options(probe.threads, probe.graph_optimization_level)
    session = ort.InferenceSession(str(probe.model), options, providers=probe.providers)
    for _ in range(probe.runs):
        session.run(None, feed)
    peak = _status_mib("VmHWM")
    if peak is not None:
        method = "VmHWM" + (" (reset)" if reset else "")
    else:  # no procfs (macOS): ru_maxrss is in bytes there, kB on other Unixes
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak, method = raw / (_MIB if sys.platform == "darwin" else 1024.0), "ru_maxrss"
    return PeakMemory(peak_rss_mb=peak, rss_before_load_mb=before, method=method)


if __name__ == "__main__":
    print(_child(MemoryProbe.model_validate_json(sys.argv[1])).model_dump_json())
