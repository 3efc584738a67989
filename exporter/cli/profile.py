"""``lookupvit profile``: latency per compressed grid, precision, batch and backend, next to a ViT."""

from __future__ import annotations

import click

from .main import main
from .options import json_option, print_json, print_table, stderr


@main.command()
@click.argument("target", metavar="VARIANT|MODEL.onnx|ENGINE")
@click.option("--grids", default=None, help="Compressed grids, e.g. 3,5,7,10. Default: the variant's grids.")
@click.option("--precisions", default="fp32", show_default=True, help="Comma-separated: fp32, fp16, bf16, int8, fp8.")
@click.option("--batch", "batch", default="1", show_default=True, help="Batch sizes, e.g. 1,8,32.")
@click.option("--backends", default="torch,ort,trt", show_default=True,
              help="torch (PyTorch eager), ort (ONNX Runtime), trt (TensorRT). Missing ones are reported, not fatal.")
@click.option("--baseline", default="auto", show_default=True,
              help="The ViT timed next to a LookupViT: a variant, 'auto' (vit_<size><patch>) or 'none'.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed calls per cell first.")
@click.option("--iters", type=int, default=None, help="Timed calls per cell [default: 20].")
@click.option("--seconds", type=float, default=None, help="Time each cell for at least this long instead of --iters.")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="Interleaved rounds (LookupViT chunk, ViT chunk, ...) the calls are split into.")
@click.option("--threads", type=int, default=0, show_default=True, help="CPU threads (0: every available core).")
@click.option("--optimize/--no-optimize", default=None,
              help="Run the graph-surgeon passes before ONNX Runtime/TensorRT [default: on when available].")
@click.option("--peak-sizes", default="512,1024,2048", show_default=True,
              help="Square matrix sizes for the matrix-multiply peak (the best of them counts).")
@click.option("--profile", "profile_name", default=None, help="GPU profile for TensorRT engine builds (e.g. h100).")
@click.option("--accuracy", "accuracy_file", default=None, type=click.Path(dir_okay=False),
              help="accuracy.json from `lookupvit compare` for the accuracy-vs-latency plot "
              "(default: `evaluate` on the digits for variants with shipped weights).")
@click.option("-o", "--output", "out_dir", default="runs/profile", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the models, latency.json and plots/.")
@json_option
def profile(
    target: str, grids: str | None, precisions: str, batch: str, backends: str, baseline: str, warmup: int,
    iters: int | None, seconds: float | None, repeats: int, threads: int, optimize: bool | None,
    peak_sizes: str, profile_name: str | None, accuracy_file: str | None, out_dir: str, as_json: bool,
) -> None:
    """Time TARGET per compressed grid x precision x batch x backend, with its ViT baseline interleaved.

    Per cell: p50/p90/p99 latency, throughput, analytic GMACs, achieved GFLOP/s and efficiency
    against the matrix-multiply peak measured in the same run with the same threads; per grid the
    speedup over the ViT measured side by side (A/B/A/B) next to the analytic MAC ratio. Writes
    OUT/latency.json and plots in OUT/plots/; models are made in OUT/<variant>/g<grid>/ and reused.
    """
    from ..errors import UserError
    from ..profile.api import (
        ProfileRequest,
        accuracy_from_compare,
        evaluate_accuracy,
        parse_batches,
        parse_list,
        profile_latency,
        resolve_target,
    )
    from ..profile.sweep import SweepSettings
    from ..profile.timers import BACKENDS

    if iters is not None and seconds is not None:
        raise UserError("Give --iters or --seconds, not both.")
    for name, value, least in (("--warmup", warmup, 0), ("--iters", iters, 1), ("--repeats", repeats, 1), ("--threads", threads, 0)):
        if value is not None and value < least:
            raise UserError(f"{name} {value} must be at least {least}.")
    if seconds is not None and seconds <= 0:
        raise UserError(f"--seconds {seconds} must be positive.")
    from ..precision import PRECISIONS

    tgt = resolve_target(target, grids)
    backend_list = parse_list(backends, "backend", BACKENDS)
    if tgt.kind == "engine":
        backend_list = ("trt",)
    settings = SweepSettings(
        warmup=warmup, iterations=iters if iters is not None else (1 if seconds else 20),
        seconds=seconds or 0.0, repeats=repeats, threads=threads,
    )
    prof = None
    if profile_name:
        from ..engine.profiles import load_profile

        prof = load_profile(profile_name)
    req = ProfileRequest(
        targets=[tgt], precisions=parse_list(precisions, "precision", PRECISIONS), batches=parse_batches(batch),
        backends=backend_list, baseline=None if baseline == "none" else baseline, settings=settings,
        optimize=optimize, profile=prof, peak_sizes=parse_batches(peak_sizes, "--peak-sizes"),
    )
    say = stderr.print if not as_json else (lambda _t: None)
    accuracy = accuracy_from_compare(accuracy_file, tgt.name) if accuracy_file else None
    with stderr.status("profiling ...") as status:
        def progress(text: str) -> None:
            status.update(f"profiling: {text}")

        if accuracy is None:
            accuracy = evaluate_accuracy([tgt], progress)
        result, path, plots = profile_latency(req, out_dir, accuracy, progress)
    if as_json:
        import json

        print_json(json.loads(path.read_text()))
        return
    print_latency_table(result, f"{tgt.name}: latency per cell")
    peak: dict = result.peak.to_dict()["peaks"] if result.peak else {}  # type: ignore[assignment]
    say(f"matrix-multiply peak ({result.threads} threads): "
        + ", ".join(f"{k} {v['gflops']:.1f} GFLOP/s ({v['engine']}, n={v['size']})" for k, v in peak.items()))
    say(f"wrote {path} and {len(plots)} plot(s) in {path.parent / 'plots'}")


def print_latency_table(result, title: str) -> None:
    rows = []
    for c in result.cells:
        lat = c.latency
        speed = ""
        if c.speedup is not None:
            speed = f"{c.speedup:.2f}x" + (f" ({c.analytic_speedup:.2f}x)" if c.analytic_speedup else "")
        rows.append([
            c.model + (" (baseline)" if c.role == "baseline" else ""), c.grid, c.backend, c.precision, c.batch,
            f"{lat.p50_ms:.2f}" if lat else "-", f"{lat.p90_ms:.2f}" if lat else "-", f"{lat.p99_ms:.2f}" if lat else "-",
            f"{c.throughput:.1f}" if c.throughput else "-", f"{c.gmacs:.3g}" if c.gmacs else "-",
            f"{c.gflops:.1f}" if c.gflops else "-", f"{100 * c.efficiency:.0f}%" if c.efficiency else "-",
            speed or "-", "ok" if c.status == "ok" and not c.reason else f"{c.status}: {c.reason}"[:90],
        ])
    print_table(
        title,
        ["model", "grid", "backend", "prec", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "GMACs", "GFLOP/s",
         "eff", "speedup (analytic)", "status"],
        rows,
    )
