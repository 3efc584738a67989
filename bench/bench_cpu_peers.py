"""The CPU engines side by side on the same exported graphs: ONNX Runtime on the plain export, after
`lookupvit optimize --form attention`, after `--form cpu`, after ONNX Runtime's transformers
optimizer; OpenVINO on the plain export, on the `--form attention` graph (what `run --profile
cpu-openvino` times) and on the `--form cpu` graph (when that graph holds only standard ONNX
operators, as the default cpu order, merge-projections, writes); PyTorch eager. LookupViT-B/16 at
grids 3 and 7 and ViT-B/16, batch 1 and 8.

    python bench/bench_cpu_peers.py                       # docs/benchmarks.md's table (tens of minutes on 2 cores)
    python bench/bench_cpu_peers.py --rounds 3 --batches 1
    python bench/bench_cpu_peers.py --models lookupvit_tiny32:2,vit_tiny32 --rounds 5   # a quick check

Method: the graphs are made once into --work (an existing file is reused). For each batch and each
model, every engine is loaded with the same thread count and one fixed input, warmed up, then timed
in interleaved rounds: round i runs every engine once, in an order rotated each round, so drift and
other load fall on all engines alike. Reported per cell: the median over rounds (each round's figure
is the median of --calls calls), the spread (p90/p10 of the rounds), the paired ratio to the plain
export, and per engine and batch the LookupViT's measured speedup over the ViT against the analytic
one (MACs of the cost model). ``os.getloadavg()`` is recorded before and after every block: on a
loaded machine the figures are noisy and the JSON says so. Engines load the graphs from
exporter.backends (ONNX Runtime's CPU provider at its default optimisation level, OpenVINO's CPU
plugin in f32 with the latency hint, PyTorch eager on the CPU).

The issue's three CPU targets are judged on every run, printed as MET / MISSED (NOT MEASURED when an
engine they need was left out) and written to the JSON under "verdicts"; a comparison of two engines
is the paired ratio (the median over rounds of their per-round ratio, both timed in the same round):
  1. the `--form cpu` graph on ONNX Runtime at least as fast as the plain export and as ONNX
     Runtime's transformers optimizer, per model and batch (paired ratio <= 1);
  2. the project's best ONNX Runtime path (plain, attention or cpu graph: the lowest median) at least
     as fast as OpenVINO on the plain export, per model and batch;
  3. each LookupViT's speedup over the ViT on the project's best ONNX Runtime paths at least 0.95 of
     the analytic MAC ratio, per batch (the issue names LookupViT-B/16 g7 and ViT-B/16 at batch 1 and 8).
Then docs/openvino.md's rule for the embedded default: SWITCH to `cpu-openvino` where OpenVINO is installed
when, for every model and batch, OpenVINO on the attention graph takes at least 5% less time than the
project's best ONNX Runtime path (paired ratio of that path to it >= 1.05) on a quiet machine; KEEP
ONNX Runtime otherwise (a loaded run is never a SWITCH).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = ("ort-plain", "ort-attention", "ort-cpu", "ort-transformers", "openvino", "openvino-attention", "openvino-cpu",
           "torch")
PROJECT_PATHS = ("ort-plain", "ort-attention", "ort-cpu")  # the project's graphs on ONNX Runtime
OF_ANALYTIC = 0.95  # target 3: the share of the analytic speedup to reach
SWITCH_MARGIN = 1.05  # the default's rule: OpenVINO at least 5% ahead of the best ONNX Runtime path
DEFAULT_MODELS = "lookupvit_b16:3,lookupvit_b16:7,vit_b16"


def parse_models(spec: str) -> list[tuple[str, str | None]]:
    out = []
    for item in spec.split(","):
        variant, _, grid = item.strip().partition(":")
        out.append((variant, grid or None))
    return out


def label(variant: str, grid: str | None) -> str:
    return f"{variant} g{grid}" if grid else variant


def prepare(variant: str, grid: str | None, work: Path) -> dict[str, Path]:
    """The graphs of one model: plain export, optimize attention/cpu, ORT's transformers optimizer."""
    from exporter.export import export_onnx, resolve_variant_source
    from exporter.models import get_variant
    from exporter.passes import optimize_model

    folder = work / (variant + (f"_g{grid}" if grid else ""))
    src = resolve_variant_source(variant, grid=grid)
    plain = folder / "plain" / f"{src.file_stem()}.onnx"
    if not plain.is_file():
        t0 = time.perf_counter()
        plain = export_onnx(src, folder / "plain").path
        print(f"export {label(variant, grid)}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    paths = {"ort-plain": plain, "openvino": plain}
    for target in ("attention", "cpu"):
        out = folder / target / plain.name.replace(".onnx", f".{target}.onnx")
        if not out.is_file():
            t0 = time.perf_counter()
            report = optimize_model(plain, out, target=target)
            print(f"optimize {label(variant, grid)} --target {target}: {time.perf_counter() - t0:.0f} s, kept "
                  f"{','.join(report.kept)}", file=sys.stderr)
        paths[f"ort-{target}"] = out
    paths["openvino-attention"] = paths["ort-attention"]  # the graph an OpenVINO profile's run times
    paths["openvino-cpu"] = paths["ort-cpu"]  # timed when it holds only standard ONNX operators
    ortx = folder / "ort-transformers" / plain.name.replace(".onnx", ".ortx.onnx")
    if not ortx.is_file():
        from onnxruntime.transformers.optimizer import optimize_model as ort_optimize

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        cfg = get_variant(variant).config
        ortx.parent.mkdir(parents=True, exist_ok=True)
        ort_optimize(str(plain), model_type="vit", num_heads=cfg.heads, hidden_size=cfg.dim).save_model_to_file(str(ortx))
    paths["ort-transformers"] = ortx
    return paths


def timers(variant: str, grid: str | None, paths: dict[str, Path], batch: int, threads: int, engines: list[str]):
    from exporter.backends.onnxruntime.timer import ort_timer
    from exporter.backends.openvino.timer import ov_timer
    from exporter.backends.torch.timer import torch_timer
    from exporter.export import load_source, resolve_variant_source
    from exporter.models import get_variant, parse_grid

    cfg = get_variant(variant).config
    shape = tuple(cfg.input_shape)
    from exporter.backends.base import Unsupported

    out = {}
    for e in engines:
        if e.startswith("openvino"):
            try:
                out[e] = ov_timer(paths[e], batch, shape, threads)
            except Unsupported as why:  # a cpu graph with ONNX Runtime's contrib ops: not OpenVINO's to read
                print(f"{label(variant, grid)} b{batch}: {e} not timed: {why}", file=sys.stderr)
        elif e == "torch":
            import torch

            torch.set_num_threads(threads)
            module = load_source(resolve_variant_source(variant, grid=grid)).module
            g = parse_grid(grid, cfg.lookup_grid) if grid else None
            out[e] = torch_timer(module, batch, shape, "fp32", g)
        else:
            out[e] = ort_timer(paths[e], batch, shape, threads, prefer_cuda=False)
    return out


def measure(ts: dict, rounds: int, calls: int, warmup: int) -> dict[str, list[float]]:
    names = list(ts)
    for _ in range(warmup):
        for n in names:
            ts[n]()
    per_round: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for n in order:
            per_round[n].append(statistics.median(ts[n]() for _ in range(calls)))
    return per_round


def paired(by: dict[tuple, dict], model: str, batch: int, a: str, b: str) -> float | None:
    """Engine ``a`` over engine ``b``: the median of their per-round time ratios (None if either is absent)."""
    ra, rb = by.get((model, batch, a)), by.get((model, batch, b))
    if ra is None or rb is None:
        return None
    return statistics.median(x / y for x, y in zip(ra["rounds_ms"], rb["rounds_ms"]))


def best_project(by: dict[tuple, dict], model: str, batch: int) -> dict | None:
    """The project's fastest ONNX Runtime row (lowest median) for a model and batch."""
    rows = [by[(model, batch, e)] for e in PROJECT_PATHS if (model, batch, e) in by]
    return min(rows, key=lambda r: r["median_ms"]) if rows else None


def verdict(target: int, goal: str, checks: list[dict], missing: list[str]) -> dict[str, Any]:
    """MISSED when a check failed, NOT MEASURED when one could not be made, MET otherwise."""
    failed = [c for c in checks if not c["met"]]
    status = "MISSED" if failed else "NOT MEASURED" if missing or not checks else "MET"
    return {"target": target, "goal": goal, "status": status, "checks": checks, "not_measured": missing,
            "line": f"target {target}: {status}: {goal}" + (f" ({len(failed)} of {len(checks)} checks missed)" if failed
                                                              else f" ({len(missing)} checks not measured)" if missing
                                                              else f" ({len(checks)} checks)")}


def judge(rows: list[dict], names: list[str], lookupvits: list[str], vit: str | None, batches: list[int],
          macs: Mapping[str, float]) -> list[dict[str, Any]]:
    """The issue's three CPU targets (see the module docstring) from one run's rows."""
    by = {(r["model"], r["batch"], r["engine"]): r for r in rows}
    checks: list[dict] = []
    missing: list[str] = []
    for n in names:
        for b in batches:
            for other in ("ort-plain", "ort-transformers"):
                r = paired(by, n, b, "ort-cpu", other)
                if r is None:
                    missing.append(f"{n} b{b}: ort-cpu vs {other}")
                else:
                    checks.append({"model": n, "batch": b, "engine": "ort-cpu", "against": other, "paired_ratio": r,
                                   "met": r <= 1.0, "text": f"{n} b{b} ort-cpu / {other} = {r:.3f}"})
    out = [verdict(1, "the --form cpu graph on ONNX Runtime at least as fast as the plain export and as ONNX "
                      "Runtime's transformers optimizer", checks, missing)]
    checks, missing = [], []
    for n, b, engine, r in best_against(by, names, batches, "openvino"):
        if r is None:
            missing.append(f"{n} b{b}: a project path vs openvino")
        else:
            checks.append({"model": n, "batch": b, "engine": engine, "against": "openvino", "paired_ratio": r,
                           "met": r <= 1.0, "text": f"{n} b{b} {engine} / openvino = {r:.3f}"})
    out.append(verdict(2, "the project's best ONNX Runtime path at least as fast as OpenVINO on the plain export",
                       checks, missing))
    checks, missing = [], []
    for n in lookupvits:
        for b in batches:
            mine, base = best_project(by, n, b), best_project(by, vit, b) if vit else None
            if mine is None or base is None or vit is None:
                missing.append(f"{n} b{b}: no ViT or no project path")
                continue
            speedup, analytic = base["median_ms"] / mine["median_ms"], macs[vit] / macs[n]
            checks.append({"model": n, "baseline": vit, "batch": b, "engine": mine["engine"],
                           "baseline_engine": base["engine"], "speedup": speedup, "analytic": analytic,
                           "of_analytic": speedup / analytic, "met": speedup / analytic >= OF_ANALYTIC,
                           "text": f"{n} b{b} ({mine['engine']}) over {vit} ({base['engine']}): {speedup:.2f}x, "
                                   f"{speedup / analytic:.2f} of the analytic {analytic:.2f}x"})
    out.append(verdict(3, f"each LookupViT's speedup over the ViT on the best ONNX Runtime paths at least "
                          f"{OF_ANALYTIC} of the analytic MAC ratio", checks, missing))
    return out


def best_against(by: dict, names: list[str], batches: list[int], other: str) -> list[tuple[str, int, str, float | None]]:
    """Per model and batch: the project's best ONNX Runtime engine and its paired ratio to ``other``
    (None when either was not timed)."""
    out = []
    for n in names:
        for b in batches:
            best = best_project(by, n, b)
            r = paired(by, n, b, best["engine"], other) if best else None
            out.append((n, b, best["engine"] if best else "-", r))
    return out


def default_rule(rows: list[dict], names: list[str], batches: list[int], loaded: bool) -> dict[str, Any]:
    """docs/openvino.md's rule for the embedded default (see the module docstring): SWITCH, KEEP or NOT MEASURED."""
    by = {(r["model"], r["batch"], r["engine"]): r for r in rows}
    checks, missing = [], []
    for n, b, engine, r in best_against(by, names, batches, "openvino-attention"):
        if r is None:
            missing.append(f"{n} b{b}")
        else:
            checks.append({"model": n, "batch": b, "engine": engine, "paired_ratio": r, "ahead": r >= SWITCH_MARGIN,
                           "text": f"{n} b{b} {engine} / openvino-attention = {r:.3f}"})
    if missing or not checks:
        status = "NOT MEASURED"
    else:
        status = "SWITCH" if all(c["ahead"] for c in checks) and not loaded else "KEEP"
    why = " (a loaded machine: never a switch)" if loaded and status != "NOT MEASURED" else ""
    return {"status": status, "checks": checks, "not_measured": missing, "loaded": loaded,
            "line": f"embedded default: {status}{why}: OpenVINO on the attention graph at least "
                    f"{round(100 * (SWITCH_MARGIN - 1))}% ahead of the best ONNX Runtime path in every cell switches "
                    "`make quickstart` to cpu-openvino where OpenVINO is installed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="VARIANT[:GRID],... (a ViT without a grid)")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per model and batch (median reported)")
    ap.add_argument("--calls", type=int, default=3, help="calls per engine in one round (their median is the round's)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per engine first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="runs/bench_cpu_peers", help="folder for the graphs (reused when present)")
    ap.add_argument("--out", default="bench/results/cpu_peers.json")
    args = ap.parse_args()
    if args.rounds < 1 or args.calls < 1:
        ap.error("--rounds and --calls must be at least 1")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown engine(s) {', '.join(bad)}; choose from {', '.join(ENGINES)}")
    batches = [int(b) for b in args.batches.split(",")]
    models = parse_models(args.models)

    from exporter.io import write_json
    from exporter.models import get_variant, model_cost, parse_grid
    from exporter.versions import tool_versions

    work = Path(args.work)
    load_start = os.getloadavg()
    paths = {label(v, g): prepare(v, g, work) for v, g in models}
    macs = {}
    for v, g in models:
        cfg = get_variant(v).config
        macs[label(v, g)] = model_cost(cfg, parse_grid(g, cfg.lookup_grid) if g else None).macs
    rows: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    for batch in batches:
        for v, g in models:
            name = label(v, g)
            before = os.getloadavg()
            ts = timers(v, g, paths[name], batch, args.threads, engines)
            t0 = time.perf_counter()
            per_round = measure(ts, args.rounds, args.calls, args.warmup)
            for t in ts.values():
                t.close()
            del ts
            after = os.getloadavg()
            blocks.append({"model": name, "batch": batch, "loadavg_before": before, "loadavg_after": after,
                           "seconds": round(time.perf_counter() - t0, 1)})
            plain = per_round.get("ort-plain")
            for e, times in per_round.items():
                med = statistics.median(times)
                rows.append({
                    "model": name, "batch": batch, "engine": e, "median_ms": 1e3 * med,
                    "spread": float(np.percentile(times, 90) / np.percentile(times, 10)),
                    "paired_ratio_vs_plain": statistics.median(a / b for a, b in zip(times, plain)) if plain else None,
                    "rounds_ms": [1e3 * t for t in times], "loadavg_1min": [before[0], after[0]],
                })
            print(f"batch {batch} {name}: " + ", ".join(f"{e} {1e3 * statistics.median(t):.1f}" for e, t in
                                                         per_round.items()) + f" ms (load {before[0]:.1f})",
                  file=sys.stderr)
    # the LookupViTs' speedup over the ViT on each engine, against the analytic MAC ratio
    vits = [label(v, g) for v, g in models if g is None]
    speedups = []
    medians: dict[tuple, float] = {(r["model"], r["batch"], r["engine"]): r["median_ms"] for r in rows}
    for v, g in models:
        if g is None or not vits:
            continue
        name = label(v, g)
        analytic = macs[vits[0]] / macs[name]
        for batch in batches:
            for e in engines:
                a, b = medians.get((name, batch, e)), medians.get((vits[0], batch, e))
                if a and b:
                    speedups.append({"model": name, "baseline": vits[0], "batch": batch, "engine": e,
                                     "speedup": b / a, "analytic": analytic, "of_analytic": b / a / analytic})
    load_end = os.getloadavg()
    names = [label(v, g) for v, g in models]
    verdicts = judge(rows, names, [label(v, g) for v, g in models if g is not None], vits[0] if vits else None,
                     batches, macs)
    # the benchmark's own threads hold the cores while it runs (the load average at its end is about the
    # thread count), so only the load before it started says whether other work was competing
    loaded = load_start[0] > 0.5 * (os.cpu_count() or 1)
    default = default_rule(rows, names, batches, loaded)
    result = {
        "kind": "bench-cpu-peers",
        "settings": {"models": args.models, "batches": batches, "engines": engines, "rounds": args.rounds,
                     "calls": args.calls, "warmup": args.warmup, "threads": args.threads,
                     "order": "per model and batch, engines interleaved, order rotated per round"},
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "loadavg_start": load_start, "loadavg_end": load_end},
        "macs_per_sample": macs, "graphs": {m: {e: str(p) for e, p in ps.items()} for m, ps in paths.items()},
        "blocks": blocks, "results": rows, "speedups": speedups, "verdicts": verdicts,
        "default": default, "loaded": loaded, "versions": tool_versions(),
    }
    write_json(args.out, result)
    print(f"\nmedian ms, {args.threads} threads, {args.rounds} interleaved rounds; load average "
          f"{load_start[0]:.1f} at start, {load_end[0]:.1f} at end ({os.cpu_count()} cores)")
    for batch in batches:
        print(f"\nbatch {batch}: " + " | ".join(f"{n:>18}" for n in names))
        for e in engines:
            print(f"{e:>18}: " + " | ".join(f"{medians.get((n, batch, e), float('nan')):>18.1f}" for n in names))
    for s in speedups:
        print(f"{s['model']} vs {s['baseline']} b{s['batch']} {s['engine']}: {s['speedup']:.2f}x "
              f"({s['of_analytic']:.2f} of the analytic {s['analytic']:.2f}x)")
    print()
    for vd in verdicts:
        print(vd["line"])
        for c in vd["checks"]:
            print(f"    {'met   ' if c['met'] else 'MISSED'} {c['text']}")
        for m in vd["not_measured"]:
            print(f"    not measured: {m}")
    print(default["line"])
    for c in default["checks"]:
        print(f"    {'ahead ' if c['ahead'] else 'not   '} {c['text']}")
    if loaded:
        print(f"the machine was loaded (load average {load_start[0]:.1f} on {os.cpu_count()} cores before the run): "
              "these verdicts are not a result; rerun on a quiet machine")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
