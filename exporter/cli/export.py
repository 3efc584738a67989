"""``lookupvit export``: PyTorch -> ONNX, one model per grid."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from ..export.onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .main import main
from .options import json_option, print_json, print_table, stderr, weights_option


@main.command()
@click.argument("variant", required=False)
@weights_option
@click.option("--grids", "--grid", "grids", default=None,
              help="Compressed grids, comma-separated (one ONNX model each), e.g. 3,5,7,10 or 4x7x7; --grid 7 is the "
              "one-value spelling. Default: the variant's largest.")
@click.option("--image-size", type=int, default=None, help="Input size in pixels (position embeddings are resized).")
@click.option("--batch", default="dynamic", show_default=True, help="'dynamic' or a fixed batch size.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True,
              help=f"ONNX opset ({MIN_OPSET} to {MAX_OPSET}; 23 has the Attention op).")
@click.option("--head", type=click.Choice(["logits", "features"]), default="logits", show_default=True,
              help="logits: class scores; features: both token streams (lookup, compressed).")
@click.option("--model", "factory", default=None, metavar="PKG.MODULE:FACTORY",
              help="Export a LookupViT written elsewhere: a callable returning an nn.Module that maps "
              "images (B, C, H, W) to logits (B, K); called with grid=(gh, gw) if it takes `grid`.")
@click.option("--dynamic-grid", is_flag=True,
              help="One ONNX file serving every grid of --grids: the grid is chosen per call by a second input "
              "'grid' whose shape is the grid (see docs/dynamic-grid.md).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--force", is_flag=True, help="Export again even if an identical export exists.")
@json_option
def export(
    variant: str | None, weights: str | None, grids: str | None, image_size: int | None,
    batch: str, opset: int, head: str, factory: str | None, dynamic_grid: bool, out_dir: str, force: bool,
    as_json: bool,
) -> None:
    """Export VARIANT (or --model) to ONNX with torch's dynamo exporter, one file per grid.

    Files are named <variant>_g<grid>.onnx, each with a JSON sidecar (<file>.json) recording
    inputs with hashes, settings, tool versions and timings; the ONNX metadata_props carry the
    variant, grid, image size, mean/std, opset, tool version and weights hash. The folder's
    stages.json records each export (inputs and outputs by sha256): an identical earlier export whose
    files are intact is reused unless --force.
    """
    from ..export import check_batch, check_opset, export_sources
    from ..pipeline.manifest import Manifest
    from ..pipeline.stages import EXPORT
    from ..pipeline.steps import export_step, verb_errors
    from ..pipeline.unit import file_stage_id

    check_opset(opset)
    check_batch(batch)
    sources = export_sources(variant, factory, weights, grids, image_size, head, dynamic_grid)
    folder = Path(out_dir)
    manifest = Manifest(folder)  # OUT/stages.json: this one-stage chain's record (refused before any work if bad)
    weights_id = sources[0].weights_id()
    if weights_id.startswith("seed:"):  # said before the work, on stderr (stdout stays one JSON document)
        stderr.print(f"note: {sources[0].name} has no checkpoint: its weights are a seeded random initialisation "
                     f"({weights_id}). Its outputs are fine for latency and numerical checks, but no accuracy "
                     "measured on it means anything; pass --weights FILE for a trained model.",
                     markup=False, highlight=False)
    results = []
    for src in sources:
        label = src.file_stem()
        stage_id = file_stage_id(EXPORT, folder, folder / f"{label}.onnx")
        with verb_errors(), (contextlib.nullcontext() if as_json else stderr.status(f"exporting {label} (opset {opset}) ...")):
            results.append(export_step(manifest, stage_id, src, folder, batch=batch, opset=opset, force=force))
    if as_json:
        print_json([{**r.to_dict(), "weights": weights_id} for r in results])
        return
    print_table(
        "ONNX export",
        ["model", "grid", "size (MB)", "seconds", "status"],
        [[str(r.path), r.grid or "-", f"{r.size_bytes / 1e6:.1f}", f"{r.seconds:.1f}",
          "reused" if r.reused else "exported"] for r in results],
    )

