"""``lookupvit validate``: an exported model against its PyTorch reference."""

from __future__ import annotations

import functools
import sys

import click

from .main import main
from .options import BackendChoice, json_option, print_json, print_table, stderr, weights_option


@main.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--reference", "variant", default=None, help="Reference variant (default: from the model's metadata).")
@click.option("--model", "factory", default=None, metavar="PKG.MODULE:FACTORY", help="Reference from a user factory.")
@weights_option
@click.option("--data", default="auto", show_default=True,
              help="'auto' (the labelled data the model declares, e.g. digits for lookupvit_digits, else random; "
              "what `run` uses), 'random' (seeded normal images), 'digits' (held-out split) or a dataset PATH "
              "(folder or .npz).")
@click.option("--iters", "--iterations", "iterations", type=int, default=None, help="Batches to compare (default: 4 random, or the whole dataset).")
@click.option("--precision", default=None, help="Tolerance row to apply (default: the model's precision metadata, else fp32).")
@click.option("--backend", type=BackendChoice(("ort", "openvino")), default=None,
              help="Runtime for an .onnx model: onnxruntime (ort; the default) or openvino (ov: OpenVINO's CPU plugin, "
              "fp32; the openvino extra). An engine runs on TensorRT.")
@click.option("-o", "--output", "output", default=None, type=click.Path(dir_okay=False),
              help="Also write the report (JSON) to this file. Nothing is written otherwise: never next to MODEL, "
              "which may be a run's file.")
@json_option
def validate(
    model_path: str, variant: str | None, factory: str | None, weights: str | None, data: str,
    iterations: int | None, precision: str | None, backend: str, output: str | None, as_json: bool,
) -> None:
    """Compare MODEL (.onnx on ONNX Runtime, or a TensorRT engine .plan) with its PyTorch reference
    through Polygraphy. An engine's reference comes from its sidecar's ONNX model.

    Per output: max/mean absolute error, max error relative to the output scale, cosine similarity
    and top-1 agreement, PASSED or FAILED against the precision's tolerance (and, when failing, the
    tolerance that would have passed). The inputs are the labelled data the model declares (as in
    `run`), else seeded random images; the table says which. With -o FILE the report is also written
    there. Exit status: 0 all passed, 1 a comparison failed, 2 bad input.
    """
    from ..errors import UserError
    from ..validate import validate_model

    run = functools.partial(validate_model, backend=backend)

    if variant and factory:
        raise UserError("Give --reference or --model, not both.")
    if iterations is not None and iterations < 1:
        raise UserError(f"--iters {iterations} must be at least 1.")
    if output is not None:
        from ..io import check_writable_file

        check_writable_file(output)  # before the work
    if not as_json:
        with stderr.status(f"validating {model_path} ..."):
            report = run(model_path, variant, factory, weights, data, iterations, precision, out=output)
    else:
        report = run(model_path, variant, factory, weights, data, iterations, precision, out=output)
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
    sys.exit(0 if report.passed else 1)


def print_report(report) -> None:
    rows = []
    for o in report.outputs:
        status = "PASSED" if o.passed else f"FAILED (would pass: max_error {o.would_pass['max_error']:.3g}, " \
                                           f"min_cosine {o.would_pass['min_cosine']})"
        rows.append([
            o.output, f"{o.max_abs:.3g}", f"{o.mean_abs:.3g}", f"{o.max_rel:.3g}", f"{o.cosine:.6f}",
            "-" if o.top1_agreement is None else f"{100 * o.top1_agreement:.1f}%",
            f"{o.tolerance['max_error']:.0e} / {o.tolerance['min_cosine']}", status,
        ])
    print_table(
        f"{report.model}: {report.candidate} vs PyTorch, {report.precision}, {report.samples} samples ({report.data})",
        ["output", "max abs", "mean abs", "max rel", "cosine", "top-1 agree", "tolerance (rel / cos)", "result"],
        rows,
    )
    click.echo("PASSED" if report.passed else "FAILED")
