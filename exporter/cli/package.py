"""``lookupvit package``: a Triton Inference Server model repository from a run folder or a model.

Thin click layer over :func:`exporter.serve.triton.package`. Exit 0 when every file the configs
name is in place; 2 for bad input, and when a TensorRT engine could not be built here (the
repository is written complete all the same, and its README says how to build the engine).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from .main import main
from .options import json_option, print_json, print_table, progress_status, stderr


@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--profile", "profiles", multiple=True,
              help="Deployment profile (name or .toml) [default: the run's]. Repeat with TensorRT profiles of "
                   "different GPUs for one engine per GPU (cc_model_filenames).")
@click.option("--triton", is_flag=True, required=True, help="Write a Triton Inference Server model repository.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="The repository folder.")
@click.option("--grids", default=None, help="Run folder: the grids to package, e.g. 2,3 (one Triton model each) "
                                             "[default: the one pick chooses].")
@click.option("--precision", default=None, help="Run folder: the precision [default: the one pick chooses].")
@click.option("--latency-ms", "latency_ms", type=float, default=None,
              help="Run folder: choose the grid and precision with `pick --latency-ms` [default: the most accurate "
                   "setting on the run's Pareto front].")
@click.option("--batch", type=int, default=None, help="With --latency-ms: the batch the budget is for.")
@click.option("--min-top1", "min_top1", type=float, default=None, help="With --latency-ms: the accuracy floor.")
@click.option("--model", default=None, help="Run folder: the variant to package [default: the one pick chooses for].")
@click.option("--input", "input_mode", type=click.Choice(["raw", "float"]), default="raw", show_default=True,
              help="raw: uint8 images, normalisation folded into the graph; float: the graph's own normalised input.")
@click.option("--queue-delay-us", "queue_delay_us", type=click.IntRange(0), default=None,
              help="Dynamic batching's max queue delay [default: a tenth of the measured batch-1 p50, 100 us to 5 ms].")
@click.option("--labels", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Class names, one per line [default: the class indices].")
@click.option("--name", default=None, help="The Triton model name (one model) [default: <variant>_g<grid>].")
@click.option("--force", is_flag=True, help="Replace model folders this tool wrote into the repository before, and "
              "write into a folder that holds other files (which are never replaced) (docs/security.md).")
@click.option("--allow-failed", "allow_failed", is_flag=True,
              help="Also choose or ship a setting whose accuracy verdict is FAILED or NOT MEANINGFUL (README.md then "
                   "says so) [default: never].")
@json_option
def package(source: str, profiles: tuple[str, ...], triton: bool, out_dir: str, grids: str | None,
            precision: str | None, latency_ms: float | None, batch: int | None, min_top1: float | None,
            model: str | None, input_mode: str, queue_delay_us: int | None, labels: str | None, name: str | None,
            force: bool, allow_failed: bool, as_json: bool) -> None:
    """Package SOURCE (a `lookupvit run` folder or an .onnx model) as a Triton model repository:
    REPO/<model>/config.pbtxt, REPO/<model>/1/model.onnx (ONNX Runtime profiles) or model.<sm>.plan
    (TensorRT profiles), REPO/<model>/labels.txt and REPO/README.md.

    From a run folder the grid and precision are what `lookupvit pick` chooses (with --latency-ms),
    else the most accurate setting on the run's Pareto front. Exit 0 when the repository is complete;
    2 when a TensorRT engine could not be built here (the config is complete and the README names
    the build command).
    """
    from ..serve.triton import PackageRequest
    from ..serve.triton import package as make_package

    req = PackageRequest(
        source=Path(source), profiles=profiles, out_dir=Path(out_dir),
        grids=tuple(g.strip() for g in grids.split(",") if g.strip()) if grids else (), precision=precision,
        latency_ms=latency_ms, batch=batch, min_top1=min_top1, model=model, input_mode=input_mode,
        queue_delay_us=queue_delay_us, labels=Path(labels) if labels else None, name=name, force=force,
        allow_failed=allow_failed,
    )
    if as_json:
        result = make_package(req)
        print_json(result.to_dict())
        sys.exit(0 if result.complete else 2)
    with progress_status("package") as say:
        result = make_package(req, say)
    rows = []
    for m in result.models:
        c = m.config
        files = ", ".join([f"1/{e.filename}" + ("" if e.built else " (MISSING)") for e in m.engines] or ["1/model.onnx"])
        rows.append([m.name, m.platform, m.precision, f"{c.inputs[0].name} {c.inputs[0].data_type}",
                     ", ".join(map(str, c.preferred_batch_sizes)) or "-", f"{c.max_queue_delay_us} us", files,
                     "yes" if m.schema_checked else "no (tritonclient missing)"])
    print_table(f"Triton model repository {result.repo}",
                ["model", "platform", "prec", "input", "preferred", "delay", "model files", "schema"],
                [[escape(str(x)) for x in r] for r in rows])
    click.echo(f"choice: {result.choice}")
    for note in result.notes:
        click.echo(f"WARNING: {note}.")
    for m in result.models:
        for e in m.engines:
            if not e.built:
                stderr.print(f"{m.name}: engine for {e.profile} not built: {e.note.replace('{REPO}', str(result.repo))}",
                             markup=False, highlight=False)
    click.echo(f"wrote {result.repo} (README.md says how to serve it)")
    sys.exit(0 if result.complete else 2)
