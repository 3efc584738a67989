"""One dynamic-grid ONNX model against one static model per grid (docs/dynamic-grid.md).

LookupViT (arXiv 2407.12753) chooses its compressed grid at inference; a dynamic-grid export keeps
that choice in one file. This script measures what that costs and saves, per variant, with every
graph made by the project's one stage chain (exporter/pipeline/artefacts.py: export -> optimize ->
precision), once per grid in one folder and once as a shared dynamic-grid graph in another:

- latency on ONNX Runtime's CPU provider (2 intra-op threads by default) of the dynamic graph at each
  grid against the static graph of that grid, batch 1 and 8 (the fp32 graphs a run times: the
  optimised ones, or the plain exports with ``--graph export``): interleaved rounds (dynamic, static,
  then static, dynamic in the next round), each chunk ``--iters`` calls or ``--chunk-seconds``
  (whichever ends first, at least 2 calls), the median per-call time of each side over all rounds,
  and the ratio static / dynamic (>= 1: the dynamic graph is at least as fast); the load average
  before and after each block is recorded;
- bytes on disk of the profile's artefacts (every precision the profile makes of the variant), the
  dynamic-grid set against the per-grid set, with and without the exported graphs (``--keep final``
  drops them);
- export + optimize + precision time for all grids, from the stage times the pipeline's manifest
  recorded, dynamic against per-grid;
- with ``--op-profile``: ONNX Runtime's per-op profile (``SessionOptions.enable_profiling``) of both
  graphs at each grid and batch 1: each op type's share of the kernel time, the share of each run
  spent outside kernels, and the nodes only the dynamic graph has. Shares only: absolute times on a
  loaded machine say little.

    python bench/bench_dynamic_grid.py [--variants lookupvit_digits,lookupvit_b16] [--profile cpu]
        [--precisions fp32,int8] [--batches 1,8] [--rounds 15] [--iters 20] [--chunk-seconds 1.0]
        [--threads 2] [--graph optimized|export] [--op-profile] [--work DIR]
        [--out bench/results/dynamic_grid.json]

Grids and precisions per variant are the profile's for the variant's role (an accuracy model: the
profile's precisions; a latency model: its latency precisions); a variant the profile does not list
runs at its default grids in fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Row:
    grid: str
    batch: int
    dynamic_ms: float
    static_ms: float
    ratio: float  # static / dynamic: >= 1 when the dynamic graph is at least as fast
    calls: int  # per side
    load_before: float
    load_after: float


@dataclass
class Side:
    """One way of making the profile's graphs of a variant: per grid, or one dynamic-grid graph."""

    files: int = 0
    bytes_all: int = 0  # every graph the chain wrote (exports, optimised, converted)
    bytes_final: int = 0  # what `run --keep final` keeps (optimised and converted graphs)
    stage_s: dict[str, float] = field(default_factory=dict)  # export / optimize / precision: seconds, summed
    wall_s: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0


@dataclass
class OpShares:
    grid: str
    batch: int
    graph: str  # "dynamic" or "static"
    runs: int
    outside_kernels: float  # share of the median run's time not spent in a node's kernel
    by_op: dict[str, float]  # op type -> share of the kernel time (summed per-node medians)
    shape_nodes: dict[str, float] = field(default_factory=dict)  # grid check and shape arithmetic: node -> share


@dataclass
class VariantResult:
    variant: str
    grids: list[str]
    precisions: list[str]
    graph: str
    rows: list[Row] = field(default_factory=list)
    per_grid: Side = field(default_factory=Side)
    dynamic: Side = field(default_factory=Side)
    op_profile: list[OpShares] = field(default_factory=list)


@dataclass
class Result:
    profile: str
    threads: int
    rounds: int
    iters: int
    chunk_seconds: float
    variants: list[VariantResult] = field(default_factory=list)
    cpu_count: int = os.cpu_count() or 0
    versions: dict[str, str | None] = field(default_factory=dict)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _plan(profile: Any, variant: str) -> tuple[list[Any], list[str]]:
    """The grids and precisions the profile makes of ``variant`` (its default grids in fp32 when absent)."""
    from exporter.models import get_variant
    from exporter.run.scope import plan_models

    m = profile.models
    for role, name, grids in plan_models(profile):
        if name == variant and role in ("accuracy", "latency"):
            precisions = profile.precisions if role == "accuracy" else (m.latency_precisions or profile.precisions)
            return [g for g in grids if g is not None], list(precisions)
    return list(get_variant(variant).config.default_grids), ["fp32"]


def _graphs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".onnx" or p.name.endswith(".onnx.data"))]


def _make(root: Path, variant: str, grids: list[Any], precisions: list[str], shared: bool) -> tuple[Any, Side]:
    """The profile's graphs of ``variant`` through the pipeline into ``root``; what it cost."""
    from exporter.pipeline.artefacts import Artefacts, ChainSettings
    from exporter.pipeline.manifest import Manifest
    from exporter.pipeline.unit import GridSet

    side = Side(load_before=_load())
    artefacts = Artefacts(root, ChainSettings(), Manifest(root), lambda t: print(f"  {t}", flush=True))
    cells = [GridSet.of(grids)] if shared else grids
    if shared:
        artefacts.share(variant, cells[0])
    t0 = time.perf_counter()
    final = {artefacts.converted(variant, g, p) for g in cells for p in precisions}
    side.wall_s = round(time.perf_counter() - t0, 2)
    side.load_after = _load()
    for entry in artefacts.manifest.entries.values():  # recorded by the run that made them (also a reused --work)
        kind = str(entry.get("kind"))
        side.stage_s[kind] = round(side.stage_s.get(kind, 0.0) + float(entry.get("seconds", 0.0)), 2)
    files = _graphs(root)
    side.files = sum(p.suffix == ".onnx" for p in files)
    side.bytes_all = sum(p.stat().st_size for p in files)
    kept = {p for f in final for p in (f, f.with_name(f.name + ".data"))}
    side.bytes_final = sum(p.stat().st_size for p in files if p in kept)
    return artefacts, side


def _calls(sess: Any, feed: dict[str, np.ndarray], iters: int, seconds: float) -> list[float]:
    out: list[float] = []
    t_end = time.perf_counter() + seconds
    while len(out) < iters and (len(out) < 2 or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        sess.run(None, feed)
        out.append(time.perf_counter() - t0)
    return out


def _op_shares(path: Path, feed: dict[str, np.ndarray], threads: int, runs: int, grid: str, batch: int, graph: str,
               extra_nodes: set[str]) -> OpShares:
    """ONNX Runtime's per-op profile of ``runs`` calls: each node's median kernel time over the runs
    (a stalled call does not decide it), summed per op type, as shares of the summed medians; the
    share of the median run outside kernels; the shares of ``extra_nodes`` (the grid check and the
    shape arithmetic)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):  # the first 3 are a warm-up, left out below
            sess.run(None, feed)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"][3:]
    per_node: dict[str, list[float]] = {}
    op_of: dict[str, str] = {}
    for e in trace:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time") or not windows or e["ts"] < windows[0][0]:
            continue
        node = name.removesuffix("_kernel_time")
        per_node.setdefault(node, []).append(float(e["dur"]))
        op_of[node] = str(e.get("args", {}).get("op_name", "?"))
    medians = {n: statistics.median(d) for n, d in per_node.items()}
    total = sum(medians.values()) or 1.0
    run_us = statistics.median([b - a for a, b in windows]) if windows else 0.0
    by_op: dict[str, float] = {}
    for n, d in sorted(medians.items(), key=lambda item: -item[1]):
        by_op[op_of[n]] = by_op.get(op_of[n], 0.0) + d
    shape_nodes = {n: round(medians[n] / total, 4) for n in sorted(extra_nodes & set(medians), key=lambda n: -medians[n])}
    return OpShares(grid, batch, graph, len(windows), round(1 - total / run_us, 4) if run_us else 0.0,
                    {k: round(v / total, 4) for k, v in sorted(by_op.items(), key=lambda item: -item[1])}, shape_nodes)


def grid_arithmetic_nodes(path: Path) -> set[str]:
    """The nodes a graph runs on every call to check and spread its grid: the grid check
    (exporter/export/grid_input.py) and every node computing from a ``Shape`` output (resize sizes,
    sequence lengths, reshape targets), which a one-grid graph mostly holds as constants."""
    from exporter.export.grid_input import CHECK_NODE_PREFIX
    from exporter.onnx_io import load_onnx

    model = load_onnx(path, weights=False)
    constants = {i.name for i in model.graph.initializer}
    derived: set[str] = set()
    out: set[str] = set()
    for n in model.graph.node:  # graph order is topological
        inputs = [i for i in n.input if i]
        if (n.op_type == "Shape" or n.name.startswith(("grid_check", CHECK_NODE_PREFIX))
                or (inputs and any(i in derived for i in inputs) and all(i in derived or i in constants for i in inputs))):
            derived.update(n.output)
            out.add(n.name)
    return out


def bench_variant(args: argparse.Namespace, profile: Any, variant: str, work: Path) -> VariantResult:
    from exporter.backends.onnxruntime.session import ort_session
    from exporter.export.grid_input import grid_feed
    from exporter.models import get_variant
    from exporter.models.config import grid_dims

    grids, precisions = _plan(profile, variant)
    if args.precisions:
        precisions = [p for p in args.precisions.split(",") if p]
    res = VariantResult(variant, [grid_dims(g) for g in grids], precisions, args.graph)
    print(f"{variant}: grids {', '.join(res.grids)}; precisions {', '.join(precisions)}", flush=True)
    per_grid, res.per_grid = _make(work / "per_grid" / variant, variant, grids, precisions, shared=False)
    dynamic, res.dynamic = _make(work / "dynamic" / variant, variant, grids, precisions, shared=True)

    def graph(artefacts: Any, grid: Any) -> Path:
        return artefacts.export_path(variant, grid) if args.graph == "export" else artefacts.precision_path(variant, grid, "fp32")

    dyn_path = graph(dynamic, grids[0])
    dyn_sess = ort_session(dyn_path, ["CPUExecutionProvider"], args.threads)
    shape = get_variant(variant).config.input_shape
    rng = np.random.default_rng(0)
    for grid in grids:
        st_path = graph(per_grid, grid)
        st_sess = ort_session(st_path, ["CPUExecutionProvider"], args.threads)
        for batch in (int(b) for b in args.batches.split(",")):
            images = rng.standard_normal((batch, *shape), dtype=np.float32)
            dyn_feed = {"images": images, **grid_feed(dyn_path, grid)}
            st_feed = {"images": images}
            _calls(dyn_sess, dyn_feed, 3, 0.0), _calls(st_sess, st_feed, 3, 0.0)  # warm-up
            load_before = _load()
            d: list[float] = []
            s: list[float] = []
            for r in range(args.rounds):  # interleaved, the order alternating per round
                first, second = ((dyn_sess, dyn_feed, d), (st_sess, st_feed, s))[:: 1 if r % 2 == 0 else -1]
                first[2].extend(_calls(first[0], first[1], args.iters, args.chunk_seconds))
                second[2].extend(_calls(second[0], second[1], args.iters, args.chunk_seconds))
            dm, sm = statistics.median(d) * 1e3, statistics.median(s) * 1e3
            row = Row(grid_dims(grid), batch, round(dm, 4), round(sm, 4), round(sm / dm, 3), min(len(d), len(s)),
                      load_before, _load())
            res.rows.append(row)
            print(f"  grid {row.grid:>5} batch {batch}: dynamic {dm:.3f} ms, static {sm:.3f} ms, static/dynamic "
                  f"{row.ratio:.3f} ({row.calls} calls each; load {row.load_before} -> {row.load_after})", flush=True)
        if args.op_profile:
            images = rng.standard_normal((1, *shape), dtype=np.float32)
            for name, path, feed in (("static", st_path, {"images": images}),
                                     ("dynamic", dyn_path, {"images": images, **grid_feed(dyn_path, grid)})):
                shares = _op_shares(path, feed, args.threads, args.op_runs, grid_dims(grid), 1, name,
                                    grid_arithmetic_nodes(path))
                res.op_profile.append(shares)
                top = ", ".join(f"{k} {100 * v:.1f}%" for k, v in list(shares.by_op.items())[:6])
                arith = sum(shares.shape_nodes.values())
                print(f"  op profile grid {grid_dims(grid)} {name}: outside kernels {100 * shares.outside_kernels:.1f}% "
                      f"of the median run; kernels: {top}; {len(shares.shape_nodes)} shape/check node(s) "
                      f"{100 * arith:.1f}% of the kernel time", flush=True)
    for label, side in (("per-grid", res.per_grid), ("dynamic", res.dynamic)):
        print(f"  {label}: {side.files} graph(s), {side.bytes_all} bytes ({side.bytes_final} kept by --keep final); "
              f"stages {side.stage_s} (wall {side.wall_s} s, load {side.load_before} -> {side.load_after})", flush=True)
    return res


def main() -> None:
    from exporter.profiles import load_profile
    from exporter.versions import tool_versions

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--variants", default="lookupvit_digits,lookupvit_b16")
    ap.add_argument("--profile", default="cpu", help="whose grids and precisions each variant is made with")
    ap.add_argument("--precisions", default=None, help="instead of the profile's, e.g. fp32")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=20, help="calls per chunk (at most; see --chunk-seconds)")
    ap.add_argument("--chunk-seconds", type=float, default=1.0, help="a chunk ends after this long (at least 2 calls)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--graph", choices=("optimized", "export"), default="optimized")
    ap.add_argument("--op-profile", action="store_true", help="ONNX Runtime's per-op shares at batch 1, each grid")
    ap.add_argument("--op-runs", type=int, default=200)
    ap.add_argument("--work", default=None, help="keep the graphs here (default: a temporary folder)")
    ap.add_argument("--out", default="bench/results/dynamic_grid.json")
    args = ap.parse_args()

    profile = load_profile(args.profile)
    res = Result(profile.name, args.threads, args.rounds, args.iters, args.chunk_seconds, versions=tool_versions())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        for variant in (v.strip() for v in args.variants.split(",") if v.strip()):
            res.variants.append(bench_variant(args, profile, variant, work))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(res), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
