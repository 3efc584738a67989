"""What this machine offers for engine builds: TensorRT / TensorRT-RTX, and the GPU.

docs/architecture.md, The backend axis. Detection never imports TensorRT's libraries just to see whether they
exist: a package is "installed" when its module is a real package (a type-stub folder such as the
one ``tensorrt-stubs`` leaves behind is not). TensorRT-RTX is selected through Polygraphy's
``POLYGRAPHY_USE_TENSORRT_RTX=1`` switch (read once, when ``polygraphy.config`` is imported), so the
choice is made here, before any Polygraphy TensorRT module loads.

The GPU comes from torch (when it was built with CUDA) or else from ``nvidia-smi``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import CannotRunHere

TENSORRT_MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
RTX_SWITCH = "POLYGRAPHY_USE_TENSORRT_RTX"

INSTALL_TENSORRT = (
    "Install TensorRT with the package's extra: pip install 'lookupvit-deploy[tensorrt]' "
    "(from a source checkout: pip install -e '.[tensorrt]', which installs tensorrt-cu13), "
    "or TensorRT-RTX with pip install -e '.[tensorrt-rtx]'."
)
INSTALL_GPU = (
    "Run on a machine with an NVIDIA GPU and its driver (nvidia-smi should list it); in a "
    "container, start it with the GPU passed through (docker run --gpus all ...), and check that "
    "CUDA_VISIBLE_DEVICES does not hide it."
)


@dataclass(frozen=True)
class ModuleStatus:
    """An optional package: its version, or why it is not usable."""

    name: str
    version: str | None
    note: str = ""

    @property
    def installed(self) -> bool:
        return self.version is not None


def module_status(module: str) -> ModuleStatus:
    """Find ``module`` and read its ``__version__``; a namespace folder (type stubs only) or a
    module that fails to import counts as not installed, with the reason in ``note``."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return ModuleStatus(module, None, "not installed")
    if spec.origin is None:  # a namespace folder: e.g. tensorrt-stubs' .pyi files, no library
        return ModuleStatus(module, None, "not installed (only type stubs found)")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # a broken install: missing shared libraries, wrong CUDA
        return ModuleStatus(module, None, f"installed but fails to import: {type(e).__name__}: {e}")
    return ModuleStatus(module, str(getattr(mod, "__version__", "unknown")))


@dataclass(frozen=True)
class TensorRTChoice:
    """The TensorRT flavour a build or runner uses."""

    backend: str  # "tensorrt" or "tensorrt-rtx"
    module: str
    version: str

    @property
    def label(self) -> str:
        return f"{'TensorRT-RTX' if self.backend == 'tensorrt-rtx' else 'TensorRT'} {self.version}"


def rtx_requested() -> bool:
    """Whether the user set Polygraphy's TensorRT-RTX switch themselves."""
    return os.environ.get(RTX_SWITCH, "0") not in ("", "0")


def choose_tensorrt(backend: str = "tensorrt", exact: bool = False) -> tuple[TensorRTChoice | None, str]:
    """Pick full TensorRT or TensorRT-RTX for a profile's backend.

    ``tensorrt``: full TensorRT when it imports, otherwise TensorRT-RTX (or TensorRT-RTX first if
    ``POLYGRAPHY_USE_TENSORRT_RTX=1`` is set); ``tensorrt-rtx``, or ``exact`` (an engine built by one
    of them runs only on that one): that flavour only. Returns the choice, or ``None`` and the reason.
    """
    order = ["tensorrt", "tensorrt-rtx"]
    if backend == "tensorrt-rtx" or exact:
        order = [backend]
    elif rtx_requested():
        order = ["tensorrt-rtx", "tensorrt"]
    notes = []
    for flavour in order:
        st = module_status(TENSORRT_MODULES[flavour])
        if st.installed:
            return TensorRTChoice(flavour, st.name, st.version or "unknown"), ""
        notes.append(f"{'TensorRT-RTX' if flavour == 'tensorrt-rtx' else 'TensorRT'} ({st.name}): {st.note}")
    return None, "; ".join(notes)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int] | None = None
    memory_mib: int | None = None
    driver: str | None = None
    source: str = ""  # "torch" or "nvidia-smi"

    @property
    def sm(self) -> str:
        cc = self.compute_capability
        return f"sm_{cc[0]}{cc[1]}" if cc else "sm_?"

    def to_dict(self) -> dict[str, object]:
        cc = self.compute_capability
        return {
            "name": self.name,
            "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            "memory_mib": self.memory_mib,
            "driver": self.driver,
            "source": self.source,
        }


def _visible_index() -> int:
    """The physical index of the first GPU CUDA will use (``CUDA_VISIBLE_DEVICES``, numeric form)."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
    return int(first) if first.isdigit() else 0


def _gpu_from_torch() -> GpuInfo | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
    except Exception:  # a broken torch install: nvidia-smi may still answer
        return None
    return GpuInfo(props.name, (props.major, props.minor), props.total_memory >> 20, None, "torch")


def detect_gpu() -> GpuInfo | None:
    """The first visible CUDA GPU, or None."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None
    gpu = _gpu_from_torch()
    if gpu is not None:
        return gpu
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,compute_cap,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    want = _visible_index()
    for r in rows:
        if len(r) >= 5 and r[0] == str(want):
            major, _, minor = r[2].partition(".")
            cc = (int(major), int(minor or 0)) if major.isdigit() else None
            mem = int(float(r[3])) if r[3].replace(".", "", 1).isdigit() else None
            return GpuInfo(r[1], cc, mem, r[4], "nvidia-smi")
    return None


def tensorrt_usable() -> bool:
    """TensorRT (or TensorRT-RTX) installed and a CUDA GPU visible: the question behind every
    'where available' default; :func:`require_build_environment` says what is missing."""
    return choose_tensorrt("tensorrt")[0] is not None and detect_gpu() is not None


def require_build_environment(
    backend: str = "tensorrt", action: str = "build a TensorRT engine", exact: bool = False
) -> tuple[TensorRTChoice, GpuInfo]:
    """TensorRT (or TensorRT-RTX) and a GPU, or a :class:`UserError` naming what is missing and how
    to get it. Nothing has been written when this raises."""
    choice, why = choose_tensorrt(backend, exact)
    gpu = detect_gpu()
    missing = []
    hints = []
    if choice is None:
        if backend == "tensorrt-rtx":
            what = "TensorRT-RTX is not"
        elif exact:
            what = "TensorRT is not"
        else:
            what = "neither TensorRT nor TensorRT-RTX is"
        missing.append(f"{what} installed ({why})")
        hints.append(INSTALL_TENSORRT)
    if gpu is None:
        missing.append("no CUDA GPU is visible (torch.cuda sees none and nvidia-smi is absent or lists none)")
        hints.append(INSTALL_GPU)
    if missing:
        raise CannotRunHere(
            f"Cannot {action} here: " + "; and ".join(missing) + ".",
            " ".join(hints) + " `lookupvit doctor` shows what this machine has.",
        )
    assert choice is not None and gpu is not None
    return choice, gpu
