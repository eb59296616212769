"""Peak resident memory of loading and running one model, measured in a child process.

A fresh interpreter per model keeps one model's allocations (and the ORT arena they leave
behind) out of another's number. It runs as `python -m app.compression.measure.memory SPEC_JSON`:
a subprocess rather than multiprocessing, because a Celery prefork worker is daemonic and
may not start multiprocessing children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `app` package
_MIB = 1024.0 * 1024.0


class MemoryMeasurementError(RuntimeError):
    """The child process failed or timed out; the message carries its last error line."""


def measure_peak_rss(
    model_path: Path,
    feed: dict[str, np.ndarray],
    *,
    threads: int,
    providers: list[str],
    graph_optimization_level: str = "all",
    runs: int = 3,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """{"peak_rss_mb", "rss_before_load_mb", "method"} of a child that loads the model and runs
    it `runs` times on `feed`. MB here are MiB (2^20 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mp-rss-") as tmp:
        feed_path = Path(tmp) / "feed.npz"
        np.savez(feed_path, **feed)  # type: ignore[arg-type]  # numpy's stub mistypes **kwds
        spec = {
            "model": str(Path(model_path).resolve()),
            "feed": str(feed_path),
            "threads": threads,
            "providers": providers,
            "graph_optimization_level": graph_optimization_level,
            "runs": max(1, runs),
        }
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "app.compression.measure.memory", json.dumps(spec)],
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
    return dict(json.loads(lines[-1]))


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


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    from app.compression.measure.latency import session_options

    with np.load(spec["feed"], allow_pickle=False) as npz:
        feed = {name: npz[name] for name in npz.files}
    before = _status_mib("VmRSS")
    reset = _reset_peak()
    options = session_options(spec["threads"], spec["graph_optimization_level"])
    session = ort.InferenceSession(spec["model"], options, providers=spec["providers"])
    for _ in range(spec["runs"]):
        session.run(None, feed)
    peak = _status_mib("VmHWM")
    if peak is not None:
        result = {"peak_rss_mb": peak, "method": "VmHWM" + (" (reset)" if reset else "")}
    else:  # no procfs (macOS): ru_maxrss is in bytes there, kB on other Unixes
        import resource

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = {"peak_rss_mb": raw / (_MIB if sys.platform == "darwin" else 1024.0)}
        result["method"] = "ru_maxrss"
    if before is not None:
        result["rss_before_load_mb"] = before
    return result


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
