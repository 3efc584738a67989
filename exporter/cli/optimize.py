"""``lookupvit optimize``: graph-surgeon passes over an ONNX model, each checked with ONNX Runtime."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .main import main
from .options import json_option, print_json, print_table, stderr

if TYPE_CHECKING:
    from ..passes.optimize import OptimizeReport


@main.command()
@click.argument("model_path", metavar="IN.onnx", required=False)
@click.option("-o", "--output", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Where to write the optimised model (its report goes to OUT.onnx.json).")
@click.option("--form", default="attention", show_default=True,
              help="The graph form the passes write. attention: the ONNX Attention op (opset 23); trt-mha: "
              "MatMul-Softmax-MatMul with the scale on Q, in 4-D layout; plugin: each layer's gather/scatter as the "
              "LookupGather/LookupScatter plugin pair (local functions run on ONNX Runtime); cpu: for ONNX Runtime on "
              "the CPU (projections of one tensor merged into one MatMul; the skip-layernorm pass on request). The "
              "runtime a graph is written for is `precision --target`'s.")
@click.option("--target", "legacy_form", default=None, hidden=True)  # the former name of --form, for one release
@click.option("--passes", default=None, metavar="A,B,C",
              help="Passes to run, in this order (default: the form's declared order; see --list).")
@click.option("--list", "list_only", is_flag=True, help="List the registered passes and exit.")
@click.option("--force", is_flag=True, help="Run the passes again even if OUT.onnx was made from the same input and settings.")
@json_option
def optimize(model_path: str | None, out_path: str | None, form: str, legacy_form: str | None, passes: str | None,
             list_only: bool, force: bool, as_json: bool) -> None:
    """Rewrite the cross-attention of IN.onnx into fused patterns and write OUT.onnx.

    Each pass runs on onnx-graphsurgeon and is checked with ONNX Runtime on seeded random inputs
    against the graph before it (fp32 tolerance: 1e-4 of the output scale); a pass that would change
    the numbers is rolled back and reported. The report lists, per pass, the matches, node counts,
    op changes and the largest output change. The output folder's stages.json records the step (input
    and outputs by sha256): the same input and settings with intact outputs are reused unless --force.
    Exit status: 0 done, 1 the end-to-end check failed, 2 bad input.
    """
    from ..errors import UserError
    from ..passes import DEFAULT_ORDER, all_passes
    from ..passes.registry import check_target

    target = legacy_form or form  # the passes' registry calls a form its target
    check_target(target)
    if list_only:
        rows: list[dict[str, Any]] = [
            {"name": p.name, "family": p.family, "targets": list(p.targets),
             "default_position": {t: DEFAULT_ORDER[t].index(p.name) + 1 for t in p.targets if p.name in DEFAULT_ORDER[t]},
             "summary": p.summary}
            for p in all_passes()
        ]
        if as_json:
            print_json(rows)
            return
        print_table(
            "Graph-surgeon passes (default order per form)",
            ["pass", "family", "attention", "trt-mha", "plugin", "cpu", "what it does"],
            [[r["name"], r["family"], r["default_position"].get("attention", "-"),
              r["default_position"].get("trt-mha", "-"), r["default_position"].get("plugin", "-"),
              r["default_position"].get("cpu", "-"), r["summary"]]
             for r in rows],
        )
        return
    if not model_path or not out_path:
        raise UserError("optimize needs a model and an output: lookupvit optimize IN.onnx -o OUT.onnx.",
                        "Run `lookupvit optimize --list` for the passes.")
    from ..io import check_writable_file
    from ..pipeline.manifest import Manifest
    from ..pipeline.stages import OPTIMIZE
    from ..pipeline.steps import optimize_step, verb_errors
    from ..pipeline.unit import file_stage_id

    check_writable_file(out_path)  # before the passes run
    out = Path(out_path)
    manifest = Manifest(out.parent)  # the output folder's stages.json: this one-stage chain's record

    def run() -> OptimizeReport:
        with verb_errors():
            return optimize_step(manifest, file_stage_id(OPTIMIZE, out.parent, out), Path(model_path), out,
                                 form=target, passes=passes, force=force)

    if as_json:
        report = run()
        print_json(report.to_dict())
    else:
        with stderr.status(f"optimizing {model_path} for {target} ..."):
            report = run()
        print_report(report)
    sys.exit(0 if report.passed else 1)


def _delta(d: dict[str, int], limit: int = 5) -> str:
    items = sorted(d.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    text = ", ".join(f"{op} {n:+d}" for op, n in items[:limit])
    return text + (", ..." if len(items) > limit else "") if items else "-"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def print_report(report: OptimizeReport) -> None:
    print_table(
        f"{report.input} -> {report.output} (form {report.target})",
        ["pass", "status", "matches", "nodes", "op changes", "max abs change", "note"],
        [[p.name, p.status, p.matches, f"{p.nodes_before} -> {p.nodes_after}", _delta(p.op_delta),
          _num(p.max_abs_change), p.note] for p in report.passes],
    )
    watch = ("Attention", "LookupGather", "LookupScatter", "Softmax", "MatMul", "Einsum", "Transpose")
    ops = ", ".join(f"{op} {report.ops_before.get(op, 0)} -> {report.ops_after.get(op, 0)}" for op in watch
                    if report.ops_before.get(op, 0) or report.ops_after.get(op, 0))
    c = report.check
    click.echo(f"nodes {report.nodes_before} -> {report.nodes_after}; {ops}; opset {report.opset_before} -> "
               f"{report.opset_after}")
    click.echo(f"output vs input: max abs change {c.max_abs:.3g} (max rel {c.max_rel:.3g}, cosine {c.min_cosine:.6f}) "
               f"on {report.inputs}: {'PASSED' if report.passed else 'FAILED ' + c.reason}")
    if report.reused:
        click.echo(f"reused {report.output} and {report.sidecar} (made from the same input and settings; --force runs "
                   "the passes again)")
    else:
        click.echo(f"wrote {report.output} and {report.sidecar}")
