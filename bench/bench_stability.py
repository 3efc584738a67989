"""How much do `lookupvit profile` figures move from one run to the next?

    python bench/bench_stability.py                      # 5 back-to-back runs, digits g2, batch 1
    python bench/bench_stability.py --runs 5 --variant lookupvit_digits --grid 2 --batch 1
    python bench/bench_stability.py --series "--threads 0 --pace-wait 0;"   # before/after, interleaved

Runs ``lookupvit profile VARIANT --grids G --batch B --json`` RUNS times back to back, each in a fresh
interpreter (as a user would), and reports per backend the p50 of every run, which runs were
flagged NOISY, and the max/min ratio of the p50s; likewise the matrix-multiply peaks (fp32 and int8)
every run measured. The 1-minute load average before each run is recorded: a run taken while
another process held a core is not a figure of the tool's stability but of the machine's.

``--series "ARGS;ARGS"``: one series per set of extra ``profile`` options (an empty one: the
defaults), the runs interleaved (A, B, A, B, ...) so that all series see the same stretch of the
machine's weather. ``--threads 0 --pace-wait 0`` is the timing before thread trials and pace
watching (every core, slow phases only flagged). Per run the pace summary is kept (the seconds
waited, the chunks timed again, the slowest pace probed), the cells flagged SLOW and the threads
each cell was timed with.

Target (the latency-stability issue): max/min of the p50 below 1.15 over five runs on a quiet machine.
Writes JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.15


def one_run(args: argparse.Namespace, out: Path, extra: list[str]) -> dict[str, object]:
    cmd = [
        sys.executable, "-m", "exporter.cli", "profile", args.variant,
        "--grids", args.grid, "--batch", args.batch, "--baseline", "none",
        "-o", str(out), "--json", *extra,
    ]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"profile run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    cells = {
        c["backend"]: {"p50_ms": c["latency"]["p50_ms"], "spread": c["latency"]["spread"],
                       "noisy": c["noisy"], "load": c["load"], "slow": c.get("slow"), "pace": c.get("pace"),
                       "threads": c.get("threads") or doc.get("threads")}
        for c in doc["cells"] if c["status"] == "ok"
    }
    peaks = {k: {"gflops": v["gflops"], "spread": v["spread"]} for k, v in doc["peak"]["peaks"].items()}
    return {"load_before": load, "options": extra, "cells": cells, "peaks": peaks, "pace": doc.get("pace"),
            "seconds": doc.get("seconds")}


def ratio(values: list[float]) -> float:
    return max(values) / min(values)


def summarize_series(runs: list[dict]) -> dict[str, dict[str, object]]:
    backends = sorted({b for r in runs for b in r["cells"]})
    summary: dict[str, dict[str, object]] = {}
    for b in backends:
        p50 = [r["cells"][b]["p50_ms"] for r in runs if b in r["cells"]]
        summary[b] = {"p50_ms": p50, "max_over_min": ratio(p50), "target": TARGET,
                      "met": ratio(p50) < TARGET,
                      "noisy_runs": [i + 1 for i, r in enumerate(runs) if r["cells"].get(b, {}).get("noisy")],
                      "slow_runs": [i + 1 for i, r in enumerate(runs) if r["cells"].get(b, {}).get("slow")]}
        unflagged = [r["cells"][b]["p50_ms"] for r in runs if b in r["cells"] and not r["cells"][b].get("slow")]
        if unflagged and len(unflagged) < len(p50):  # beside, never instead of, the ratio over all runs
            summary[b]["max_over_min_not_slow"] = ratio(unflagged)
    for k in sorted({k for r in runs for k in r["peaks"]}):
        g = [r["peaks"][k]["gflops"] for r in runs if k in r["peaks"]]
        summary[f"peak {k}"] = {"gflops": g, "max_over_min": ratio(g)}
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per series")
    p.add_argument("--variant", default="lookupvit_digits")
    p.add_argument("--grid", default="2")
    p.add_argument("--batch", default="1")
    p.add_argument("--series", default="",
                   help="semicolon-separated sets of extra profile options, one series each, interleaved "
                   "(an empty set: the defaults; default: one series with the defaults)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stability.json")
    args = p.parse_args()
    settings = [v.strip() for v in args.series.split(";")] if args.series else [""]
    series: dict[str, list[dict]] = {v or "defaults": [] for v in settings}
    with tempfile.TemporaryDirectory(prefix="lookupvit-stability-") as tmp:
        for i in range(args.runs):
            for v in settings:
                name = v or "defaults"
                r = one_run(args, Path(tmp) / "out", v.split())  # same folder: models made once, reused like a rerun
                series[name].append(r)
                cells = "  ".join(
                    f"{b} p50 {c['p50_ms']:.3f} ms ({c.get('threads')} thr){' NOISY' if c['noisy'] else ''}"
                    f"{' SLOW' if c.get('slow') else ''}"
                    for b, c in r["cells"].items())
                peaks = "  ".join(f"{k} {v2['gflops']:.0f}" for k, v2 in r["peaks"].items())
                pace = r.get("pace") or {}
                print(f"run {i + 1} ({name}): load {r['load_before']:.2f}  {cells}  peaks {peaks}  "
                      f"slowest pace {pace.get('slowest', 0):.2f}, waited {pace.get('waited_s', 0):.1f} s, "
                      f"{pace.get('retimed_chunks', 0)} chunk(s) again", flush=True)

    summaries = {name: summarize_series(runs) for name, runs in series.items()}
    loads = [r["load_before"] for runs in series.values() for r in runs]
    doc = {"variant": args.variant, "grid": args.grid, "batch": args.batch, "series": series,
           "summary": summaries, "load_range": [min(loads), max(loads)], "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nload average before the runs: {min(loads):.2f} to {max(loads):.2f} on {os.cpu_count()} cores")
    for series_name, summary in summaries.items():
        print(f"{series_name}:")
        for name, s in summary.items():
            verdict = "" if "met" not in s else ("  (target < 1.15 met)" if s["met"] else "  (target < 1.15 MISSED)")
            beside = (f"; {s['max_over_min_not_slow']:.3f} over the runs not flagged SLOW (runs {s['slow_runs']} were)"
                      if "max_over_min_not_slow" in s else "")
            print(f"{name:>16}: max/min {s['max_over_min']:.3f}{verdict}{beside}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
