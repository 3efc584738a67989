"""Real TensorRT-RTX engine builds of the graphs the pipeline hands TensorRT (docs/tensorrt.md).

Every graph is made by the project's one stage chain (exporter/pipeline/artefacts.py: export ->
optimize -> precision, written for TensorRT) in one folder per model, then built by the real builder
(``lookupvit check --build``'s ``exporter.engine.build.trial_build``: in a child process, ahead of time
where no GPU is visible) for each compute capability, with a profile of one optimisation profile per
latency-critical batch (1 and 8, up to 8). Per cell it records what the builder did (built, refused,
crashed, refused by us before the builder with the reason), the engine's size, the build time, the
builder's memory (``getrusage`` of the children: the largest resident set of any build child so far,
so it is recorded only for a build that needed more than every earlier one) and whether ``lookupvit
check`` agrees.

    python bench/bench_trt_builds.py                                 # lookupvit_b16 grids 3 and 7, fp16 and int8, SM89
    python bench/bench_trt_builds.py --models lookupvit_digits,lookupvit_b16 --grids 2 --precisions fp32,fp16,bf16,int8,fp8 \\
        --ccs 8.0,8.9 [--dynamic 3,5,7,10] [--work DIR] [--out bench/results/trt_builds.json]

``--dynamic G1,G2,...`` builds one dynamic-grid graph per model for those grids instead of one graph
per grid (one optimisation profile per grid and batch). The load average before and after each build
is recorded, and the machine (CPU, cores): build times on a shared 2-core machine vary with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Cell:
    model: str
    grid: str
    precision: str
    cc: str
    status: str  # built | refused | crashed | timeout | memory | refused by us
    check_passed: bool | None
    engine_mib: float | None
    build_s: float | None
    child_peak_rss_mib: float | None
    message: str
    load_before: float
    load_after: float
    graph_mib: float


def _profile(folder: Path, cc: str, precisions: list[str]) -> Path:
    ok = [p for p in precisions if not (p == "fp8" and cc < "8.9")]
    path = folder / f"bench-sm{cc.replace('.', '')}.toml"
    path.write_text(f'backend = "tensorrt-rtx"\ncompute_capability = "{cc}"\nprecisions = {json.dumps(ok)}\n'
                    "[batch]\nmin = 1\nopt = [1, 8]\nmax = 8\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lookupvit_b16")
    ap.add_argument("--grids", default="3,7")
    ap.add_argument("--dynamic", default=None, help="grids of one dynamic-grid graph per model (instead of --grids)")
    ap.add_argument("--precisions", default="fp16,int8")
    ap.add_argument("--ccs", default="8.9")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-trt-builds"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/trt_builds.json"))
    args = ap.parse_args(argv)

    from exporter.backends.tensorrt.env import build_target
    from exporter.check import check_graph
    from exporter.engine.build import prepare_build, trial_build
    from exporter.errors import UserError
    from exporter.latency.machine import machine_info
    from exporter.models import get_variant, parse_grid
    from exporter.pipeline import Artefacts, ChainSettings, Manifest
    from exporter.pipeline.unit import GridSet
    from exporter.profiles import load_profile
    from exporter.versions import tool_versions

    precisions = args.precisions.split(",")
    ccs = args.ccs.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    profiles = {cc: load_profile(_profile(args.work, cc, precisions)) for cc in ccs}
    target = build_target(profiles[ccs[-1]])
    cells: list[Cell] = []
    t_start = time.time()
    for model in args.models.split(","):
        root = args.work / model
        artefacts = Artefacts(root, ChainSettings(profile=profiles[ccs[-1]]), Manifest(root),
                              lambda t: print(f"  {t}", flush=True))
        grids: list[Any]
        lookup = get_variant(model).config.lookup_grid
        if args.dynamic:
            grid_set = GridSet.of([parse_grid(g, lookup) for g in args.dynamic.split(",")])
            artefacts.share(model, grid_set)
            grids = [grid_set]
        else:
            grids = [parse_grid(g, lookup) for g in args.grids.split(",")]
        for grid in grids:
            label = grid.text if isinstance(grid, GridSet) else "x".join(map(str, grid))
            for p in precisions:
                path = artefacts.converted(model, grid, p)
                for cc in ccs:
                    prof = profiles[cc]
                    load0 = os.getloadavg()[0]
                    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                    try:
                        prepare_build(path, prof)
                    except UserError as e:
                        cells.append(Cell(model, label, p, cc, "refused by us", None, None, None, None,
                                          f"{e.message} {e.hint or ''}".strip(), load0, os.getloadavg()[0],
                                          path.stat().st_size / 2**20))
                        print(f"{model} {label} {p} sm{cc}: refused by us: {e.message}", flush=True)
                        continue
                    report = check_graph(path, prof)
                    trial = trial_build(path, prof)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                    cells.append(Cell(
                        model, label, p, cc, trial.status, report.passed,
                        round(trial.engine_bytes / 2**20, 1) if trial.engine_bytes else None, round(trial.seconds, 2),
                        round(after / 1024, 0) if after > before else None, trial.message, load0, os.getloadavg()[0],
                        round(path.stat().st_size / 2**20, 1)))
                    c = cells[-1]
                    print(f"{model} {label} {p} sm{cc}: {c.status}, check {'passes' if c.check_passed else 'FAILS'}, "
                          f"{c.engine_mib} MiB, {c.build_s} s, load {load0:.2f}", flush=True)
    doc = {
        "kind": "lookupvit-bench-trt-builds", "tensorrt": target.choice.label, "ahead_of_time": target.ahead_of_time,
        "machine": machine_info(), "versions": tool_versions(), "seconds": round(time.time() - t_start, 1),
        "args": {k: str(v) for k, v in vars(args).items()}, "cells": [asdict(c) for c in cells],
        "agreement": all((c.check_passed is None) or (c.check_passed == (c.status == "built")) for c in cells),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"{sum(c.status == 'built' for c in cells)} of {len(cells)} built; check agrees with the builder: "
          f"{doc['agreement']}; wrote {args.out}")
    return 0 if all(c.status in ("built", "refused by us") for c in cells) and doc["agreement"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
