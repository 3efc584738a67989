"""LookupViT-B/16 at grid 7 against ViT-B/16 on ONNX Runtime (CPU), batch 1: does the measured
speedup follow the analytic MAC ratio, and how close does the LookupViT get to the machine's
matrix-multiply peak?

    python bench/bench_latency.py                          # lookupvit_b16 g7 vs vit_b16, 2 threads
    python bench/bench_latency.py --variant lookupvit_tiny32 --grid 2 --iters 20   # a quick check

Method (the library behind `lookupvit profile`): both models exported and optimised as the
pipeline does (`export_onnx`, then `optimize_model` when available), one ONNX Runtime CPU session
each with the same intra-op thread count; the ViT is timed interleaved with the LookupViT (a chunk
of LookupViT calls, then a chunk of ViT calls, round after round), so the speedup is a ratio of
medians measured side by side. The matrix-multiply peak is measured in the same run with the same
threads (fp32 `torch.matmul` and ONNX Runtime `MatMul`, several sizes, median of repeats, best
size). Where time goes: ONNX Runtime's own profiler, kernel time per op type, for both models.

Targets: measured speedup >= 0.9 x the analytic MAC ratio; LookupViT efficiency >= 70% of the
measured peak. Writes JSON (``--out``) and prints a short summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEEDUP_TARGET = 0.9  # of the analytic MAC ratio
EFFICIENCY_TARGET = 0.70  # of the measured matmul peak


def op_profile(path: Path, threads: int, runs: int, batch: int = 1) -> dict[str, object]:
    """Kernel time per op type over ``runs`` calls (ONNX Runtime's profiler), per call."""
    import numpy as np
    import onnxruntime as ort

    from exporter.export import read_metadata

    shape = json.loads(read_metadata(path)["input_shape"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix("")) + ".ortprof"
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)}
    sess.run(None, x)  # warm-up (also profiled; subtracted below by counting only the last runs)
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, x)
    wall = (time.perf_counter() - t0) / runs
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    start = runs_seen[-runs]["ts"] if len(runs_seen) >= runs else 0
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= start:
            op = e.get("args", {}).get("op_name", "?")
            per_op[op] += e["dur"]
            calls[op] += 1
    total = sum(per_op.values())
    return {
        "wall_ms_per_call": round(1e3 * wall, 3),
        "kernel_ms_per_call": round(total / runs / 1e3, 3),
        "ops": [
            {"op": op, "ms_per_call": round(us / runs / 1e3, 3), "share": round(us / total, 4), "nodes": calls[op] // runs}
            for op, us in per_op.most_common()
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="lookupvit_b16")
    ap.add_argument("--grid", default="7")
    ap.add_argument("--baseline", default="auto", help="ViT baseline (auto: vit_<size><patch>)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="batch size (the targets are stated for batch 1)")
    ap.add_argument("--iters", type=int, default=40, help="timed calls per model")
    ap.add_argument("--repeats", type=int, default=8, help="interleaved rounds")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--profile-runs", type=int, default=5, help="calls under ONNX Runtime's profiler (0: skip)")
    ap.add_argument("--work", default="runs/bench-latency", help="folder for the models")
    ap.add_argument("--out", default="runs/bench/bench_latency.json")
    args = ap.parse_args()

    from exporter.latency.api import ProfileRequest, profile_latency, resolve_target
    from exporter.latency.sweep import SweepSettings

    t0 = time.perf_counter()
    target = resolve_target(args.variant, args.grid)
    req = ProfileRequest(
        [target], precisions=("fp32",), batches=(args.batch,), backends=("ort",),
        baseline=None if args.baseline == "none" else args.baseline,
        settings=SweepSettings(warmup=args.warmup, iterations=args.iters, repeats=args.repeats, threads=args.threads),
        optimize=args.optimize,
    )
    result, latency_json, _ = profile_latency(req, args.work, say=lambda t: print(f"  {t}", file=sys.stderr))
    lvit = next(c for c in result.cells if c.role == "lookupvit")
    vit = next((c for c in result.cells if c.role == "baseline"), None)
    if lvit.status != "ok":
        print(f"{lvit.model} was not measured: {lvit.reason}", file=sys.stderr)
        return 1
    peak = result.peak.to_dict()["peaks"]["cpu/fp32"] if result.peak else None
    ratio = lvit.speedup / lvit.analytic_speedup if lvit.speedup and lvit.analytic_speedup else None
    out: dict[str, object] = {
        "benchmark": "bench_latency",
        "backend": "onnxruntime CPUExecutionProvider",
        "batch": args.batch,
        "threads": result.threads,
        "model": lvit.model,
        "grid": lvit.grid,
        "baseline": vit.model if vit else None,
        "lookupvit": {"p50_ms": lvit.latency.p50_ms, "p90_ms": lvit.latency.p90_ms, "calls": lvit.latency.n,
                      "gmacs": lvit.gmacs, "gflops": lvit.gflops} if lvit.latency else None,
        "vit": {"p50_ms": vit.latency.p50_ms, "p90_ms": vit.latency.p90_ms, "calls": vit.latency.n,
                "gmacs": vit.gmacs, "gflops": vit.gflops, "efficiency": vit.efficiency} if vit and vit.latency else None,
        "speedup_measured": lvit.speedup,
        "speedup_analytic": lvit.analytic_speedup,
        "speedup_measured_over_analytic": ratio,
        "matmul_peak": peak,
        "efficiency": lvit.efficiency,
        "targets": {
            "speedup_over_analytic": {"target": SPEEDUP_TARGET, "value": ratio,
                                      "met": ratio is not None and ratio >= SPEEDUP_TARGET},
            "efficiency": {"target": EFFICIENCY_TARGET, "value": lvit.efficiency,
                           "met": lvit.efficiency is not None and lvit.efficiency >= EFFICIENCY_TARGET},
        },
        "machine": result.machine,
        "versions": result.versions,
        "latency_json": str(latency_json),
    }
    if args.profile_runs > 0:
        from exporter.pipeline.artefacts import Artefacts, ChainSettings
        from exporter.pipeline.manifest import Manifest

        art = Artefacts(args.work, ChainSettings(optimize=args.optimize), Manifest(args.work))
        profiles = {}
        for cell, grid in ((lvit, target.grids[0]), (vit, None)):
            if cell is not None and cell.status == "ok":
                profiles[cell.model] = op_profile(art.converted(cell.model, grid, "fp32"), result.threads, args.profile_runs, args.batch)
        out["op_profile"] = profiles
    out["seconds"] = round(time.perf_counter() - t0, 1)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    print(f"{lvit.model} g{lvit.grid} vs {out['baseline']} (ONNX Runtime CPU, batch {args.batch}, {result.threads} threads)")
    print(f"  p50: {lvit.latency.p50_ms:.1f} ms vs {vit.latency.p50_ms:.1f} ms" if vit and vit.latency and lvit.latency else "")
    print(f"  speedup measured {lvit.speedup:.2f}x, analytic {lvit.analytic_speedup:.2f}x -> {pct(ratio)} of analytic "
          f"(target {pct(SPEEDUP_TARGET)})" if ratio else "  speedup: not measured")
    if peak:
        print(f"  efficiency {pct(lvit.efficiency)} of the measured matmul peak {peak['gflops']:.1f} GFLOP/s "
              f"({lvit.gflops:.1f} GFLOP/s achieved; target {pct(EFFICIENCY_TARGET)})")
    print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
