"""One dynamic-grid ONNX model against one static model per grid (README, "Dynamic-grid models").

LookupViT (arXiv 2407.12753) chooses its compressed grid at inference; a dynamic-grid export keeps
that choice in one file. This script measures what that costs and saves on ONNX Runtime's CPU
provider (2 intra-op threads by default):

- latency of the dynamic model at each grid against the static model of that grid, batch 1 and 8:
  interleaved rounds (dynamic, static, then static, dynamic in the next round), the median per-call
  time of each side over all rounds, and the ratio static / dynamic (>= 1: the dynamic model is at
  least as fast); the load average before and after each block is recorded;
- bytes on disk, the one dynamic file against the per-grid files;
- export time, one dynamic export against one export per grid.

    python bench/bench_dynamic_grid.py [--variant lookupvit_digits] [--grids 1,2,3,4,6] [--rounds 15]
        [--iters 20] [--threads 2] [--out runs/bench/dynamic_grid.json]
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

import numpy as np


@dataclass
class Row:
    grid: str
    batch: int
    dynamic_ms: float
    static_ms: float
    ratio: float  # static / dynamic: >= 1 when the dynamic model is at least as fast
    load_before: float
    load_after: float


@dataclass
class Result:
    variant: str
    grids: list[str]
    threads: int
    rounds: int
    iters: int
    rows: list[Row] = field(default_factory=list)
    bytes_dynamic: int = 0
    bytes_static: int = 0
    export_s_dynamic: float = 0.0
    export_s_static: float = 0.0
    cpu_count: int = os.cpu_count() or 0


def _session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _time(sess, feed: dict[str, np.ndarray], iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(None, feed)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    from exporter.export import dynamic_grid_source, export_onnx, resolve_variant_source
    from exporter.models.config import grid_dims

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="lookupvit_digits")
    ap.add_argument("--grids", default="1,2,3,4,6")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bench/dynamic_grid.json")
    args = ap.parse_args()

    specs = [s for s in args.grids.split(",") if s.strip()]
    sources = [resolve_variant_source(args.variant, grid=s) for s in specs]
    res = Result(args.variant, [grid_dims(s.grid) for s in sources], args.threads, args.rounds, args.iters)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        dyn = export_onnx(dynamic_grid_source(sources[0], [s.grid for s in sources]), Path(tmp) / "dynamic", force=True)  # type: ignore[misc]
        statics = [export_onnx(s, Path(tmp) / "static", force=True) for s in sources]
        res.bytes_dynamic, res.bytes_static = dyn.size_bytes, sum(r.size_bytes for r in statics)
        res.export_s_dynamic, res.export_s_static = round(dyn.seconds, 2), round(sum(r.seconds for r in statics), 2)
        dyn_sess = _session(dyn.path, args.threads)
        shape = dyn_sess.get_inputs()[0].shape[1:]
        rng = np.random.default_rng(0)
        for src, st in zip(sources, statics):
            st_sess = _session(st.path, args.threads)
            for batch in (int(b) for b in args.batches.split(",")):
                images = rng.standard_normal((batch, *shape), dtype=np.float32)
                dyn_feed = {"images": images, "grid": np.zeros(src.grid, np.float32)}  # type: ignore[arg-type]
                st_feed = {"images": images}
                _time(dyn_sess, dyn_feed, 3), _time(st_sess, st_feed, 3)  # warm-up
                load_before = os.getloadavg()[0]
                d: list[float] = []
                s: list[float] = []
                for r in range(args.rounds):  # interleaved, the order alternating per round
                    if r % 2 == 0:
                        d += _time(dyn_sess, dyn_feed, args.iters)
                        s += _time(st_sess, st_feed, args.iters)
                    else:
                        s += _time(st_sess, st_feed, args.iters)
                        d += _time(dyn_sess, dyn_feed, args.iters)
                dm, sm = statistics.median(d) * 1e3, statistics.median(s) * 1e3
                row = Row(grid_dims(src.grid), batch, round(dm, 4), round(sm, 4), round(sm / dm, 3),  # type: ignore[arg-type]
                          round(load_before, 2), round(os.getloadavg()[0], 2))
                res.rows.append(row)
                print(f"grid {row.grid:>4} batch {batch}: dynamic {dm:.3f} ms, static {sm:.3f} ms, "
                      f"static/dynamic {row.ratio:.3f} (load {row.load_before} -> {row.load_after})", flush=True)
    print(f"bytes on disk: dynamic {res.bytes_dynamic} (1 file), per-grid {res.bytes_static} ({len(statics)} files), "
          f"ratio {res.bytes_dynamic / res.bytes_static:.3f}")
    print(f"export time: dynamic {res.export_s_dynamic} s, per-grid {res.export_s_static} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(res), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
