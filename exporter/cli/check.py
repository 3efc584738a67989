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
@click.option("--build", "real_build", is_flag=True,
              help="Also parse and build MODEL with the real TensorRT builder installed here (TensorRT-RTX builds "
                   "ahead of time without a GPU; needs --profile) and say whether the rules and the builder agree. "
                   "The engine is not kept (`lookupvit build` keeps one).")
@json_option
def check(model: str, target: str, profile_name: str | None, real_build: bool, as_json: bool) -> None:
    """Check every node of MODEL (an ONNX file) against what TensorRT's ONNX parser accepts.

    Rules from the parser's own operator table and source (onnx-tensorrt; docs/tensorrt.md): operator
    and opset coverage, attribute and input constraints (Attention, Resize, Q/DQ, Cast, ...), element
    types and the profile GPU's types. Each finding names the node, the rule and the fix. Also
    estimates, per attention, whether TensorRT's fused attention kernels apply.
    With --build, the real builder's verdict is added (built, refused with its messages, or crashed
    with the signal); the builder runs in a child process, so a crash is reported, not fatal.
    Exit 0 clean (and built), 1 TensorRT would refuse the graph (or the builder did), 2 bad input or
    no builder here for the profile.
    """
    from ..check import check_graph
    from ..errors import UserError

    if real_build and profile_name is None:
        raise UserError("--build needs --profile: the build's compute capability and batch range come from it.",
                        "Add e.g. --profile l4 (`lookupvit profiles` lists them).")
    report = check_graph(model, profile_name, target)
    trial = None
    if real_build:
        from ..engine.build import trial_build

        trial = trial_build(model, profile_name)  # type: ignore[arg-type]  # checked above
    passed = report.passed and (trial is None or trial.built)
    if as_json:
        doc = report.to_dict()
        if trial is not None:
            doc["builder"] = {**trial.to_dict(), "agrees": report.passed == trial.built}
        print_json(doc)
        sys.exit(0 if passed else 1)
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
    if trial is not None:
        how = "ahead of time, no GPU here" if trial.ahead_of_time else trial.target
        click.echo(f"Builder ({trial.tensorrt} for {trial.target}, {how}): {trial.status}: {trial.message}")
        if report.passed != trial.built:
            click.echo("The rules and the builder disagree on this graph: please report it with the graph.")
    verdict = "PASSED" if passed else "FAILED"
    click.echo(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s) in {report.nodes} nodes"
               + (f"; builder: {trial.status}" if trial is not None else ""))
    sys.exit(0 if passed else 1)
