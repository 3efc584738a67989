"""Typed results of a TensorRT readiness check: one :class:`Finding` per broken rule, one
:class:`FusionEstimate` per attention, and the :class:`CheckReport` that carries both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import FailedVerdict

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """A node TensorRT's ONNX parser would refuse (``error``) or that needs attention (``warning``)."""

    node: str  # the node's name (or its first output when unnamed); "<graph>" for model-wide rules
    op: str
    rule: str  # a short id, e.g. "attention.past-kv"
    severity: Severity
    message: str
    source: str  # where the rule comes from: file and function of onnx-tensorrt, or a document
    fix: str

    def line(self) -> str:
        """One line per finding, the same in `check`, `build` and the run report."""
        return f"{self.severity.upper()} {self.node} ({self.op}) [{self.rule}]: {self.message} Fix: {self.fix} (rule: {self.source})"


@dataclass(frozen=True)
class FusionEstimate:
    """Whether TensorRT's fused attention kernels are expected to run one attention.

    ``fused`` is True/False when the rules decide it, None when a shape is unknown (dynamic)."""

    node: str
    form: Literal["Attention", "trt-mha"]
    precision: str  # fp32 | fp16 | bf16 | int8 | fp8
    heads_q: int | None
    heads_kv: int | None
    head_size: int | None
    seq_q: int | str | None
    seq_kv: int | str | None
    fused: bool | None
    reasons: tuple[str, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


@dataclass
class CheckReport:
    model: str
    target: str
    profile: str | None
    compute_capability: str | None
    rules_source: str
    opset: int
    nodes: int
    findings: list[Finding] = field(default_factory=list)
    fusion: list[FusionEstimate] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target": self.target,
            "profile": self.profile,
            "compute_capability": self.compute_capability,
            "rules_source": self.rules_source,
            "opset": self.opset,
            "nodes": self.nodes,
            "passed": self.passed,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
            "fusion": [e.to_dict() for e in self.fusion],
        }


class CheckFailed(FailedVerdict):
    """``build`` refusing a graph that TensorRT's parser would refuse: a FAILED verdict (exit 1)."""

    def __init__(self, report: CheckReport) -> None:
        lines = "\n".join(f.line() for f in report.errors)
        super().__init__(
            f"{report.model} would be refused by TensorRT's ONNX parser ({len(report.errors)} finding(s)):\n{lines}",
            "Fix the graph as each finding says, then run `lookupvit check` on it before building again.",
        )
        self.report = report
