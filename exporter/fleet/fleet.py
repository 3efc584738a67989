"""Several deployment profiles in one run (``lookupvit run --profile h100,l4,cpu``), and the fleet report.

docs/architecture.md, Distribution. The fleet sits above its executors: here, one profile after the
other, or a Ray cluster (:mod:`exporter.cluster`); neither imports it. Each profile runs the main job
(:func:`exporter.run.job.run_job`)
into its own folder, ``DIR/<profile>/``, laid out exactly as a run of that profile alone, so a later
run of one profile into that folder resumes it. Without ``--cluster`` the profiles run here one
after the other; with it, on a Ray cluster (:mod:`exporter.cluster`, imported only then). A single
profile keeps the folder itself (``DIR``), as ``lookupvit run`` always did.

The fleet report, ``DIR/fleet.json`` and ``DIR/report.html``, sets the profiles side by side from
their own ``summary.json`` (a cluster run of one profile writes ``fleet.json`` only, with its task records): latency per grid per profile, the speedup over the ViT baseline per
profile, and top-1 per precision per profile; each profile's full report stays in its folder.

Exit status (the project's rule): 1 when a profile FAILED (a verdict, a stage, or its task), else 2
when one did not run or is INCOMPLETE (no node offers its resources, a backend missing, the time
budget), else 0.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..run.job import run_job
from ..run.options import REPORT_HTML, SUMMARY_JSON, RunOptions, RunProgress
from ..run.outcome import FleetProgress, ProfileLine, ProfileOutcome, rel_to

FLEET_JSON = "fleet.json"


def parse_profiles(text: str) -> tuple[str, ...]:
    """``h100,l4,cpu`` -> the names (or .toml paths), in order, each once."""
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise UserError(f"--profile {text!r} has an empty name.", "Separate profile names with commas: --profile h100,l4,cpu.")
    return tuple(dict.fromkeys(names))


@dataclass
class FleetResult:
    out_dir: Path
    outcomes: list[ProfileOutcome]
    report: Path | None
    fleet_json: Path | None
    seconds: float
    tasks: list[dict[str, Any]] = field(default_factory=list)  # cluster tasks: node, submit/start/finish times

    @property
    def exit_code(self) -> int:
        codes = {o.exit_code for o in self.outcomes}
        return 1 if 1 in codes else (2 if 2 in codes else 0)

    @property
    def status(self) -> str:
        return {0: "PASSED", 1: "FAILED", 2: "INCOMPLETE"}[self.exit_code]


def profile_folders(out_dir: Path, names: list[str]) -> dict[str, Path]:
    """``DIR`` for a single profile, ``DIR/<profile>`` for each of several."""
    return {n: out_dir if len(names) == 1 else out_dir / n for n in names}


class _LineProgress(RunProgress):
    """A local run's progress as the profile's line."""

    def __init__(self, fleet: FleetProgress, profile: str, node: str) -> None:
        self.fleet, self.profile, self.node = fleet, profile, node
        self.total, self.n = 0, 0

    def start(self, total: int) -> None:
        self.total = total

    def step(self, label: str) -> None:
        self.fleet.update(ProfileLine(self.profile, "running", self.n, self.total, label, self.node))

    def done(self, label: str) -> None:
        self.n += 1


def run_fleet(profiles: tuple[str, ...], out_dir: Path, opts: RunOptions, cluster: str | None = None,
              progress: FleetProgress | None = None, shared_dir: Path | None = None) -> FleetResult:
    """Run every profile (see the module docstring); ``opts`` holds the settings shared by all;
    ``shared_dir`` (with ``cluster``): a folder every node mounts, through which files travel."""
    from ..profiles import load_profile

    t0 = time.perf_counter()
    ui = progress or FleetProgress()
    loaded = [load_profile(p) for p in profiles]  # every name checked before any work
    names = [p.name for p in loaded]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"Two of the profiles given are both named {dup[0]}.",
                        "Give each profile once; copies need their own file name (the name is the file's stem).")
    folders = profile_folders(out_dir, names)
    records: list[Any] = []
    if shared_dir is not None and cluster is None:
        raise UserError("--shared-dir goes with --cluster.",
                        "Drop --shared-dir, or add --cluster ADDRESS: it names a folder every node of a cluster mounts.")
    if cluster is not None:
        if opts.prepare_only:
            raise UserError("--prepare-only and --cluster do not go together.",
                            "Drop --prepare-only: on a cluster the preparation runs once per graph on any node anyway.")
        from ..cluster.address import parse_address
        from ..cluster.scheduler import run_on_cluster

        address = parse_address(cluster)
        outcomes = run_on_cluster(address, loaded, out_dir, folders, opts, ui, records, shared_dir)
    else:
        outcomes = [_run_local(p.name, p.path, folders[p.name], opts, ui) for p in loaded]
    result = FleetResult(out_dir, outcomes, None, None, 0.0, [r.to_dict() for r in records])
    if len(loaded) > 1 or cluster is not None:  # one profile keeps DIR/report.html as its own report
        result.fleet_json, result.report = write_fleet_report(out_dir, result, cluster, html_page=len(loaded) > 1)
    result.seconds = time.perf_counter() - t0
    return result


def _run_local(name: str, path: Path, folder: Path, opts: RunOptions, ui: FleetProgress) -> ProfileOutcome:
    import socket

    from ..pipeline.manifest import error_text

    node = socket.gethostname()
    try:
        r = run_job(replace(opts, profile=path, out_dir=folder), _LineProgress(ui, name, node))
    except UserError as e:  # this profile cannot run here (a backend, TensorRT, the GPU): the others go on
        o = ProfileOutcome(name, folder, "not run", e.exit_code if e.exit_code != 1 else 1, str(e))
    except Exception as e:
        from ..io import is_environment_error

        if is_environment_error(e):
            raise
        o = ProfileOutcome(name, folder, "failed", 1, error_text(e))
    else:
        o = ProfileOutcome(name, folder, r.verdict.status, r.verdict.exit_code, "", r.verdict.lines(), node, r.seconds)
    ui.update(ProfileLine(name, o.status, node=node, note=o.message.splitlines()[0] if o.message else ""))
    return o


# --- the fleet report ------------------------------------------------------------------------------


def _summary(folder: Path) -> Any:
    """A profile's ``summary.json`` as :class:`exporter.schema.run_folder.SummaryDoc`; None when it is
    missing or does not follow the schema (a profile that did not run keeps an older file: read back,
    untrusted, docs/security.md)."""
    from ..errors import UntrustedFile
    from ..schema import load_document
    from ..schema.run_folder import SummaryDoc

    try:
        return load_document(SummaryDoc, folder / SUMMARY_JSON)
    except (OSError, UntrustedFile):
        return None


def fleet_tables(outcomes: list[ProfileOutcome]) -> dict[str, Any]:
    """Latency (p50 ms and speedup over the ViT) per model, grid, precision and batch, and top-1 per
    model, grid and precision, one column per profile."""
    latency: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    accuracy: dict[tuple[str, str, str], dict[str, Any]] = {}
    for o in outcomes:
        s = _summary(o.folder)
        if s is None:
            continue
        for r in s.summary or []:
            row = latency.setdefault((r.model, r.grid, r.precision, r.batch), {})
            row[o.name] = {"p50_ms": r.p50_ms, "speedup": r.speedup, "backend": r.backend}
        for a in s.accuracy or []:
            row = accuracy.setdefault((a.model or "?", a.grid, a.precision), {})
            row[o.name] = {"top1": a.top1, "status": a.status}
    return {
        "latency": [{"model": k[0], "grid": k[1], "precision": k[2], "batch": k[3], "profiles": v}
                    for k, v in latency.items()],
        "accuracy": [{"model": k[0], "grid": k[1], "precision": k[2], "profiles": v} for k, v in accuracy.items()],
    }


def write_fleet_report(out_dir: Path, result: FleetResult, cluster: str | None,
                       html_page: bool = True) -> tuple[Path, Path | None]:
    """``DIR/fleet.json`` (with the cluster's task records) and, for several profiles, ``DIR/report.html``."""
    from .. import __version__
    from ..io import atomic_path, write_json
    from ..run.report import _CSS, _table

    tables = fleet_tables(result.outcomes)
    doc = {
        "kind": "lookupvit-fleet", "tool_version": __version__, "cluster": cluster,
        "status": result.status, "exit_code": result.exit_code,
        "profiles": [o.to_dict(out_dir) for o in result.outcomes], **tables, "tasks": result.tasks,
    }
    json_path = write_json(out_dir / FLEET_JSON, doc)
    if not html_page:
        return json_path, None
    names = [o.name for o in result.outcomes]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>lookupvit run: {html.escape(', '.join(names))}</title><style>{_CSS}</style></head><body>",
        f"<h1>LookupViT deployment runs: {html.escape(', '.join(names))}</h1>",
        f"<p class='sub'>{html.escape('on the Ray cluster ' + cluster if cluster else 'on this machine')} &middot; "
        f"{html.escape(result.status)} &middot; lookupvit-deploy {html.escape(__version__)}</p>",
        "<h2>Profiles</h2>",
        _table(["profile", "status", "node", "seconds", "report", "notes"],
               [[o.name, o.status, o.node or "-", f"{o.seconds:.0f}",
                 f"{rel_to(o.folder, out_dir)}/{REPORT_HTML}" if (o.folder / REPORT_HTML).is_file() else "-",
                 "; ".join([o.message, *o.lines][:4]) or "-"] for o in result.outcomes],
               classes=["" if o.exit_code == 0 else "bad" for o in result.outcomes]),
        "<p>" + " &middot; ".join(
            f"<a href='{html.escape(str(rel_to(o.folder, out_dir)))}/{REPORT_HTML}'>{html.escape(o.name)}: its report</a>"
            for o in result.outcomes if (o.folder / REPORT_HTML).is_file()) + "</p>",
        "<h2>Latency per grid (p50 ms, smallest batch)</h2>",
        _table(["model", "grid", "precision", "batch", *names],
               [[r["model"], r["grid"], r["precision"], r["batch"],
                 *[f((r["profiles"].get(n) or {}).get("p50_ms"), ".3f") for n in names]] for r in tables["latency"]],
               left=3),
        "<h2>Speedup over the ViT baseline</h2>",
        _table(["model", "grid", "precision", "batch", *names],
               [[r["model"], r["grid"], r["precision"], r["batch"],
                 *[f((r["profiles"].get(n) or {}).get("speedup"), ".2f") for n in names]]
                for r in tables["latency"] if any((v or {}).get("speedup") is not None for v in r["profiles"].values())],
               left=3),
        "<h2>Accuracy per precision (top-1 %)</h2>",
        _table(["model", "grid", "precision", *names],
               [[r["model"], r["grid"], r["precision"],
                 *[f((r["profiles"].get(n) or {}).get("top1"), ".2f") for n in names]] for r in tables["accuracy"]],
               left=3),
        "</body></html>",
    ]
    path = out_dir / REPORT_HTML
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return json_path, path
