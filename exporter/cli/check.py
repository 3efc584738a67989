"""``lookupvit check``: would TensorRT's ONNX parser take this graph, and which attentions run fused?

Thin click layer over :func:`exporter.check.check_graph`. Exit 0 when the graph is clean (warnings
allowed), 1 when TensorRT would refuse it, 2 for bad input (unreadable model, unknown profile).
"""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from .main import main
from .options import json_option, print_json, print_table


def _fused(v: bool | None) -> str:
    return "yes" if v else ("no" if v is False else "unknown")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(["tensorrt"]), default="tensorrt", show_default=True,
              help="What to check against: TensorRT's ONNX parser (also used by TensorRT-RTX).")
@click.option("--profile", "profile_name", default=None,
              help="Deployment profile (name or .toml): also checks the types its GPU runs (bf16 from sm_80, "
                   "fp8 from sm_89) and uses its GPU for the fusion estimates.")
@json_option
def check(model: str, target: str, profile_name: str | None, as_json: bool) -> None:
    """Check every node of MODEL (an ONNX file) against what TensorRT's ONNX parser accepts.

    Rules from the parser's own operator table and source (onnx-tensorrt, see the README): operator
    and opset coverage, attribute and input constraints (Attention, Resize, Q/DQ, Cast, ...), element
    types and the profile GPU's types. Each finding names the node, the rule and the fix. Also
    estimates, per attention, whether TensorRT's fused attention kernels apply.
    Exit 0 clean, 1 TensorRT would refuse the graph, 2 bad input.
    """
    from ..check import check_graph

    report = check_graph(model, profile_name, target)
    if as_json:
        print_json(report.to_dict())
        sys.exit(0 if report.passed else 1)
    where = f", profile {report.profile} (sm {report.compute_capability or '-'})" if report.profile else ""
    if report.findings:
        print_table(
            f"{report.model}: {report.nodes} nodes, opset {report.opset}{where}",
            ["node", "op", "severity", "rule", "problem", "fix", "rule source"],
            [[escape(f.node), f.op, f.severity, f.rule, escape(f.message), escape(f.fix), escape(f.source)]
             for f in report.findings],
        )
    if report.fusion:
        print_table(
            "Attention fusion (estimate before building)",
            ["node", "form", "precision", "heads q/kv", "head size", "S_q", "S_kv", "fused", "why"],
            [[escape(e.node), e.form, e.precision, f"{e.heads_q}/{e.heads_kv}", e.head_size, e.seq_q, e.seq_kv,
              _fused(e.fused), escape("; ".join(e.reasons))] for e in report.fusion],
        )
    click.echo(f"Rules: {report.rules_source}")
    verdict = "PASSED" if report.passed else "FAILED"
    click.echo(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s) in {report.nodes} nodes")
    sys.exit(0 if report.passed else 1)
