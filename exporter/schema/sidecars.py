"""A TensorRT engine's sidecar (``<model>.<precision>.plan.json``, written by exporter/engine/build.py) as
its readers use it: which TensorRT built the engine (the runner loads that flavour), its optimisation
profiles (the runner selects one per feed: exporter/backends/tensorrt/profiles.py), the ONNX model it
came from (``validate ENGINE`` finds its reference through it) and the build's result (a skipped build
step reads it back: exporter/pipeline/steps.py).

Every section is optional, since an engine built by an earlier version lacks the later ones, and
typed where it is present: a sidecar that breaks the schema is a :class:`~.core.SchemaError` naming
the key, whose hint says to rebuild the engine. The model sidecars of the other stages (an export's,
an optimisation report, a conversion report) are read back as the stage's own report dataclass
through the same layer (:func:`report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, TypeAdapter, model_validator

from ..errors import UntrustedFile
from .core import read_json, validate, validate_value
from .types import STRICT, Batch, Count, Name, Seconds, Text

REBUILD = "Rebuild the engine (lookupvit build MODEL.onnx --profile NAME --force) so that its sidecar is rewritten."
MAX_PROFILES = 4096  # TensorRT allows far fewer per engine; a larger list is not a sidecar we wrote
T = TypeVar("T")


def _grid_dims(text: str) -> str:
    if not all(1 <= int(x) <= 4096 for x in text.split("x")):
        raise ValueError("each side of a grid is 1 to 4096")
    return text


GridSpec = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}(x[0-9]{1,4}){0,3}$"), AfterValidator(_grid_dims)]


class ProfileBatch(BaseModel):
    model_config = STRICT
    min: Batch
    opt: Batch
    max: Batch


class ProfileIndexEntry(BaseModel):
    """One optimisation profile: its index, the grid it is fixed to ("3x3"; None: a one-grid model), its batches."""

    model_config = STRICT
    index: Count
    grid: GridSpec | None = None
    batch: ProfileBatch

    @property
    def grid_dims(self) -> tuple[int, ...] | None:
        return tuple(int(x) for x in self.grid.split("x")) if self.grid else None


class EnginePlan(BaseModel):
    model_config = STRICT
    profile_index: Annotated[list[ProfileIndexEntry], Field(max_length=MAX_PROFILES)] | None = None

    @model_validator(mode="after")
    def _in_order(self) -> EnginePlan:
        for pos, entry in enumerate(self.profile_index or ()):
            if entry.index != pos:
                raise ValueError(f"entry {pos} has index {entry.index}: the list is in profile order")
        return self


class EngineCache(BaseModel):
    model_config = STRICT
    key: Text
    tensorrt_version: Text = ""
    target: Text = ""


class EngineBuild(BaseModel):
    model_config = STRICT
    ahead_of_time: bool = False


class EngineOnnx(BaseModel):
    model_config = STRICT
    path: Text | None = None  # the model the engine was built from (absolute, or relative to the sidecar)
    sha256: Text | None = None
    metadata: dict[Text, str] = {}  # the ONNX model's metadata_props


class EngineTensorRT(BaseModel):
    model_config = STRICT
    backend: Name = "tensorrt"  # tensorrt | tensorrt-rtx
    version: Text | None = None


class BatchRange(BaseModel):
    model_config = STRICT
    min: Batch = 1
    max: Batch = 1 << 20


class EngineProfileSettings(BaseModel):
    model_config = STRICT
    batch: BatchRange = BatchRange()


class EngineProfile(BaseModel):
    """The deployment profile the engine was built for (its batch range bounds what validate feeds)."""

    model_config = STRICT
    name: Name = "?"
    settings: EngineProfileSettings = EngineProfileSettings()


class EngineSidecar(BaseModel):
    """``<engine>.plan.json``; see the module docstring."""

    model_config = STRICT
    cache: EngineCache | None = None
    build: EngineBuild = EngineBuild()
    onnx: EngineOnnx = EngineOnnx()
    precision: Name | None = None
    profile: EngineProfile | None = None
    tensorrt: EngineTensorRT | None = None
    plan: EnginePlan = EnginePlan()
    plugin: dict[Text, Any] | None = None
    build_seconds: Seconds = 0.0
    layers: Count = 0
    engine_bytes: Count = 0
    warnings: list[str] = []  # the builder's messages, as long as it wrote them (the document's size is bounded)


def engine_sidecar(data: Any, source: str | Path) -> EngineSidecar:
    """``data`` (an engine sidecar's JSON) as an :class:`EngineSidecar`; SchemaError naming the key."""
    return validate(EngineSidecar, data if data is not None else {}, source, hint=REBUILD)


def read_engine_sidecar(path: str | Path) -> EngineSidecar | None:
    """The sidecar at ``path``; None when it is missing or not JSON (an engine built elsewhere), a
    SchemaError when it breaks the schema."""
    try:
        data = read_json(path)
    except (OSError, UntrustedFile):
        return None
    return engine_sidecar(data, path)


def report(kind: type[T], data: Any, source: str | Path) -> T:
    """A stage's report dataclass (exporter.passes.optimize.OptimizeReport, exporter.precision.convert.
    PrecisionReport) from the sidecar its stage wrote; SchemaError naming the key where it does not fit."""
    return validate_value(TypeAdapter(kind), data, source, "", hint="Run the stage again (--force): its output is remade.")
