"""What does running a profile on a Ray cluster cost against running it here?

    python bench/bench_cluster.py                    # 3 interleaved repetitions of the tiny profile
    python bench/bench_cluster.py --repeats 5 --profile tests/profiles/tiny.toml

Starts a two-node Ray cluster on this machine (exporter.cluster.local.LocalCluster: a head and a
second node, 2 CPUs each, own ports) and runs the profile REPEATS times each way, interleaved
(local, cluster; then cluster, local; ...), each time into a fresh folder so that nothing is resumed:

- local:   ``lookupvit run --profile P -o DIR``
- cluster: ``lookupvit run --profile P --cluster 127.0.0.1:PORT -o DIR``

and reports the medians of: the wall time of each (and their ratio, cluster / local), and from the
cluster run's ``fleet.json`` the scheduling overhead per task: submit -> start (from the later of
submission and the task's inputs being ready: Ray placing the task and starting or reusing a
worker; the first tasks of a run import torch in fresh workers), the whole overhead (from ready to
the driver holding the result, less the stages' own time), the
time a device task spends laying out its inputs from the object store and the node cache
(``materialise_s``), reading back its outputs (``collect_s``), the driver's write-back into the run
folder (``write_back_s``) and the bytes that travelled back. Both nodes share this machine's cores,
so the cluster's parallel prepare tasks compete with each other: the ratio is the cost of the
machinery on one machine, not what a cluster of several machines gains.

The 1-minute load average is recorded before every run; figures taken while other work held a
core say more about the machine than about the tool. Writes JSON (``--out``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one_run(profile: Path, out: Path, cluster: str | None) -> dict[str, object]:
    cmd = [sys.executable, "-m", "exporter.cli", "run", "--profile", str(profile), "-o", str(out)]
    if cluster:
        cmd += ["--cluster", cluster]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    row: dict[str, object] = {"mode": "cluster" if cluster else "local", "wall_s": round(wall, 2), "load_before": load}
    if cluster:
        fleet = json.loads((out / "fleet.json").read_text())
        row["tasks"] = fleet["tasks"]
    return row


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarise(rows: list[dict[str, object]]) -> dict[str, object]:
    local = [float(r["wall_s"]) for r in rows if r["mode"] == "local"]  # type: ignore[arg-type]
    clust = [float(r["wall_s"]) for r in rows if r["mode"] == "cluster"]  # type: ignore[arg-type]
    tasks = [t for r in rows for t in r.get("tasks", [])]  # type: ignore[attr-defined]
    out: dict[str, object] = {
        "local_wall_s": _median(local), "cluster_wall_s": _median(clust),
        "ratio_cluster_over_local": round(statistics.median(clust) / statistics.median(local), 3) if local and clust else None,
        "load_before": [r["load_before"] for r in rows],
    }
    for kind in ("prepare", "device"):
        ks = [t for t in tasks if t["kind"] == kind]
        out[kind] = {
            "tasks": len(ks),
            "submit_to_start_s": _median([t["submit_to_start_s"] for t in ks if t["submit_to_start_s"] is not None]),
            "work_s": _median([t["work_s"] for t in ks]),
            "overhead_s": _median([t["overhead_s"] for t in ks if t["overhead_s"] is not None]),
            "materialise_s": _median([t["materialise_s"] for t in ks]),
            "collect_s": _median([t["collect_s"] for t in ks]),
            "write_back_s": _median([t["write_back_s"] for t in ks]),
            "bytes_back": _median([t["bytes_in"] for t in ks]),
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile", type=Path, default=ROOT / "tests" / "profiles" / "tiny.toml")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = p.parse_args()
    from exporter.cluster.local import LocalCluster

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster") as tmp, \
            LocalCluster([{"alpha": 1}, {"special": 1}]) as cluster:
        for i in range(args.repeats):
            order = [None, cluster.address] if i % 2 == 0 else [cluster.address, None]
            for address in order:
                row = one_run(args.profile, Path(tmp) / f"{i}-{'cluster' if address else 'local'}", address)
                row["repeat"] = i
                rows.append(row)
                print(f"repeat {i} {row['mode']:7s} {row['wall_s']:7.1f} s  (load {row['load_before']:.2f})", flush=True)
    doc = {"profile": str(args.profile), "repeats": args.repeats, "cpus": os.cpu_count(), "nodes": 2,
           "summary": summarise(rows), "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc["summary"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
