"""ONNX Runtime CPU latency of the plugin-form graph (``lookupvit optimize --form plugin``: each
layer's gather/scatter as LookupGather/LookupScatter nodes, run through their local functions)
against the attention-target graph (``--form attention``: two ONNX Attention nodes per layer) and
the plain export.

    python bench/bench_plugin.py                         # lookupvit_b16, grid 7, batch 1
    python bench/bench_plugin.py --variant lookupvit_tiny32 --grid 2 --runs 5   # a quick check

Method (as bench/bench_optimize.py, whose session and percentile helpers it uses): one session per
model (CPU provider, default graph optimisations, fixed intra-op threads); after warm-up, run i times
every model once in an order rotated each run (interleaved, so drift and other load hit all models
alike); medians and 10th/90th percentiles, the ratio of medians and the median of per-run paired
ratios against the attention target. ``uptime`` is recorded before and after (the load average is
part of the result). JSON to --out, a table to stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_optimize import op_counts, pct, session  # noqa: E402


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def prepare(variant: str, grid: str, work: Path) -> dict[str, Path]:
    from exporter.export import export_onnx, resolve_variant_source
    from exporter.passes import optimize_model

    plain = export_onnx(resolve_variant_source(variant, grid=grid), work / "plain").path
    models = {"plain": plain}
    for target in ("attention", "plugin"):
        out = work / target / plain.name.replace(".onnx", f".{target}.onnx")
        if not out.is_file():
            t0 = time.perf_counter()
            report = optimize_model(plain, out, target=target)
            if not report.passed:
                raise SystemExit(f"optimize --target {target} failed its check: {report.check.reason}")
            print(f"optimize --target {target}: {out} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        models[target] = out
    return models


def measure(models: dict[str, Path], batch: int, args) -> list[dict]:
    from exporter.models import get_variant

    cfg = get_variant(args.variant).config
    sessions = {n: session(p, args.threads) for n, p in models.items()}
    x = np.random.default_rng(0).standard_normal((batch, *cfg.input_shape), dtype=np.float32)
    outs = {n: s.run(None, {"images": x})[0] for n, s in sessions.items()}
    ref = outs["plain"]
    agreement = {n: float(np.abs(o - ref).max() / (np.abs(ref).max() or 1.0)) for n, o in outs.items()}
    for _ in range(args.warmup):
        for s in sessions.values():
            s.run(None, {"images": x})
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.runs):
        for n in names[i % len(names):] + names[: i % len(names)]:
            t0 = time.perf_counter()
            sessions[n].run(None, {"images": x})
            times[n].append(time.perf_counter() - t0)
    base = statistics.median(times["attention"])
    return [{
        "batch": batch, "model": n, "median_ms": 1e3 * statistics.median(times[n]),
        "p10_ms": 1e3 * pct(times[n], 10), "p90_ms": 1e3 * pct(times[n], 90),
        "ratio_vs_attention": statistics.median(times[n]) / base,
        "paired_ratio_vs_attention": statistics.median(a / b for a, b in zip(times[n], times["attention"])),
        "max_rel_diff_vs_plain": agreement[n], "times_ms": [1e3 * t for t in times[n]],
    } for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lookupvit_b16")
    ap.add_argument("--grid", default="7")
    ap.add_argument("--batches", default="1")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per model and batch (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--work", default="runs/bench_plugin", help="folder for the models")
    ap.add_argument("--out", default="bench/results/plugin.json", help="JSON results file")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    models = prepare(args.variant, args.grid, Path(args.work) / args.variant / f"g{args.grid}")
    load_before = uptime()
    rows = [r for b in (int(v) for v in args.batches.split(",")) for r in measure(models, b, args)]
    load_after = uptime()

    from exporter.io import write_json
    from exporter.versions import tool_versions

    write_json(args.out, {
        "kind": "bench-plugin",
        "settings": {"variant": args.variant, "grid": args.grid, "runs": args.runs, "warmup": args.warmup,
                     "threads": args.threads, "order": "interleaved, rotated per run"},
        "machine": {"cpu_count": os.cpu_count(), "uptime_before": load_before, "uptime_after": load_after},
        "models": {n: {"path": str(p), "ops": op_counts(p)} for n, p in models.items()},
        "results": rows, "versions": tool_versions(),
    })
    print(f"\n{args.variant} grid {args.grid}, ONNX Runtime CPU, {args.threads} threads, median of {args.runs} "
          f"interleaved runs\nload before: {load_before}\nload after:  {load_after}\n")
    head = f"{'batch':>5}  {'model':<10} {'median ms':>10} {'p10-p90 ms':>17} {'vs attention':>13} {'paired':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['batch']:>5}  {r['model']:<10} {r['median_ms']:>10.1f} {r['p10_ms']:>8.1f}-{r['p90_ms']:<8.1f} "
              f"{r['ratio_vs_attention']:>13.3f} {r['paired_ratio_vs_attention']:>7.3f}")


if __name__ == "__main__":
    main()
