"""The run's report: ``summary.json`` (machine-readable) and ``report.html`` (one self-contained page).

The HTML page needs nothing beside it: styles are inline and every plot is embedded as a base64
PNG. It shows the summary table, the plots (each with a caption saying what it shows), the latency
table (every cell, with the spread of its round medians, the noise flag with the load average, and
the reason for cells that could not run), the measured vs analytic speedups over the ViT, the
accuracy per precision and grid, the validations, every stage (ran / skipped / failed, with
times), the matrix-multiply peak with its spread, the disk the run wrote, the profile's settings
that apply to its backend, tool versions and the machine.

With ``[models] dynamic_grid = true`` both say which artefacts are shared (:func:`shared_graphs`): per
LookupViT, the one dynamic-grid graph (or engine) per precision serving all its grids, the bytes on
disk against K per-grid graphs holding the same weights, and the file each (grid, precision) cell ran.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..backends.registry import known
from ..io import format_bytes
from ..pipeline.manifest import StageOutcome
from ..pipeline.stages import BUILD, EXPORT, OPTIMIZE, PRECISION
from ..pipeline.unit import Unit
from ..profiles import Profile
from .state import RunState


def _f(v: Any, fmt: str = ".3g", suffix: str = "") -> str:
    if v is None:
        return "-"
    try:
        return f"{v:{fmt}}{suffix}"
    except (TypeError, ValueError):
        return str(v)


def _pct(v: Any, err: Any = None) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.0f}" + (f" +-{100 * err:.0f}" if err is not None else "") + "%"


def _spread(c: dict[str, Any]) -> str:
    """The spread of a cell's round medians; NOISY (with the load average) above the threshold."""
    lat = c.get("latency") or {}
    if lat.get("spread") is None:
        return "-"
    from ..latency.pace import slow_flag

    text = f"{100 * lat['spread']:.1f}%"
    return (f"{text} NOISY (load {c.get('load')})" if c.get("noisy") else text) + slow_flag(c.get("slow"), c.get("pace"))


# Profile keys that apply only to TensorRT builds (left out of a CPU profile's settings table).
TENSORRT_ONLY = ("gpu", "compute_capability", "builder", "compatibility", "build_hash", "batch.min", "batch.max",
                 "benchmark.cuda_graphs")


def _runs_engines(name: object) -> bool:
    be = known(name)
    return be is not None and be.runs == "engine"


def settings_rows(prof: dict[str, Any]) -> list[list[str]]:
    """The profile's settings as (key, value) rows, without the keys that do not apply to its backend."""
    tensorrt = _runs_engines(prof.get("backend"))
    rows: list[list[str]] = []

    def walk(prefix: str, value: Any) -> None:
        if not tensorrt and any(prefix == k or prefix.startswith(k + ".") for k in TENSORRT_ONLY):
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
            return
        if isinstance(value, list):
            text = ", ".join(f"{v['variant']} (grids {' '.join(v.get('grids') or []) or '-'})"
                             if isinstance(v, dict) and "variant" in v else str(v) for v in value)
        else:
            text = "-" if value in (None, "") else str(value)
        rows.append([prefix, text])

    walk("", {k: v for k, v in prof.items() if k != "path"})
    return rows


def accuracy_rows(state: RunState) -> list[dict[str, Any]]:
    rows = []
    for variant, results in state.accuracy.items():
        for r in results:
            if not r:
                continue
            for c in r["cells"]:
                rows.append({"model": variant, "reference_top1": (r.get("reference") or {}).get(str(c["grid"])),
                             "backend": r.get("backend"), **c})
    return rows


def summary_rows(sweep: Any, accuracy: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model x grid x precision, at the smallest batch of the first backend."""
    if sweep is None:
        return []
    top1 = {(a["model"], str(a["grid"]), a["precision"]): a.get("top1") for a in accuracy}
    cells = [c for c in sweep.cells if c.status == "ok"]
    if not cells:
        return []
    backend = cells[0].backend
    batch = min(c.batch for c in cells if c.backend == backend)
    rows = []
    for c in cells:
        if c.backend != backend or c.batch != batch:
            continue
        rows.append({
            "model": c.model + (" (baseline)" if c.role == "baseline" else ""), "grid": c.grid, "precision": c.precision,
            "batch": c.batch, "backend": c.backend, "top1": top1.get((c.model, c.grid, c.precision)),
            "p50_ms": c.latency.p50_ms if c.latency else None, "spread": c.latency.spread if c.latency else None,
            "noisy": c.noisy, "load": c.load, "slow": c.slow, "pace": c.pace, "throughput": c.throughput, "gmacs": c.gmacs,
            "efficiency": c.efficiency, "efficiency_error": c.efficiency_error, "speedup": c.speedup,
            "analytic_speedup": c.analytic_speedup,
        })
    return rows


def _bytes_on_disk(path: Path) -> int:
    """A graph's bytes with its external data file (``<name>.data``), 0 when it is gone."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + ".data")) if p.is_file())


def shared_graphs(prof: Profile, out: Path, outcomes: list[StageOutcome]) -> list[dict[str, Any]]:
    """Per LookupViT of a ``dynamic_grid`` profile: the one graph per precision serving all its grids
    (the file the backend ran: engine, converted graph, optimised or exported graph), and its bytes
    against K per-grid graphs (an estimate: each holds the same weights; they are not made)."""
    from .scope import dynamic_grid_sets, plan_models

    latest = {o.id: o for o in outcomes}
    suffix = ".plan" if prof.is_tensorrt else ".onnx"
    entries = []
    for variant, grid_set in dynamic_grid_sets(prof, plan_models(prof)).items():
        files: list[dict[str, Any]] = []
        for p in prof.precisions:
            unit = Unit(variant, grid_set, p)
            ids = [unit.stage_id(BUILD, prof.name)] if prof.is_tensorrt else []
            ids += [unit.stage_id(PRECISION)] if p != "fp32" else [unit.at(None).stage_id(k) for k in (OPTIMIZE, EXPORT)]
            found = next((rel for i in ids for rel in (latest[i].outputs if i in latest else [])
                          if rel.endswith(suffix) and (out / rel).is_file()), None)
            if found is not None:
                files.append({"precision": p, "file": found, "bytes": _bytes_on_disk(out / found)})
        k = len(grid_set.grids)
        total = sum(f["bytes"] for f in files)
        line = (f"{variant}: one dynamic-grid {'engine' if prof.is_tensorrt else 'graph'} per precision serves grids "
                f"{grid_set.text} ({len(files)} file(s), {format_bytes(total)}, against about {k} x "
                f"{format_bytes(total)} = {format_bytes(k * total)} for per-grid {'engines' if prof.is_tensorrt else 'graphs'})")
        entries.append({
            "model": variant, "grids": grid_set.text.split(","), "files": files, "bytes": total,
            "per_grid_estimate_bytes": k * total, "line": line,
            "cells": [{"grid": g, "precision": f["precision"], "file": f["file"]}
                      for g in grid_set.text.split(",") for f in files],
        })
    return entries


def engine_rows(outcomes: list[StageOutcome], out: Path) -> list[dict[str, Any]]:
    """One row per engine build stage of a run (its latest outcome): the cell, the status, and for a
    built engine its file, size, build time, TensorRT flavour and target, and whether it was built
    ahead of time (no GPU here: never executed)."""
    latest: dict[str, StageOutcome] = {}
    for o in outcomes:
        if o.kind == BUILD:
            latest[o.id] = o
    rows = []
    for o in latest.values():
        _, model, grid, precision, profile = [*o.id.split(":"), "", "", "", ""][:5]
        r = o.result if isinstance(o.result, dict) else {}
        engine = r.get("engine")
        rel = None
        if isinstance(engine, str):
            with contextlib.suppress(ValueError):
                rel = str(Path(engine).resolve().relative_to(out.resolve()))
        rows.append({
            "model": model, "grid": grid.removeprefix("g"), "precision": precision, "profile": profile,
            "status": {"ran": "built", "skipped": "built"}.get(o.status, o.status),
            "reused": o.status == "skipped" or bool(r.get("cached")), "engine": rel,
            "engine_bytes": r.get("engine_bytes"), "build_seconds": r.get("build_seconds"),
            "tensorrt": r.get("tensorrt"), "target": r.get("target"), "ahead_of_time": r.get("ahead_of_time"),
            "note": o.note,
        })
    return rows


@dataclass(frozen=True)
class Answer:
    """What a run's report leads with: the verdict and why, the recommended setting, the deploy model's
    speed over its ViT, and what was not run."""

    status: str  # PASSED / FAILED / INCOMPLETE
    why: tuple[str, ...]  # the verdict's reasons (failed verdicts, failed stages, not run)
    recommendation: str  # pick's choice for the profile's [pick] budget, or why there is none
    deploy: tuple[str, ...]  # per latency model: its p50 and speedup over the ViT per grid
    not_run: int

    def lines(self) -> list[str]:
        out = [f"{self.status}" + (f": {self.why[0]}" if self.why else ": everything the profile asks for ran and passed")]
        out += [f"  {w}" for w in self.why[1:5]]
        if len(self.why) > 5:
            out.append(f"  ... and {len(self.why) - 5} more (the Stages table of the report, stages.json)")
        out.append(f"recommended: {self.recommendation}")
        out += [f"deploy model: {d}" for d in self.deploy]
        return out


def answer(summary: dict[str, Any], out: Path) -> Answer:
    """The answer block of a run (see :class:`Answer`), from its summary (``verdict`` set)."""
    from ..errors import UserError
    from ..serve.measurements import run_measurements
    from ..serve.pick import PickRequest, pick

    verdict = summary.get("verdict") or {}
    why = [*verdict.get("failed_verdicts", []), *verdict.get("failed_stages", []), *verdict.get("not_run", [])]
    settings = (summary["profile"].get("pick") or {})
    budget = settings.get("latency_ms")
    if budget is None:
        fronts = summary.get("pareto") or []
        rec = ("no [pick] latency_ms in the profile: see the Pareto front below, or run "
               "`lookupvit pick RUN --latency-ms L`") if fronts else "nothing to recommend: no model has both accuracy and latency"
    else:
        try:
            d = pick(run_measurements(summary, out), PickRequest(float(budget), None, settings.get("min_top1"),
                                                                 settings.get("percentile") or "p50"))
            c = d.chosen
            rec = (f"{c.model} grid {c.grid} {c.precision} at batch {c.batch}: p50 {c.p50_ms:.3g} ms "
                   f"(budget {budget:g} ms at {d.percentile}), top-1 {c.top1:.2f}%"
                   + (f", its compare verdict {c.accuracy_status}" if c.accuracy_status not in (None, "PASSED") else "")
                   + (" (NOISY latency)" if c.noisy else "") + f" [lookupvit pick {out} --latency-ms {budget:g}]")
        except UserError as e:
            rec = f"none within the profile's budget of {budget:g} ms: {e.message}"
    deploy = []
    cells = (summary.get("latency") or {}).get("cells") or []
    for m in (summary["profile"].get("models") or {}).get("latency") or []:
        mine = [c for c in cells if c.get("model") == m["variant"] and c.get("status") == "ok" and c.get("role") != "baseline"]
        if not mine:
            deploy.append(f"{m['variant']}: not timed")
            continue
        first = min(mine, key=lambda c: (c["batch"], c["precision"] != mine[0]["precision"]))
        at = [c for c in mine if c["batch"] == first["batch"] and c["precision"] == first["precision"]]
        parts = [f"g{c['grid']} {c['latency']['p50_ms']:.3g} ms" + (f" ({c['speedup']:.2f}x)" if c.get("speedup") else "")
                 for c in at]
        deploy.append(f"{m['variant']} {first['precision']} batch {first['batch']} on {first['backend']}, p50 per grid "
                      f"(speedup over {at[0].get('baseline') or 'the ViT'}): " + ", ".join(parts)
                      + "; its accuracy is not measured by this profile")
    return Answer(str(verdict.get("status") or "?"), tuple(why), rec, tuple(deploy), len(verdict.get("not_run", [])))


def answer_html(a: Answer) -> str:
    cls = {"PASSED": "ok", "FAILED": "fail"}.get(a.status, "warn")
    why = "".join(f"<li>{html.escape(w)}</li>" for w in a.why[:12])
    more = f"<li>... and {len(a.why) - 12} more (see Stages)</li>" if len(a.why) > 12 else ""
    deploy = "".join(f"<li>{html.escape(d)}</li>" for d in a.deploy)
    return (f"<div class='answer'><p class='verdict {cls}'>{html.escape(a.status)}</p>"
            + (f"<ul>{why}{more}</ul>" if why else "<p>Everything the profile asks for ran and passed.</p>")
            + f"<p><b>Recommended setting:</b> {html.escape(a.recommendation)}</p>"
            + (f"<p><b>Deploy model:</b></p><ul>{deploy}</ul>" if deploy else "") + "</div>")


def engines_html(engines: list[dict[str, Any]]) -> str:
    """The engines of a run (:func:`engine_rows`) as a report section."""
    aot = any(e.get("ahead_of_time") for e in engines)
    text = ("<h2>TensorRT engines</h2><p class='sub'>One engine per graph and precision, built by the TensorRT named "
            "for the target named (a compute capability: compiled for it; a GPU: tuned on it).")
    if aot:
        text += (" Engines built ahead of time were compiled on a machine without a GPU: they have not been "
                 "deserialized or executed, and their validation and timing are reported as not run here.")
    rows = [[e["model"], e["grid"] or "-", e["precision"], e["status"] + (" (reused)" if e.get("reused") else ""),
             _f(e["engine_bytes"] / 2**20 if e.get("engine_bytes") else None, ".1f"), _f(e.get("build_seconds"), ".1f"),
             e.get("tensorrt") or "-", e.get("target") or "-",
             "yes" if e.get("ahead_of_time") else ("no" if e.get("ahead_of_time") is False else "-"),
             e.get("engine") or e.get("note") or "-"] for e in engines]
    classes = ["" if e["status"] == "built" else "bad" for e in engines]
    return text + "</p>" + _table(["model", "grid", "precision", "build", "MiB", "build s", "TensorRT", "target",
                                   "ahead of time", "engine (or why not)"], rows, left=3, classes=classes)


def build_summary(
    prof: Profile, out: Path, outcomes: list[StageOutcome], state: RunState, started: str, seconds: float
) -> dict[str, Any]:
    from ..latency.machine import machine_info
    from ..versions import tool_versions

    sweep = state.sweep
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    acc = accuracy_rows(state)
    latency = None
    if sweep is not None:
        cells = []
        for c in sweep.cells:
            d = c.to_dict()
            d.pop("samples_ms", None)
            cells.append(d)
        latency = {"file": str(Path(state.sweep_path).relative_to(out)) if state.sweep_path else None,
                   "threads": sweep.threads, "peak": sweep.peak.to_dict() if sweep.peak else None, "cells": cells,
                   "seconds": sweep.seconds, "noise_threshold": sweep.noise_threshold, "load": sweep.load,
                   "noisy": sum(1 for c in sweep.cells if c.noisy),
                   "pace": sweep.pace.to_dict() if sweep.pace else None, "slow": sum(1 for c in sweep.cells if c.slow)}
    doc: dict[str, Any] = {
        "kind": "lookupvit-run",
        "tool_version": __version__,
        "started": started,
        "seconds": round(seconds, 2),
        "run_dir": str(out),
        "profile": prof.to_dict(),
        "budget_s": None if state.budget_s == float("inf") else state.budget_s,
        "stages": [o.to_dict() for o in outcomes],
        "stage_counts": counts,
        "summary": summary_rows(sweep, acc),
        "validation": [v for v in state.validation if v],
        "checks": state.checks,
        "engines": engine_rows(outcomes, out),
        "accuracy": acc,
        "latency": latency,
        "plots": [str(Path(p).relative_to(out)) for p in state.plots],
        "disk": state.disk,
        "shared": shared_graphs(prof, out, outcomes),
        "report": "report.html",
        "machine": sweep.machine if sweep is not None and sweep.machine else machine_info(),
        "versions": tool_versions(),
    }
    from ..serve.pareto import fronts_summary  # the Pareto fronts `lookupvit pick` chooses on

    doc["pareto"] = fronts_summary(doc)
    return doc


# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px 32px; color: #1b1f24; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #d0d7de; }
p.sub { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f6f8fa; } td.l, th.l { text-align: left; }
tr.bad td { background: #fff1f0; } tr.skip td { color: #57606a; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0 0 8px; max-width: 100%; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 12.5px; max-width: 560px; margin-top: 4px; }
tr.noisy td { background: #fff8c5; }
pre { background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; }
.ok { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; } .warn { color: #9a6700; font-weight: 600; }
div.answer { border: 2px solid #d0d7de; border-radius: 6px; padding: 4px 16px; margin: 12px 0 20px; background: #f6f8fa; }
p.verdict { font-size: 20px; margin: 8px 0; }
"""


def _table(columns: list[str], rows: list[list[Any]], left: int = 1, classes: list[str] | None = None) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(c)}</th>' for i, c in enumerate(columns))
    body = []
    for r_i, r in enumerate(rows):
        cls = f' class="{classes[r_i]}"' if classes and classes[r_i] else ""
        tds = "".join(f'<td class="{"l" if i < left else ""}">{html.escape(str(v))}</td>' for i, v in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" title="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


def _speed(c: dict[str, Any]) -> str:
    if c.get("speedup") is None:
        return "-"
    return f"{c['speedup']:.2f}x" + (f" ({c['analytic_speedup']:.2f}x)" if c.get("analytic_speedup") else "")


PLOT_CAPTIONS = {
    "latency_": "Latency per batch against the compressed grid (x: grid and its token count M), one panel per "
                "batch, one line per backend and precision: the point is the median (p50), the bar the "
                "interquartile range (p25 to p75). The dashed level is the ViT baseline. A latency axis is logarithmic only when the values "
                "span more than 30x, and then in every panel.",
    "speedup": "Speedup over the ViT baseline per grid: measured (interleaved rounds, median over median) and the "
               "analytic MAC ratio (dashed). Above 1: the LookupViT is faster.",
    "accuracy_latency": "Top-1 against latency per image, one panel per batch, one point per grid joined in "
                        "latency order (bars: p25 to p75 of the latency). The accuracy axis names what one test "
                        "image is worth: differences of a point or two are one or two images.",
}


def plot_caption(name: str) -> str:
    for prefix, text in PLOT_CAPTIONS.items():
        if name.startswith(prefix):
            return text
    return name


def write_report(summary: dict[str, Any], state: RunState, path: Path) -> Path:
    """Write the self-contained HTML report; returns its path."""
    from ..io import atomic_path
    from ..latency.pace import PaceSummary, pace_text
    from ..latency.sweep import noise_advice

    prof = summary["profile"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>lookupvit run: {html.escape(prof['name'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>LookupViT deployment run: profile <code>{html.escape(prof['name'])}</code></h1>",
        f"<p class='sub'>{html.escape(prof.get('description') or '')} &middot; backend {html.escape(prof['backend'])}"
        f" &middot; started {html.escape(summary['started'])} &middot; {summary['seconds']:.0f} s"
        f" &middot; lookupvit-deploy {html.escape(summary['tool_version'])}</p>",
    ]
    parts.append(answer_html(answer(summary, Path(summary["run_dir"]))))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary["stage_counts"].items()))
    budget = summary.get("budget_s")
    budget_text = f"time budget for the latency models {budget / 60:.0f} min" if budget else "no time budget"
    parts.append(f"<p>Stages: {html.escape(counts or 'none')}; {budget_text}. "
                 f"Run folder: <code>{html.escape(summary['run_dir'])}</code>.</p>")

    parts.append("<h2>Summary</h2>")
    rows = summary["summary"]
    if rows:
        parts.append(_table(
            ["model", "grid", "precision", "backend", "batch", "top-1 %", "p50 ms", "spread", "img/s", "GMACs/img",
             "efficiency", "speedup over ViT (analytic)"],
            [[r["model"], r["grid"], r["precision"], r["backend"], r["batch"], _f(r["top1"], ".2f"), _f(r["p50_ms"], ".2f"),
              _spread({"latency": {"spread": r.get("spread")}, "noisy": r.get("noisy"), "load": r.get("load"),
                       "slow": r.get("slow"), "pace": r.get("pace")}),
              _f(r["throughput"], ".1f"), _f(r["gmacs"], ".4g"), _pct(r["efficiency"], r.get("efficiency_error")),
              _speed(r)] for r in rows],
            left=4, classes=["noisy" if r.get("noisy") or r.get("slow") else "" for r in rows],
        ))
        parts.append("<p class='sub'>Spread: the coefficient of variation of the cell's round medians (its calls "
                     "are timed in interleaved rounds); NOISY above the run's threshold, with the 1-minute load "
                     "average when the cell was timed; SLOW when most of its calls ran in a slow phase of the machine "
                     "(pace: a reference loop's time over its quiet time; see Latency per cell). Efficiency: achieved GFLOP/s (2 x analytic MACs / p50 time) "
                     "over the matrix-multiply peak of the same dtype (int8 cells: the int8 peak; fp16 on the CPU: "
                     "the fp32 peak) measured in the same run with the same threads; +- combines the cell's and the "
                     "peak's spreads. Speedup: the ViT baseline's time over the LookupViT's, timed interleaved "
                     "(median of paired rounds); in brackets the analytic MAC ratio.</p>")
    else:
        parts.append("<p>No latency was measured (see the stages below).</p>")

    parts.append("<h2>Plots</h2><div class='plots'>")
    for p in state.plots:
        parts.append(f"<figure>{_img(Path(p))}<figcaption>{html.escape(plot_caption(Path(p).name))}</figcaption></figure>")
    parts.append("</div>")
    from ..serve.front_plot import fronts_html

    parts.append(fronts_html(summary, Path(path).parent))

    lat = summary.get("latency")
    if lat:
        parts.append("<h2>Latency per cell</h2>")
        cells = lat["cells"]
        noisy = lat.get("noisy") or 0
        threshold = lat.get("noise_threshold")
        load = " ".join(str(x) for x in lat.get("load") or []) or "unknown"
        parts.append(
            "<p>Each cell was warmed up, then timed in interleaved rounds for a minimum number of calls and a "
            "minimum duration (the profile's <code>[benchmark]</code>). "
            + (f"<b>{noisy} cell(s) are marked NOISY</b>: their round medians vary by more than "
               f"{100 * threshold:.0f}% (coefficient of variation); compare their figures with care: "
               f"{html.escape(noise_advice(lat.get('load') or [], summary['machine'].get('cores')))}. "
               if noisy and threshold is not None else
               f"No cell's round medians vary by more than {100 * (threshold or 0):.0f}%. ")
            + f"Load average (1, 5, 15 min) when the sweep began: {html.escape(load)} on "
            f"{html.escape(str(summary['machine'].get('cores', '?')))} cores. "
            + (html.escape(pace_text(PaceSummary.from_dict(lat["pace"]), lat.get("slow") or 0)) if lat.get("pace") else "")
            + "</p>")
        parts.append(_table(
            ["model", "grid", "backend", "precision", "batch", "status", "p10 ms", "p50 ms", "p90 ms", "p99 ms",
             "spread", "calls", "img/s", "GMACs/img", "GFLOP/s", "efficiency", "speedup (analytic)", "device / reason"],
            [[c["model"] + (" (baseline)" if c["role"] == "baseline" else ""), c["grid"], c["backend"], c["precision"],
              c["batch"], c["status"], _f(c["latency"] and c["latency"].get("p10_ms"), ".2f"),
              _f(c["latency"] and c["latency"]["p50_ms"], ".2f"),
              _f(c["latency"] and c["latency"]["p90_ms"], ".2f"), _f(c["latency"] and c["latency"]["p99_ms"], ".2f"),
              _spread(c), _f(c["latency"] and c["latency"]["n"], "d"), _f(c["throughput"], ".1f"), _f(c["gmacs"], ".4g"),
              _f(c["gflops"], ".1f"), _pct(c["efficiency"], c.get("efficiency_error")), _speed(c),
              c["reason"] or f"{c['device']}: {c['detail']}"] for c in cells],
            left=6, classes=["bad" if c["status"] != "ok" else ("noisy" if c.get("noisy") or c.get("slow") else "")
                             for c in cells],
        ))
        speed = [c for c in cells if c.get("speedup") is not None]
        if speed:
            parts.append("<h2>Speedup over the ViT baseline: measured vs analytic</h2>")
            base = {(c["paired_with"], c["backend"], c["precision"], c["batch"]): c for c in cells if c["role"] == "baseline"}
            rows2 = []
            for c in speed:
                b = base.get((c["model"], c["backend"], c["precision"], c["batch"]))
                ratio = c["speedup"] / c["analytic_speedup"] if c.get("analytic_speedup") else None
                rows2.append([c["model"], c["baseline"], c["grid"], c["backend"], c["precision"], c["batch"],
                              _f(c["latency"]["p50_ms"], ".2f"), _f(b and b["latency"] and b["latency"]["p50_ms"], ".2f"),
                              _f(c["speedup"], ".2f", "x"), _f(c["analytic_speedup"], ".2f", "x"), _f(ratio, ".2f")])
            parts.append(_table(["model", "baseline", "grid", "backend", "precision", "batch", "LookupViT p50 ms",
                                 "ViT p50 ms", "measured", "analytic", "measured / analytic"], rows2, left=5))
        peak = lat.get("peak") or {}
        if peak:
            parts.append(f"<h2>Matrix-multiply peak ({peak.get('threads')} threads)</h2>")
            best = ", ".join(f"{k} {v['gflops']:.1f} {'GOP/s' if 'int8' in k else 'GFLOP/s'}"
                             + (f" +-{100 * v['spread']:.1f}%" if v.get("spread") is not None else "")
                             for k, v in (peak.get("peaks") or {}).items())
            parts.append(f"<p>The best of each device and dtype: {html.escape(best)} (load average "
                         f"{html.escape(str(peak.get('load', '?')))} when measured). Each row is the median of its "
                         "round rates (the kernels take turns, round by round); spread: their coefficient of "
                         "variation. A cell is divided by the peak at its own thread count (@1: one thread). Rounds "
                         "that met a slow phase of the machine were timed again, as latency chunks are. A peak "
                         "measured while other processes held some of the cores is lower, and every efficiency with "
                         "it higher.</p>")
            parts.append(_table(
                ["engine", "device", "dtype", "threads", "n", "G(FL)OP/s (median of rounds)", "spread", "rounds", "calls"],
                [[m["engine"], m["device"], m["dtype"], m.get("threads") or peak.get("threads"), m["size"],
                  _f(m["gflops"], ".1f"),
                  _pct(m.get("spread")) if m.get("spread") is None else f"{100 * m['spread']:.1f}%",
                  m.get("rounds", 1), m["repeats"]]
                 for m in peak.get("measurements", [])],
                left=3,
            ))

    if summary["accuracy"]:
        parts.append("<h2>Accuracy per precision and grid (compare)</h2>")
        acc = summary["accuracy"]
        parts.append(_table(
            ["model", "grid", "precision", "status", "top-1 %", "PyTorch fp32 top-1 %", "delta (points)",
             "agreement %", "max rel error", "cosine", "samples", "reason"],
            [[a["model"], a["grid"], a["precision"], a["status"], _f(a.get("top1"), ".2f"), _f(a.get("reference_top1"), ".2f"),
              _f(a.get("top1_delta"), "+.2f"), _f(a.get("agreement"), ".2f"), _f(a.get("max_rel"), ".3g"),
              _f(a.get("cosine"), ".6f"), a.get("samples") or "-", a.get("reason") or ""] for a in acc],
            left=4, classes=["" if a["status"] == "PASSED" else "bad" for a in acc],
        ))

    if summary["validation"]:
        parts.append("<h2>Validation against PyTorch</h2><p class='sub'>Each graph (or engine) as its backend runs it "
                     "against the PyTorch fp32 model, on the inputs <code>lookupvit validate</code> uses by default: the "
                     "labelled data a model declares (lookupvit_digits: the digits held-out split, what its int8/fp8 "
                     "graphs were calibrated on), else seeded random images (column 'inputs').</p>")
        val = summary["validation"]
        parts.append(_table(
            ["model", "grid", "precision", "backend", "status", "inputs", "samples", "max rel error", "cosine",
             "top-1 agreement", "tolerance (rel / cos)", "file"],
            [[v["model"], v["grid"], v["precision"], v["backend"], v["status"], v.get("data") or "-", v["samples"],
              _f(v["max_rel"], ".3g"),
              _f(v["cosine"], ".6f"), _f(None if v["top1_agreement"] is None else 100 * v["top1_agreement"], ".1f", "%"),
              f"{v['tolerance']['max_error']:g} / {v['tolerance']['min_cosine']}" if v.get("tolerance") else "-", v["file"]]
             for v in val],
            left=5, classes=["" if v["status"] == "PASSED" else "bad" for v in val],
        ))

    if summary.get("checks"):
        parts.append("<h2>TensorRT readiness (lookupvit check)</h2>")
        parts.append("<p class='sub'>Each graph against TensorRT's ONNX parser rules, and how many of its attentions "
                     "TensorRT's fused attention kernels are expected to run (unknown: a shape or precision the rules "
                     "cannot decide).</p>")
        rows = []
        for c in summary["checks"]:
            att = c.get("attention") or {}
            rows.append([c["model"], c["grid"], c["precision"], "passes" if c["passed"] else f"{c['errors']} error(s)",
                         f"{att.get('fused', 0)}/{att.get('total', 0)}", att.get("unknown", 0),
                         "; ".join(att.get("not_fused", [])) or "-"])
        parts.append(_table(["model", "grid", "precision", "check", "fused attention", "unknown", "why not fused"],
                            rows, left=3))
    if summary.get("engines"):
        parts.append(engines_html(summary["engines"]))
    parts.append("<h2>Stages</h2>")
    st = summary["stages"]
    parts.append(_table(
        ["stage", "status", "seconds", "note"],
        [[s["id"], s["status"], _f(s["seconds"], ".1f"), s["note"]] for s in st],
        left=2, classes=["bad" if s["status"] in ("failed", "not run") else ("skip" if s["status"] == "skipped" else "") for s in st],
    ))

    shared = summary.get("shared") or []
    if shared:
        parts.append("<h2>Shared artefacts (dynamic-grid graphs)</h2>")
        parts.append("<p>" + "<br>".join(html.escape(e["line"]) for e in shared) + "</p>")
        parts.append(_table(["model", "grid", "precision", "file"],
                            [[e["model"], c["grid"], c["precision"], c["file"]] for e in shared for c in e["cells"]], left=4))

    disk = summary.get("disk")
    if disk:
        parts.append("<h2>Disk</h2>")
        parts.append(f"<p>This run wrote {format_bytes(disk.get('written'))}; the run folder holds "
                     f"{format_bytes(disk.get('folder'))}. <code>--keep {html.escape(str(disk.get('keep')))}</code>"
                     + (f" removed {disk.get('dropped_files', 0)} intermediate file(s), "
                        f"{format_bytes(disk.get('dropped'))} (exported graphs whose optimised graph is kept; a rerun "
                        "still skips their stages)." if disk.get("keep") == "final" else ": every file is kept.")
                     + "</p>")

    parts.append("<h2>Settings (the profile)</h2>")
    if not _runs_engines(prof.get("backend")):
        parts.append("<p class='sub'>TensorRT-only keys (builder, compatibility, batch range, CUDA graphs) do not "
                     "apply to this backend and are left out.</p>")
    parts.append(_table(["key", "value"], settings_rows(prof), left=2))
    parts.append("<h2>Machine</h2>")
    parts.append(_table(["item", "value"], [[k, json.dumps(v) if isinstance(v, dict | list) else v]
                                            for k, v in summary["machine"].items()], left=2))
    parts.append("<h2>Tool versions</h2>")
    parts.append(_table(["package", "version"], [[k, v or "-"] for k, v in summary["versions"].items()], left=2))
    parts.append("</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
