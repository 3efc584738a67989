"""The pipeline's eight stages, declared once (docs/architecture.md, The stages).

Each stage is a :class:`StageSpec`: its kind (the name ``stages.json`` records and its stage ids
begin with), what it does, where it runs, what it takes and makes, the module that does the work and
the module that runs it as a recorded stage. :data:`STAGES` lists them in chain order; code names a
stage by its constant (:data:`EXPORT` ... :data:`PROFILE`), never by a string.

Where a stage runs is the split of a distributed run (docs/architecture.md, Distribution): the host
stages are graph work any machine does (a cluster's prepare task, ``run --prepare-only``:
:func:`exporter.run.stages.chain_steps`), the device stages need the machine the profile describes (a
cluster's device task). The build is a device stage that a host also runs where it builds the
profile's engines without its GPU (TensorRT-RTX ahead of time).

:data:`StageKind` is the format of ``stages.json``, so it is spelled with that file's schema
(exporter/schema/run_folder.py, a layer below this package) and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from ..schema.run_folder import STAGE_KINDS, StageKind, is_stage_kind

Where = Literal["host", "device"]  # host: graph work, any machine; device: needs the profile's hardware

EXPORT: Final[StageKind] = "export"
OPTIMIZE: Final[StageKind] = "optimize"
PRECISION: Final[StageKind] = "precision"
CHECK: Final[StageKind] = "check"
BUILD: Final[StageKind] = "build"
VALIDATE: Final[StageKind] = "validate"
COMPARE: Final[StageKind] = "compare"
PROFILE: Final[StageKind] = "profile"  # the latency sweep; one per run, its stage id is its kind

# Not a stage: a latency-model cell that `run --budget` leaves out is recorded as an outcome of kind
# BUDGET with the id latency:<model>:<grid>:<precision>:b<batch> (first part LATENCY_CELL); it is never
# written to stages.json.
BUDGET: Final = "budget"
LATENCY_CELL: Final = "latency"
OutcomeKind = StageKind | Literal["budget"]  # the kind of a manifest outcome (a run's summary lists them)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the chain: see the module docstring."""

    kind: StageKind
    description: str  # one line
    where: Where
    takes: str
    makes: str
    module: str  # the module that does the work
    recorded_by: str  # the module that runs it through the manifest


STAGES: tuple[StageSpec, ...] = (
    StageSpec(EXPORT, "PyTorch -> ONNX, one graph per compressed grid (or one dynamic-grid graph), provenance in metadata",
              "host", "a registered variant and its weights", "an fp32 ONNX graph and its sidecar",
              "exporter.export.onnx_export", "exporter.pipeline.artefacts"),
    StageSpec(OPTIMIZE, "graph-surgeon passes: canonical forms, attention fused, each checked with ONNX Runtime",
              "host", "the exported graph", "the optimised graph (.opt.onnx) and its report",
              "exporter.passes.optimize", "exporter.pipeline.artefacts"),
    StageSpec(PRECISION, "fp16/bf16 casts with fp32 islands, calibrated int8/fp8 Q/DQ, the attention form TensorRT takes",
              "host", "the optimised graph (and calibration data for int8/fp8)",
              "the graph in one precision for one runtime (.opt.<p>.onnx) and its sidecar",
              "exporter.precision.convert", "exporter.pipeline.artefacts"),
    StageSpec(CHECK, "TensorRT readiness: the parser's rules and the attention-fusion estimate (TensorRT profiles)",
              "host", "the graph written for TensorRT and the profile", "findings, in the manifest only (no file)",
              "exporter.check.api", "exporter.run.stages"),
    StageSpec(BUILD, "a TensorRT engine for the deployment profile, built in a bounded child process",
              "device", "the graph written for TensorRT and the profile", "an engine (.plan) and its sidecar",
              "exporter.engine.build", "exporter.pipeline.artefacts"),
    StageSpec(VALIDATE, "the graph or engine, as the profile's backend runs it, against its PyTorch fp32 reference",
              "device", "the converted graph or its engine, and the model's data", "a validation report (.validate.json)",
              "exporter.validate.validate", "exporter.run.stages"),
    StageSpec(COMPARE, "accuracy per precision and grid on the labelled data, through the chain's own graphs",
              "device", "the optimised fp32 graph and the graphs the chain converts from it",
              "accuracy.json and its plot", "exporter.compare.compare", "exporter.run.stages"),
    StageSpec(PROFILE, "the latency sweep: grid x precision x batch on the profile's backend, ViT baseline interleaved",
              "device", "every graph or engine of the run, and compare's accuracy", "latency.json and plots",
              "exporter.latency.sweep", "exporter.run.stages"),
)

_BY_KIND: dict[str, StageSpec] = {s.kind: s for s in STAGES}
assert tuple(_BY_KIND) == STAGE_KINDS, "STAGES must declare every StageKind once, in chain order"

DEVICE_STAGES: tuple[StageKind, ...] = tuple(s.kind for s in STAGES if s.where == "device")
HOST_STAGES: tuple[StageKind, ...] = tuple(s.kind for s in STAGES if s.where == "host")


def stage(kind: StageKind) -> StageSpec:
    """The declaration of the stage ``kind``; KeyError for a name that is not a stage."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise KeyError(f"{kind!r} is not a stage; the stages are {', '.join(STAGE_KINDS)}") from None


__all__ = [
    "BUDGET", "BUILD", "CHECK", "COMPARE", "DEVICE_STAGES", "EXPORT", "HOST_STAGES", "LATENCY_CELL", "OPTIMIZE",
    "PRECISION", "PROFILE", "STAGES", "STAGE_KINDS", "VALIDATE", "OutcomeKind", "StageKind", "StageSpec", "Where",
    "is_stage_kind", "stage",
]
