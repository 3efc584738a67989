"""What this machine offers for engine builds: TensorRT / TensorRT-RTX, and the GPU.

Two ways to build (:func:`build_target`): full TensorRT tunes an engine on the GPU it runs on, so it
needs that GPU here; TensorRT-RTX compiles for the compute capabilities it is given, and does so
ahead of time on a machine without any GPU (TensorRT-RTX documentation, "CPU-only AOT": the default
when compute capabilities are set), for the targets in its ``ComputeCapability`` enum (1.7: SM75,
SM80, SM86, SM89, SM120, SM121; no Hopper SM90, no Orin SM87). Deserializing or running an engine
always needs a GPU.

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
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import CannotRunHere

if TYPE_CHECKING:
    from ...profiles import Profile

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


def rtx_compute_capabilities(module: str = TENSORRT_MODULES["tensorrt-rtx"]) -> tuple[tuple[int, int], ...]:
    """The compute capabilities the installed TensorRT-RTX compiles for (its ``ComputeCapability``
    members ``SM<major><minor>``); () when it is not installed or does not import."""
    if not module_status(module).installed:
        return ()
    enum = getattr(importlib.import_module(module), "ComputeCapability", None)
    names = [n for n in dir(enum) if re.fullmatch(r"SM\d{2,3}", n)] if enum is not None else []
    return tuple(sorted((int(n[2:-1]), int(n[-1])) for n in names))


def sm(cc: tuple[int, int] | None) -> str:
    return f"sm_{cc[0]}{cc[1]}" if cc else "sm_?"


@dataclass(frozen=True)
class BuildTarget:
    """Where and for what an engine is built: the TensorRT flavour, the GPU here (None: built ahead of
    time on a machine without one) and the compute capability the engine is for."""

    choice: TensorRTChoice
    gpu: GpuInfo | None
    compute_capability: tuple[int, int] | None

    @property
    def ahead_of_time(self) -> bool:
        return self.gpu is None

    @property
    def label(self) -> str:
        """What the engine is specific to, for its cache key: the compute capability it was compiled for
        (TensorRT-RTX), or the GPU it was tuned on (full TensorRT)."""
        if self.choice.backend == "tensorrt-rtx" or self.gpu is None:
            return sm(self.compute_capability)
        return self.gpu.name

    def to_dict(self) -> dict[str, object]:
        cc = self.compute_capability
        return {"tensorrt": self.choice.label, "target": self.label, "ahead_of_time": self.ahead_of_time,
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                "gpu": self.gpu.to_dict() if self.gpu else None}


def build_target(profile: Profile, action: str = "build a TensorRT engine") -> BuildTarget:
    """How this machine builds ``profile``'s engines (see the module docstring), or
    :class:`CannotRunHere` naming every reason and what to install or where to build.

    Order: a ``tensorrt-rtx`` profile takes TensorRT-RTX only; a ``tensorrt`` profile takes full
    TensorRT where it and a GPU of the profile's compute capability (or hardware compatibility) are
    here, else TensorRT-RTX where it compiles for that compute capability (ahead of time without a
    GPU); ``POLYGRAPHY_USE_TENSORRT_RTX=1`` puts TensorRT-RTX first."""
    cc = profile.compute_capability
    gpu = detect_gpu()
    order = ["tensorrt-rtx"] if profile.backend == "tensorrt-rtx" else (
        ["tensorrt-rtx", "tensorrt"] if rtx_requested() else ["tensorrt", "tensorrt-rtx"])
    reasons: list[str] = []
    hints: list[str] = []
    for flavour in order:
        st = module_status(TENSORRT_MODULES[flavour])
        name = "TensorRT-RTX" if flavour == "tensorrt-rtx" else "full TensorRT"
        if not st.installed:
            needs_gpu = flavour == "tensorrt" and gpu is None
            reasons.append(f"{name} is not installed ({st.note})"
                           + ("; it builds on the GPU it tunes for, and no CUDA GPU is visible" if needs_gpu else ""))
            if needs_gpu:
                hints.append(INSTALL_GPU)
            continue
        choice = TensorRTChoice(flavour, st.name, st.version or "unknown")
        if flavour == "tensorrt":
            if gpu is None:
                reasons.append(f"{name} {st.version} builds on the GPU it tunes for, and no CUDA GPU is visible")
                hints.append(INSTALL_GPU)
                continue
            try:
                check_gpu_matches(profile, gpu, choice)
            except CannotRunHere as e:
                reasons.append(e.message.rstrip("."))
                continue
            return BuildTarget(choice, gpu, cc or gpu.compute_capability)
        targets = rtx_compute_capabilities(st.name)
        want = cc or (gpu.compute_capability if gpu else None)
        if want is None:
            reasons.append(f"{name} needs a compute capability to compile for, and profile {profile.name} names none")
            hints.append(f"Set compute_capability in {profile.path}.")
            continue
        if want not in targets:
            reasons.append(f"{name} {st.version} compiles for {', '.join(sm(t) for t in targets)} only, not "
                           f"{sm(want)}{_ARCHITECTURE.get(want, '')}")
            where = ("JetPack's TensorRT on the Jetson" if want == (8, 7) else "pip install tensorrt-cu13 there")
            hints.append(f"Engines for {sm(want)} need full TensorRT on a machine with that GPU "
                         f"({profile.gpu or 'the profile GPU'}): {where}. Here, "
                         f"`lookupvit run --profile {profile.name} --prepare-only -o DIR` makes and checks the graphs "
                         "to build there.")
            continue
        return BuildTarget(choice, gpu, want)
    if not any(module_status(m).installed for m in TENSORRT_MODULES.values()):
        hints.insert(0, INSTALL_TENSORRT + " TensorRT-RTX builds ahead of time without a GPU, for "
                     "sm_75, sm_80, sm_86, sm_89, sm_120 and sm_121.")
    raise CannotRunHere(
        f"Cannot {action} here: " + "; ".join(reasons) + ".",
        " ".join(dict.fromkeys(hints)) + " `lookupvit doctor` shows what this machine has.",
    )


def check_gpu_matches(profile: Profile, gpu: GpuInfo, choice: TensorRTChoice) -> None:
    """Full TensorRT tunes an engine for the GPU it builds on: building an sm_90 profile on an sm_89
    GPU would give an L4 engine labelled H100. Allowed when the profile asks for hardware
    compatibility; TensorRT-RTX compiles for the profile's compute capability instead."""
    from ...profiles import list_profiles

    want, have = profile.compute_capability, gpu.compute_capability
    if choice.backend == "tensorrt-rtx" or want is None or have is None or want == have:
        return
    if profile.compatibility.hardware != "none":
        return
    matching = [
        r.name for r in list_profiles() if r.profile is not None and r.profile.compute_capability == have
    ]
    use = f"use --profile {' or --profile '.join(matching)}, " if matching else ""
    raise CannotRunHere(
        f"Profile {profile.name} targets {profile.sm} ({profile.gpu or 'its GPU'}), but this GPU is "
        f"{gpu.name} ({gpu.sm}): TensorRT would tune the engine for the GPU it builds on.",
        f"Build on a {profile.sm} GPU, {use}or set compatibility.hardware = \"ampere_plus\" in {profile.path}.",
    )


_ARCHITECTURE = {(9, 0): " (Hopper)", (8, 7): " (Jetson Orin)", (10, 0): " (Blackwell data centre)"}


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
