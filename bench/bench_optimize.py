"""ONNX Runtime CPU latency of a LookupViT: the plain export, `lookupvit optimize`, and ONNX Runtime's
transformers optimizer, measured side by side.

    python bench/bench_optimize.py                      # lookupvit_b16, grid 7, batch 1 and 8
    python bench/bench_optimize.py --variant lookupvit_tiny32 --grid 2 --runs 5   # a quick check

Method: one ONNX Runtime session per model (CPU provider, default graph optimisations, a fixed
intra-op thread count, sequential execution). For each batch size, after warm-up, the variants run
in paired A/B order: run i times every variant once, in an order rotated each run, so drift
(thermal, other load) hits all variants alike. Reported: the median and 10th/90th percentiles over
the runs, the ratio of medians to the plain export and to the ORT-transformers model, the median of
the per-run paired ratios, achieved GMAC/s (analytic MACs from the cost model) and that as a share of
the machine's measured fp32 MatMul rate with the same threads. JSON goes to --out; a table to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def matmul_peak(threads: int, n: int = 1024, runs: int = 10) -> float:
    """The machine's fp32 MatMul rate on ONNX Runtime with ``threads`` threads, in GMAC/s."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return n**3 / statistics.median(times) / 1e9


def prepare(args, work: Path) -> dict[str, Path]:
    """The three models: plain export, `lookupvit optimize`, ORT's transformers optimizer."""
    from exporter.export import export_onnx, resolve_variant_source
    from exporter.passes import optimize_model

    src = resolve_variant_source(args.variant, grid=args.grid)
    t0 = time.perf_counter()
    plain = export_onnx(src, work / "plain").path
    print(f"export: {plain} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    opt = work / "optimize" / plain.name.replace(".onnx", ".opt.onnx")
    t0 = time.perf_counter()
    report = optimize_model(plain, opt, target="attention")
    print(f"optimize: {opt} ({time.perf_counter() - t0:.0f} s, kept {','.join(report.kept)}, "
          f"{report.ops_after.get('Attention', 0)} Attention)", file=sys.stderr)
    ortx = work / "ort-transformers" / plain.name.replace(".onnx", ".ortx.onnx")
    ortx.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    import logging

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    from onnxruntime.transformers.optimizer import optimize_model as ort_optimize

    cfg = src_config(args.variant)
    ort_model = ort_optimize(str(plain), model_type="vit", num_heads=cfg.heads, hidden_size=cfg.dim)
    ort_model.save_model_to_file(str(ortx))
    print(f"ort-transformers: {ortx} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return {"plain": plain, "optimize": opt, "ort-transformers": ortx}


def src_config(variant: str):
    from exporter.models import get_variant

    return get_variant(variant).config


def op_counts(path: Path) -> dict[str, int]:
    from collections import Counter

    import onnx

    return dict(sorted(Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node).items()))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(models: dict[str, Path], batches: list[int], args) -> list[dict]:
    sessions = {name: session(path, args.threads) for name, path in models.items()}
    names = list(models)
    rows = []
    for batch in batches:
        cfg = src_config(args.variant)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, *cfg.input_shape), dtype=np.float32)
        outs = {n: s.run(None, {"images": x})[0] for n, s in sessions.items()}
        ref = outs["plain"]
        agreement = {n: float(np.abs(o - ref).max() / (np.abs(ref).max() or 1.0)) for n, o in outs.items()}
        for _ in range(args.warmup):
            for s in sessions.values():
                s.run(None, {"images": x})
        times: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.runs):
            order = names[i % len(names):] + names[: i % len(names)]  # rotate: paired A/B order
            for n in order:
                t0 = time.perf_counter()
                sessions[n].run(None, {"images": x})
                times[n].append(time.perf_counter() - t0)
        for n in names:
            rows.append({
                "batch": batch, "model": n, "median_ms": 1e3 * statistics.median(times[n]),
                "p10_ms": 1e3 * pct(times[n], 10), "p90_ms": 1e3 * pct(times[n], 90),
                "paired_ratio_vs_plain": statistics.median(a / b for a, b in zip(times[n], times["plain"])),
                "paired_ratio_vs_ort_transformers": statistics.median(
                    a / b for a, b in zip(times[n], times["ort-transformers"])),
                "max_rel_diff_vs_plain": agreement[n], "times_ms": [1e3 * t for t in times[n]],
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lookupvit_b16")
    ap.add_argument("--grid", default="7")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per model and batch (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--work", default="runs/bench_optimize", help="folder for the three models")
    ap.add_argument("--out", default="bench/results/optimize.json", help="JSON results file")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    work = Path(args.work) / args.variant / f"g{args.grid}"
    batches = [int(b) for b in args.batches.split(",")]

    from exporter.models import model_cost, parse_grid

    models = prepare(args, work)
    cfg = src_config(args.variant)
    macs = model_cost(cfg, parse_grid(args.grid, cfg.lookup_grid)).macs
    peak = matmul_peak(args.threads)
    rows = measure(models, batches, args)
    for r in rows:
        med = {(q["batch"], q["model"]): q["median_ms"] for q in rows}
        r["ratio_vs_plain"] = r["median_ms"] / med[(r["batch"], "plain")]
        r["ratio_vs_ort_transformers"] = r["median_ms"] / med[(r["batch"], "ort-transformers")]
        r["gmacs_per_s"] = macs * r["batch"] / (r["median_ms"] / 1e3) / 1e9
        r["share_of_matmul_peak"] = r["gmacs_per_s"] / peak
    result = {
        "kind": "bench-optimize",
        "settings": {"variant": args.variant, "grid": args.grid, "batches": batches, "runs": args.runs,
                     "warmup": args.warmup, "threads": args.threads, "order": "paired, rotated per run"},
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "matmul_peak_gmacs_per_s": peak},
        "macs_per_sample": macs,
        "models": {n: {"path": str(p), "ops": op_counts(p)} for n, p in models.items()},
        "results": rows,
    }
    from exporter.io import write_json
    from exporter.versions import tool_versions

    result["versions"] = tool_versions()
    write_json(args.out, result)
    print(f"\n{args.variant} grid {args.grid}, ONNX Runtime CPU, {args.threads} threads, median of {args.runs} "
          f"paired runs (MatMul peak {peak:.1f} GMAC/s)\n")
    head = f"{'batch':>5}  {'model':<17} {'median ms':>10} {'p10-p90 ms':>15} {'vs plain':>9} {'vs ort-tf':>9} " \
           f"{'paired vs plain':>16} {'GMAC/s':>7} {'% peak':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['batch']:>5}  {r['model']:<17} {r['median_ms']:>10.2f} {r['p10_ms']:>7.2f}-{r['p90_ms']:<7.2f} "
              f"{r['ratio_vs_plain']:>9.3f} {r['ratio_vs_ort_transformers']:>9.3f} {r['paired_ratio_vs_plain']:>16.3f} "
              f"{r['gmacs_per_s']:>7.1f} {100 * r['share_of_matmul_peak']:>6.1f}%")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
