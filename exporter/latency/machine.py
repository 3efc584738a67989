"""What the measurements ran on: CPU, cores, memory, GPU, runtime providers (recorded with every sweep)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (psutil has none: /proc/cpuinfo on Linux, else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    import psutil

    try:
        return round(psutil.virtual_memory().total / 2**30, 1)
    except (OSError, psutil.Error):
        return None


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): how many processes wanted a core."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, object]:
    """A plain description of this machine for reports and sidecars."""
    from ..backends.tensorrt import env

    info: dict[str, object] = {
        "os": platform.platform(),
        "cpu": cpu_name(),
        "cores": available_cores(),
        "memory_gib": memory_gib(),
    }
    gpu = env.detect_gpu()
    info["gpu"] = gpu.to_dict() if gpu else None
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    choice, why = env.choose_tensorrt()
    info["tensorrt"] = choice.label if choice else f"not available ({why})"
    return info
