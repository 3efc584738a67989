"""``check_graph``: run every rule over a graph and estimate attention fusion (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import onnx

from ..errors import UserError
from ..onnx_io import load_onnx
from ..profiles import Profile, load_profile
from .findings import CheckReport, Finding
from .fusion import fusion_eligibility
from .graph import GraphView
from .operators import ONNX_TENSORRT_REPO, ONNX_TENSORRT_REVISION, OPERATORS_DOC, SUPPORTED
from .rules import DEFAULT_DOMAINS, GRAPH_RULES, NODE_RULES, CheckContext, found

TARGETS = ("tensorrt",)


def check_graph(
    path_or_model: str | Path | onnx.ModelProto,
    profile: str | Path | Profile | None = None,
    target: str = "tensorrt",
) -> CheckReport:
    """Check every node of ``path_or_model`` against what TensorRT's ONNX parser accepts, and estimate
    which attentions run fused. ``profile`` (a name, a .toml path or a :class:`Profile`) adds the GPU's
    types. Raises :class:`UserError` for an unreadable model, an unknown profile or target."""
    if target not in TARGETS:
        raise UserError(f"Unknown check target {target!r}.", f"Use --target {' or '.join(TARGETS)}.")
    prof = profile if isinstance(profile, Profile) or profile is None else load_profile(profile)
    if isinstance(path_or_model, onnx.ModelProto):
        model, label = path_or_model, path_or_model.graph.name or "<model>"
    else:
        # weights kept in external data stay there: the rules need shapes and the small inline constants
        # (scales, zero points, axes), and shape inference on the graph stays under protobuf's 2 GiB limit
        model, label = load_onnx(path_or_model, weights=False), str(path_or_model)
    g = GraphView.of(model)
    ctx = CheckContext(prof)
    findings: list[Finding] = []
    for graph_rule in GRAPH_RULES:
        findings.extend(graph_rule(g, ctx))
    for node in model.graph.node:
        if node.domain in DEFAULT_DOMAINS:
            for rule in NODE_RULES.get(node.op_type, []):
                findings.extend(rule(node, g, ctx))
    for fn in model.functions:  # the bodies the parser imports when no plugin of that name is loaded
        findings.extend(replace(f, node=f"{fn.name}/{f.node}") for f in _function_findings(fn, g, ctx))
    cc = prof.compute_capability if prof is not None else None
    return CheckReport(
        model=label,
        target=target,
        profile=prof.name if prof is not None else None,
        compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        rules_source=f"{ONNX_TENSORRT_REPO} at {ONNX_TENSORRT_REVISION}",
        opset=g.opset,
        nodes=len(model.graph.node),
        findings=findings,
        fusion=fusion_eligibility(g, prof),
    )


def _function_findings(fn: onnx.FunctionProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    """Operator coverage and node rules for a model-local function's body (shapes inside it are not
    inferred, so shape rules stay silent there)."""
    for node in fn.node:
        if node.domain not in DEFAULT_DOMAINS:
            continue
        if node.op_type not in SUPPORTED:
            yield found(node, "op-unsupported", f"Function {fn.name} uses {node.op_type}, which TensorRT's parser "
                        "has no importer for.", OPERATORS_DOC + f" (row {node.op_type})",
                        "Rewrite the function body with supported operators, or load a plugin of the function's name.")
        for rule in NODE_RULES.get(node.op_type, []):
            yield from rule(node, g, ctx)
