"""The documents of a run folder (docs/architecture.md, Artefact layout): ``stages.json``,
``summary.json``, ``latency.json`` and compare's ``accuracy.json``, as read back by ``run``'s
resume, ``pick`` and ``package``.

Only what a reader uses is typed; the value ranges are the issue's: latencies > 0 ms, 0 <= top-1
<= 100, batches >= 1, sha256 digests of 64 hex digits. Paths in these documents are checked
against their folder by :func:`exporter.safe_paths.confined` where they are used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, Field, model_validator

from .types import (
    STRICT,
    Batch,
    Count,
    GridText,
    Milliseconds,
    Name,
    Percent,
    Seconds,
    Sha256,
    Text,
)

MANIFEST_KIND = "lookupvit-run-stages"
SUMMARY_KIND = "lookupvit-run"

StageKind = Literal["export", "optimize", "precision", "check", "build", "validate", "compare", "profile"]
"""The ``kind`` of a stage in ``stages.json``, in chain order. What each stage does and where it runs is
declared in exporter/pipeline/stages.py (docs/architecture.md, The stages), which re-exports this type;
it is spelled here because the format of the file is, and this layer sits below the pipeline."""
STAGE_KINDS: tuple[StageKind, ...] = get_args(StageKind)


def is_stage_kind(value: object) -> TypeGuard[StageKind]:
    """Whether ``value`` is one of the :data:`StageKind` names."""
    return isinstance(value, str) and value in STAGE_KINDS


class StageEntry(BaseModel):
    """One stage of ``stages.json`` (exporter.pipeline.manifest's module docstring). ``kind`` is read as
    any name (a :data:`StageKind` for every entry this version writes), so a newer file's stage is kept,
    not refused."""

    model_config = STRICT
    kind: Name
    key: Text  # sha256 hex, or "" for a stage to run again
    settings: dict[str, Any] = {}
    inputs: dict[str, Text] = {}  # recorded for the reader; never opened
    outputs: dict[Text, Sha256] = {}
    result: Any = None
    seconds: Seconds = 0.0
    finished: Text = ""
    node: Text = ""
    dropped: list[Text] = []

    @model_validator(mode="after")
    def _dropped_are_outputs(self) -> StageEntry:
        stray = [d for d in self.dropped if d not in self.outputs]
        if stray:
            raise ValueError(f"dropped names {stray[0]!r}, which is not one of the stage's outputs")
        return self


class StagesDoc(BaseModel):
    """``DIR/stages.json``."""

    model_config = STRICT
    kind: Literal["lookupvit-run-stages"]
    stages: dict[Name, StageEntry]


class CellLatency(BaseModel):
    model_config = STRICT
    p50_ms: Milliseconds
    p99_ms: Milliseconds | None = None


class LatencyCell(BaseModel):
    """One timed cell (``latency.json`` ``cells``, and the summary's copy of them)."""

    model_config = STRICT
    model: Name
    grid: GridText
    precision: Name
    batch: Batch
    backend: Text | None = None
    status: Name
    role: Text | None = None
    noisy: bool | None = False
    latency: CellLatency | None = None

    @model_validator(mode="after")
    def _ok_has_latency(self) -> LatencyCell:
        if self.status == "ok" and self.latency is None:
            raise ValueError("a cell with status ok has no latency")
        return self


class AccuracyRow(BaseModel):
    """One accuracy row (the summary's ``accuracy``; compare's cells carry no ``model``)."""

    model_config = STRICT
    model: Name | None = None
    grid: GridText
    precision: Name
    top1: Percent | None = None
    samples: Count | None = None
    status: Text | None = None


class ModelRun(BaseModel):
    model_config = STRICT
    variant: Name


class ProfileModels(BaseModel):
    model_config = STRICT
    accuracy: list[ModelRun] = []
    latency: list[ModelRun] = []


class SummaryProfile(BaseModel):
    model_config = STRICT
    name: Name
    path: Text | None = None
    backend: Name
    models: ProfileModels = ProfileModels()


class SummaryLatency(BaseModel):
    model_config = STRICT
    file: Text | None = None
    cells: list[LatencyCell] | None = None


class SummaryRow(BaseModel):
    """A row of the summary table (``summary.json`` ``summary``), as the fleet report reads it."""

    model_config = STRICT
    model: Name
    grid: GridText
    precision: Name
    batch: Batch
    backend: Text | None = None
    p50_ms: Milliseconds | None = None
    speedup: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None


class SummaryDoc(BaseModel):
    """``DIR/summary.json``: what ``pick`` and ``package`` read. ``artefacts`` is the run's record of
    the files its claims were measured on (relative path -> sha256)."""

    model_config = STRICT
    kind: Literal["lookupvit-run"]
    run_dir: Text | None = None
    profile: SummaryProfile
    accuracy: list[AccuracyRow] | None = None
    latency: SummaryLatency | None = None
    summary: list[SummaryRow] | None = None
    artefacts: dict[Text, Sha256] | None = None


class LatencyDoc(BaseModel):
    """``DIR/latency.json`` (the cells only)."""

    model_config = STRICT
    cells: list[LatencyCell] = []


class AccuracyDoc(BaseModel):
    """compare's ``accuracy.json`` (the cells only)."""

    model_config = STRICT
    cells: list[AccuracyRow] = []


# --- stage results, as the run reads them back on a resume -------------------------------------------
# A recorded result is returned instead of running its stage again; one that does not fit its kind's
# model is not trusted: the stage runs again (exporter.pipeline.manifest.Manifest). Paths named in a
# result are relative to the run folder and confined where they are read.

Unit = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Real = Annotated[float, Field(allow_inf_nan=False)]


class Tolerance(BaseModel):
    model_config = STRICT
    max_error: Real
    min_cosine: Real


class ValidateResult(BaseModel):
    model_config = STRICT
    model: Name
    grid: GridText
    precision: Name
    backend: Text | None = None
    status: Literal["PASSED", "FAILED"]
    samples: Count | None = None
    max_rel: Unit | None = None
    cosine: Real | None = None
    top1_agreement: Annotated[float, Field(ge=0, le=1)] | None = None
    tolerance: Tolerance | None = None
    file: Text


class CompareCell(BaseModel):
    model_config = STRICT
    grid: GridText
    precision: Name
    status: Text
    reason: Text | None = None
    top1: Percent | None = None
    top1_delta: Real | None = None
    agreement: Percent | None = None
    max_rel: Unit | None = None
    cosine: Real | None = None
    samples: Count | None = None


class CompareResult(BaseModel):
    model_config = STRICT
    model: Name
    backend: Text | None = None
    data: Text | None = None
    reference: dict[Text, Percent | None] | None = None
    cells: list[CompareCell]
    files: dict[Name, Text] = {}


class Attention(BaseModel):
    model_config = STRICT
    total: Count = 0
    fused: Count = 0
    unknown: Count = 0
    not_fused: list[Text] = []


class CheckResult(BaseModel):
    model_config = STRICT
    passed: bool
    errors: Count
    warnings: Count = 0
    findings: list[Text] = []
    attention: Attention | None = None


class BuildResult(BaseModel):
    model_config = STRICT
    engine: Text
    cached: bool = False
    engine_bytes: Count | None = None
    build_seconds: Seconds | None = None
    tensorrt: Text | None = None
    target: Text | None = None
    ahead_of_time: bool | None = None


class ProfileResult(BaseModel):
    model_config = STRICT
    path: Text
    plots: list[Text] = []


RESULTS: dict[StageKind, type[BaseModel]] = {
    "check": CheckResult, "build": BuildResult, "validate": ValidateResult, "compare": CompareResult,
    "profile": ProfileResult,
}
"""The model of each kind's recorded result that a resume trusts (export, optimize and precision keep theirs untyped)."""

_RESULT_PATHS: dict[StageKind, Callable[[Any], list[tuple[str, str]]]] = {
    "validate": lambda r: [("result.file", r["file"])],
    "compare": lambda r: [(f"result.files.{k}", v) for k, v in r.get("files", {}).items()],
    "profile": lambda r: [("result.path", r["path"])] + [(f"result.plots[{i}]", p) for i, p in enumerate(r.get("plots", []))],
}


def result_paths(kind: StageKind, result: Any) -> list[tuple[str, str]]:
    """(key, relative path) of every file a valid recorded result of ``kind`` names in the run folder."""
    paths = _RESULT_PATHS.get(kind)
    return paths(result) if paths is not None else []
