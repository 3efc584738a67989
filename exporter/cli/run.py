"""``lookupvit run``: the main job for a deployment profile, ending in DIR/report.html."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from ..run.keep import DEFAULT_KEEP, KEEP_POLICIES
from .main import main
from .options import json_option, print_json, print_table, stderr


def _rich_progress(bar: Any) -> Any:
    """The job's progress as a rich progress bar on stderr: step n of N, current stage, elapsed time."""
    from ..run import RunProgress

    class RichProgress(RunProgress):
        def __init__(self) -> None:
            self.task: Any = None

        def start(self, total: int) -> None:
            self.task = bar.add_task("starting", total=total)

        def step(self, label: str) -> None:
            bar.update(self.task, description=label)

        def note(self, text: str) -> None:
            bar.update(self.task, description=text)

        def done(self, label: str) -> None:
            bar.advance(self.task)

    return RichProgress()


@main.command()
@click.option("--profile", "profile_name", default="cpu", show_default=True,
              help="Deployment profile: a name from `lookupvit profiles` or a .toml path.")
@click.option("-o", "--output", "out_dir", default="runs/run", show_default=True, type=click.Path(file_okay=False),
              help="Run folder: models per <variant>/g<grid>/, stages.json, latency.json, plots/, report.html, summary.json.")
@click.option("--optimize/--no-optimize", default=None,
              help="Run the graph-surgeon passes [default: on when exporter.passes is available].")
@click.option("--repeats", type=int, default=None,
              help="Interleaved rounds (LookupViT chunk, ViT chunk, ...) of the latency sweep "
              "[default: the profile's benchmark.repeats].")
@click.option("--budget", "budget_min", type=float, default=None,
              help="Time budget in minutes for the latency models: work that would not fit is reported as "
              "not run, and a rerun continues it. 0: no budget. [default: 6 on an ONNX Runtime (CPU) profile, "
              "none on TensorRT profiles]")
@click.option("--keep", type=click.Choice(KEEP_POLICIES), default=DEFAULT_KEEP, show_default=True,
              help="final: delete each exported graph once its optimised graph is made (a rerun still skips it); "
              "all: keep every intermediate file.")
@json_option
def run(profile_name: str, out_dir: str, optimize: bool | None, repeats: int | None, budget_min: float | None,
        keep: str, as_json: bool) -> None:
    """Run the whole pipeline for a profile: export -> optimize -> precision -> build (TensorRT
    profiles) -> validate -> compare -> profile, then write DIR/report.html and DIR/summary.json.

    The profile's [models] say what runs: accuracy models (top-1 per precision and grid), latency
    models timed per grid x precision x batch next to the baseline ViT, in priority order (first
    precision, smallest batch, grids as listed) within the time budget. A rerun skips every stage whose
    inputs did not change (DIR/stages.json); failing stages are reported, not fatal.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..errors import UserError
    from ..run import RunOptions, run_job

    if repeats is not None and repeats < 1:
        raise UserError(f"--repeats {repeats} must be at least 1.")
    if budget_min is not None and budget_min < 0:
        raise UserError(f"--budget {budget_min} must be a number of minutes (0: no budget).")
    budget = None if budget_min is None else (math.inf if budget_min == 0 else 60.0 * budget_min)
    opts = RunOptions(profile=profile_name, out_dir=Path(out_dir), optimize=optimize, repeats=repeats, budget_s=budget,
                      keep=keep)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        result = run_job(opts, _rich_progress(bar))
    if as_json:
        print_json(result.summary)
        return
    print_summary(result.summary)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.summary["stage_counts"].items()))
    stderr.print(f"stages: {counts}; {result.seconds:.0f} s")
    disk = result.summary.get("disk")
    if disk:
        from ..run.report import format_bytes

        stderr.print(f"disk: wrote {format_bytes(disk['written'])}, run folder {format_bytes(disk['folder'])}"
                     + (f" (--keep final removed {format_bytes(disk['dropped'])} of exported graphs)"
                        if disk["dropped"] else ""))
    stderr.print(f"wrote {result.report} and {result.summary_path}")


def print_summary(summary: dict[str, Any]) -> None:
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = []
    for r in summary["summary"]:
        speed = "-"
        if r["speedup"] is not None:
            speed = f"{r['speedup']:.2f}x" + (f" ({r['analytic_speedup']:.2f}x)" if r["analytic_speedup"] else "")
        rows.append([r["model"], r["grid"], r["precision"], f(r["top1"], ".1f"), f(r["p50_ms"], ".2f"),
                     f(r["throughput"], ".1f"), f(r["gmacs"], ".4g"),
                     "-" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%", speed])
    batch = summary["summary"][0]["batch"] if summary["summary"] else "-"
    backend = summary["summary"][0]["backend"] if summary["summary"] else "-"
    print_table(
        f"lookupvit run --profile {summary['profile']['name']}: {backend}, batch {batch}",
        ["model", "grid", "prec", "top-1 %", "p50 ms", "img/s", "GMACs", "eff", "speedup (analytic)"],
        rows,
    )
