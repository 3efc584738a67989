"""`lookupvit doctor`: what is installed and usable on this machine (docs/architecture.md, The backend axis).

Versions come from package metadata where that is enough; torch and ONNX Runtime are imported to
ask about CUDA and execution providers; TensorRT / TensorRT-RTX and the GPU are detected the way a
build detects them (:mod:`exporter.backends.tensorrt.env`), so the report and the build never disagree.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Any

from .backends.tensorrt import env
from .versions import package_version


@dataclass(frozen=True)
class Finding:
    component: str
    version: str | None  # None: not installed / not present
    detail: str = ""
    absent: str = "not installed"  # what the report shows when version is None

    @property
    def shown(self) -> str:
        return self.version if self.version is not None else self.absent

    @property
    def status(self) -> str:
        return "ok" if self.version is not None else "missing"


def _torch() -> Finding:
    try:
        import torch
    except Exception as e:
        return Finding("torch", None, f"not importable: {e}")
    if torch.cuda.is_available():
        detail = f"CUDA available (CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s))"
    elif torch.version.cuda is None:
        detail = "CUDA not available (CPU-only build)"
    else:
        detail = f"CUDA not available (built for CUDA {torch.version.cuda}; no usable GPU or driver)"
    return Finding("torch", str(torch.__version__), detail)


def _onnxruntime() -> Finding:
    try:
        import onnxruntime as ort
    except Exception as e:
        return Finding("onnxruntime", None, f"not importable: {e}")
    return Finding("onnxruntime", ort.__version__, "providers: " + ", ".join(ort.get_available_providers()))


def _tensorrt(backend: str, label: str) -> Finding:
    st = env.module_status(env.TENSORRT_MODULES[backend])
    if st.installed:
        detail = f"module {st.name}"
        if backend == "tensorrt-rtx":
            detail += f"; selected through Polygraphy with {env.RTX_SWITCH}=1"
        return Finding(label, st.version, detail)
    extra = "tensorrt-rtx" if backend == "tensorrt-rtx" else "tensorrt"
    return Finding(label, None, f"{st.note}; pip install -e '.[{extra}]'")


def _gpu() -> Finding:
    gpu = env.detect_gpu()
    if gpu is None:
        return Finding("GPU", None, "torch.cuda sees none; nvidia-smi absent or lists none", absent="none visible")
    parts = [f"{gpu.sm}"]
    if gpu.memory_mib:
        parts.append(f"{gpu.memory_mib / 1024:.0f} GiB")
    if gpu.driver:
        parts.append(f"driver {gpu.driver}")
    parts.append(f"via {gpu.source}")
    return Finding("GPU", gpu.name, ", ".join(parts))


def diagnose() -> list[Finding]:
    """One finding per component, in the order the report shows them."""
    findings = [
        Finding("Python", platform.python_version(), f"{sys.executable} ({platform.platform()})"),
        _torch(),
        _onnxruntime(),
    ]
    for dist in ("onnx", "onnxscript", "onnx-graphsurgeon", "polygraphy"):
        v = package_version(dist)
        findings.append(Finding(dist, v, "" if v else f"not installed; pip install {dist}"))
    findings += [_tensorrt("tensorrt", "TensorRT"), _tensorrt("tensorrt-rtx", "TensorRT-RTX"), _gpu()]
    return [*findings, *_engines()]


def _engines() -> list[Finding]:
    """What this machine builds and runs, per the shipped TensorRT profiles: each profile's engines are
    built here or not (and why: :func:`exporter.backends.tensorrt.env.build_target`, the function a build uses),
    and engines run here only with a GPU."""
    from .errors import CannotRunHere
    from .profiles import list_profiles

    builds: dict[str, list[str]] = {}
    refused: dict[str, list[str]] = {}
    for row in list_profiles():
        prof = row.profile
        if prof is None or not prof.is_tensorrt:
            continue
        try:
            t = env.build_target(prof)
        except CannotRunHere as e:
            why = e.message.split(": ", 1)[-1].rstrip(".")
            refused.setdefault(why, []).append(f"{prof.name} ({prof.sm})")
            continue
        how = "ahead of time, no GPU here" if t.ahead_of_time else f"on {t.gpu.name if t.gpu else 'this GPU'}"
        builds.setdefault(f"{t.choice.label} for {t.label} ({how})", []).append(prof.name)
    rtx = env.rtx_compute_capabilities()
    out = []
    if builds:
        detail = "; ".join(f"{', '.join(names)}: {how}" for how, names in builds.items())
        if rtx:
            detail += f". TensorRT-RTX compiles for {', '.join(env.sm(c) for c in rtx)}"
        out.append(Finding("engine builds", "yes", detail))
    else:
        out.append(Finding("engine builds", None, "no shipped TensorRT profile builds here; the cpu profile (ONNX "
                           "Runtime) works. pip install -e '.[tensorrt-rtx]' builds sm_75..sm_121 engines without a GPU",
                           absent="no"))
    out.append(Finding("not built here", None, " | ".join(f"{', '.join(names)}: {why}" for why, names in refused.items())
                       or "every shipped TensorRT profile builds here", absent="-" if refused else "none"))
    gpu = env.detect_gpu()
    out.append(Finding("engine runs", "yes" if gpu else None,
                       f"on {gpu.name}" if gpu else "validating or timing an engine needs a CUDA GPU; none is visible, "
                       "so `run` reports those stages as not run here", absent="no"))
    return out


def to_dict(findings: list[Finding]) -> dict[str, Any]:
    return {f.component: {"version": f.version, "status": f.status, "detail": f.detail} for f in findings}
