"""``lookupvit run``: the main job for a deployment profile, ending in DIR/report.html."""

from __future__ import annotations

import math
import sys
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


def _plain_progress() -> Any:
    """The job's progress where stderr is no terminal (CI logs): one line per step, with the step
    number, the total and the elapsed time (a progress bar would print nothing there)."""
    import time

    from ..run import RunProgress
    from .options import elapsed

    class PlainProgress(RunProgress):
        def __init__(self) -> None:
            self.t0, self.total, self.n = time.perf_counter(), 0, 0

        def _line(self, text: str) -> None:
            click.echo(f"[{elapsed(time.perf_counter() - self.t0)}] {text}", err=True)

        def start(self, total: int) -> None:
            self.total = total
            self._line(f"run: {total} steps")

        def step(self, label: str) -> None:
            self._line(f"step {min(self.n + 1, self.total)}/{self.total}: {label}")

        def note(self, text: str) -> None:
            self._line(f"  {text}")

        def done(self, label: str) -> None:
            self.n += 1

    return PlainProgress()


@main.command()
@click.option("--profile", "profile_name", default="cpu", show_default=True,
              help="Deployment profile: a name from `lookupvit profiles` or a .toml path; several separated by "
              "commas (h100,l4,cpu) run each into DIR/<profile>/ and compare them in DIR/report.html.")
@click.option("--cluster", "cluster", default=None, metavar="ADDRESS",
              help="Run on a Ray cluster: auto (the one running on this machine), HOST:PORT (its head node) or "
              "ray://HOST:PORT (Ray Client). Each profile's device work runs on a node offering its [cluster] "
              "resources. Needs the ray extra. [default: everything here, without Ray]")
@click.option("--shared-dir", "shared_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="With --cluster: a folder every node mounts at the same path; files travel through it "
              "(stored once by content hash) instead of Ray's object store.")
@click.option("-o", "--output", "out_dir", default="runs/run", show_default=True, type=click.Path(file_okay=False),
              help="Run folder: models per <variant>/g<grid>/, stages.json, latency.json, plots/, report.html, summary.json.")
@click.option("--optimize/--no-optimize", default=None,
              help="Run the graph-surgeon passes [default: on when exporter.passes is available].")
@click.option("--repeats", type=int, default=None,
              help="Interleaved rounds (LookupViT chunk, ViT chunk, ...) of the latency sweep "
              "[default: the profile's benchmark.repeats].")
@click.option("--budget", "budget_min", type=float, default=None,
              help="Time budget in minutes for the latency models: work that would not fit is reported as "
              "not run, and a rerun continues it. [default: none: every cell the profile asks for is timed]")
@click.option("--prepare-only", is_flag=True,
              help="Only what needs no GPU: export, optimize and convert the graphs the profile builds, check them "
              "against TensorRT's rules, and build the engines where this machine builds them without a GPU "
              "(TensorRT-RTX ahead of time); writes DIR/prepared.json. Needs no GPU or TensorRT.")
@click.option("--keep", type=click.Choice(KEEP_POLICIES), default=DEFAULT_KEEP, show_default=True,
              help="final: delete each exported graph once its optimised graph is made (a rerun still skips it); "
              "all: keep every intermediate file.")
@json_option
def run(profile_name: str, cluster: str | None, shared_dir: Path | None, out_dir: str, optimize: bool | None,
        repeats: int | None, budget_min: float | None, prepare_only: bool, keep: str, as_json: bool) -> None:
    """Run the whole pipeline for a profile: export -> optimize -> precision -> build (TensorRT
    profiles) -> validate -> compare -> profile, then write DIR/report.html and DIR/summary.json.

    The profile's [models] say what runs: accuracy models (top-1 per precision and grid), latency
    models timed per grid x precision x batch next to the baseline ViT (the cells the profile's
    latency_precisions and latency_batches name; with --budget, in priority order within it). A rerun
    skips every stage whose inputs did not change (DIR/stages.json); failing stages are reported, not
    fatal.

    A TensorRT profile on a machine that cannot build its engines stops at once (exit 2) and writes
    nothing; where TensorRT-RTX builds them without a GPU they are built, and validation and timing are
    reported as not run here. --prepare-only does the part that needs no GPU. Exit status: 0 everything
    asked for ran and passed; 1 a validation or comparison FAILED, or a stage failed; 2 bad input, work
    that cannot run here, or cells over --budget (a rerun continues them).

    Several profiles (--profile h100,l4,cpu) run one after the other here, or with --cluster ADDRESS on a
    Ray cluster (docs/cluster.md), each into DIR/<profile>/; DIR/report.html and DIR/fleet.json
    set them side by side. Exit status: 1 when a profile FAILED, else 2 when one did not run or is
    INCOMPLETE, else 0.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..errors import UserError
    from ..run import RunOptions, run_job

    if repeats is not None and repeats < 1:
        raise UserError(f"--repeats {repeats} must be at least 1.")
    if budget_min is not None and budget_min < 0:
        raise UserError(f"--budget {budget_min} must be a number of minutes (0: no budget).")
    budget = None if budget_min is None else (math.inf if budget_min == 0 else 60.0 * budget_min)
    from ..fleet import parse_profiles

    names = parse_profiles(profile_name)
    opts = RunOptions(profile=names[0], out_dir=Path(out_dir), optimize=optimize, repeats=repeats, budget_s=budget,
                      prepare_only=prepare_only, keep=keep)
    if cluster is not None or shared_dir is not None or len(names) > 1:
        run_fleet_verb(names, opts, cluster, as_json, shared_dir)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    if stderr.is_terminal:
        with Progress(*columns, console=stderr, transient=True) as bar:
            result = run_job(opts, _rich_progress(bar))
    else:
        result = run_job(opts, _plain_progress())
    if as_json:
        print_json(result.summary)
    elif prepare_only:
        print_prepared(result.summary)
        stderr.print(f"wrote {result.summary_path}")
    else:
        print_summary(result.summary)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(result.summary["stage_counts"].items()))
        stderr.print(f"stages: {counts}; {result.seconds:.0f} s")
        disk = result.summary.get("disk")
        if disk:
            from ..io import format_bytes

            stderr.print(f"disk: wrote {format_bytes(disk['written'])}, run folder {format_bytes(disk['folder'])}"
                         + (f" (--keep final removed {format_bytes(disk['dropped'])} of exported graphs)"
                            if disk["dropped"] else ""))
        lat = result.summary.get("latency") or {}
        if lat.get("noisy"):
            stderr.print(f"{lat['noisy']} latency cell(s) NOISY: their round medians vary by more than "
                         f"{100 * lat['noise_threshold']:.0f}% (load average {' '.join(map(str, lat.get('load') or []))} "
                         "when the sweep began); see the report")
        if lat.get("pace"):
            from ..latency.pace import PaceSummary, pace_text

            stderr.print(pace_text(PaceSummary.from_dict(lat["pace"]), lat.get("slow") or 0))
        stderr.print(f"wrote {result.report} and {result.summary_path}")
    if not as_json and not prepare_only:
        from ..run.report import answer

        for line in answer(result.summary, result.out_dir).lines():  # what the report leads with
            click.echo(line)
    elif not as_json:
        for line in result.verdict.lines():
            stderr.print(line, markup=False, highlight=False)
    if not as_json:
        click.echo(result.verdict.status)
    sys.exit(result.verdict.exit_code)


def print_prepared(summary: dict[str, Any]) -> None:
    rows = []
    for g in summary["graphs"]:
        check = g["check"]
        verdict = "-" if check is None else ("passes" if check["passed"] else f"{check['errors']} error(s)")
        size = "-" if g["bytes"] is None else f"{g['bytes'] / 1e6:.1f} MB"
        att = (check or {}).get("attention")
        fused = "-" if not att else f"{att['fused']}/{att['total']}" + (f" ({att['unknown']} unknown)" if att["unknown"] else "")
        e = g.get("engine")
        engine = "-" if e is None else (
            f"{(e['engine_bytes'] or 0) / 2**20:.1f} MiB, {e['build_seconds'] or 0:.1f} s" + (" (reused)" if e["reused"] else "")
            if e["status"] == "built" else f"{e['status']}: {e['note']}")
        rows.append([g["model"], g["grid"], g["precision"], g["path"] or "not made", size, verdict, fused, engine])
    prof = summary["profile"]
    built = summary.get("builds_here")
    title = "prepared" + (" and built" if built else "") + f" for profile {prof['name']}"
    print_table(f"{title} ({prof['backend']}{', ' + prof['gpu'] if prof['gpu'] else ''})",
                ["model", "grid", "prec", "graph", "size", "TensorRT check", "fused attention", "engine"], rows)
    engines = [e for e in summary.get("engines", []) if e["status"] == "built"]
    if engines:
        e = engines[0]
        aot = " ahead of time (no GPU here): not executed" if e.get("ahead_of_time") else ""
        click.echo(f"engines: {len(engines)} built with {e['tensorrt']} for {e['target']}{aot}")
    reasons = sorted({r for g in summary["graphs"] for r in ((g["check"] or {}).get("attention") or {}).get("not_fused", [])})
    for r in reasons:
        click.echo(f"not fused: {r}")
    click.echo(f"next: {summary['next']}")


def print_summary(summary: dict[str, Any]) -> None:
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    from ..latency.pace import slow_flag

    rows = []
    for r in summary["summary"]:
        speed = "-"
        if r["speedup"] is not None:
            speed = f"{r['speedup']:.2f}x" + (f" ({r['analytic_speedup']:.2f}x)" if r["analytic_speedup"] else "")
        spread = "-" if r.get("spread") is None else (f"{100 * r['spread']:.0f}%" + (" NOISY" if r.get("noisy") else "")
                                                      + slow_flag(r.get("slow"), r.get("pace")))
        eff = "-" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f}%"
        if r["efficiency"] is not None and r.get("efficiency_error") is not None:
            eff = f"{100 * r['efficiency']:.0f}+-{100 * r['efficiency_error']:.0f}%"
        rows.append([r["model"], r["grid"], r["precision"], f(r["top1"], ".1f"), f(r["p50_ms"], ".2f"), spread,
                     f(r["throughput"], ".1f"), f(r["gmacs"], ".4g"), eff, speed])
    batch = summary["summary"][0]["batch"] if summary["summary"] else "-"
    backend = summary["summary"][0]["backend"] if summary["summary"] else "-"
    others = sorted({c["batch"] for c in (summary.get("latency") or {}).get("cells") or [] if c.get("status") == "ok"}
                    - {batch})
    if rows:
        print_table(
            f"lookupvit run --profile {summary['profile']['name']}: {backend}, batch {batch}",
            ["model", "grid", "prec", "top-1 %", "p50 ms", "spread", "img/s", "GMACs", "eff", "speedup (analytic)"],
            rows,
        )
    else:
        click.echo(f"lookupvit run --profile {summary['profile']['name']}: no cell was timed here (why: below)")
    if others:
        click.echo(f"batch {', '.join(map(str, others))}: every cell in report.html (Latency per cell) and summary.json "
                   "(latency.cells)")
    engines = summary.get("engines") or []
    if engines:
        print_table(
            f"TensorRT engines ({len([e for e in engines if e['status'] == 'built'])} of {len(engines)} built)",
            ["model", "grid", "prec", "build", "MiB", "build s", "TensorRT", "target", "ahead of time"],
            [[e["model"], e["grid"] or "-", e["precision"], e["status"] + (" (reused)" if e.get("reused") else ""),
              "-" if not e.get("engine_bytes") else f"{e['engine_bytes'] / 2**20:.1f}",
              "-" if e.get("build_seconds") is None else f"{e['build_seconds']:.1f}", e.get("tensorrt") or "-",
              e.get("target") or "-", {True: "yes (not executed)", False: "no"}.get(e.get("ahead_of_time"), "-")]
             for e in engines],
        )


def _fleet_progress() -> Any:
    """One line per profile (stages done / total, current stage, node): a live block on a terminal,
    a plain line per change elsewhere (CI logs)."""
    import time

    from ..run.outcome import FleetProgress, ProfileLine
    from .options import elapsed

    class LineProgress(FleetProgress):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.lines: dict[str, ProfileLine] = {}
            self.live: Any = None

        def update(self, line: ProfileLine) -> None:
            if self.lines.get(line.profile) == line:
                return
            self.lines[line.profile] = line
            if self.live is not None:
                from rich.text import Text

                self.live.update(Text("\n".join(x.text() for x in self.lines.values())))
            else:
                click.echo(f"[{elapsed(time.perf_counter() - self.t0)}] {line.text()}", err=True)

    return LineProgress()


def run_fleet_verb(names: tuple[str, ...], opts: Any, cluster: str | None, as_json: bool,
                   shared_dir: Path | None = None) -> None:
    """Several profiles, or any on a cluster (exporter.fleet); exits with the fleet's status."""
    from ..fleet import run_fleet

    progress = _fleet_progress()
    if stderr.is_terminal:
        from rich.live import Live

        with Live(console=stderr, transient=False) as live:
            progress.live = live
            result = run_fleet(names, opts.out_dir, opts, cluster, progress, shared_dir)
    else:
        result = run_fleet(names, opts.out_dir, opts, cluster, progress, shared_dir)
    doc = {"status": result.status, "exit_code": result.exit_code, "seconds": round(result.seconds, 2),
           "profiles": [o.to_dict(opts.out_dir) for o in result.outcomes],
           "report": str(result.report) if result.report else None}
    if as_json:
        print_json(doc)
    else:
        print_table(f"lookupvit run --profile {','.join(names)}" + (f" --cluster {cluster}" if cluster else ""),
                    ["profile", "status", "node", "folder", "seconds"],
                    [[o.name, o.status, o.node or "-", str(o.folder), f"{o.seconds:.0f}"] for o in result.outcomes])
        for o in result.outcomes:
            for line in ([o.message] if o.message else []) + o.lines[:10]:
                stderr.print(f"{o.name}: {line}", markup=False, highlight=False)
        if result.report:
            stderr.print(f"wrote {result.report} and {result.fleet_json}")
        click.echo(result.status)
    sys.exit(result.exit_code)
