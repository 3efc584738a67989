"""``lookupvit precision`` (convert an fp32 graph) and ``lookupvit compare`` (accuracy across precisions)."""

from __future__ import annotations

import sys

import click

from ..precision.quantize import AUTO_CALIB, DEFAULT_CALIB_SIZE
from ..precisions import PRECISIONS
from .main import main
from .options import (
    BackendChoice,
    data_option,
    grids_option,
    json_option,
    print_json,
    print_table,
    progress_status,
    stderr,
    weights_option,
)

_PRECISIONS = list(PRECISIONS)


@main.command()
@click.argument("in_path", metavar="IN.onnx")
@click.option("--to", "to", required=True, type=click.Choice(_PRECISIONS, case_sensitive=False),
              help="Target precision (fp32 copies the graph and labels it).")
@click.option("--calib", default=AUTO_CALIB, show_default=True,
              help="int8/fp8 calibration images: 'auto' (the bundled data matching the model's input: digits for grey "
              "models, crops of the bundled photos for colour ones), 'digits', 'photos' or a dataset PATH (class "
              "folders or .npz).")
@click.option("--calib-size", type=int, default=None, help=f"Calibration images (seeded random subset). [default: {DEFAULT_CALIB_SIZE}]")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy", "distribution"]), default=None,
              help="int8: minmax (default), percentile, entropy; fp8: minmax (default, amax/448), distribution.")
@click.option("--keep-fp32", "keep_fp32", default=None, metavar="OPS",
              help="Comma-separated op types or node names to keep in fp32. fp16/bf16 default: "
              "LayerNormalization, Softmax (and Attention's softmax), reductions; 'default,Gelu' adds to it, "
              "'none' keeps nothing. int8/fp8: ops or nodes to leave unquantized (default: none; with --target "
              "tensorrt, Attention: each attention's two batched MatMuls stay float, as NVIDIA's Model Optimizer "
              "leaves them; 'none' quantizes them for a fused int8/fp8 MHA).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="OUT.onnx", help="Output ONNX file.")
@click.option("--force", is_flag=True, help="Convert again even if an identical conversion exists.")
@click.option("--target", type=click.Choice(["onnxruntime", "tensorrt"]), default="onnxruntime", show_default=True,
              help="The runtime the graph is written for: tensorrt writes the attention form TensorRT builds in "
              "this precision (fp16/bf16: Attention with no tensor read by two of them; fp32/int8/fp8: "
              "MatMul-Softmax-MatMul; docs/tensorrt.md) and leaves out what its parser refuses.")
@json_option
def precision(
    in_path: str, to: str, calib: str, calib_size: int | None, calib_method: str | None, keep_fp32: str | None,
    output: str, force: bool, target: str, as_json: bool,
) -> None:
    """Write IN.onnx (an fp32 graph) in another precision, for ONNX Runtime and strongly typed TensorRT.

    fp16/bf16 cast the graph (fp32 inputs and outputs, fp32 islands for fragile ops). int8/fp8 insert
    symmetric QuantizeLinear/DequantizeLinear pairs (zero point 0, per-channel weights) on the inputs
    of MatMul, Gemm, Conv and Attention, calibrated on real images. The output keeps the input's
    lookupvit metadata and adds lookupvit.precision; a JSON sidecar OUT.onnx.json records settings,
    calibration, op/type counts, hashes and versions. The output folder's stages.json records the step
    (input and outputs by sha256): the same input and settings with intact outputs are reused unless
    --force.
    """
    from pathlib import Path

    from ..pipeline.manifest import Manifest
    from ..pipeline.stages import PRECISION
    from ..pipeline.steps import precision_step, verb_errors
    from ..pipeline.unit import file_stage_id

    to = to.lower()
    out = Path(output)
    manifest = Manifest(out.parent)  # the output folder's stages.json: this one-stage chain's record

    def run():
        with verb_errors():
            return precision_step(manifest, file_stage_id(PRECISION, out.parent, out), Path(in_path), out, to,
                                  calib=calib, calib_size=calib_size, keep_fp32=keep_fp32, calib_method=calib_method,
                                  target=target, force=force)

    if as_json:
        report = run()
        print_json(report.to_dict())
        return
    with stderr.status(f"converting {in_path} to {to} ..."):
        report = run()
    after, before = report.after, report.before
    rows = [
        ["output", report.output],
        ["precision", report.precision + (" (reused)" if report.reused else "")],
        ["compute", "  ".join(f"{op}:{'/'.join(f'{t}x{n}' for t, n in d.items())}" for op, d in after["compute"].items())],
        ["nodes", f"{before['nodes']} -> {after['nodes']}"],
    ]
    if report.islands:
        kept = ", ".join(report.islands["keep_ops"] + report.islands["keep_nodes"]) or "none"
        rows.append(["fp32 islands", f"{report.islands['islands']} nodes ({kept}; runtime: "
                                     f"{', '.join(report.islands['runtime_ops']) or 'none'})"])
        rows.append(["Attention softmax fp32", str(report.islands["attention_softmax_fp32"])])
    if report.calibration:
        c = report.calibration
        rows.append(["calibration", f"{c['method']} on {c['samples']} images of {c['source']}"])
        rows.append(["scale rule", report.settings["scale_rule"]])
        rows.append(["Q/DQ", f"{after['quantize_linear']} QuantizeLinear, {after['dequantize_linear']} DequantizeLinear, "
                              f"zero points {after['zero_points']}"])
        rows.append(["weights quantized", f"{after['weights_quantized']}/{after['weights_total']} "
                                          f"({after['weights_per_channel']} per channel)"])
    rows.append(["sidecar", report.sidecar])
    rows.append(["seconds", f"{report.seconds:.1f}"])
    click.echo(f"{report.input} -> {report.precision}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
    for note in report.notes:
        stderr.print(f"note: {note}")


@main.command()
@click.argument("model", metavar="VARIANT|MODEL.onnx")
@weights_option
@click.option("--precisions", default=",".join(_PRECISIONS), show_default=True, help="Comma-separated precisions.")
@grids_option
@data_option
@click.option("--backend", type=BackendChoice(("ort", "trt", "openvino")), default="onnxruntime", show_default=True,
              help="onnxruntime (ort): ONNX Runtime (CUDA when available, else CPU); tensorrt (trt): TensorRT engines; "
              "openvino (ov): OpenVINO's CPU plugin, fp32 (the openvino extra).")
@click.option("--profile", default=None, help="TensorRT profile for --backend trt (default: the one matching this GPU).")
@click.option("--calib", default=AUTO_CALIB, show_default=True,
              help="int8/fp8 calibration data: 'auto' (digits for grey models, photos for colour ones), 'digits', "
              "'photos' or a PATH.")
@click.option("--calib-size", type=int, default=None, help=f"Calibration images. [default: {DEFAULT_CALIB_SIZE}]")
@click.option("--locate", is_flag=True, help="For a failing precision, find the first tensor over tolerance (marks all outputs).")
@click.option("--model", "factory", default=None, metavar="PKG.MODULE:FACTORY",
              help="PyTorch reference of an ONNX file exported with --model. Imports and runs that Python code.")
@click.option("--optimize/--no-optimize", default=None,
              help="Run the graph-surgeon passes before converting, as `run` does [default: on when available].")
@click.option("--allow-meaningless", is_flag=True,
              help="Run even where top-1 means nothing (random weights; classes, channels or image size that do not "
              "match the data); the result is marked NOT MEANINGFUL, never PASSED.")
@click.option("-o", "--output", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder for accuracy.json, accuracy.png and the ONNX graphs. [default: runs/compare/<name>]")
@json_option
def compare(
    model: str, weights: str | None, precisions: str, grids: str | None, data: str, backend: str, profile: str | None,
    calib: str, calib_size: int | None, locate: bool, factory: str | None, optimize: bool | None,
    allow_meaningless: bool, out_dir: str | None, as_json: bool,
) -> None:
    """Accuracy of VARIANT (exported per grid) or MODEL.onnx (an fp32 graph) across precisions and grids.

    Per precision and grid: task top-1 on the labelled data, top-1 agreement with the fp32 PyTorch
    model, logit max/mean absolute error, cosine similarity, and PASSED/FAILED against the
    precision's tolerance (the table shared with `validate`). Precisions the backend cannot run are
    reported as unsupported with the runtime's reason. Writes accuracy.json and accuracy.png.
    Exit status: 0 every cell that ran passed, 1 a cell failed, 2 bad input.
    """
    from ..compare import compare_precisions
    from ..precision import DEFAULT_CALIB_SIZE

    size = DEFAULT_CALIB_SIZE if calib_size is None else calib_size
    with progress_status(f"compare {model}") as say:
        result = compare_precisions(
            model, weights=weights, precisions=precisions, grids=grids, data=data, backend=backend, locate=locate,
            out_dir=out_dir, calib=calib, calib_size=size, profile=profile, factory=factory,
            allow_meaningless=allow_meaningless, optimize=optimize,
            progress=say,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        print_comparison(result)
    sys.exit(0 if result.passed else 1)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_comparison(result) -> None:
    rows = []
    for c in result.cells:
        if not c.ran:
            rows.append([c.grid, c.precision, c.status, "-", "-", "-", "-", "-", "-", "-"])
            continue
        tol = c.tolerance or {}
        rows.append([
            c.grid, c.precision, c.status, _pct(c.top1), f"{c.top1_delta:+.2f}" if c.top1_delta is not None else "-",
            _pct(c.agreement), f"{c.max_abs:.3g}", f"{c.mean_abs:.3g}", f"{c.cosine:.6f}",
            f"{c.max_rel:.3g} / {tol.get('max_error', 0):.3g}",
        ])
    print_table(
        f"{result.name}: precisions on {result.backend}, {result.samples} images of {result.data} "
        f"(PyTorch fp32 top-1: {', '.join(f'g{g} {v:.2f}' for g, v in result.reference.items())})",
        ["grid", "precision", "result", "top-1 %", "vs fp32", "agree %", "max abs", "mean abs", "cosine",
         "max rel / tol"],
        rows,
    )
    for c in result.cells:
        if c.status == "FAILED" and c.would_pass:
            click.echo(f"g{c.grid} {c.precision}: would pass with max_error {c.would_pass['max_error']:.3g}, "
                       f"min_cosine {c.would_pass['min_cosine']}")
        if c.reason:
            click.echo(f"g{c.grid} {c.precision} {c.status}: {c.reason}")
        if c.note:
            click.echo(f"g{c.grid} {c.precision} note: {c.note}")
        if c.locate is not None:
            loc = c.locate
            if loc.found:
                click.echo(
                    f"g{c.grid} {c.precision} first tensor over tolerance: '{loc.tensor}' from node '{loc.node}' "
                    f"({loc.op}), node {loc.position + 1} of {loc.nodes}: max rel {loc.max_rel:.3g}, "
                    f"cosine {loc.cosine:.6f} (tolerance {loc.tolerance['max_error']:.3g} / {loc.tolerance['min_cosine']})"
                )
            elif loc.reason:
                click.echo(f"g{c.grid} {c.precision} locate could not run: {loc.reason}")
            else:
                click.echo(f"g{c.grid} {c.precision} locate: no single tensor over tolerance in {loc.checked} "
                           f"checked on {loc.samples} images (the failure builds up over the batch)")
            click.echo(f"  note: {loc.note}")
    click.echo(f"wrote {result.files['json']} and {result.files['plot']}")
    for reason in result.meaningless:
        click.echo(reason)
    click.echo(result.status)
