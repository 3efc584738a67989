"""One interface for the frameworks that run a model, and the registry that names them
(docs/architecture.md, The backend axis).

As Polygraphy splits each framework into ``backend/<framework>/{loader,runner}``, every framework here
is one folder whose ``backend.py`` defines a :class:`Backend` and registers it with :func:`register` (a
decorator, as timm's ``register_model``): its names, the artefact of the stage chain it runs, the
precisions it runs, whether it can run here, its preflight, and its runner (``validate``,
``compare``) and timer (``latency``). A verb looks a backend up by any of its names (:func:`backend`)
and calls it; no code outside ``exporter/backends/`` compares backend names (tests/test_docs.py
checks), so adding a framework is one folder and one registration.

The artefact a backend runs decides what the stage chain hands it: ``module`` the PyTorch model,
``graph`` the ONNX graph converted for ONNX Runtime (standard ONNX ops, Q/DQ int8), ``engine`` a
TensorRT engine built from the graph converted for TensorRT.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..errors import CannotRunHere, UserError, closest
from .base import Timer

if TYPE_CHECKING:
    import numpy as np

    from ..profiles import Profile

Artefact = Literal["module", "graph", "engine"]

# the framework folders whose backend.py registers a Backend (imported on the first lookup)
_FRAMEWORKS = ("torch", "onnxruntime", "openvino", "tensorrt")


@dataclass(frozen=True)
class Timing:
    """One latency cell's call: batch, input shape (without the batch), precision, the grid label of
    the cell, the grid fed as an input (a dynamic-grid model; None otherwise), threads (0: the
    framework's default) and OpenVINO's performance hint (the profile's; others ignore it)."""

    batch: int
    shape: tuple[int, ...]
    precision: str
    grid: Any
    fed: Any
    threads: int
    hint: str = "latency"


@dataclass(frozen=True)
class Candidate:
    """What ``validate`` compares with the PyTorch reference: a Polygraphy runner over ``path``, its
    description, the ONNX model whose metadata names the reference, the precision the file records
    (None: the model's metadata says), and the batch range the file accepts (None: any)."""

    runner: Any
    description: str
    onnx: Path
    precision: str | None = None
    batches: tuple[int, int] | None = None


@dataclass(frozen=True)
class Setup:
    """A backend made ready for an accuracy comparison: its description, the deployment profile its
    engines are built for (None: it runs the graphs as they are) and the largest batch it takes."""

    description: str
    profile: Profile | None = None
    max_batch: int | None = None


@dataclass(frozen=True)
class Tried:
    """What a backend answers for one graph of an accuracy comparison: a runner, or None and why it
    cannot run the graph; and a note on how it ran (e.g. a lower optimisation level)."""

    runner: Any | None
    reason: str | None = None
    note: str | None = None


class Backend(ABC):
    """A framework that runs a model. Subclasses set the class attributes and are registered with
    :func:`register`; the methods raise :class:`UserError`/:class:`CannotRunHere` naming the fix."""

    key: ClassVar[str]  # the code's short key, written in latency.json cells: torch, ort, openvino, trt
    name: ClassVar[str]  # the name users see, as the framework names itself
    title: ClassVar[str]  # the framework's name in prose and tables
    aliases: ClassVar[tuple[str, ...]] = ()
    runs: ClassVar[Artefact]
    graphs_for: ClassVar[str]  # the `precision --target` its graphs are converted for
    precisions: ClassVar[tuple[str, ...] | None] = None  # the precisions it runs as the chain writes them (None: all)
    cpu_threads: ClassVar[bool] = False  # a CPU framework whose thread count the sweep chooses
    install: ClassVar[str] = ""  # what to install when it is missing
    by_default: ClassVar[bool] = True  # timed by `latency --backend auto` where it can run
    timing_options: ClassVar[tuple[str, ...]] = ()  # the profile's [benchmark] keys that shape its timings

    def missing(self) -> str:
        """Why this framework cannot run a model on this machine ("" when it can)."""
        return ""

    def preflight(self, profile: Profile, verb: str) -> None:
        """Raise :class:`CannotRunHere` before any work when ``profile``'s work cannot proceed here."""
        why = self.missing()
        if why:
            raise CannotRunHere(f"Profile {profile.name} runs on {self.title} ({verb}): {why}.",
                                f"{self.install}, or run the ONNX Runtime profile: --profile cpu.")

    def require(self, profile: Profile | None, verb: str) -> None:
        """Raise :class:`CannotRunHere` before any work when a verb that names this backend cannot run it
        here (with a profile of this backend: that profile's preflight)."""
        if profile is not None and backend(profile.backend) is self:
            self.preflight(profile, verb)
        why = self.missing()
        if why:
            raise CannotRunHere(f"Cannot {verb} here: {why}.", self.install)

    def describe(self) -> str:
        """The framework and version (and device) as reports name it."""
        return self.name

    def precision_reason(self, precision: str) -> str | None:
        """Why the chain's ``precision`` graph is not run here (None: it is)."""
        if self.precisions is None or precision in self.precisions:
            return None
        return (f"{self.title} runs {' and '.join(self.precisions)} graphs here (it runs no {precision} graph "
                "as the chain writes it)")

    @abstractmethod
    def timer(self, model: Any, call: Timing) -> Timer:
        """A timer over ``model`` (the artefact :attr:`runs` names: a module or a file path)."""

    def candidate(self, path: Path) -> Candidate:
        """The runner ``validate`` compares with PyTorch, over the file ``path``."""
        raise UserError(f"--backend {self.name} is the reference `validate` compares with, not a candidate.",
                        "Pass --backend onnxruntime or openvino for an .onnx file; an engine runs on TensorRT.")

    def setup(self, profile: Profile | None, verb: str) -> Setup:
        """Ready for an accuracy comparison (``verb`` names it in errors), or :class:`CannotRunHere`."""
        why = self.missing()
        if why:
            raise CannotRunHere(why, self.install)
        return Setup(self.describe())

    def tried(self, path: Path, precision: str, sample: dict[str, np.ndarray]) -> Tried:
        """A runner for one graph of an accuracy comparison, tried on ``sample`` (one image)."""
        raise UserError(f"{self.name} is the reference of an accuracy comparison, not a candidate.",
                        "Pass --backend onnxruntime, openvino or tensorrt.")


_REGISTRY: dict[str, type[Backend]] = {}
_INSTANCES: dict[str, Backend] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: add a :class:`Backend` to the registry under its key, name and aliases."""
    for spelling in (cls.key, cls.name, *cls.aliases):
        owner = _REGISTRY.get(spelling)
        if owner is not None and owner is not cls:
            raise ValueError(f"backend name {spelling!r} is taken by {owner.__name__}")
        _REGISTRY[spelling] = cls
    return cls


def _load() -> None:
    if not _INSTANCES:
        for folder in _FRAMEWORKS:
            importlib.import_module(f"{__package__}.{folder}.backend")
        for cls in dict.fromkeys(_REGISTRY.values()):
            _INSTANCES[cls.key] = cls()


def backends() -> tuple[Backend, ...]:
    """Every registered backend, in registration order."""
    _load()
    return tuple(_INSTANCES.values())


def backend(name: str, allowed: tuple[str, ...] | None = None, option: str = "--backend") -> Backend:
    """The backend called ``name`` (its name, key or an alias, any case); :class:`UserError` naming the
    choices when it is unknown or not among ``allowed`` (keys)."""
    _load()
    cls = _REGISTRY.get(name.strip().lower())
    keys = allowed or tuple(_INSTANCES)
    if cls is None or cls.key not in keys:
        near = closest(name, [k for k, c in _REGISTRY.items() if c.key in keys])  # among what this verb runs
        raise UserError(f"{option} {name!r} is not a backend this verb runs.",
                        f"Choose from {', '.join(_INSTANCES[k].name for k in keys)}"
                        + (f" (did you mean {', '.join(near)}?)" if near else "") + ".")
    return _INSTANCES[cls.key]


def for_file(path: str | Path, name: str | None = None) -> Backend:
    """The backend that runs the file ``path``: an engine's (whatever ``name`` says, if it agrees),
    else the one named (default ONNX Runtime)."""
    from .tensorrt.sidecar import is_engine_path

    be = backend(name or "onnxruntime")
    if is_engine_path(path):
        engine = next(b for b in backends() if b.runs == "engine")
        if name is not None and be is not engine:
            raise UserError(f"--backend {be.name} runs .onnx models; {path} is a TensorRT engine.",
                            "Drop --backend, or pass the engine's ONNX model.")
        return engine
    if be.runs == "engine":
        raise UserError(f"--backend {be.name} runs engines; {path} is not one.",
                        f"Build one first (lookupvit build {path} --profile NAME), or drop --backend.")
    return be


def known(name: object) -> Backend | None:
    """The backend called ``name``, or None when it names none (e.g. a value read from a file, or a
    scripted timer's label): for questions that have a "no" answer for an unknown name."""
    _load()
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    return _INSTANCES[cls.key] if cls is not None else None


__all__ = ["Artefact", "Backend", "Candidate", "Setup", "Timing", "Tried", "backend", "backends", "for_file", "known",
           "register"]
