"""Verbs about targets and engines: ``profiles``, ``profiles check``, ``build``, ``doctor``.

Thin click layer over :mod:`exporter.engine` and :mod:`exporter.doctor`; heavy imports stay inside
the verbs so `--help` is fast.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from ..precisions import PRECISIONS
from .main import main
from .options import json_option, print_json, print_table, stderr

PRECISION_CHOICES = list(PRECISIONS)


def _batches(d: dict[str, Any]) -> str:
    b = d["batch"]
    return f"{b['min']}..{b['max']} opt {','.join(map(str, b['opt']))}"


@main.group(invoke_without_command=True)
@json_option
@click.pass_context
def profiles(ctx: click.Context, as_json: bool) -> None:
    """List the deployment profiles (profiles/*.toml); `profiles check FILE` validates one.

    Profiles are found in $LOOKUPVIT_PROFILES, ./profiles, the profiles/ folder next to the
    package and <prefix>/share/lookupvit-deploy/profiles (first match wins).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..profiles import list_profiles

    rows = list_profiles()
    if as_json:
        print_json(
            [r.profile.to_dict() if r.profile else {"name": r.name, "path": str(r.path), "error": r.error} for r in rows]
        )
        return
    table = []
    for r in rows:
        if r.profile is None:
            table.append([r.name, "INVALID", "", "", "", "", escape((r.error or "").splitlines()[0])])
            continue
        d = r.profile.to_dict()
        latency = d["models"]["latency"]
        table.append([
            r.name,
            d["backend"],
            f"{r.profile.sm} {d['gpu']}".strip() or "CPU",
            " ".join(d["precisions"]),
            _batches(d),
            " ".join(latency[0]["grids"]) if latency else "",
            str(r.path),
        ])
    print_table(
        "Deployment profiles",
        ["name", "backend", "target", "precisions", "batch", "latency grids", "file"],
        table,
    )


@profiles.command("check")
@click.argument("file")
@json_option
def profiles_check(file: str, as_json: bool) -> None:
    """Validate one profile (a path, or a name); exit 2 with the problem if it is invalid."""
    from ..profiles import load_profile

    p = load_profile(file)
    if as_json:
        print_json({"valid": True, "profile": p.to_dict()})
        return
    d = p.to_dict()
    target = f"{p.sm} ({p.gpu})" if p.compute_capability else "CPU"
    models = ", ".join(r.variant for r in p.models.all) or "none"
    click.echo(
        f"OK {p.path}: profile {p.name}, {p.backend} on {target}, precisions {' '.join(p.precisions)}, "
        f"batch {_batches(d)} ({len(p.batch.opt)} optimisation profile(s)), models {models}"
    )


class RichBuildProgress:
    """A live display of TensorRT's build phases on stderr (implements ``plan.BuildProgress``)."""

    def __init__(self, title: str) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )
        self.title = title
        self.tasks: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.progress.live.is_started:
            self.progress.stop()

    def _start(self) -> None:
        """Shown from TensorRT's first phase on, and only on a terminal (logs stay clean)."""
        if not self.progress.live.is_started and stderr.is_terminal:
            self.progress.start()
            self.progress.add_task(self.title, total=None)

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        with self.lock:
            self._start()
            indent = "  " if parent else ""
            self.tasks[name] = self.progress.add_task(f"{indent}{name}", total=max(steps, 1))

    def step(self, name: str, step: int) -> None:
        with self.lock:
            if name in self.tasks:
                self.progress.update(self.tasks[name], completed=step + 1)

    def phase_finish(self, name: str) -> None:
        with self.lock:
            task = self.tasks.pop(name, None)
            if task is not None:
                self.progress.remove_task(task)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--profile", "profile_name", required=True, help="Profile name (see `lookupvit profiles`) or a .toml path.")
@click.option(
    "--precision",
    type=click.Choice(PRECISION_CHOICES),
    default=None,
    help="The precision MODEL's graph declares (checked; default: read from the graph). "
    "TensorRT builds strongly typed, so the precision comes from the graph, never from builder flags.",
)
@click.option("-o", "--output", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: engines go to DIR/engines/<profile>/<model>.<precision>.plan.")
@click.option("--force", is_flag=True, help="Rebuild even if an engine with the same cache key exists.")
@json_option
def build(model: str, profile_name: str, precision: str | None, output: str, force: bool, as_json: bool) -> None:
    """Build a strongly typed TensorRT engine of MODEL (an ONNX file) for a GPU profile.

    One optimisation profile per latency-critical batch of the profile; builder optimisation level,
    workspace, timing cache and compatibility from the profile. DIR/stages.json records each build
    (ONNX sha256, profile build hash, TensorRT flavour and version, target; the engine's sha256): an
    identical request whose engine is intact is reused unless --force. A .plan.json sidecar describes
    the engine. Needs
    full TensorRT (pip install -e '.[tensorrt]') and the profile's GPU, or TensorRT-RTX (pip install
    -e '.[tensorrt-rtx]'), which builds ahead of time without a GPU for sm_75 to sm_121 (not sm_90 or
    sm_87). The build runs in a child process bounded by [builder] timeout_s and host_memory: a
    builder crash is a FAILED build (exit 1). First runs `lookupvit check` on MODEL: a graph
    TensorRT's parser would refuse is refused here (exit 1, the same findings) before TensorRT is
    looked for. See docs/tensorrt.md.
    """
    from pathlib import Path

    from ..engine.build import prepare_build
    from ..pipeline.manifest import Manifest
    from ..pipeline.stages import BUILD
    from ..pipeline.steps import build_step, standalone_target, verb_errors
    from ..pipeline.unit import file_stage_id

    req = prepare_build(model, profile_name, precision, output)
    folder = Path(output)
    manifest = Manifest(folder)  # DIR/stages.json: this one-stage chain's record
    title = f"Building {req.plan.engine.name} for {req.profile.name}"
    with RichBuildProgress(title) as progress, verb_errors():
        result = build_step(manifest, file_stage_id(BUILD, folder, req.plan.engine), req.onnx.path, req.profile,
                            req.precision, lambda: req, target=standalone_target(req), force=force, progress=progress)
    if as_json:
        print_json(result.to_dict())
        return
    if result.cached:
        stderr.print(f"Reusing {result.engine} (same cache key; --force rebuilds)")
    for w in result.warnings:
        stderr.print(f"[yellow]builder warning:[/] {w}", markup=True, highlight=False)
    print_table(
        f"Engine {result.engine.name}",
        ["engine", "profile", "precision", "TensorRT", "target", "layers", "size (MiB)", "build s", "cached"],
        [[
            str(result.engine), result.profile, result.precision, result.tensorrt,
            result.target + (" (ahead of time, not executed)" if result.ahead_of_time else ""), result.layers,
            f"{result.engine_bytes / (1 << 20):.1f}", f"{result.build_seconds:.1f}", "yes" if result.cached else "no",
        ]],
    )


@main.command()
@json_option
def doctor(as_json: bool) -> None:
    """Show what this machine has: Python, torch (+CUDA), ONNX Runtime providers, ONNX tooling,
    TensorRT / TensorRT-RTX and the GPU, and whether engines can be built here."""
    from ..doctor import diagnose, to_dict

    findings = diagnose()
    if as_json:
        print_json(to_dict(findings))
        return
    print_table(
        "lookupvit doctor",
        ["component", "version", "detail"],
        [[f.component, escape(f.shown), escape(f.detail)] for f in findings],
    )
