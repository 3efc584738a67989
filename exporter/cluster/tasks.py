"""The two kinds of task a cluster run schedules (docs/architecture.md, Distribution).

- :func:`prepare_task`: one model at one grid, exported, optimised and converted into the
  precisions the profiles ask for (:func:`exporter.run.prepare.prepare_graph`: the host stages of
  :mod:`exporter.pipeline.stages`), for one target runtime; for TensorRT profiles also checked, and
  their engines built where the node builds them without a GPU (TensorRT-RTX ahead of time), so a
  prepare task needs no GPU resource and runs on any node;
  1 CPU, any node. Returns its files by content hash and the manifest entries of its stages.
- :func:`device_task`: one profile's whole run (:func:`exporter.run.job.run_job`) on a node that
  offers the profile's ``[cluster]`` resources, in a node-local folder laid out like a local run
  and seeded with the prepared files and their manifest entries, so the run skips those stages and
  runs its device stages there.

Both work in ``<temp>/lookupvit-work/<run key>/...`` on their node and write ``running.json``
(pid, node, attempt start) there. A retried task (Ray retries a task whose worker died:
``max_retries``) finds that folder and its manifest, so it resumes instead of redoing finished
stages. Both check that the node runs the driver's version of the package; a mismatch is refused
(:class:`Refusal`), never run with other code.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..pipeline.manifest import write_entries
from ..pipeline.unit import CellGrid
from ..run.options import RunOptions
from .transport import (
    WORK,
    FileSet,
    collect,
    materialise,
    node_temp,
    read_entries,
    relocate,
    stage_entries,
)


@dataclass(frozen=True)
class GraphJob:
    key: str  # identity of the prepared graph set (variant, grid, target, precisions, optimize)
    run_key: str
    version: str
    profile_name: str  # the profile whose chain settings make it (TensorRT: its parser check)
    profile_text: str
    variant: str
    grid: CellGrid  # a GridSet for a dynamic-grid graph
    precisions: tuple[str, ...]
    optimize: bool | None
    shared_dir: str | None = None  # --shared-dir: contents go there instead of the object store
    build_profiles: tuple[tuple[str, str], ...] = ()  # (name, text) of every TensorRT profile using these graphs


@dataclass(frozen=True)
class DeviceJob:
    run_key: str
    version: str
    profile_name: str
    profile_text: str
    options: RunOptions  # profile and out_dir are replaced by the node's own
    shared_dir: str | None = None


@dataclass
class Timing:
    node: str = ""
    started: float = 0.0  # wall clock (time.time()) at the task's first line, on its node
    finished: float = 0.0
    materialise_s: float = 0.0  # laying inputs out from the object store and the node cache
    work_s: float = 0.0  # the pipeline's stages
    collect_s: float = 0.0  # hashing and reading back the outputs


@dataclass
class PreparedGraph:
    key: str
    root: str  # the folder it was made in, on its node (for relocating the entries)
    entries: dict[str, dict[str, Any]]
    files: FileSet
    timing: Timing
    stages: list[dict[str, Any]] = field(default_factory=list)  # outcomes (ran, skipped, failed)


@dataclass
class DeviceResult:
    profile: str
    root: str
    files: FileSet  # every file of the run folder; bytes for those the driver was not sent already
    verdict: dict[str, Any]
    timing: Timing
    seconds: float = 0.0


@dataclass
class Refusal:
    """Work a node refused (another package version, a backend it lacks): not run, with the fix."""

    message: str
    hint: str | None = None
    node: str = ""


def node_label() -> str:
    """``<ip>/<node id, 12 hex>``: what the manifest records as a stage's node."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:12]}"


def _start(folder: Path, node: str, what: str) -> None:
    from ..io import write_json
    from ..pipeline.manifest import set_node_name

    set_node_name(node)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "running.json", {"pid": os.getpid(), "node": node, "task": what, "started": time.time()})


def _version_refusal(version: str, node: str) -> Refusal | None:
    from .. import __version__

    if version == __version__:
        return None
    return Refusal(f"node {node} runs lookupvit-deploy {__version__}, the driver {version}",
                   "Install the same version on every node: pip install 'lookupvit-deploy[ray]=="
                   f"{version}' (every node needs the same lookupvit-deploy[ray]).", node)


def _shared_refusal(shared_dir: str | None, node: str) -> Refusal | None:
    if shared_dir is None or Path(shared_dir).is_dir():
        return None
    return Refusal(f"node {node} does not see the shared folder {shared_dir}",
                   "Mount it at the same path on every node, or leave out --shared-dir (files then travel "
                   "through Ray's object store).", node)


def _profile_file(base: Path, name: str, text: str) -> Path:
    path = base / "profile" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def prepare_task(job: GraphJob) -> PreparedGraph | Refusal:
    from ..run.prepare import prepare_graph

    t = Timing(node_label(), time.time())
    refused = _version_refusal(job.version, t.node) or _shared_refusal(job.shared_dir, t.node)
    if refused:
        return refused
    base = node_temp() / WORK / job.run_key / "prepare" / job.key
    _start(base, t.node, f"prepare {job.variant}")
    run_dir = base / "run"
    opts = RunOptions(profile=_profile_file(base, job.profile_name, job.profile_text), out_dir=run_dir,
                      optimize=job.optimize)
    builds = tuple(_profile_file(base, name, text) for name, text in job.build_profiles)
    t0 = time.perf_counter()
    try:
        outcomes = prepare_graph(opts, job.variant, job.grid, job.precisions, build_profiles=builds)
    except UserError as e:
        return Refusal(e.message, e.hint, t.node)
    t.work_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    files = collect(run_dir, skip=("stages.json",)).stored(job.shared_dir)
    t.collect_s = time.perf_counter() - t0
    t.finished = time.time()
    return PreparedGraph(job.key, str(run_dir), read_entries(run_dir), files, t, [o.to_dict() for o in outcomes])


def device_task(job: DeviceJob, board: Any, seed: FileSet | None, seed_root: str,
                *prepared: PreparedGraph | Refusal) -> DeviceResult | Refusal:
    from ..run.job import run_job
    from .progress import BoardProgress

    t = Timing(node_label(), time.time())
    refused = (_version_refusal(job.version, t.node) or _shared_refusal(job.shared_dir, t.node)
               or next((p for p in prepared if isinstance(p, Refusal)), None))
    if refused:
        return refused
    base = node_temp() / WORK / job.run_key / job.profile_name
    _start(base, t.node, f"run {job.profile_name}")
    run_dir = base / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    root = str(run_dir.resolve())

    t0 = time.perf_counter()  # seed (an earlier run's folder) < prepared graphs < this folder's own (a retry)
    entries: dict[str, dict[str, Any]] = {}
    sources: list[tuple[FileSet, dict[str, dict[str, Any]], str]] = []
    if seed is not None:
        seed_entries = (stage_entries(seed.content(seed.files["stages.json"]).decode("utf-8", "replace"), f"{seed_root}/stages.json")
                        if "stages.json" in seed.files else {})
        sources.append((seed, seed_entries, seed_root))
    sources += [(p.files, p.entries, p.root) for p in prepared if isinstance(p, PreparedGraph)]
    known: set[str] = set()
    for files, src_entries, src_root in sources:
        known.update(files.files.values())
        materialise(files.files, files.content, run_dir, Path(files.store) if files.store else None)
        entries.update(relocate(src_entries, src_root, root))
    entries.update(read_entries(run_dir))
    write_entries(run_dir, entries)
    t.materialise_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    opts = replace(job.options, profile=_profile_file(base, job.profile_name, job.profile_text), out_dir=run_dir)
    try:
        result = run_job(opts, BoardProgress(board, job.profile_name, t.node))
    except UserError as e:
        return Refusal(e.message, e.hint, t.node)
    t.work_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    files = collect(run_dir, known=known).stored(job.shared_dir)
    t.collect_s = time.perf_counter() - t0
    t.finished = time.time()
    shutil.rmtree(base, ignore_errors=True)  # everything is in the result; a retry after this starts from the inputs
    return DeviceResult(job.profile_name, root, files, result.verdict.to_dict(), t, result.seconds)
