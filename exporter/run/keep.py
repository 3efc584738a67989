"""What a run leaves on disk: ``--keep final`` (the default) or ``--keep all``, and the bytes it wrote.

A run folder holds each model at every stage (export -> optimize -> precision -> build). The graphs
a backend runs (the optimised graph and its precision conversions) and the engines are final. An
exported graph is an intermediate once its optimised graph exists: no later stage reads it, and for
a 224-px model it is as large as the optimised one. ``--keep final`` deletes those exports (with any
external data file) at the end of the run and records them in ``stages.json`` as dropped: a rerun
still skips the export and every stage fed by it (the recorded sha256 stands in for the file), and
should the optimised graph have to be made again, the export runs again first. ``--keep all``
deletes nothing. Where the optimisation passes are off or absent the export is the final fp32
graph and is always kept.

Deletion touches only what this tool wrote and recorded (docs/security.md): the graph must be an
output of its export entry, lie inside the run folder in its stage's folder
(:func:`exporter.safe_paths.confined`), be a regular file rather than a symbolic link, and still hash
to the sha256 recorded when it was written, in the layout's folder of its stage
(``<variant>/g<grid>/onnx/``); a file that fails any of these is left where it is.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from ..pipeline.manifest import Manifest, file_hash
from ..pipeline.stages import EXPORT, OPTIMIZE
from ..safe_paths import confined, is_plain_file, remove_file

KEEP_POLICIES = ("final", "all")
DEFAULT_KEEP = "final"

Snapshot = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)


@dataclass(frozen=True)
class DiskUsage:
    keep: str
    written: int  # bytes of the files this run created or rewrote (including those --keep final then deleted)
    folder: int  # bytes in the run folder at the end
    dropped: int  # bytes deleted by --keep final
    dropped_files: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def snapshot(folder: str | Path) -> Snapshot:
    root = Path(folder)
    out: Snapshot = {}
    for here, _dirs, files in os.walk(root, followlinks=False):  # never through a symbolic link
        for name in files:
            p = Path(here) / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def drop_intermediates(manifest: Manifest) -> Snapshot:
    """Delete every exported graph whose optimised graph is on disk; returns what was deleted."""
    gone: Snapshot = {}
    for stage_id, entry in list(manifest.entries.items()):
        if entry.get("kind") != EXPORT:
            continue
        optimize = manifest.entries.get(f"{OPTIMIZE}:" + stage_id.split(":", 1)[1])
        if not optimize or not any(rel.endswith(".onnx") and (manifest.root / rel).is_file()
                                   for rel in optimize.get("outputs", {})):
            continue  # the export is the final fp32 graph here
        parts = stage_id.split(":")  # export:<variant>:<grid tag>
        folder = (f"{parts[1]}/onnx" if parts[2] == "-" else f"{parts[1]}/{parts[2]}/onnx") if len(parts) == 3 else None
        for rel, digest in entry.get("outputs", {}).items():
            if not rel.endswith(".onnx"):
                continue  # the sidecar (settings, hashes) stays
            key = f"stages.{stage_id}.outputs"
            graph = confined(manifest.root, rel, manifest.path, key)
            if rel in entry.get("dropped", []) and not graph.is_file():
                continue  # dropped by an earlier run: stages.json stays as it is
            if str(Path(rel).parent) != folder or not is_plain_file(graph) or file_hash(graph) != digest:
                continue  # not the file this tool wrote there: left alone
            data = f"{rel}.data"
            for r in (rel, data):
                p = manifest.root / r
                if is_plain_file(p):
                    st = p.stat()
                    gone[r] = (st.st_size, st.st_mtime_ns)
                    remove_file(manifest.root, r, manifest.path, key)
            manifest.drop(stage_id, rel)
            if data in entry.get("outputs", {}):  # recorded with the model (exporter/pipeline/steps.py)
                manifest.drop(stage_id, data)
    return gone


def finish(folder: str | Path, manifest: Manifest, keep: str, before: Snapshot) -> DiskUsage:
    """Apply the keep policy at the end of a run and measure what the run wrote."""
    gone = drop_intermediates(manifest) if keep == "final" else {}
    after = snapshot(folder)
    written = sum(size for rel, (size, mtime) in {**after, **gone}.items() if before.get(rel) != (size, mtime))
    return DiskUsage(keep, written, sum(size for size, _ in after.values()), sum(s for s, _ in gone.values()), len(gone))
