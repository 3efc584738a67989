"""``lookupvit latency``: latency per compressed grid, precision, batch and backend, next to a ViT.

The verb was called ``profile`` before; that spelling stays as a hidden alias for one release (it
collided with the deployment profiles of ``--profile`` and ``lookupvit profiles``)."""

from __future__ import annotations

import copy
import sys
from typing import Literal

import click

from ..latency.pace import PACE_THRESHOLD
from ..latency.peak import DEFAULT_SIZES
from ..latency.sweep import SweepSettings
from ..profiles import BenchmarkSettings
from .main import main
from .options import BackendChoice, grids_option, json_option, print_json, print_table, progress_status, stderr

_DEFAULTS = SweepSettings()


@main.command("latency")
@click.argument("target", metavar="VARIANT|MODEL.onnx|ENGINE")
@grids_option
@click.option("--precisions", default=None,
              help="Comma-separated: fp32, fp16, bf16, int8, fp8. Default: fp32 for a variant; a given ONNX file or "
              "engine runs in the precision it declares (asking for another is an error).")
@click.option("--batch", "batch", default="1", show_default=True, help="Batch sizes, e.g. 1,8,32.")
@click.option("--backend", "--backends", "backends", type=BackendChoice(None, many=True,
                                                                       extra=("auto",)),
              default="auto", show_default=True,
              help="Comma-separated: torch (PyTorch eager), onnxruntime (ort), tensorrt (trt), openvino (ov: OpenVINO's "
              "CPU plugin on the fp32 export; the openvino extra); 'auto': torch and onnxruntime, and tensorrt where "
              "TensorRT and a GPU are present. A backend named here that cannot run on this machine is an error.")
@click.option("--baseline", default="auto", show_default=True,
              help="The ViT timed next to a LookupViT: a variant, 'auto' (vit_<size><patch>) or 'none'.")
@click.option("--warmup", type=int, default=_DEFAULTS.warmup, show_default=True, help="Untimed calls per cell first (at least).")
@click.option("--warmup-seconds", type=float, default=_DEFAULTS.warmup_seconds, show_default=True,
              help="Warm each cell up for at least this long.")
@click.option("--iters", type=int, default=_DEFAULTS.iterations, show_default=True, help="Timed calls per cell (at least).")
@click.option("--seconds", type=float, default=_DEFAULTS.seconds, show_default=True,
              help="Time each cell for at least this long (and at least --iters calls).")
@click.option("--repeats", type=int, default=_DEFAULTS.repeats, show_default=True,
              help="Interleaved rounds (LookupViT chunk, ViT chunk, ...) the calls are split into.")
@click.option("--noise-threshold", type=float, default=100 * _DEFAULTS.noise_threshold, show_default=True,
              help="Flag a cell noisy when its round medians vary by more than this (coefficient of variation, %).")
@click.option("--retries", type=int, default=_DEFAULTS.retries, show_default=True,
              help="Time a group with a noisy cell again, up to this many times; the quietest attempt stands.")
@click.option("--pace-wait", type=float, default=_DEFAULTS.pace_wait, show_default=True,
              help="Seconds the sweep may spend waiting out slow phases of the machine (a reference loop running "
              f"{PACE_THRESHOLD}x slower than its quiet time) and timing again what met one; 0: only flag them SLOW.")
@click.option("--threads", default=str(BenchmarkSettings().threads), show_default=True,
              help="CPU threads: a number (0: every available core), or 'auto': each CPU cell tries 1, half and all "
              "the cores and is timed with the fewest threads within 5% of the fastest.")
@click.option("--optimize/--no-optimize", default=None,
              help="Run the graph-surgeon passes before ONNX Runtime/TensorRT [default: on when available].")
@click.option("--peak-sizes", default=",".join(map(str, DEFAULT_SIZES)), show_default=True,
              help="Square matrix sizes for the matrix-multiply peak (the best of them counts).")
@click.option("--profile", "profile_name", default=None, help="GPU profile for TensorRT engine builds (e.g. h100).")
@click.option("--dynamic-grid", is_flag=True,
              help="A variant: export it once as one dynamic-grid graph serving every --grids (the grid fed per "
              "cell) instead of one graph per grid. A dynamic-grid .onnx or engine is swept at its grids as it is.")
@click.option("--accuracy", "accuracy_file", default=None, type=click.Path(dir_okay=False),
              help="accuracy.json from `lookupvit compare` for the accuracy-vs-latency plot "
              "(default: `evaluate` on the digits for variants with shipped weights).")
@click.option("-o", "--output", "out_dir", default="runs/profile", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the models, latency.json and plots/.")
@json_option
def profile(
    target: str, grids: str | None, precisions: str | None, batch: str, backends: str | tuple[str, ...], baseline: str,
    warmup: int,
    warmup_seconds: float, iters: int, seconds: float, repeats: int, noise_threshold: float, retries: int,
    pace_wait: float, threads: str, optimize: bool | None,
    peak_sizes: str, profile_name: str | None, dynamic_grid: bool, accuracy_file: str | None, out_dir: str,
    as_json: bool,
) -> None:
    """Time TARGET per compressed grid x precision x batch x backend, with its ViT baseline interleaved.

    Each cell is warmed up (at least --warmup calls and --warmup-seconds), then timed for at least
    --iters calls and at least --seconds in --repeats interleaved rounds. Per cell: p50/p90/p99
    latency, the spread of the round medians (flagged noisy above --noise-threshold, with the load
    average; a noisy group is timed again up to --retries times and the quietest attempt stands),
    throughput, analytic GMACs, achieved GFLOP/s and efficiency against the matrix-multiply
    peak measured in the same run with the same threads; per grid the speedup over the ViT measured
    side by side (A/B/A/B) next to the analytic MAC ratio. Writes OUT/latency.json and plots in
    OUT/plots/; models are made in OUT/<variant>/g<grid>/ and reused. A given ONNX file or engine is
    timed as given, in the precision it declares; a dynamic-grid file or engine at each grid it serves
    (or those of --grids), the grid input set per cell.
    """
    from ..errors import UserError
    from ..latency.api import accuracy_from_compare, evaluate_accuracy, latency_request, profile_latency
    from ..latency.sweep import SweepSettings, noise_advice

    threads_n = _threads(threads)
    for name, value, least in (("--warmup", warmup, 0), ("--iters", iters, 1), ("--repeats", repeats, 1),
                               ("--retries", retries, 0)):
        if value < least:
            raise UserError(f"{name} {value} must be at least {least}.")
    for name, number in (("--seconds", seconds), ("--warmup-seconds", warmup_seconds), ("--noise-threshold", noise_threshold),
                         ("--pace-wait", pace_wait)):
        if number < 0:
            raise UserError(f"{name} {number} must not be negative.")
    settings = SweepSettings(
        warmup=warmup, warmup_seconds=warmup_seconds, iterations=iters, seconds=seconds, repeats=repeats,
        threads=threads_n, noise_threshold=noise_threshold / 100.0, retries=retries, pace_wait=pace_wait,
    )
    req = latency_request(
        target, grids=grids, dynamic_grid=dynamic_grid, backends=backends if isinstance(backends, tuple) else None,
        precisions=precisions, batch=batch, settings=settings, baseline=baseline, optimize=optimize,
        profile=profile_name, peak_sizes=peak_sizes, out_dir=out_dir)
    tgt = req.targets[0]
    say = stderr.print if not as_json else (lambda _t: None)
    accuracy = accuracy_from_compare(accuracy_file, tgt.name) if accuracy_file else None
    with progress_status(f"profile {tgt.name}") as progress:
        if accuracy is None:
            accuracy = evaluate_accuracy([tgt], progress)
        result, path, plots = profile_latency(req, out_dir, accuracy, progress)
    if as_json:
        import json

        print_json(json.loads(path.read_text()))
        sys.exit(_exit_code(result, lambda _t: None))
    print_latency_table(result, f"{tgt.name}: latency per cell")
    say(peak_line(result))
    noisy = [c for c in result.cells if c.noisy]
    if noisy:
        say(f"{len(noisy)} cell(s) marked noisy: their round medians vary by more than "
            f"{100 * result.noise_threshold:.0f}% (load average {' '.join(map(str, result.load)) or '?'} when the sweep "
            f"began); {noise_advice(result.load, result.machine.get('cores'))}")
    if result.pace is not None:
        from ..latency.pace import pace_text

        say(pace_text(result.pace, sum(1 for c in result.cells if c.slow)))
    say(f"wrote {path} and {len(plots)} plot(s) in {path.parent / 'plots'}")
    sys.exit(_exit_code(result, say))


def _threads(text: str) -> int | Literal["auto"]:
    """--threads: 'auto' or a non-negative number."""
    from ..errors import UserError
    from ..latency.sweep import AUTO_THREADS

    if text.strip().lower() == AUTO_THREADS:
        return AUTO_THREADS
    try:
        n = int(text)
    except ValueError:
        raise UserError(f"--threads {text!r} is neither a number nor 'auto'.",
                        "Pass --threads auto (the default), 0 for every core, or a count such as --threads 4.") from None
    if n < 0:
        raise UserError(f"--threads {n} must be at least 0 (0: every available core).")
    return n


def _exit_code(result, say) -> int:
    """0 every cell was timed; 1 a cell failed; 2 a cell cannot run here (unsupported)."""
    bad = [c for c in result.cells if c.status != "ok"]
    for c in bad[:10]:
        say(f"{c.status}: {c.model} {c.grid} {c.precision} b{c.batch} {c.backend}: {c.reason}")
    if any(c.status == "failed" for c in bad):
        return 1
    return 2 if bad else 0


def peak_line(result) -> str:
    """The measured peaks with their spread, in one line."""
    peak: dict = result.peak.to_dict()["peaks"] if result.peak else {}  # type: ignore[assignment]
    unit = {"int8": "GOP/s"}
    return f"matrix-multiply peak ({result.threads} threads): " + ", ".join(
        f"{k} {v['gflops']:.1f} {unit.get(k.split('/')[1], 'GFLOP/s')}"
        + (f" +-{100 * v['spread']:.0f}%" if v.get("spread") is not None else "")
        + f" ({v['engine']}, n={v['size']})" for k, v in peak.items())


def spread_text(c) -> str:
    """The spread of a cell's round medians, with the noise flag and the load when flagged."""
    if c.latency is None or c.latency.spread is None:
        return "-"
    from ..latency.pace import slow_flag

    text = f"{100 * c.latency.spread:.1f}%" + (f" ({c.attempts} tries)" if c.attempts > 1 else "")
    return (f"{text} NOISY (load {c.load})" if c.noisy else text) + slow_flag(c.slow, c.pace)


def efficiency_text(c) -> str:
    if c.efficiency is None:
        return "-"
    err = f"+-{100 * c.efficiency_error:.0f}" if c.efficiency_error is not None else ""
    return f"{100 * c.efficiency:.0f}{err}%"


def print_latency_table(result, title: str) -> None:
    rows = []
    for c in result.cells:
        lat = c.latency
        speed = ""
        if c.speedup is not None:
            speed = f"{c.speedup:.2f}x" + (f" ({c.analytic_speedup:.2f}x)" if c.analytic_speedup else "")
        rows.append([
            c.model + (" (baseline)" if c.role == "baseline" else ""), c.grid, c.backend, c.precision, c.batch,
            str(c.threads or result.threads) if c.device == "cpu" else "-", f"{lat.p50_ms:.2f}" if lat else "-", f"{lat.p90_ms:.2f}" if lat else "-", f"{lat.p99_ms:.2f}" if lat else "-",
            spread_text(c), str(lat.n) if lat else "-",
            f"{c.throughput:.1f}" if c.throughput else "-", f"{c.gmacs:.3g}" if c.gmacs else "-",
            f"{c.gflops:.1f}" if c.gflops else "-", efficiency_text(c),
            speed or "-", "ok" if c.status == "ok" and not c.reason else f"{c.status}: {c.reason}"[:90],
        ])
    print_table(
        title,
        ["model", "grid", "backend", "prec", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "spread", "calls", "img/s", "GMACs",
         "GFLOP/s", "eff", "speedup (analytic)", "status"],
        rows,
    )


_alias = copy.copy(main.commands["latency"])  # the former spelling, hidden, for one release
_alias.hidden = True
main.add_command(_alias, "profile")
